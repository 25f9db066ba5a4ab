"""Greedy success of the default SFT recipe on one task, before any RL: the number item 2 of the
evidence issue asks for (>= 30 % on one task of each suite), without the TGRPO run after it.

    .venv/bin/python experiments/other_suites/screen_sft.py libero_goal 5 [--episodes 50] [--heldout 0]
        [--demos D] [--epochs E]

It trains (or reuses) exactly the checkpoint ``python -m tgrpo_lib.main --suite S --task T``
starts from (``config.sft_default``) and evaluates it on the standard (and, with ``--heldout``,
the held-out) init states through the episode cache beside that checkpoint, under the env the
TGRPO run uses, so a later ``main`` run on the same task reads these episodes instead of
simulating them again. Prints one line with n and the Wilson 95 % interval per init-state set and
writes ``outputs/quick/screen_<sft run>.json``.
``--demos``/``--epochs`` screen a variant of the recipe (a different SFT run, its own cache).
"""
from __future__ import annotations

import argparse
import json
import time

import tgrpo_lib
from tgrpo_lib.infra.config import config_for, sft_default


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite")
    p.add_argument("task", type=int)
    p.add_argument("--episodes", type=int, default=50, help="standard init states")
    p.add_argument("--heldout", type=int, default=0, help="held-out init states as well")
    p.add_argument("--demos", type=int, default=None, help="expert demonstrations (default: the recipe's)")
    p.add_argument("--epochs", type=int, default=None, help="SFT epochs (default: the recipe's)")
    a = p.parse_args()
    cfg = config_for(suite=a.suite, task_id=a.task)
    sft_cfg = sft_default(a.suite, a.task, demos=a.demos, epochs=a.epochs)
    from tgrpo_lib.analysis import stats  # deferred: torch after the arguments are checked
    from tgrpo_lib.policy import load_policy
    from tgrpo_lib.training.evaluation import evaluate
    from tgrpo_lib.workflows import pipeline

    t0 = time.perf_counter()
    ckpt = pipeline.ensure_sft_checkpoint(sft_cfg)
    t_sft = time.perf_counter() - t0
    policy = load_policy(ckpt)
    out = {"suite": a.suite, "task": a.task, "checkpoint": str(ckpt), "seconds_sft": t_sft, "sets": {}}
    for which, n in (("standard", a.episodes), ("heldout", a.heldout)):
        if n <= 0:
            continue
        t1 = time.perf_counter()
        df = evaluate(policy, a.suite, a.task, n, init_states=which, cfg=cfg.env, checkpoint=ckpt)
        s = stats.success_summary(df["success"])
        out["sets"][which] = {**s, "seconds": time.perf_counter() - t1}
        print(f"[screen] {a.suite} task {a.task} {which}: SFT greedy {stats.format_rate(s)} "
              f"(eval {(time.perf_counter() - t1) / 60:.1f} min)")
    path = tgrpo_lib.OUTPUTS_DIR / "quick" / f"screen_{ckpt.parent.parent.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"[screen] {ckpt} (SFT {t_sft / 60:.1f} min) -> {path}")


if __name__ == "__main__":
    main()
