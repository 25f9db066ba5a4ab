"""Pipelined stepping: the policy acts on one worker's environments while the others simulate.

``Pipeline`` is the loop that ``GroupEngine.pipeline`` returns and both kinds of rollout run:
``rollout.rollout_group`` (a TGRPO group) and ``episodes.run_episodes`` (evaluation). It reaches
the engine only through ``worker_slots``, ``last_obs``, ``step_send``, ``step_recv`` and
``drain``, so its tests drive it with a scripted engine and no simulator. Beside it: the policy's
contract (``PolicyFn``), one finished step (``WorkerStep``) and ``stack_obs``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import numpy as np

PolicyFn = Callable[[dict], Mapping[str, np.ndarray]]
"""obs batch -> {"actions": (B, 7), ...any per-row arrays to record, e.g. tokens, log_prob}.
The batch holds B <= N environments (``obs["env"]``: their indices), one worker's at a time."""


@dataclass
class WorkerStep:
    """One worker's finished step in a ``Pipeline`` (one row per stepped environment)."""

    worker: int
    envs: list[int]  # the environments that stepped (= obs["env"])
    obs: dict  # the batch the policy saw: {"agentview": (B, H, W, 3), "proprio": (B, 8), "state": {...}, "env": (B,)}
    out: Mapping[str, np.ndarray]  # what the policy returned for it: {"actions": (B, 7), ...}
    success: np.ndarray  # (B,) bool: task solved after this step
    next_obs: dict  # the batch after the step, same layout as ``obs``


class Pipeline:
    """Pipelined stepping: the policy acts on one worker's environments while the others simulate.

    Every worker starts on its environments for which ``acts`` is true; then, round after
    round, each running worker (in a fixed order, so seeded runs reproduce) has its step
    collected and yielded as a ``WorkerStep``, and is started again on its environments for
    which ``acts`` is true *after* the consumer has handled that step (none: the worker stops
    for good). The loop ends when no worker runs. While a step is being handled only its own
    worker is idle, so the consumer may reset that worker's environments (``reset_some``); a
    step that another worker had already started is still yielded, and the consumer decides
    whether it counts (``rollout_group`` drops the steps started after a success).

    ``engine`` needs ``worker_slots``, ``last_obs``, ``step_send``, ``step_recv`` and ``drain``.
    Leaving the ``with`` block, by an exception too, collects and drops any step in flight.
    """

    def __init__(self, engine, policy_fn: PolicyFn, acts: Callable[[int], bool]):
        self.engine, self.policy_fn, self.acts = engine, policy_fn, acts

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.engine.drain()

    def _launch(self, worker: int, slots: list[int]):
        live = [i for i in slots if self.acts(i)]
        if not live:
            return None
        obs = self.engine.last_obs(live)
        out = self.policy_fn(obs)
        actions = np.asarray(out["actions"], dtype=np.float64)  # (B, 7)
        self.engine.step_send(worker, dict(zip(live, actions)))
        return live, obs, out

    def __iter__(self) -> Iterator[WorkerStep]:
        workers = [(w, slots) for w, slots in enumerate(self.engine.worker_slots) if slots]
        started = {w: self._launch(w, slots) for w, slots in workers}
        while any(s is not None for s in started.values()):
            for w, slots in workers:
                if started[w] is None:
                    continue
                live, obs, out = started[w]
                started[w] = None
                done = self.engine.step_recv(w)
                yield WorkerStep(w, live, obs, out, np.array([done[i] for i in live], dtype=bool),
                                 self.engine.last_obs(live))
                started[w] = self._launch(w, slots)


def stack_obs(obs_list: list[dict]) -> dict:
    """List of per-env observations -> batch dict with a leading N axis (state stays a dict)."""
    batch = {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0] if k != "state"}
    states = [o["state"] for o in obs_list]
    batch["state"] = {k: np.stack([s[k] for s in states]) for k in states[0]}
    return batch
