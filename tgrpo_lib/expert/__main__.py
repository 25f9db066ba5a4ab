"""CLI: run the scripted expert on LIBERO tasks; the last stdout line is one JSON summary.

    python -m tgrpo_lib expert --suite libero_object --task 0 --episodes 10 --out outputs/demos [--record]
"""
from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from tgrpo_lib import OUTPUTS_DIR
from tgrpo_lib.analysis.stats import format_rate, success_summary, wilson_interval
from tgrpo_lib.envs.registry import canonical_suite, get_task, list_tasks
from tgrpo_lib.infra.cli import checked

from .control import ExpertConfig
from .runner import DEMO_EXPERT_CONFIG, INIT_STATE_SOURCES, expert_success_table, run_task


def _task_ids(text: str, suite: str) -> list[int]:
    if text == "all":
        return [t.task_id for t in list_tasks(suite)]
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise ValueError(f"--task {text!r}: pass an id, a comma list (0,3,5) or 'all'.") from None


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m tgrpo_lib expert", description=__doc__.splitlines()[0])
    p.add_argument("--suite", required=True, help="libero_spatial|libero_object|libero_goal|libero_10 (or alias)")
    p.add_argument("--task", default="0", help="task id, comma list, or 'all'")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task, on init states 0, 1, ...")
    p.add_argument("--out", default=str(OUTPUTS_DIR / "demos"), help="root of <suite>/task_<id>/ run folders")
    p.add_argument("--record", action="store_true", help="render agentview (128 px) and save successful demos")
    p.add_argument("--wrist", action="store_true", help="with --record, also render the wrist camera")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-states", default="standard", choices=list(INIT_STATE_SOURCES),
                   help="standard: LIBERO's 50 states, cycled; sampled: a fresh training layout per episode")
    p.add_argument("--noise", type=float, default=None,
                   help="action noise std (default 0 for evaluation, 0.03 with --record)")
    p.add_argument("--table-dir", default=None, help="also write success_table.csv/.md for these tasks here")
    args = p.parse_args(argv)

    def task_list() -> tuple[str, list[int]]:
        suite = canonical_suite(args.suite)
        ids = _task_ids(args.task, suite)
        for task_id in ids:
            get_task(suite, task_id)  # an id out of range: one line naming the valid ones
        if args.episodes < 1:
            raise ValueError(f"--episodes {args.episodes}: pass at least 1.")
        return suite, ids

    suite, task_ids = checked(p, task_list)
    cfg = DEMO_EXPERT_CONFIG if args.record else ExpertConfig()
    if args.noise is not None:
        cfg = ExpertConfig(**{**cfg.__dict__, "action_noise": args.noise})
    per_task, frames = {}, []
    for task_id in task_ids:
        run = run_task(suite, task_id, episodes=args.episodes, seed=args.seed, init_states=args.init_states,
                       cfg=cfg, record=args.record, wrist=args.wrist, out=args.out)
        per_task[task_id] = run.success_rate
        frames.append(run.results)
        print(f"{suite} task {task_id}: expert success {format_rate(success_summary(run.results['success']))} "
              f"-> {run.files}", flush=True)
    rows = pd.concat(frames, ignore_index=True)
    if args.table_dir:
        expert_success_table(rows, save_to=args.table_dir)
    summary = {"suite": suite, "tasks": list(per_task), "episodes": int(len(rows)),
               "successes": int(rows["success"].sum()), "success_rate": round(float(rows["success"].mean()), 4),
               "ci": [round(v, 4) for v in wilson_interval(int(rows["success"].sum()), len(rows))],
               "per_task": {str(k): round(v, 4) for k, v in per_task.items()}, "out": args.out,
               "record": bool(args.record)}
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
