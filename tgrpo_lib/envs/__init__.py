"""Env layer: the only part of the project that imports libero / robosuite / mujoco. Simulation
only: the evaluation protocol and the policy adapters live outside (``tgrpo_lib.training.evaluation``,
``tgrpo_lib.policy.acting``).

- registry: suites, tasks, init states, episode protocol constants
- core: ``make_env`` / ``LiberoEnv`` (observations, privileged state, held-out layouts)
- init_states: ``init_states_for`` (``standard`` / ``heldout`` / ``test`` sets), ``heldout_init_states``
- group: ``GroupEngine`` (N envs in worker processes, observations in shared memory) and its
  worker protocol (``EnvWorkerError``)
- pipeline: ``Pipeline``, the one pipelined step loop (the policy acts on one worker's envs while
  the others simulate), and the policy's contract ``PolicyFn``
- rollout: ``rollout_group`` (N trajectories from one init state, the paper's stop rule) -> ``GroupRollout``
- episodes: ``run_episodes`` (one episode per init state, continuous batching)
- video: ``write_video``
- third_party: the LIBERO / robosuite imports, without their import-time chatter (robosuite's
  "No private macro file found!", LIBERO's "[info] Applying task order ..." prints)

Everything is imported eagerly (~0.1 s beside numpy): what is heavy, libero / robosuite /
mujoco (~1.5 s), is imported only where a simulator is built (``LiberoEnv``) or a task is looked up.
"""
from .config import EnvConfig
from .core import LiberoEnv, flip_image, make_env
from .episodes import run_episodes
from .group import EnvWorkerError, GroupEngine
from .init_states import HELDOUT_SEED_BASE, INIT_STATE_SETS, N_TEST_STATES, heldout_init_states, init_states_for
from .pipeline import Pipeline, PolicyFn, WorkerStep, stack_obs
from .registry import (EXTRA_SUITES, MAX_STEPS, NOOP_ACTION, NUM_WARMUP_STEPS, PERTURBATIONS, SUITES, TaskSpec,
                       base_suite, canonical_suite, get_task, list_tasks, perturbations, perturbed_task,
                       shipped_suites, split_suite, standard_init_states)
from .rollout import GroupRollout, rollout_group
from .video import write_video

__all__ = [
    "EnvConfig", "EXTRA_SUITES", "MAX_STEPS", "NOOP_ACTION", "NUM_WARMUP_STEPS", "PERTURBATIONS", "SUITES", "TaskSpec",
    "base_suite", "canonical_suite", "get_task", "list_tasks", "perturbations", "perturbed_task", "shipped_suites",
    "split_suite", "standard_init_states", "make_env", "LiberoEnv", "flip_image", "GroupEngine",
    "GroupRollout", "EnvWorkerError", "Pipeline", "PolicyFn", "WorkerStep", "rollout_group", "stack_obs",
    "run_episodes", "HELDOUT_SEED_BASE", "INIT_STATE_SETS", "N_TEST_STATES", "heldout_init_states", "init_states_for", "write_video",
]
