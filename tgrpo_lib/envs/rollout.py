"""Group rollouts, the paper's sampling (Sec. IV-A): N trajectories from the *same* init state.

TGRPO stops all N as soon as one succeeds or all reach the step budget, so every trajectory of a
group has the same length: ``rollout_group``, which returns a ``GroupRollout`` (arrays (N, T, ...)).
It runs on a ``group.GroupEngine`` through its pipelined loop (``pipeline.Pipeline``). Evaluation
runs the same pipeline with one init state per environment and an individual stop per environment
(``episodes.run_episodes``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .config import STOP_RULES
from .group import GroupEngine
from .pipeline import PolicyFn


@dataclass
class GroupRollout:
    """N equal-length trajectories from one init state (arrays are (N, T, ...))."""

    obs: dict  # images / proprio the policy saw at steps 0..T-1: {"agentview": (N,T,H,W,3), "proprio": (N,T,8)}
    states: dict  # privileged state at steps 0..T: {key: (N, T+1, ...)}; reward of step t reads states[:, t+1]
    actions: np.ndarray  # (N, T, 7)
    success: np.ndarray  # (N, T) bool: task solved after step t
    extras: dict = field(default_factory=dict)  # policy outputs per step, e.g. tokens (N,T,7), log_prob (N,T)
    init_state_index: int | None = None
    valid: np.ndarray | None = None
    """(N, T) bool, the steps each trajectory really took; None: all. With ``stop="each"`` a
    trajectory that succeeded before the group's end is padded with its last step (the success
    state absorbing: state, frames and success repeated) and its padded steps are False."""

    def __post_init__(self):
        if self.valid is None:
            self.valid = np.ones(self.actions.shape[:2], dtype=bool)

    @property
    def length(self) -> int:
        return int(self.actions.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """(N,) steps each trajectory took."""
        return self.valid.sum(1)

    @property
    def episode_success(self) -> np.ndarray:
        """(N,) whether each trajectory succeeded at any step."""
        return self.success.any(axis=1)


def rollout_group(engine: GroupEngine, policy_fn: PolicyFn, init_state: np.ndarray, max_steps: int | None = None,
                  init_state_index: int | None = None, progress: bool = False, stop: str = "group") -> GroupRollout:
    """Sample N trajectories from one init state. ``stop="group"`` is the paper's stop rule: stop
    all as soon as any environment succeeds, or when all reach ``max_steps``. ``stop="each"``:
    every trajectory runs to its own success or ``max_steps``; the group lasts as long as its
    longest member and the shorter successes are padded (``GroupRollout.valid``).

    Pipelined (``GroupEngine.pipeline``): the policy runs on one worker's environments
    (``obs["env"]`` names them) while the other workers simulate theirs. Worker w may start
    step t+1 before another worker reports a success at step t; that step is then dropped, so
    every trajectory still has the same length. The order of policy calls is fixed (workers in
    turn), so a seeded run is reproducible.
    """
    if engine.n < 2:
        raise ValueError(f"A TGRPO group needs N >= 2 trajectories (got N={engine.n}): pass n_envs >= 2.")
    if stop not in STOP_RULES:
        raise ValueError(f"stop={stop!r}: pass 'group' (the paper's rule) or 'each'.")
    max_steps = max_steps or engine.max_steps
    n = engine.n
    obs0 = engine.reset(init_state)
    taken = [0] * n  # steps each environment has finished
    solved = [False] * n  # stop="each": environment i has succeeded and stopped
    stopped_at: int | None = None  # the group's length, once a success has ended it (stop="group")
    seen: list[dict] = []  # per step t: {env: (observation row the policy saw, its outputs row)}
    after: list[dict] = []  # per step t: {env: (state row after the step, success)}

    def acts(i: int) -> bool:
        return stopped_at is None and not solved[i] and taken[i] < max_steps

    with tqdm(total=max_steps, desc="group rollout", leave=False, disable=not progress) as bar, \
            engine.pipeline(policy_fn, acts) as steps:
        for s in steps:
            t = taken[s.envs[0]]  # a worker's environments step together
            for i in s.envs:
                taken[i] += 1
            if stopped_at is not None and t >= stopped_at:
                continue  # started before another worker's success ended the group: dropped
            while len(seen) <= t:
                seen.append({}), after.append({})
            for j, i in enumerate(s.envs):
                seen[t][i] = ({k: v[j] for k, v in s.obs.items() if k not in ("state", "env")},
                              {k: np.asarray(v)[j] for k, v in s.out.items()})
                after[t][i] = ({k: v[j] for k, v in s.next_obs["state"].items()}, bool(s.success[j]))
            if len(after[t]) == n:
                bar.update(1)
            if stop == "each":
                for j, i in enumerate(s.envs):
                    solved[i] = solved[i] or bool(s.success[j])
            elif s.success.any() and stopped_at is None:
                stopped_at = t + 1
    length = len(seen) if stop == "each" else (max_steps if stopped_at is None else stopped_at)
    own = [taken[i] if stop == "each" else length for i in range(n)]  # steps trajectory i took

    def row(table: list[dict], t: int, i: int):  # a padded step repeats the trajectory's last one
        return table[min(t, own[i] - 1)][i]
    frames: dict[str, list] = {k: [] for k in obs0 if k != "state"}
    states: dict[str, list] = {k: [v] for k, v in obs0["state"].items()}
    actions, success, extras = [], [], {}
    for t in range(length):
        for k in frames:
            frames[k].append(np.stack([row(seen, t, i)[0][k] for i in range(n)]))
        for k in states:
            states[k].append(np.stack([row(after, t, i)[0][k] for i in range(n)]))
        actions.append(np.stack([np.asarray(row(seen, t, i)[1]["actions"], dtype=np.float64) for i in range(n)]))
        success.append(np.array([row(after, t, i)[1] for i in range(n)]))
        for k in row(seen, t, 0)[1]:
            if k != "actions":
                extras.setdefault(k, []).append(np.stack([row(seen, t, i)[1][k] for i in range(n)]))
    return GroupRollout(
        obs={k: np.stack(v, axis=1) for k, v in frames.items()},
        states={k: np.stack(v, axis=1) for k, v in states.items()},
        actions=np.stack(actions, axis=1),
        success=np.stack(success, axis=1),
        extras={k: np.stack(v, axis=1) for k, v in extras.items()},
        init_state_index=init_state_index,
        valid=np.arange(length)[None, :] < np.asarray(own)[:, None],
    )
