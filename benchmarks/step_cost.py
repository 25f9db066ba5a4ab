"""Where the CPU of one env step goes, and what ``make run``'s phases cost against that floor.

    .venv/bin/python benchmarks/step_cost.py                  # libero_object task 0, 120 steps
    .venv/bin/python benchmarks/step_cost.py --record outputs/quick/<run>/results.json

One environment (one llvmpipe render thread, one torch thread) steps the SFT policy's greedy
actions; the MuJoCo calls it makes are timed in CPU time by wrapping them where robosuite looks
them up (``mujoco.mjr_render`` etc.): rendering (``mjr_render`` + ``mjr_readPixels``, the
software rasteriser draining its queue), physics (``mj_step`` + ``mj_forward``), and the rest
of the step (robosuite's controller and bookkeeping in Python). The policy's ``act`` is timed
at the batch a worker hands it (2: 4 envs over 2 workers), greedy as in evaluation and sampled
with the RL adapters as in training.

``--record`` (a ``make run``'s results.json) adds the floor of each phase on 2 cores: env steps
x (env + policy CPU per step) / 2, i.e. what the phase would take if both cores did nothing but
simulate and act (training's updates not counted). Nothing is asserted: the numbers are printed.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("LP_NUM_THREADS", "1")

TIMED = {"render": ("mjr_render", "mjr_readPixels"), "physics": ("mj_step", "mj_forward")}


def _wrap_mujoco(totals: dict) -> None:
    """Count the CPU seconds of the MuJoCo calls in TIMED (patched on the module robosuite reads)."""
    import mujoco

    for part, names in TIMED.items():
        for name in names:
            inner = getattr(mujoco, name)

            def timed(*args, _inner=inner, _part=part, **kwargs):
                t = time.process_time()
                try:
                    return _inner(*args, **kwargs)
                finally:
                    totals[_part] += time.process_time() - t
            setattr(mujoco, name, timed)


def env_step_cost(suite: str, task_id: int, steps: int, policy) -> dict:
    """CPU ms per env step: render, physics, the rest; the policy's greedy actions drive it."""
    import numpy as np

    from tgrpo_lib.envs import init_states_for
    from tgrpo_lib.envs.core import LiberoEnv
    from tgrpo_lib.envs.registry import get_task
    from tgrpo_lib.training.evaluation import env_for

    totals = {"render": 0.0, "physics": 0.0}
    _wrap_mujoco(totals)
    task = get_task(suite, task_id)
    env = LiberoEnv(task, env_for(policy))
    obs = env.reset(init_states_for(suite, task_id, "standard", 1)[0])
    batch = lambda o: {k: np.asarray(v)[None] for k, v in o.items() if k not in ("state", "env")}  # noqa: E731
    obs, _ = env.step(policy.act(batch(obs), task.instruction, greedy=True).env_actions[0])  # buffers allocated
    env_cpu = 0.0
    for k in totals:
        totals[k] = 0.0
    for _ in range(steps):
        action = policy.act(batch(obs), task.instruction, greedy=True).env_actions[0]
        t = time.process_time()
        obs, _ = env.step(action)
        env_cpu += time.process_time() - t
    env.close()
    ms = {k: 1000 * v / steps for k, v in totals.items()}
    ms["rest"] = 1000 * env_cpu / steps - ms["render"] - ms["physics"]
    ms["env"] = 1000 * env_cpu / steps
    return ms


def act_cost(policy, instruction: str, batch: int, repeats: int, greedy: bool) -> float:
    """CPU ms per env of one ``act`` call on ``batch`` synthetic frames."""
    import numpy as np

    rng = np.random.default_rng(0)
    obs = {"agentview": rng.integers(0, 255, (batch, 128, 128, 3), dtype=np.uint8),
           "proprio": rng.normal(size=(batch, 8)).astype(np.float32)}
    policy.act(obs, instruction, greedy=greedy)
    t = time.process_time()
    for _ in range(repeats):
        policy.act(obs, instruction, greedy=greedy)
    return 1000 * (time.process_time() - t) / repeats / batch


def phase_floors(results_json: str, per_step_ms: dict) -> list[dict]:
    """The phases of a ``make run`` (its ``outputs/quick/<run>/results.json``): measured minutes,
    env steps (evaluations: the episode lengths in the training run's ``eval/*.csv``) and the
    floor on 2 cores, env steps x CPU per step / 2 (demos and SFT: no floor computed)."""
    import pandas as pd

    rec = json.loads(Path(results_json).read_text())
    eval_dir = Path(rec["train_run"]) / "eval"
    steps = {tag: int(sum(pd.read_csv(f)["length"].sum() for f in eval_dir.glob(f"{tag}_*.csv")))
             for tag in ("before", "after")}
    steps["training"] = rec["env_steps"]
    out = []
    for phase, seconds in rec["seconds"].items():
        name = phase.removesuffix("_eval")
        n = steps.get(name)
        cpu = per_step_ms["train" if name == "training" else "eval"]
        out.append({"name": phase, "minutes": seconds / 60, "env_steps": n,
                    "floor_min": n * cpu / 2 / 1000 / 60 if n else None})
    return out


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--steps", type=int, default=120, help="env steps timed")
    p.add_argument("--checkpoint", default=None, help="policy directory (default: the SFT recipe's, trained if missing)")
    p.add_argument("--record", default=None, help="a make run's outputs/quick/<run>/results.json: each phase beside its floor")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    import tgrpo_lib  # noqa: F401  (headless GL before libero)
    from tgrpo_lib.envs import get_task
    from tgrpo_lib.policy import load_policy

    if a.checkpoint is None:
        from tgrpo_lib.infra.config import sft_default
        from tgrpo_lib.workflows import pipeline
        a.checkpoint = str(pipeline.ensure_sft_checkpoint(sft_default(a.suite, a.task)))
    policy = load_policy(a.checkpoint)
    instruction = get_task(a.suite, a.task).instruction
    env = env_step_cost(a.suite, a.task, a.steps, policy)
    greedy = act_cost(policy, instruction, 2, 20, greedy=True)
    policy.set_mode("rl")
    sampled = act_cost(policy, instruction, 2, 20, greedy=False)
    res = {"load": os.getloadavg()[0], "env_ms": env, "act_ms_per_env": {"greedy": greedy, "rl_sampled": sampled},
           "per_step_ms": {"eval": env["env"] + greedy, "train": env["env"] + sampled}}
    print(f"CPU ms per env step ({a.steps} steps, load {res['load']:.2f}): render {env['render']:.1f}, "
          f"physics {env['physics']:.1f}, rest of the step (controller, robosuite) {env['rest']:.1f}; "
          f"env {env['env']:.1f}")
    print(f"policy act, batch 2, per env: greedy {greedy:.1f} ms, RL sampling {sampled:.1f} ms")
    print(f"floor per env step on 2 cores: evaluation {res['per_step_ms']['eval'] / 2:.1f} ms wall, "
          f"training rollouts {res['per_step_ms']['train'] / 2:.1f} ms wall (update not included)")
    if a.record:
        res["phases"] = phase_floors(a.record, res["per_step_ms"])
        for ph in res["phases"]:
            floor = f"{ph['floor_min']:.1f}" if ph["floor_min"] is not None else "-"
            print(f"  {ph['name']:28} measured {ph['minutes']:5.1f} min, env steps {ph.get('env_steps') or '-':>6}, "
                  f"floor {floor} min")
    if a.json:
        print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
