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
    # A reset on the reused model draws the placements from np.random exactly as a hard reset
    # (a model rebuild, ~2 s) does: same states bit for bit, ~0.03 s each (tests/envs).
    env = make_env(spec.suite, spec.task_id, EnvConfig(cameras=(), hard_reset=False))
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
    """Run one episode per init state on the engine's N environments, each stopping at its own
    success or at the step budget.

    A slot whose episode ends is reset at once with the next init state (continuous batching),
    so no environment idles while a slower episode of the same batch finishes; with a 20-50%
    policy most episodes run the whole budget while successes end early, and lock-step batches
    left up to half the slots idle. The policy runs on one worker's environments at a time
    (``obs["env"]`` names them) while the other workers simulate, so policy and physics
    overlap. Each episode is independent of which slot runs it (the environments are
    bit-identical after a reset), so the results depend neither on N nor on the workers.

    Returns one dict per episode, in init-state order: episode, success, length, and ``frames``
    (T, H, W, 3) for the episodes listed in ``record``.
    """
    from tqdm.auto import tqdm

    record = set(record)
    n = engine.n
    todo = list(range(len(init_states)))
    if not todo:
        return []
    first, todo = todo[:n], todo[n:]
    slot = first + [-1] * (n - len(first))  # episode index running in each slot, -1 = idle
    obs = engine.reset(np.stack([init_states[i] for i in first] + [init_states[first[0]]] * (n - len(first))))
    length = np.zeros(n, int)
    frames = {i: [obs["agentview"][k]] for k, i in enumerate(first) if i in record and "agentview" in obs}
    results: dict[int, dict] = {}
    parts = [p for p in engine.worker_slots if p]
    bar = tqdm(total=len(init_states), desc=desc, disable=not progress, leave=False)

    def launch(w: int) -> bool:
        live = [k for k in parts[w] if slot[k] >= 0]
        if not live:
            return False
        actions = np.asarray(policy_fn(engine.last_obs(live))["actions"], dtype=np.float64)
        engine.step_send(w, dict(zip(live, actions)))
        return True

    try:
        running = [launch(w) for w in range(len(parts))]
        while any(running):
            for w in range(len(parts)):
                if not running[w]:
                    continue
                done = engine.step_recv(w)
                refill = []
                for k in done:
                    i = slot[k]
                    length[k] += 1
                    if i in frames:
                        frames[i].append(engine.last_obs([k])["agentview"][0])
                    if done[k] or length[k] >= engine.max_steps:
                        results[i] = {"episode": i, "success": bool(done[k]), "length": int(length[k])}
                        if i in frames:
                            results[i]["frames"] = np.stack(frames.pop(i))
                        bar.update(1)
                        length[k] = 0
                        slot[k] = todo.pop(0) if todo else -1
                        if slot[k] >= 0:
                            refill.append(k)
                if refill:
                    new = engine.reset_some(refill, np.stack([init_states[slot[k]] for k in refill]))
                    for k in refill:
                        if slot[k] in record and "agentview" in new:
                            frames[slot[k]] = [new["agentview"][k]]
                running[w] = launch(w)
    except BaseException:
        engine.drain()
        raise
    finally:
        bar.close()
    return [results[i] for i in sorted(results)]


def evaluate(policy, suite: str, task_ids: Iterable[int] | int, episodes_per_task: int = 50,
             init_states: str = "standard", cfg: EnvConfig = EnvConfig(), n_envs: int = 4,
             video_dir: str | Path | None = None, video_episodes: Iterable[int] = (0,), greedy: bool = True,
             progress: bool = True):
    """The standard LIBERO protocol: for each task, ``episodes_per_task`` episodes from the
    chosen init-state set; returns a pandas DataFrame (suite, task_id, init_set, episode,
    success, length, seconds, video).

    ``policy`` follows the project's policy interface (``act(obs, instruction, greedy=...)``)
    or is a plain callable ``obs_batch -> actions``. Greedy episodes are deterministic (no
    seed needed); ``greedy=False`` samples from the policy's own generator.
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
        policy_fn = as_policy_fn(policy, spec.instruction, greedy=greedy)
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


class ActingPolicy:
    """The one adapter from the policy interface (``act``) to the engines' policy_fn: acts
    without gradients, returns actions plus what training keeps (tokens, sampling log-probs,
    frozen image features), and counts the seconds spent in the policy."""

    def __init__(self, policy, instruction: str, greedy: bool = True, temperature: float = 1.0, threads: int | None = 1):
        self.policy, self.instruction, self.greedy, self.temperature = policy, instruction, greedy, temperature
        self.threads = threads  # torch CPU threads while acting: the simulator workers hold the other cores
        self.seconds = 0.0

    def __call__(self, obs: dict) -> dict:
        import torch

        t0 = time.perf_counter()
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                out = self.policy.act(obs, self.instruction, greedy=self.greedy, temperature=self.temperature)
        finally:
            torch.set_num_threads(before)
        self.seconds += time.perf_counter() - t0
        rec = {"actions": out.env_actions, "tokens": out.tokens, "log_prob": out.log_prob}
        if out.features is not None:
            rec["features"] = out.features
        return rec


def as_policy_fn(policy, instruction: str, greedy: bool = True, temperature: float = 1.0) -> Callable[[dict], Mapping[str, np.ndarray]]:
    """Adapt a policy object (``act``) or a plain ``obs -> actions`` callable to a policy_fn."""
    if hasattr(policy, "act"):
        return ActingPolicy(policy, instruction, greedy=greedy, temperature=temperature)
    if callable(policy):
        def fn(obs):
            res = policy(obs)
            return res if isinstance(res, Mapping) else {"actions": res}
        return fn
    raise TypeError(f"policy must have an act() method or be callable, got {type(policy).__name__}.")
