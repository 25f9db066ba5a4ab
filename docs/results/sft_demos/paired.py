"""Two SFT checkpoints of one task on the same init states: per state set, both rates (n, Wilson
95 %) and the exact McNemar test on the states they share (the episode caches screen_sft.py wrote;
where a checkpoint has several for one set, the newest).

    .venv/bin/python docs/results/sft_demos/paired.py outputs/sft/<run A> outputs/sft/<run B>
"""
import json
import sys
from pathlib import Path

from tgrpo_lib.stats import format_change, format_rate, paired_change, success_summary


def cached(run: Path, which: str) -> dict:
    """{state key: success} of the run's cached greedy evaluation on ``which`` (one cache per set)."""
    files = sorted((run / "checkpoints" / "evals").glob(f"{which}_*.json"), key=lambda f: f.stat().st_mtime)
    if not files:
        raise SystemExit(f"{run}: no {which}_*.json episode cache; run screen_sft.py on it first.")
    if len(files) > 1:  # caches of earlier env configs or code versions stay beside the checkpoint
        print(f"{run.name}: {len(files)} {which} caches, using the newest, {files[-1].name}")
    return {k: bool(v["success"]) for k, v in json.loads(files[0].read_text())["episodes"].items()}


def main(a: Path, b: Path) -> None:
    for which in ("standard", "heldout"):
        try:
            ea, eb = cached(a, which), cached(b, which)
        except SystemExit as exc:
            print(f"{which}: skipped ({exc})")
            continue
        keys = sorted(set(ea) & set(eb))
        before, after = [ea[k] for k in keys], [eb[k] for k in keys]
        print(f"{which}: {a.name} {format_rate(success_summary(before))} -> {b.name} "
              f"{format_rate(success_summary(after))}: {format_change(paired_change(before, after))}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
