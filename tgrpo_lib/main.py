"""``make run``: the quick reproduction on the embedded default (2 CPU cores, no GPU).

    SFT checkpoint (expert demos recorded and SFT trained if missing)
      -> TGRPO on one libero_object task (tiny VLA, LoRA)
      -> greedy success before/after on the task's 50 standard and 25 held-out init states.

Everything lands under outputs/: demos/, sft/<run>/, train/<run>/ (metrics.jsonl, videos/,
checkpoints/) and quick/<run>/results.json + results.md with the numbers printed at the end.
Re-running skips finished steps and resumes an interrupted training run.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tgrpo_lib


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=20, help="TGRPO iterations (one group of N each)")
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--demos", type=int, default=40, help="expert demonstrations for SFT")
    p.add_argument("--sft-epochs", type=int, default=30)
    p.add_argument("--eval-episodes", type=int, default=50, help="standard init states, before and after")
    p.add_argument("--heldout-episodes", type=int, default=25,
                   help="held-out init states, before and after (25 keeps make run within 20 min on 2 cores)")
    a = p.parse_args(argv)

    from tgrpo_lib import pipeline
    from tgrpo_lib.config import DEFAULT_POLICY
    from tgrpo_lib.envs import canonical_suite, get_task
    from tgrpo_lib.train import config_for, train

    t0 = time.perf_counter()
    task = get_task(canonical_suite(a.suite), a.task)
    print(f"[quick] task {task.key}: {task.instruction}")
    ckpt = pipeline.ensure_sft_checkpoint(task.suite, task.task_id, demos=a.demos, epochs=a.sft_epochs, seed=a.seed)
    t_sft = time.perf_counter() - t0
    print(f"[quick] SFT checkpoint: {ckpt} ({t_sft:.0f} s)")
    tag = DEFAULT_POLICY.name_tag  # the SFT checkpoint's encoder precision; earlier runs keep their names
    name = f"quick-{task.key}__tgrpo__i{a.iterations}_n{a.group_size}_h{a.heldout_episodes}{tag}__{a.seed}"
    cfg = config_for(suite=task.suite, task_id=task.task_id, iterations=a.iterations, group_size=a.group_size,
                     seed=a.seed, init_checkpoint=str(ckpt), final_eval_episodes=a.eval_episodes,
                     heldout_eval_episodes=a.heldout_episodes, eval_interval=0, run_name=name)
    result = train(cfg)
    s = result.summary
    results = {
        "task": task.key, "instruction": task.instruction, "seed": a.seed, "algo": "tgrpo",
        "iterations": a.iterations, "group_size": a.group_size, "env_steps": s.get("env_steps"),
        "episodes_per_set": {"standard": a.eval_episodes, "heldout": a.heldout_episodes},
        "sft_standard": s["before_standard"], "tgrpo_standard": s["after_standard"],
        "sft_heldout": s["before_heldout"], "tgrpo_heldout": s["after_heldout"],
        "train_run": str(result.run_dir), "sft_checkpoint": str(ckpt),
        "wall_seconds": time.perf_counter() - t0,
        "seconds": {"demos_and_sft": t_sft, **{k: s[f"seconds_{k}"] for k in ("before_eval", "training", "after_eval")
                                                 if f"seconds_{k}" in s}},
    }
    out = tgrpo_lib.OUTPUTS_DIR / "quick" / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    md = (f"| {task.key} (seed {a.seed}) | SFT | TGRPO | change |\n|---|---|---|---|\n"
          f"| standard ({a.eval_episodes} states) | {100 * s['before_standard']:.0f}% | {100 * s['after_standard']:.0f}% "
          f"| {100 * (s['after_standard'] - s['before_standard']):+.0f} pts |\n"
          f"| held-out ({a.heldout_episodes} states) | {100 * s['before_heldout']:.0f}% | {100 * s['after_heldout']:.0f}% "
          f"| {100 * (s['after_heldout'] - s['before_heldout']):+.0f} pts |\n")
    (out / "results.md").write_text(md)
    print(md)
    print(f"[quick] results: {out / 'results.json'}   training run: {result.run_dir}")
    print(f"[quick] videos: {Path(result.run_dir) / 'videos'}")
    phases = ", ".join(f"{k} {v / 60:.1f}" for k, v in results["seconds"].items())
    print(f"[quick] total {results['wall_seconds'] / 60:.1f} min ({phases} min; steps already done are skipped)")
    return results


if __name__ == "__main__":
    main()
