"""Evaluation protocol: fixed (standard) or held-out init states, per-episode table, videos.

Held-out init states come from LIBERO's own placement sampler (a hard reset draws a new
scene layout) with seeds disjoint from anything else in the project, and are cached to disk,
so results can be reported on states a policy was never trained on.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

import tgrpo_lib

from .config import EnvConfig
from .group import GroupEngine
from .registry import canonical_suite, get_task, standard_init_states

HELDOUT_SEED_BASE = 1_000_003  # seeds used only for held-out layouts (standard states ship with LIBERO)
INIT_STATE_SETS = ("standard", "heldout")


def heldout_init_states(suite: str, task_id: int, n: int = 50, cache_dir: Path | None = None) -> np.ndarray:
    """``n`` init states drawn by LIBERO's placement sampler, cached as .npz; shape (n, D)."""
    from .core import make_env

    spec = get_task(suite, task_id)
    cache_dir = Path(cache_dir or tgrpo_lib.CACHE_DIR / "heldout_init_states") / spec.suite
    path = cache_dir / f"task_{spec.task_id}_n{n}.npz"
    if path.exists():
        return np.load(path)["states"]
    env = make_env(spec.suite, spec.task_id, EnvConfig(cameras=(), hard_reset=True))
    try:
        states = []
        for k in range(n):
            np.random.seed(HELDOUT_SEED_BASE + 1000 * spec.task_id + k)  # robosuite samplers draw from np.random
            env._env.reset()
            states.append(env.get_sim_state())
    finally:
        env.close()
    states = np.stack(states)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, states=states, seeds=HELDOUT_SEED_BASE + 1000 * spec.task_id + np.arange(n))
    os.replace(tmp, path)
    return states


def init_states_for(suite: str, task_id: int, which: str = "standard", n: int | None = None) -> np.ndarray:
    """The init-state set named ``which`` (``standard`` = LIBERO's 50, ``heldout`` = sampled)."""
    if which == "standard":
        states = standard_init_states(suite, task_id)
        return states if n is None else states[:n]
    if which == "heldout":
        return heldout_init_states(suite, task_id, n=n or 50)
    raise ValueError(f"init_states={which!r}: pass one of {INIT_STATE_SETS}.")


def run_episodes(engine: GroupEngine, policy_fn: Callable[[dict], Mapping[str, np.ndarray]], init_states: np.ndarray,
                 record: Iterable[int] = (), progress: bool = True, desc: str = "episodes") -> list[dict]:
    """Run one episode per init state, N at a time, each stopping at its own success.

    Returns one dict per episode: index, success, length, and ``frames`` (T, H, W, 3) for the
    episodes listed in ``record``.
    """
    from tqdm.auto import tqdm

    record = set(record)
    results: list[dict] = []
    todo = list(range(len(init_states)))
    bar = tqdm(total=len(todo), desc=desc, disable=not progress, leave=False)
    while todo:
        batch, todo = todo[: engine.n], todo[engine.n :]
        states = [init_states[i] for i in batch] + [init_states[batch[0]]] * (engine.n - len(batch))
        obs = engine.reset(np.stack(states))
        active = np.array([k < len(batch) for k in range(engine.n)])
        length = np.zeros(engine.n, int)
        success = np.zeros(engine.n, bool)
        frames = {i: [obs["agentview"][k]] for k, i in enumerate(batch) if i in record and "agentview" in obs}
        for _ in range(engine.max_steps):
            actions = np.asarray(policy_fn(obs)["actions"], dtype=np.float64)
            obs, done = engine.step(actions, active)
            length += active
            success |= done & active
            for k, i in enumerate(batch):
                if i in frames and active[k]:
                    frames[i].append(obs["agentview"][k])
            active &= ~done
            if not active.any():
                break
        for k, i in enumerate(batch):
            row = {"episode": i, "success": bool(success[k]), "length": int(length[k])}
            if i in frames:
                row["frames"] = np.stack(frames[i])
            results.append(row)
        bar.update(len(batch))
    bar.close()
    return results


def evaluate(policy, suite: str, task_ids: Iterable[int] | int, episodes_per_task: int = 50,
             init_states: str = "standard", seed: int = 0, cfg: EnvConfig = EnvConfig(), n_envs: int = 2,
             video_dir: str | Path | None = None, video_episodes: Iterable[int] = (0,), greedy: bool = True,
             progress: bool = True):
    """The standard LIBERO protocol: for each task, ``episodes_per_task`` episodes from the
    chosen init-state set; returns a pandas DataFrame (suite, task_id, init_set, episode,
    success, length, seconds, video).

    ``policy`` follows the project's policy interface (``act(obs, instruction, greedy=...)``)
    or is a plain callable ``obs_batch -> actions``.
    """
    import pandas as pd

    from .video import write_video

    suite = canonical_suite(suite)
    task_ids = [task_ids] if isinstance(task_ids, (int, np.integer)) else list(task_ids)
    rows = []
    for task_id in task_ids:
        spec = get_task(suite, task_id)
        states = init_states_for(suite, task_id, init_states, n=episodes_per_task)
        if len(states) < episodes_per_task:
            raise ValueError(f"{suite} task {task_id} has {len(states)} {init_states} init states: pass episodes_per_task <= {len(states)}.")
        policy_fn = as_policy_fn(policy, spec.instruction, greedy=greedy, seed=seed)
        with GroupEngine(suite, task_id, min(n_envs, episodes_per_task), cfg) as engine:
            t0 = time.perf_counter()
            results = run_episodes(engine, policy_fn, states, record=video_episodes if video_dir else (),
                                   progress=progress, desc=f"{spec.key} {init_states}")
            seconds = time.perf_counter() - t0
        for r in results:
            video = None
            if "frames" in r:
                video = str(write_video(Path(video_dir) / f"{spec.key}_{init_states}_ep{r['episode']:02d}.mp4", r["frames"]))
            rows.append({"suite": suite, "task_id": task_id, "init_set": init_states, "episode": r["episode"],
                         "success": r["success"], "length": r["length"], "seconds": seconds / len(results),
                         "video": video})
    return pd.DataFrame(rows)


def as_policy_fn(policy, instruction: str, greedy: bool = True, seed: int = 0) -> Callable[[dict], Mapping[str, np.ndarray]]:
    """Adapt a policy object (``act``) or a plain ``obs -> actions`` callable to a policy_fn."""
    if hasattr(policy, "act"):
        def fn(obs):
            out = policy.act(obs, instruction, greedy=greedy)
            return {"actions": out.env_actions, "tokens": out.tokens, "log_prob": out.log_prob}
        return fn
    if callable(policy):
        def fn(obs):
            res = policy(obs)
            return res if isinstance(res, Mapping) else {"actions": res}
        return fn
    raise TypeError(f"policy must have an act() method or be callable, got {type(policy).__name__}.")
