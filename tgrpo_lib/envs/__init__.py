"""Env layer: the only part of the project that imports libero / robosuite / mujoco.

- registry: suites, tasks, init states, episode protocol constants
- core: ``make_env`` / ``LiberoEnv`` (observations, privileged state)
- group: ``GroupEngine`` (N envs in worker processes) and ``rollout_group`` (paper's stop rule)
- evaluation: ``evaluate`` (standard / held-out init states, per-episode table, videos)
"""
from .config import EnvConfig
from .registry import (MAX_STEPS, NOOP_ACTION, NUM_WARMUP_STEPS, SUITES, TaskSpec, canonical_suite, get_task,
                       list_tasks, standard_init_states)

__all__ = [
    "EnvConfig", "MAX_STEPS", "NOOP_ACTION", "NUM_WARMUP_STEPS", "SUITES", "TaskSpec", "canonical_suite",
    "get_task", "list_tasks", "standard_init_states", "make_env", "LiberoEnv", "GroupEngine", "GroupRollout",
    "rollout_group", "evaluate", "heldout_init_states", "init_states_for", "write_video",
]


def __getattr__(name):  # heavy pieces load on first use, so `import tgrpo_lib.envs` stays cheap
    if name in ("make_env", "LiberoEnv", "flip_image"):
        from . import core
        return getattr(core, name)
    if name in ("GroupEngine", "GroupRollout", "rollout_group", "stack_obs"):
        from . import group
        return getattr(group, name)
    if name in ("evaluate", "heldout_init_states", "init_states_for", "run_episodes", "as_policy_fn"):
        from . import evaluation as _ev
        return getattr(_ev, name)
    if name == "write_video":
        from .video import write_video
        return write_video
    raise AttributeError(name)
