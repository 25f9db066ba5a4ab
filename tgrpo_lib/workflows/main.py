"""``make run``: the quick reproduction on the embedded default (2 CPU cores, no GPU).

    SFT checkpoint (expert demos recorded and SFT trained if missing)
      -> TGRPO on one libero_object task (tiny VLA, LoRA)
      -> greedy success before/after on the task's 50 standard and 50 held-out init states,
         each with n and a 95 % Wilson interval, the change with an exact McNemar test.

Everything lands under outputs/: demos/, sft/<run>/, train/<run>/ (metrics.jsonl, eval/,
videos/, checkpoints/) and quick/<run>/results.json + results.md with the numbers printed at
the end. Re-running skips finished steps and resumes an interrupted training run.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tgrpo_lib
from tgrpo_lib.envs import get_task
from tgrpo_lib.infra.cli import checked, parse_sets, run_guarded
from tgrpo_lib.infra.config import config_for, override, sft_default


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tgrpo_lib run", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", default="libero_object")
    p.add_argument("--task", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=None, help="TGRPO iterations, one group of N each (default: "
                   "TrainConfig's, 50)")
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--demos", type=int, default=None, help="expert demonstrations for SFT (default: the recipe's)")
    p.add_argument("--sft-epochs", type=int, default=None, help="SFT epochs (default: the recipe's)")
    p.add_argument("--eval-episodes", type=int, default=50, help="standard init states, before and after")
    p.add_argument("--heldout-episodes", type=int, default=50, help="held-out init states, before and after")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="any other TrainConfig field of the TGRPO run, "
                   "nested ones dotted, values as JSON, e.g. alpha1=0.5 (alpha2 follows) env.max_steps=100")
    return p


def train_config(a: argparse.Namespace):
    """The TGRPO run's config for parsed arguments (``init_checkpoint`` is set once SFT is done),
    ``--set`` applied last. Equal standard and held-out counts leave ``heldout_eval_episodes`` at
    None, so the default run is the same run (same name) as the TGRPO cell of the quick
    reproduction's Table I and sweeps: ``python -m tgrpo_lib reproduce --profile quick`` after
    ``make run`` skips it."""
    iters = {} if a.iterations is None else {"iterations": a.iterations}
    heldout = None if a.heldout_episodes == a.eval_episodes else a.heldout_episodes
    cfg = config_for(suite=a.suite, task_id=a.task, **iters, group_size=a.group_size, seed=a.seed,
                     final_eval_episodes=a.eval_episodes, heldout_eval_episodes=heldout, eval_interval=0)
    return override(cfg, parse_sets(a.set))


def main(argv=None) -> dict:
    return run_guarded("python -m tgrpo_lib run", lambda: _main(argv))


def _main(argv=None) -> dict:
    p = parser()
    a = p.parse_args(argv)
    cfg = checked(p, lambda: train_config(a))
    sft_cfg = checked(p, lambda: sft_default(cfg.suite, cfg.task_id, demos=a.demos, epochs=a.sft_epochs, seed=cfg.seed))
    # deferred: torch (~1.5 s) loads only after the arguments proved valid, so a bad flag is refused
    # in a fraction of a second (tests/infra/test_config.py checks torch is not loaded then).
    from tgrpo_lib.analysis import tables
    from tgrpo_lib.training.train import train
    from tgrpo_lib.workflows import pipeline

    t0 = time.perf_counter()
    task = get_task(cfg.suite, cfg.task_id)
    print(f"[quick] task {task.key}: {task.instruction}")
    ckpt = pipeline.ensure_sft_checkpoint(sft_cfg)
    t_sft = time.perf_counter() - t0
    print(f"[quick] SFT checkpoint: {ckpt} ({t_sft:.0f} s)")
    result = train(override(cfg, init_checkpoint=str(ckpt)))
    s = result.summary
    comparison = tables.run_comparison(result.run_dir)
    out_rows = {which: {"sft": c["before"], "tgrpo": c["after"], "change": c["change"], "p_value": c["p_value"],
                        "b": c["b"], "c": c["c"], "test": c["test"]} for which, c in comparison.items()}
    report = {
        "task": task.key, "instruction": task.instruction, "seed": cfg.seed, "algo": cfg.algo,
        "iterations": cfg.iterations, "group_size": cfg.group_size, "env_steps": s.get("env_steps"),
        "episodes_per_set": {"standard": cfg.final_eval_episodes, "heldout": cfg.heldout_episodes},
        "sft_standard": s["before_standard"], "tgrpo_standard": s["after_standard"],
        "sft_heldout": s["before_heldout"], "tgrpo_heldout": s["after_heldout"],
        "comparison": out_rows, "train_run": str(result.run_dir), "sft_checkpoint": str(ckpt),
        "wall_seconds": time.perf_counter() - t0,
        "seconds": {"demos_and_sft": t_sft, **{k: s[f"seconds_{k}"] for k in ("before_eval", "training", "after_eval")
                                                 if f"seconds_{k}" in s}},
    }
    out = tgrpo_lib.OUTPUTS_DIR / "quick" / Path(result.run_dir).name
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2))
    md = tables.comparison_markdown(comparison, f"{task.key} (seed {cfg.seed})")
    (out / "results.md").write_text(md)
    print(md)
    print(f"[quick] results: {out / 'results.json'}   training run: {result.run_dir}")
    print(f"[quick] videos: {Path(result.run_dir) / 'videos'}")
    phases = ", ".join(f"{k} {v / 60:.1f}" for k, v in report["seconds"].items())
    print(f"[quick] total {report['wall_seconds'] / 60:.1f} min ({phases} min; steps already done are skipped)")
    return report


if __name__ == "__main__":
    main()
