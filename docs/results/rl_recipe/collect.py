"""Collect the RL-recipe runs (outputs/train/<name>) into docs/results/rl_recipe/results.json.

    .venv/bin/python docs/results/rl_recipe/collect.py   # runs outputs/train/{e,r,g}*, merged with results.json

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
from tgrpo_lib.stats import mcnemar_exact_counts, paired_change, seed_summary, success_summary

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
                      "state_keys": b.state_key.tolist(),
                      "before_flags": b.success.astype(int).tolist(), "after_flags": a.success.astype(int).tolist()}
    return row


def start(row: dict) -> str:
    """The starting checkpoint's greedy successes, which tell the SFT checkpoints of these runs apart."""
    s, h = row["standard"]["before"], row["heldout"]["before"]
    return f"SFT {s['successes']}/{s['n']} standard, {h['successes']}/{h['n']} held-out"


def counts_entry(rows: list[dict], which: str) -> dict:
    """Pooled over runs from their stored counts: before/after summaries, exact McNemar on the summed
    discordant pairs (every (seed, init state) pair counted once), mean +- sd of the per-seed results."""
    def pooled(side):
        k, n = sum(r[which][side]["successes"] for r in rows), sum(r[which][side]["n"] for r in rows)
        return success_summary([True] * k + [False] * (n - k))
    before, after = pooled("before"), pooled("after")
    test = mcnemar_exact_counts(sum(r[which]["change"]["b"] for r in rows), sum(r[which]["change"]["c"] for r in rows))
    return {"pooled": {"before": before, "after": after, "change": after["rate"] - before["rate"], **test},
            "change_over_seeds": seed_summary([r[which]["change"]["change"] for r in rows]),
            "after_over_seeds": seed_summary([r[which]["after"]["rate"] for r in rows])}


HEAD_TO_HEAD = {"tgrpo_vs_grpo_sparse (start B, lr 1e-4)": (["r1_lr1e-4", "r1_lr1e-4_s1", "r1_lr1e-4_s2"],
                                                         ["g1_grpo_sparse_lr1e-4_s0", "g1_grpo_sparse_lr1e-4_s1",
                                                          "g1_grpo_sparse_lr1e-4_s2"]),
                "tgrpo_vs_grpo_sparse (start C: 150 demos)": (["r2_d150_s0", "r2_d150_s1", "r2_d150_s2"],
                                                              ["g2_grpo_sparse_d150_s0", "g2_grpo_sparse_d150_s1",
                                                               "g2_grpo_sparse_d150_s2"]),
                "tgrpo_vs_grpo_sparse (start D: 175 demos)": (["r3_d175_s0", "r3_d175_s1", "r3_d175_s2"],
                                                              ["g3_grpo_sparse_d175_s0", "g3_grpo_sparse_d175_s1",
                                                               "g3_grpo_sparse_d175_s2"])}


def head_to_head(runs: dict, left: list[str], right: list[str]) -> dict:
    """After vs after of two recipes run with the same seeds on the same init states: per set, the
    exact McNemar test on the summed discordant pairs (b: left succeeds, right fails) and the pooled
    rates with Wilson intervals. Pairs are matched by state key, never by position."""
    out = {}
    for which in ("standard", "heldout"):
        lf, rf = [], []
        for ln, rn in zip(left, right):
            lrow, rrow = runs[ln][which], runs[rn][which]
            rmap = dict(zip(rrow["state_keys"], rrow["after_flags"]))
            for key, flag in zip(lrow["state_keys"], lrow["after_flags"]):
                lf.append(bool(flag)), rf.append(bool(rmap[key]))
        b = sum(x and not y for x, y in zip(lf, rf))
        c = sum(y and not x for x, y in zip(lf, rf))
        out[which] = {"left": success_summary(lf), "right": success_summary(rf), **mcnemar_exact_counts(b, c)}
    return {"left": left, "right": right, **out}


def main():
    """Runs found under outputs/train are (re)read; runs kept in results.json from earlier sessions
    (whose directories are gone) stay as they were recorded."""
    path = OUT / "results.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else {}
    runs.update({p.name: run_row(p) for p in sorted(Path("outputs/train").glob("*"))
                 if (p / "metrics.json").exists() and p.name.startswith(("e", "r", "g"))})
    recipes = defaultdict(list)  # one entry per (recipe, starting checkpoint): runs from different SFT starts never pool
    for name, row in runs.items():
        recipes[json.dumps({**row["recipe"], "start": start(row)}, sort_keys=True)].append(name)
    pooled = {}
    for key, names in recipes.items():
        rows = [runs[n] for n in names]
        pooled[" ".join(names)] = {"recipe": json.loads(key), "runs": names, "seeds": [r["seed"] for r in rows],
                                   "env_steps_over_seeds": seed_summary([r["env_steps"] for r in rows]),
                                   **{which: counts_entry(rows, which) for which in ("standard", "heldout")}}
    h2h = {name: head_to_head(runs, left, right) for name, (left, right) in HEAD_TO_HEAD.items()
           if all(n in runs for n in left + right)}
    path.write_text(json.dumps({"runs": runs, "recipes": pooled, "head_to_head": h2h}, indent=2))
    for name, row in runs.items():
        s, h = row["standard"], row["heldout"]
        print(f"{name:34s} std {s['before']['rate']:.2f}->{s['after']['rate']:.2f} p={s['change']['p_value']:.3f} | "
              f"held {h['before']['rate']:.2f}->{h['after']['rate']:.2f} p={h['change']['p_value']:.3f} | "
              f"sampled {row['sampled_group_success']:.2f} steps {row['env_steps']} {row['recipe']}")
    for entry in pooled.values():
        s, h = entry["standard"]["pooled"], entry["heldout"]["pooled"]
        print(f"pooled {entry['recipe']} seeds {entry['seeds']}: std {s['before']['rate']:.3f}->{s['after']['rate']:.3f} "
              f"b={s['b']} c={s['c']} p={s['p_value']:.2g} | held {h['before']['rate']:.3f}->{h['after']['rate']:.3f} "
              f"b={h['b']} c={h['c']} p={h['p_value']:.2g}")
    for name, e in h2h.items():
        print(name + ": " + " | ".join(f"{w} {e[w]['left']['rate']:.3f} vs {e[w]['right']['rate']:.3f} "
                                        f"b={e[w]['b']} c={e[w]['c']} p={e[w]['p_value']:.2g}" for w in ("standard", "heldout")))


if __name__ == "__main__":
    main()
