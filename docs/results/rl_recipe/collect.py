"""Collect the RL-recipe runs (outputs/train/<name>) into docs/results/rl_recipe/results.json.

    .venv/bin/python docs/results/rl_recipe/collect.py            # every run named in RUNS below that exists

Per run: config differences from the TrainConfig defaults, greedy success before/after on 50
standard and 50 held-out init states (n, Wilson 95 %), the paired change (exact McNemar), the
sampled (T = 1) success of the training groups, KL to the reference, env steps, wall time.
Per recipe over seeds: the pooled exact McNemar test (all (seed, init state) pairs) and the
mean +- sd of the per-seed changes.
"""
import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tgrpo_lib.config import TrainConfig
from tgrpo_lib.evaluation import read_episodes
from tgrpo_lib.stats import paired_change, seed_summary, success_summary

OUT = Path("docs/results/rl_recipe")
DEFAULTS = asdict(TrainConfig())
IGNORE = {"run_name", "seed", "init_checkpoint", "eval_interval", "video_episodes", "schema", "heldout_eval_episodes"}


def flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def run_row(run: Path) -> dict:
    cfg = json.loads((run / "config.json").read_text())
    defaults = dict(flat(DEFAULTS))
    diff = {k: v for k, v in flat(cfg) if k not in IGNORE and k in defaults and v != defaults[k]
            and not (isinstance(v, list) and tuple(v) == defaults[k])}
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    it = [m for m in metrics if "charts/group_success_rate" in m]
    row = {"seed": cfg["seed"], "recipe": diff, "iterations": len(it),
           "sampled_group_success": float(np.mean([m["charts/group_success_rate"] for m in it])),
           "groups_uniform": int(sum(m["charts/group_success_rate"] in (0.0, 1.0) for m in it)),
           "kl_last5": float(np.mean([m.get("losses/kl_mean", np.nan) for m in it[-5:]])),
           "env_steps": int(sum(m["charts/env_steps"] for m in it)),
           "wall_seconds": json.loads((run / "metrics.json").read_text()).get("seconds_training")}
    for which in ("standard", "heldout"):
        b, a = read_episodes(run, "before", which), read_episodes(run, "after", which)
        row[which] = {"before": success_summary(b.success.astype(bool)), "after": success_summary(a.success.astype(bool)),
                      "change": paired_change(b.success.astype(bool).tolist(), a.success.astype(bool).tolist()),
                      "_pairs": (b.success.astype(bool).tolist(), a.success.astype(bool).tolist())}
    return row


def main():
    runs = {p.name: run_row(p) for p in sorted(Path("outputs/train").glob("*")) if (p / "metrics.json").exists()
            and p.name.startswith(("e", "r"))}
    recipes = defaultdict(list)
    for name, row in runs.items():
        recipes[json.dumps(row["recipe"], sort_keys=True)].append(name)
    pooled = {}
    for key, names in recipes.items():
        entry = {"recipe": json.loads(key), "runs": names, "seeds": [runs[n]["seed"] for n in names]}
        for which in ("standard", "heldout"):
            before = sum((runs[n][which]["_pairs"][0] for n in names), [])
            after = sum((runs[n][which]["_pairs"][1] for n in names), [])
            entry[which] = {"pooled": paired_change(before, after),
                            "change_over_seeds": seed_summary([runs[n][which]["change"]["change"] for n in names]),
                            "after_over_seeds": seed_summary([runs[n][which]["after"]["rate"] for n in names])}
        pooled[" ".join(names)] = entry
    for row in runs.values():
        for which in ("standard", "heldout"):
            row[which].pop("_pairs")
    (OUT / "results.json").write_text(json.dumps({"runs": runs, "recipes": pooled}, indent=2))
    for name, row in runs.items():
        s, h = row["standard"], row["heldout"]
        print(f"{name:34s} std {s['before']['rate']:.2f}->{s['after']['rate']:.2f} p={s['change']['p_value']:.3f} | "
              f"held {h['before']['rate']:.2f}->{h['after']['rate']:.2f} p={h['change']['p_value']:.3f} | "
              f"sampled {row['sampled_group_success']:.2f} kl {row['kl_last5']:.3f} {row['recipe']}")


if __name__ == "__main__":
    main()
