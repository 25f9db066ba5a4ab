"""Episodes of a policy function on a group engine: one per init state, each stopping at its own
success or at the step budget (what evaluation runs; the protocol itself lives in
``tgrpo_lib.training.evaluation``)."""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

from .group import GroupEngine
from .pipeline import PolicyFn


def run_episodes(engine: GroupEngine, policy_fn: PolicyFn, init_states: np.ndarray,
                 record: Iterable[int] = (), progress: bool = True, desc: str = "episodes",
                 on_episode: Callable[[dict], None] | None = None) -> list[dict]:
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
    (T, H, W, 3) for the episodes listed in ``record``. ``on_episode(result)`` is called with each
    of them as soon as its episode ends (in the order they end), so a caller can keep what
    finished when the run is cut short (Ctrl-C, a dead worker).
    """
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
    with tqdm(total=len(init_states), desc=desc, disable=not progress, leave=False) as bar, \
            engine.pipeline(policy_fn, lambda k: slot[k] >= 0) as steps:
        for s in steps:
            refill = []
            for j, k in enumerate(s.envs):
                i = slot[k]
                length[k] += 1
                if i in frames:
                    frames[i].append(s.next_obs["agentview"][j])
                if s.success[j] or length[k] >= engine.max_steps:
                    results[i] = {"episode": i, "success": bool(s.success[j]), "length": int(length[k])}
                    if i in frames:
                        results[i]["frames"] = np.stack(frames.pop(i))
                    if on_episode is not None:
                        on_episode(results[i])
                    bar.update(1)
                    length[k] = 0
                    slot[k] = todo.pop(0) if todo else -1
                    if slot[k] >= 0:
                        refill.append(k)
            if refill:  # only this worker is idle now, and only it owns these slots
                new = engine.reset_some(refill, np.stack([init_states[slot[k]] for k in refill]))
                for k in refill:
                    if slot[k] in record and "agentview" in new:
                        frames[slot[k]] = [new["agentview"][k]]
    return [results[i] for i in sorted(results)]
