"""Where a TGRPO iteration's wall time goes: simulation, policy forward, reward + advantage, update.

    .venv/bin/python benchmarks/iteration_profile.py                      # libero_object 0, N=4, 3 iterations
    .venv/bin/python benchmarks/iteration_profile.py --iterations 5 --max-steps 120 --json

Runs a real (short) training run in a temporary directory with the trainer's own timers
(metrics.jsonl ``time/*``) and prints each share of the iteration. Target: simulation +
policy forward >= 85% (the update and the reward should be small beside the rollout).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--max-steps", type=int, default=None, help="episode budget (default: the suite's)")
    p.add_argument("--init-checkpoint", default=None, help="policy to start from (default: a fresh tiny VLA)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = p.parse_args()


    from tgrpo_lib.training.train import config_for, train

    with tempfile.TemporaryDirectory() as root:
        cfg = config_for(suite=a.suite, task_id=a.task, iterations=a.iterations, group_size=a.group_size,
                         init_checkpoint=a.init_checkpoint, final_eval_episodes=1, eval_interval=0,
                         video_episodes=0, env={"max_steps": a.max_steps}, run_name="profile")
        res = train(cfg, root=root)
        m = res.metrics[res.metrics.step >= 0].dropna(subset=["time/iteration"])
    parts = {"sim": m["time/sim"].sum(), "policy_forward": m["time/policy"].sum(),
             "reward_advantage": m["time/reward"].sum(), "update": m["time/update"].sum()}
    total = float(m["time/iteration"].sum())
    parts["other"] = total - sum(parts.values())
    print(f"{len(m)} iterations, {int(m['charts/env_steps'].sum())} env steps, {total:.1f} s "
          f"({total / len(m):.1f} s/iteration); load average {os.getloadavg()[0]:.1f}")
    for k, v in parts.items():
        print(f"  {k:17s} {v:7.1f} s  {100 * v / total:5.1f} %")
    share = (parts["sim"] + parts["policy_forward"]) / total
    print(f"simulation + policy forward: {100 * share:.1f} % (target >= 85 %)")
    out = {f"{k}_share": float(v / total) for k, v in parts.items()}
    out.update(sim_plus_policy_share=float(share), seconds_per_iteration=total / len(m),
               env_steps_per_s=float(m["charts/env_steps"].sum() / total), loadavg=os.getloadavg()[0])
    if a.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
