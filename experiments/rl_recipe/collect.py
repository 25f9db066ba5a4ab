"""Collect the RL-recipe runs (outputs/train/<name>) into experiments/rl_recipe/results.json.

    .venv/bin/python experiments/rl_recipe/collect.py   # runs outputs/train/{e,r,g}*, merged with results.json

Per run: config differences from the TrainConfig defaults, greedy success before/after on 50
standard and 50 held-out init states (n, Wilson 95 %), the paired change (exact McNemar: one run,
the init state is the unit), the sampled (T = 1) success of the training groups, KL to the
reference, env steps, wall time.
Per recipe and start over seeds (docs/statistics.md): before/after over the runs and the 50 distinct
init states (n = 50, never 50 x seeds), the paired change with the init state as the unit
(``stats.paired_over_seeds``: greedy evaluation of the start is deterministic, so its seeds share one
"before" vector) and the mean +- sd of the per-seed changes. Head to head, TGRPO against GRPO-sparse
from one start: ``stats.compare_methods`` (unit = run), Holm-adjusted over the head-to-heads.
"""
import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tgrpo_lib.analysis.stats import (compare_methods, holm, paired_change, paired_over_seeds, rate_over_runs,
                                      seed_summary, success_summary)
from tgrpo_lib.infra.config import TrainConfig
from tgrpo_lib.infra.runs import read_episodes

OUT = Path("experiments/rl_recipe")
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


TABLES_MISSING = "n/a (per-state tables missing)"


def state_flags(rows: list[dict], which: str, side: str) -> np.ndarray | None:
    """(runs, states) 0/1 flags of the rows' ``side`` evaluation of ``which``, columns in state-key
    order (the same states in every run, checked); None when a run was recorded without its flags."""
    if any("state_keys" not in r[which] for r in rows):
        return None
    keys = sorted(rows[0][which]["state_keys"])
    out = []
    for r in rows:
        by_key = dict(zip(r[which]["state_keys"], r[which][f"{side}_flags"]))
        if sorted(by_key) != keys:
            raise ValueError(f"{which}: the runs hold different init states")
        out.append([by_key[k] for k in keys])
    return np.array(out)


def over_seeds_entry(rows: list[dict], which: str) -> dict:
    """Runs of one recipe from one start: the paired change over seeds, unit = init state
    (``paired_over_seeds``: exact sign-flip over states, bootstrap interval over states, before /
    after rates over the distinct states); runs without stored flags keep their rates over the
    distinct states and say the test is n/a. Plus mean +- sd of the per-seed results."""
    before, after = state_flags(rows, which, "before"), state_flags(rows, which, "after")
    if before is None or after is None:
        # a rate over runs on the same states depends only on its mean and the state count
        rates = {side: rate_over_runs([[1] * r[which][side]["successes"] + [0] * (r[which][side]["n"] - r[which][side]["successes"])
                                       for r in rows]) for side in ("before", "after")}
        test = {**rates, "change": rates["after"]["rate"] - rates["before"]["rate"], "test": TABLES_MISSING}
        if len(rows) == 1:  # one run: its own exact McNemar is the state-level test (paired_over_seeds of one run)
            test.update({k: rows[0][which]["change"][k] for k in ("p_value", "test", "b", "c")})
    else:
        test = paired_over_seeds(before, after)
    return {"over_seeds": test,
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
    """After vs after of two recipes run from the same start on the same init states, one run per
    seed: per set ``compare_methods`` (unit = run: exact permutation over runs, two-way bootstrap
    interval of left minus right; with 3 runs per arm no p below 0.1), states matched by key."""
    out = {}
    for which in ("standard", "heldout"):
        lf, rf = (state_flags([runs[n] for n in names], which, "after") for names in (left, right))
        out[which] = compare_methods(lf, rf)
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
    over_runs = {}
    for key, names in recipes.items():
        rows = [runs[n] for n in names]
        over_runs[" ".join(names)] = {"recipe": json.loads(key), "runs": names, "seeds": [r["seed"] for r in rows],
                                   "env_steps_over_seeds": seed_summary([r["env_steps"] for r in rows]),
                                   **{which: over_seeds_entry(rows, which) for which in ("standard", "heldout")}}
    h2h = {name: head_to_head(runs, left, right) for name, (left, right) in HEAD_TO_HEAD.items()
           if all(n in runs for n in left + right)}
    # the declared family: every head-to-head on both sets (Holm 1979)
    adjusted = holm({f"{name}|{w}": e[w]["p_value"] for name, e in h2h.items() for w in ("standard", "heldout")})
    for key, p in adjusted.items():
        name, which = key.split("|")
        h2h[name][which]["holm_p_value"] = p
    path.write_text(json.dumps({"runs": runs, "recipes": over_runs, "head_to_head": h2h}, indent=2))
    for name, row in runs.items():
        s, h = row["standard"], row["heldout"]
        print(f"{name:34s} std {s['before']['rate']:.2f}->{s['after']['rate']:.2f} p={s['change']['p_value']:.3f} | "
              f"held {h['before']['rate']:.2f}->{h['after']['rate']:.2f} p={h['change']['p_value']:.3f} | "
              f"sampled {row['sampled_group_success']:.2f} steps {row['env_steps']} {row['recipe']}")
    for entry in over_runs.values():
        s, h = entry["standard"]["over_seeds"], entry["heldout"]["over_seeds"]
        print(f"over seeds {entry['recipe']} seeds {entry['seeds']}: " + " | ".join(
            f"{w} {e['before']['rate']:.3f}->{e['after']['rate']:.3f} p={e.get('p_value', float('nan')):.2g}"
            for w, e in (("std", s), ("held", h))))
    for name, e in h2h.items():
        print(name + ": " + " | ".join(f"{w} {e[w]['a']['rate']:.3f} vs {e[w]['b']['rate']:.3f} "
                                        f"p={e[w]['p_value']:.2g} (Holm {e[w]['holm_p_value']:.2g})" for w in ("standard", "heldout")))


if __name__ == "__main__":
    main()
