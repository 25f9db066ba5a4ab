"""Rollout throughput with the tiny VLA in the loop: lock-step vs pipelined, side by side.

    .venv/bin/python benchmarks/rollout_pipeline.py                  # libero_object 0, N=4, 3 x 60 steps each
    .venv/bin/python benchmarks/rollout_pipeline.py --steps 100 --rounds 4 --json

Lock-step (what ``rollout_group`` did before): the policy acts on all N observations, then all
workers simulate, then the policy again. With one torch thread a core idles while the policy
runs; with torch's default (a thread per core, what the old code used) the policy spreads over
both cores while the workers wait. Pipelined (``rollout_group`` now): the policy acts on one
worker's environments, on one thread, while the other workers simulate theirs. All three run
the same engine and the same sampling policy, interleaved round by round so machine load hits
them alike; the ratios are what matters on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def lock_step(engine, fn, state, steps: int) -> int:
    obs = engine.reset(state)
    for _ in range(steps):
        obs, _ = engine.step(fn({**obs, "env": list(range(engine.n))})["actions"])
    return steps * engine.n


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=60, help="steps per rollout (no early stop: a fresh policy)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    import tgrpo_lib  # noqa: F401
    import numpy as np

    from tgrpo_lib.envs import EnvConfig, GroupEngine, get_task, rollout_group, standard_init_states
    from tgrpo_lib.infra.config import DEFAULT_POLICY
    from tgrpo_lib.policy import make_policy
    from tgrpo_lib.policy.acting import ActingPolicy

    task = get_task(a.suite, a.task)
    policy = make_policy(DEFAULT_POLICY)
    one = ActingPolicy(policy, task.instruction, greedy=False, threads=1)
    every = ActingPolicy(policy, task.instruction, greedy=False, threads=None)  # torch default: all cores
    state = standard_init_states(task.suite, task.task_id)[0]
    times = {"lock-step, 1 thread": [], "lock-step, all threads": [], "pipelined, 1 thread": []}
    with GroupEngine(task.suite, task.task_id, a.group_size, EnvConfig(max_steps=a.steps)) as engine:
        lock_step(engine, one, state, 3)  # warm-up: first frames, oneDNN kernels
        for _ in range(a.rounds):
            for key, fn in (("lock-step, 1 thread", one), ("lock-step, all threads", every)):
                t0 = time.perf_counter()
                n = lock_step(engine, fn, state, a.steps)
                times[key].append(n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            ro = rollout_group(engine, one, state)
            times["pipelined, 1 thread"].append(ro.actions.shape[0] * ro.length / (time.perf_counter() - t0))
    res = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{task.key}, N={a.group_size}, {a.steps} steps x {a.rounds} rounds, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    for k in times:
        print(f"  {k:24s} {res[k]:6.1f} env steps/s   (rounds: {', '.join(f'{x:.1f}' for x in times[k])})")
    for k in list(times)[:2]:
        res[f"pipelined / {k}"] = res["pipelined, 1 thread"] / res[k]
        print(f"  pipelined / {k}: x{res[f'pipelined / {k}']:.2f}")
    if a.json:
        print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
