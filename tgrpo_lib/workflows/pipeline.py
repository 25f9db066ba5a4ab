"""End-to-end steps the notebooks and ``make run`` share: expert episodes, reward sanity
checks, and demonstrations -> SFT checkpoint (used by `make run`, see main.py)."""
from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

import tgrpo_lib
from tgrpo_lib.envs import EnvConfig, canonical_suite, make_env, standard_init_states
from tgrpo_lib.expert import run_task
from tgrpo_lib.expert.rollout import run_episode
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import run_name, sft_default
from tgrpo_lib.infra.demos import DEMO_FILE, load_demos, task_dir
from tgrpo_lib.reward import check_reward
from tgrpo_lib.reward.evidence import random_rollouts as rollouts_on
from tgrpo_lib.training.sft import train_sft


def expert_episodes(suite: str, task_id: int, n: int = 3, cameras: tuple[str, ...] = (), seed: int = 0,
                    first_state: int = 0, progress: bool = True) -> list:
    """``n`` scripted-expert episodes from consecutive standard init states (physics only by
    default: ~7x faster; pass cameras=("agentview",) to keep frames)."""
    env = make_env(suite, task_id, EnvConfig(cameras=cameras))
    states = standard_init_states(suite, task_id)
    try:
        return [run_episode(env, states[(first_state + k) % len(states)], seed=seed + k,
                            init_index=(first_state + k) % len(states))
                for k in tqdm(range(n), desc="expert episodes", disable=not progress, leave=False)]
    finally:
        env.close()


def random_rollouts(suite: str, task_id: int, n: int = 3, steps: int = 60, seed: int = 0) -> list[dict]:
    """Privileged-state trajectories of uniformly random actions (the failures a reward must rank
    below the expert); each {key: (T+1, ...)}."""
    env = make_env(suite, task_id, EnvConfig(cameras=()))
    try:
        return rollouts_on(env, standard_init_states(suite, task_id), n, steps=steps, seed=seed)
    finally:
        env.close()


def reward_sanity(program, expert: list, failures: list[dict], task: str = ""):
    """Sanity report of a reward program on expert successes vs failed/random rollouts."""
    trajs = [ep.states for ep in expert] + failures
    success = [bool(ep.success) for ep in expert] + [False] * len(failures)
    return check_reward(program, trajs, success, task=task)


# ----------------------------------------------------------------------------- demos -> SFT
def ensure_demos(suite: str, task_id: int, episodes: int, layouts: str = "sampled", seed: int = 0,
                 wrist: bool = False, progress: bool = True) -> Path:
    """Record ``episodes`` successful expert demonstrations with images (128 px agentview, and
    the wrist camera when ``wrist``) on ``layouts`` ("sampled": fresh training scenes; "standard": LIBERO's 50 states) unless
    the task's demo file already holds that many of that kind; returns the task's demo directory.

    A file of the other kind, or with too few, is kept beside the new one as
    ``demos_<n>_<layout>.h5``: nothing recorded is lost."""
    folder = task_dir(canonical_suite(suite), task_id)
    path = folder / DEMO_FILE
    folder.mkdir(parents=True, exist_ok=True)
    with runs.run_lock(folder):  # two `make run` at once: the second is refused, not recording over the first
        if path.exists():
            have = load_demos(path, with_images=False, with_states=False)
            if len(have) >= episodes and all(d.layout == layouts for d in have):
                return folder
            kinds = "_".join(sorted({d.layout for d in have})) or "empty"
            kept = path.with_name(f"demos_{len(have)}_{kinds}.h5")
            path.rename(kept)
            print(f"[demos] {path} held {len(have)} {kinds} demonstrations, {episodes} {layouts} ones are needed: "
                  f"kept it as {kept.name}, recording anew")
        run = run_task(canonical_suite(suite), task_id, episodes=episodes, seed=seed, record=True, wrist=wrist,
                       init_states=layouts, out=tgrpo_lib.OUTPUTS_DIR / "demos", progress=progress)
        if "demos" not in run.files:
            raise RuntimeError(f"the expert solved none of {episodes} episodes of {suite} task {task_id}; "
                               "see outputs/demos/.../results.csv")
    return folder


def ensure_sft_checkpoint(cfg, progress: bool = True) -> Path:
    """The SFT policy of ``cfg`` (an ``SFTConfig``, e.g. ``config.sft_default``) RL starts from:
    its demos recorded and SFT trained only if missing."""
    if not runs.is_complete(runs.run_dir_path("sft", run_name(cfg))) and cfg.demos_root is None:
        for task_id in cfg.task_ids:
            ensure_demos(cfg.suite, task_id, episodes=cfg.max_demos_per_task, layouts=cfg.demo_layouts,
                         seed=cfg.seed, wrist=cfg.policy.use_wrist, progress=progress)
    return train_sft(cfg, progress=progress).run_dir / "checkpoints" / "policy"


def resolve_sft_checkpoint(sft_checkpoint: str | None, suite: str, task_id: int, demos: int | None = None,
                           epochs: int | None = None, seed: int = 0) -> str | None:
    """The notebooks' ``sft_checkpoint`` parameter for one task: "auto" -> that task's SFT policy
    (demos recorded and SFT trained if missing; ``demos`` / ``epochs`` None = the recipe's, see
    ``config.sft_default``); a path or None (a fresh policy) as given."""
    if sft_checkpoint != "auto":
        return sft_checkpoint
    return str(ensure_sft_checkpoint(sft_default(suite, task_id, demos=demos, epochs=epochs, seed=seed)))


def sft_checkpoints(sft_checkpoint: str | None, suite: str, task_ids, demos: int | None = None,
                    epochs: int | None = None, seed: int = 0) -> tuple[str | None, dict | None]:
    """The same parameter for a sweep over ``task_ids``: (init_checkpoint of every cell, {task key:
    checkpoint} or None). "auto" gives each task its own SFT policy."""
    if sft_checkpoint != "auto":
        return sft_checkpoint, None
    suite = canonical_suite(suite)
    return None, {f"{suite}-{t}": resolve_sft_checkpoint("auto", suite, t, demos, epochs, seed) for t in task_ids}
