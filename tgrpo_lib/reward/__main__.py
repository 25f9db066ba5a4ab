"""Sanity-check the offline rewards of many tasks on expert demonstrations vs random rollouts.

    python -m tgrpo_lib.reward --suite all --expert 2 --random 2      # the 40 tasks
    python -m tgrpo_lib.reward --suite goal --tasks 0 3 7

Writes ``outputs/reward_sanity/<suite>.csv`` and ``.md`` (one row per task: pass/fail columns
and the reason) and prints the table. A task whose expert failed every episode is listed as
"no successful expert demo" instead of being checked.
"""
from __future__ import annotations

import argparse
import json

import pandas as pd

import tgrpo_lib


def main(argv=None) -> pd.DataFrame:
    from tgrpo_lib import pipeline
    from tgrpo_lib.envs import SUITES, canonical_suite
    from tgrpo_lib.expert import load_key_poses
    from tgrpo_lib.reward import RewardConfig, make_reward, sanity_table

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="all", help="suite, alias, or 'all'")
    p.add_argument("--tasks", type=int, nargs="*", help="task ids (default 0..9)")
    p.add_argument("--expert", type=int, default=2, help="expert episodes per task")
    p.add_argument("--random", type=int, default=2, help="random rollouts per task")
    p.add_argument("--random-steps", type=int, default=60)
    a = p.parse_args(argv)
    suites = SUITES if a.suite == "all" else (canonical_suite(a.suite),)
    rows = []
    for suite in suites:
        for task_id in a.tasks if a.tasks else range(10):
            key = f"{suite}-{task_id}"
            program = make_reward(suite, task_id, cfg=RewardConfig(), key_poses=load_key_poses(suite, task_id))
            expert = pipeline.expert_episodes(suite, task_id, n=a.expert, progress=False)
            good = [ep for ep in expert if ep.success]
            if not good:
                rows.append({"task": key, "ok": False, "reason": f"no successful expert demo in {a.expert} episodes"})
                print(key, "no successful expert demo", flush=True)
                continue
            fails = pipeline.random_rollouts(suite, task_id, n=a.random, steps=a.random_steps)
            rep = pipeline.reward_sanity(program, good, fails, task=key)
            row = sanity_table([rep]).iloc[0].to_dict()
            row.update(task=key, expert_successes=f"{len(good)}/{a.expert}", n_stages=program.n_stages)
            rows.append(row)
            print(key, "ok" if rep.ok else f"FLAGGED: {rep.row.get('reason')}", flush=True)
    table = pd.DataFrame(rows)
    out = tgrpo_lib.OUTPUTS_DIR / "reward_sanity"
    out.mkdir(parents=True, exist_ok=True)
    name = "all" if a.suite == "all" else suites[0]
    table.to_csv(out / f"{name}.csv", index=False)
    from tgrpo_lib.results import to_markdown

    (out / f"{name}.md").write_text(to_markdown(table))
    print(table.to_string())
    print(json.dumps({"tasks": len(table), "passed": int(table["ok"].sum())}))
    return table


if __name__ == "__main__":
    main()
