"""Two SFT checkpoints of one task on the same init states: per state set, both rates (n, Wilson
95 %) and the exact McNemar test on the states they share, read from the episode cache screen_sft.py
wrote beside each checkpoint (``evaluation.EpisodeCache`` under the env the TGRPO run uses, the
same cache entry ``screen_sft.py`` and ``main`` read).

    .venv/bin/python experiments/sft_demos/paired.py outputs/sft/<run A> outputs/sft/<run B>
"""
import json
import sys
from pathlib import Path

from tgrpo_lib.analysis.stats import format_change, format_rate, paired_change, success_summary
from tgrpo_lib.envs import get_task
from tgrpo_lib.infra.config import config_for
from tgrpo_lib.training.evaluation import EpisodeCache


def cache_of(run: Path) -> EpisodeCache:
    """The episode cache of the SFT run's checkpoint on its (single) task."""
    cfg = json.loads((run / "config.json").read_text())
    (task_id,) = cfg["task_ids"]
    return EpisodeCache(run / "checkpoints" / "policy", get_task(cfg["suite"], task_id),
                        config_for(suite=cfg["suite"], task_id=task_id).env)


def main(a: Path, b: Path) -> None:
    ca, cb = cache_of(a), cache_of(b)
    for which in ("standard", "heldout"):
        ea, eb = ca.read(which)["episodes"], cb.read(which)["episodes"]
        keys = sorted(set(ea) & set(eb))
        if not keys:
            print(f"{which}: no states evaluated for both (run screen_sft.py on each first)")
            continue
        before, after = [bool(ea[k]["success"]) for k in keys], [bool(eb[k]["success"]) for k in keys]
        print(f"{which}: {a.name} {format_rate(success_summary(before))} -> {b.name} "
              f"{format_rate(success_summary(after))}: {format_change(paired_change(before, after))}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
