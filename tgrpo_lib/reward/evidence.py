"""Real states of one task, gathered once, that a reward program must handle before it is trusted.

    ev = collect_evidence("libero_object", 0)          # simulator: start states, expert, random
    ev.start_batch()                                    # {key: (n_start, 1, ...)}: init-state starts
    ev.trajectories, ev.success, ev.kinds               # expert successes, recorded demos, random
    ev.sanity(program)                                  # SanityReport: successes out-score random

Sources, all through the env and expert layers:

- start states: the privileged state after resetting to standard init states 0, 1, ... (warm-up
  included), exactly what a rollout's t = 0 looks like;
- expert: physics-only scripted-expert episodes from standard init states 0, 1, ... (seed k on
  init state k; the same episodes for any number of them asked, so the first success - whose key
  events and end state go into the LLM prompt - never changes);
- demo: recorded demonstrations (``demos.h5`` with privileged states) when a directory has them;
- random: uniformly random actions from init states 0, 1, ... (the failures a reward must rank below).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tgrpo_lib.envs import EnvConfig, canonical_suite, make_env, standard_init_states
from tgrpo_lib.expert import extract_key_events, run_episode
from tgrpo_lib.infra.demos import DEMO_FILE, load_demos
from tgrpo_lib.reward.sanity import SanityReport, check_reward


@dataclass
class RewardEvidence:
    """States of one task for validating a reward program and for writing its prompt."""

    suite: str
    task_id: int
    start_states: list[dict]  # one {key: array without time axis} per init state
    trajectories: list[dict] = field(default_factory=list)  # {key: (T, ...)} each
    success: list[bool] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # "expert" | "demo" | "random" per trajectory
    key_events: list[dict] = field(default_factory=list)  # [{"label", "step", "xyz"}] of the first expert success
    expert_tries: int = 0  # expert episodes run (successes are in `trajectories`)
    episodes: list = field(default_factory=list)  # the expert Episode objects (frames when cameras were on)

    def start_batch(self) -> dict:
        """The start states as one batch of length-1 trajectories: {key: (n_start, 1, ...)}."""
        keys = set.intersection(*(set(s) for s in self.start_states))
        return {k: np.stack([np.asarray(s[k], dtype=np.float64) for s in self.start_states])[:, None] for k in sorted(keys)}

    @property
    def first_success(self) -> dict | None:
        """The first successful expert trajectory (its end state goes into the prompt)."""
        return next((t for t, s, k in zip(self.trajectories, self.success, self.kinds) if s and k == "expert"), None)

    @property
    def n_success(self) -> int:
        return int(sum(self.success))

    def sanity(self, program, task: str = "", require_monotone: bool = True) -> SanityReport:
        """`check_reward` of `program` on every trajectory here."""
        return check_reward(program, self.trajectories, self.success, task=task or f"{self.suite}-{self.task_id}",
                            require_monotone=require_monotone)

    def describe(self) -> str:
        counts = {k: self.kinds.count(k) for k in ("expert", "demo", "random")}
        return (f"{len(self.start_states)} start states, {counts['expert']} expert successes in "
                f"{self.expert_tries} tries, {counts['demo']} recorded demos, {counts['random']} random rollouts")


# ------------------------------------------------------------------------------ pieces
def start_states(env, init_states: np.ndarray, n: int) -> list[dict]:
    """Privileged state right after resetting to each of the first `n` init states."""
    return [env.reset(init_states[k % len(init_states)])["state"] for k in range(n)]


def expert_episodes(env, init_states: np.ndarray, n: int, tries: int | None = None, seed: int = 0,
                    progress: bool = False) -> list:
    """Scripted-expert episodes on init states 0, 1, ... (seed `seed + k`), until `n` succeeded or
    `tries` (default `n`) were run; returns every Episode run, successes and failures."""
    from tqdm.auto import tqdm

    episodes = []
    tries = n if tries is None else tries
    for k in tqdm(range(tries), desc="expert episodes", disable=not progress, leave=False):
        idx = k % len(init_states)
        episodes.append(run_episode(env, init_states[idx], seed=seed + k, init_index=idx))
        if sum(ep.success for ep in episodes) >= n:
            break
    return episodes


def random_rollouts(env, init_states: np.ndarray, n: int, steps: int = 60, seed: int = 0) -> list[dict]:
    """Privileged-state trajectories of uniformly random actions, each {key: (steps + 1, ...)}."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        traj = [env.reset(init_states[k % len(init_states)])["state"]]
        for _ in range(steps):
            obs, _ = env.step(rng.uniform(-1, 1, 7))
            traj.append(obs["state"])
        out.append({key: np.stack([s[key] for s in traj]) for key in traj[0]})
    return out


def demo_trajectories(demos_dir: str | Path | None, n: int) -> list[dict]:
    """Privileged states of up to `n` successful recorded demos under `demos_dir` (none: [])."""
    if demos_dir is None or n <= 0:
        return []
    path = Path(demos_dir)
    path = path / DEMO_FILE if path.is_dir() else path
    if not path.is_file():
        return []
    demos = [d for d in load_demos(path, with_images=False) if d.states and "eef_pos" in d.states]
    return [{k: np.asarray(v) for k, v in d.states.items()} for d in demos[:n]]


def collect_evidence(suite: str, task_id: int, *, n_start: int = 3, n_expert: int = 2, expert_tries: int | None = None,
                     n_random: int = 2, random_steps: int = 60, demos_dir: str | Path | None = None,
                     max_demos: int = 2, cameras: tuple[str, ...] = (), seed: int = 0,
                     progress: bool = False) -> RewardEvidence:
    """Gather a task's evidence in the simulator (one physics-only env unless `cameras`).

    `expert_tries` defaults to 3 * n_expert (the expert misses some init states of a few tasks).
    """
    suite = canonical_suite(suite)
    states = standard_init_states(suite, task_id)
    env = make_env(suite, task_id, EnvConfig(cameras=tuple(cameras)))
    try:
        starts = start_states(env, states, n_start)
        episodes = expert_episodes(env, states, n_expert, expert_tries if expert_tries is not None else 3 * n_expert,
                                   seed=seed, progress=progress)
        failures = random_rollouts(env, states, n_random, random_steps, seed=seed)
        goal = env.goal
    finally:
        env.close()
    good = [ep for ep in episodes if ep.success]
    demos = demo_trajectories(demos_dir, max_demos)
    events = extract_key_events(good[0].actions, good[0].states, goal, success=True) if good else []
    return RewardEvidence(
        suite=suite, task_id=task_id, start_states=starts,
        trajectories=[ep.states for ep in good] + demos + failures,
        success=[True] * (len(good) + len(demos)) + [False] * len(failures),
        kinds=["expert"] * len(good) + ["demo"] * len(demos) + ["random"] * len(failures),
        key_events=[{"label": e["label"], "step": int(e["step"]), "xyz": [float(v) for v in e["xyz"]]} for e in events],
        expert_tries=len(episodes), episodes=episodes)


__all__ = ["RewardEvidence", "collect_evidence", "demo_trajectories", "expert_episodes", "random_rollouts",
           "start_states"]
