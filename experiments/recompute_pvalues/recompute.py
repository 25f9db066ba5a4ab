"""Recompute every p-value and interval the project has reported, from the committed per-state data,
with the statistics of docs/statistics.md; write recompute.json and recompute.md beside this script
and the tables between the markers of docs/statistics.md.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/recompute_pvalues/recompute.py

Each reported value is listed with where it was reported, the value as quoted there, the value the
old method gives on the committed data (checked against the quote, so the catalogue cannot drift
from the data) and the new value with its method:

- SFT start -> trained over several seeds from one start: ``stats.paired_over_seeds`` (unit = init
  state; the old test was exact McNemar on the (seed, state) pairs pooled over seeds);
- TGRPO against GRPO-sparse: ``stats.compare_methods`` (unit = run), Holm over the six head-to-heads
  (the old test: exact McNemar on the pooled (seed, state) pairs);
- rates over several seeds: ``stats.rate_over_runs`` (n = distinct init states; the old interval
  counted states x seeds);
- one run (one start, one trained policy, or two policies each evaluated once): exact McNemar, the
  init state already the unit; recomputed from the stored discordant counts b, c with
  ``stats.sign_flip_p_value`` (the sign-flip test on one run depends only on them) and unchanged;
- Fig. 5 points against the best (one run each): Fisher's exact test on pooled episodes was
  unpaired; the test is exact McNemar on the same states, whose per-state tables were not committed.

Reads only committed files under experiments/ and the quoted values below (copied from README.md's
"Results on this hardware", tgrpo_lib/config.py and experiments/quick/).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from tgrpo_lib.analysis.stats import (compare_methods, fisher_exact_counts, holm, mcnemar_exact_counts,
                                      paired_over_seeds, rate_over_runs, sign_flip_p_value, wilson_interval)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "experiments"
STATISTICS_MD = ROOT / "docs" / "statistics.md"
BEGIN, END = "<!-- recompute:begin -->", "<!-- recompute:end -->"
TABLES_MISSING = "n/a (per-state tables missing)"
README = "README.md, Results on this hardware"
SETS = ("standard", "heldout")
SET_NAME = {"standard": "standard", "heldout": "held-out"}

# recipe group (runs in rl_recipe/results.json) -> where the README reports it and what it quoted there:
# per set the pooled p-value and the pooled intervals before / after (None: not quoted)
OVER_SEEDS = {
    "TGRPO from D (175 demos), headline": (
        ["r3_d175_s0", "r3_d175_s1", "r3_d175_s2"], f"{README}: Headline",
        {"standard": (5.4e-4, (66.4, 80.4), (84.2, 93.8)), "heldout": (5.8e-9, (58.1, 73.1), (88.2, 96.3))}),
    "GRPO-sparse from D": (
        ["g3_grpo_sparse_d175_s0", "g3_grpo_sparse_d175_s1", "g3_grpo_sparse_d175_s2"],
        f"{README}: GRPO with the sparse success reward (from D)",
        {"standard": (1.8e-4, None, (84.2, 93.8)), "heldout": (1.6e-11, None, (89.8, 97.3))}),
    "TGRPO from C (150 demos)": (
        ["r2_d150_s0", "r2_d150_s1", "r2_d150_s2"], f"{README}: The same RL recipe from the 150-demo start",
        {"standard": (5.9e-15, (42.1, 57.9), (84.2, 93.8)), "heldout": (8.6e-14, (56.1, 71.2), (94.3, 99.3))}),
    "GRPO-sparse from C": (
        ["g2_grpo_sparse_d150_s0", "g2_grpo_sparse_d150_s1", "g2_grpo_sparse_d150_s2"],
        f"{README}: GRPO with the sparse success reward (from C)",
        {"standard": (6.4e-15, None, (85.7, 94.9)), "heldout": (9.6e-8, None, (85.7, 94.9))}),
    "TGRPO from B (200 demos)": (
        ["r1_lr1e-4", "r1_lr1e-4_s1", "r1_lr1e-4_s2"],
        f"{README}: The same RL recipe from the 200-demo start; tgrpo_lib/config.py (TrainConfig.lr docstring)",
        {"standard": (1.3e-12, (60.2, 74.9), (93.3, 99.0)), "heldout": (1.2e-7, (77.3, 89.0), (97.5, 100.0))}),
    "GRPO-sparse from B": (
        ["g1_grpo_sparse_lr1e-4_s0", "g1_grpo_sparse_lr1e-4_s1", "g1_grpo_sparse_lr1e-4_s2"],
        f"{README}: GRPO with the sparse success reward, same recipe (from B)",
        {"standard": (1.0e-11, None, (90.7, 97.7)), "heldout": (1.2e-7, None, (97.5, 100.0))}),
    "TGRPO e3 from A (lr 3e-4; per-state tables not kept)": (
        ["e3_tgrpo_each_skip_i50_t05", "e3_tgrpo_each_skip_i50_t05_s1", "e3_tgrpo_each_skip_i50_t05_s2"],
        f"{README}: The same RL recipe from the 200-demo start (the earlier checkpoint A)",
        {"standard": (2.2e-5, None, None), "heldout": (1.0e-11, None, None)}),
}
HEAD_TO_HEAD = {  # name in rl_recipe/results.json -> per set the quoted pooled p-value
    "tgrpo_vs_grpo_sparse (start B, lr 1e-4)": {"standard": 0.55, "heldout": 1.0},
    "tgrpo_vs_grpo_sparse (start C: 150 demos)": {"standard": 0.82, "heldout": 0.021},
    "tgrpo_vs_grpo_sparse (start D: 175 demos)": {"standard": 1.0, "heldout": 0.80},
}
FIG5_QUOTED = {("standard", "alpha1", 0.9): f"{README}: The quick reproduction (p = 0.031 against the best)"}


def quoted_matches(value: float, quote: float) -> bool:
    """Whether ``value`` prints as ``quote`` at the 2 significant digits the README used."""
    return value == quote or (quote > 0 and abs(value / quote - 1) < 0.06)


def check(value: float, quote, what: str) -> None:
    if quote is not None and not quoted_matches(value, quote):
        raise SystemExit(f"{what}: the old method gives {value:.3g} on the committed data, the report quoted {quote}")


def p_text(p: float) -> str:
    if p != p:
        return "n/a"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def interval_text(low: float, high: float) -> str:
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def diff_interval(low: float, high: float) -> str:
    return f"[{100 * low:+.1f}, {100 * high:+.1f}]"


def plain(value):
    """JSON-ready: NaN as null, tuples as lists, recursively."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def run_flags(run: dict, which: str, side: str) -> list[int] | None:
    if "state_keys" not in run[which]:
        return None
    by_key = dict(zip(run[which]["state_keys"], run[which][f"{side}_flags"]))
    return [by_key[k] for k in sorted(by_key)]


def flag_matrix(runs: dict, names: list[str], which: str, side: str) -> np.ndarray | None:
    rows = [run_flags(runs[n], which, side) for n in names]
    return None if any(r is None for r in rows) else np.array(rows)


def count_matrix(runs: dict, names: list[str], which: str, side: str) -> np.ndarray:
    """Flags with each run's successes first: the rate over runs and its interval depend only on the counts."""
    rows = []
    for n in names:
        k, total = runs[n][which][side]["successes"], runs[n][which][side]["n"]
        rows.append([1] * k + [0] * (total - k))
    return np.array(rows)


# ------------------------------------------------------------------------------ changed: several seeds
def over_seeds_rows(runs: dict) -> list[dict]:
    out = []
    for label, (names, where, quotes) in OVER_SEEDS.items():
        for which in SETS:
            rows = [runs[n][which] for n in names]
            b, c = sum(r["change"]["b"] for r in rows), sum(r["change"]["c"] for r in rows)
            old_p = mcnemar_exact_counts(b, c)["p_value"]
            quote_p, quote_before, quote_after = quotes[which]
            check(old_p, quote_p, f"{label} {which}")
            before, after = flag_matrix(runs, names, which, "before"), flag_matrix(runs, names, which, "after")
            if before is None:
                new = {"p": math.nan, "text": TABLES_MISSING}
            else:
                r = paired_over_seeds(before, after)
                new = {"p": r["p_value"], "text": f"p = {p_text(r['p_value'])}, change {100 * r['change']:+.1f} pts "
                                                  f"{diff_interval(r['ci_low'], r['ci_high'])}"}
            what = f"{label}: SFT -> trained, {SET_NAME[which]} ({len(names)} seeds)"
            out.append({"kind": "p", "what": what, "where": where, "reported": f"p = {quote_p:g} (b = {b}, c = {c})",
                        "old_method": f"exact McNemar on {50 * len(names)} pooled (seed, state) pairs",
                        "old": old_p, "new": new["p"], "new_text": new["text"],
                        "new_method": "paired_over_seeds: exact sign-flip over 50 states" if before is not None
                        else "paired_over_seeds needs the per-state flags",
                        "changed": True})
            for side, quote in (("before", quote_before), ("after", quote_after)):
                if quote is None and side == "before":
                    continue
                k = sum(r[side]["successes"] for r in rows)
                n = sum(r[side]["n"] for r in rows)
                low, high = wilson_interval(k, n)
                if quote is not None:
                    check(100 * low, quote[0], f"{label} {which} {side} low")
                new_rate = rate_over_runs(count_matrix(runs, names, which, side))
                out.append({"kind": "interval", "what": f"{label}: {'SFT start' if side == 'before' else 'trained'}, "
                                                        f"{SET_NAME[which]}, {100 * k / n:.1f} %",
                            "where": where, "reported": interval_text(low, high) if quote is not None else "(rate only)",
                            "old_method": f"Wilson, n = {n} (states x seeds)", "old": [low, high],
                            "new": [new_rate["ci_low"], new_rate["ci_high"]],
                            "new_text": interval_text(new_rate["ci_low"], new_rate["ci_high"]),
                            "new_method": f"rate_over_runs, n = {new_rate['n_states']} distinct states", "changed": True})
    return out


def head_to_head_rows(runs: dict, h2h: dict) -> list[dict]:
    out, family = [], {}
    for name, quotes in HEAD_TO_HEAD.items():
        left, right = h2h[name]["left"], h2h[name]["right"]
        for which in SETS:
            lf, rf = (flag_matrix(runs, names, which, "after") for names in (left, right))
            b, c = int(((lf == 1) & (rf == 0)).sum()), int(((lf == 0) & (rf == 1)).sum())
            old_p = mcnemar_exact_counts(b, c)["p_value"]
            check(old_p, quotes[which], f"{name} {which}")
            r = compare_methods(lf, rf)
            family[(name, which)] = r["p_value"]
            out.append({"kind": "p", "what": f"TGRPO vs GRPO-sparse, {name.split('(')[1].rstrip(')')}, "
                                             f"{SET_NAME[which]}, after vs after ({len(left)} vs {len(right)} runs)",
                        "where": f"{README}: GRPO with the sparse success reward (TGRPO against GRPO-sparse)",
                        "reported": f"p = {quotes[which]:g} (b = {b}, c = {c})",
                        "old_method": f"exact McNemar on {lf.size} pooled (seed, state) pairs", "old": old_p,
                        "new": r["p_value"], "key": (name, which),
                        "new_text": f"p = {p_text(r['p_value'])}, diff {100 * r['diff']:+.1f} pts "
                                    f"{diff_interval(r['ci_low'], r['ci_high'])}",
                        "new_method": "compare_methods: exact permutation over 3 vs 3 runs (min p 0.1), "
                                      "two-way bootstrap interval", "changed": True})
    adjusted = holm({f"{k[0]}|{k[1]}": p for k, p in family.items()})
    for row in out:
        row["holm"] = adjusted[f"{row['key'][0]}|{row['key'][1]}"]
        row["new_text"] += f"; Holm over the 6: {p_text(row['holm'])}"
        del row["key"]
    return out


def fig5_rows() -> list[dict]:
    """Fig. 5 points against the best point (quick profile: one run per point)."""
    out = []
    for which, path in (("standard", RESULTS / "quick" / "results.json"), ("heldout", RESULTS / "quick" / "heldout" / "results.json")):
        fig5 = json.loads(path.read_text())["fig5"]
        for axis in ("alpha1", "group_size"):
            points = fig5[axis]
            best = next(p for p in points if p["best"])
            for p in points:
                if p["best"]:
                    continue
                old = fisher_exact_counts(*(int(v) for v in (p["successes"], p["n"], best["successes"], best["n"])))["p_value"]
                check(old, p["p_vs_best"], f"fig5 {which} {axis} {p[axis]}")
                out.append({"kind": "p", "what": f"Fig. 5 ({SET_NAME[which]}): {axis} = {p[axis]:g} vs the best "
                                                 f"({best[axis]:g}), one run each",
                            "where": FIG5_QUOTED.get((which, axis, p[axis]),
                                                     f"experiments/quick/{'' if which == 'standard' else 'heldout/'}fig5.md"),
                            "reported": f"p = {p_text(p['p_vs_best'])}",
                            "old_method": "Fisher exact on pooled episodes (unpaired)", "old": old, "new": math.nan,
                            "new_text": TABLES_MISSING, "new_method": "exact McNemar on the same 50 states (one run each)",
                            "changed": True})
    return out


# ------------------------------------------------------------------------------ unchanged: one run
def single_run(what: str, where: str, b: int, c: int, old: float) -> dict:
    """One run: the sign-flip test over states of one run is exact McNemar, a function of b and c."""
    new = sign_flip_p_value([1] * c + [-1] * b)
    if not math.isclose(new, old, rel_tol=1e-6):  # some files stored p rounded to 10 digits
        raise SystemExit(f"{what}: stored p {old} differs from exact McNemar on b={b}, c={c}: {new}")
    return {"kind": "p", "what": what, "where": where, "reported": f"p = {p_text(old)} (b = {b}, c = {c})",
            "old_method": "exact McNemar", "old": old, "new": new, "new_text": f"p = {p_text(new)}",
            "new_method": "one run: exact McNemar (= paired_over_seeds with one run)", "changed": False}


def single_run_rows(runs: dict) -> list[dict]:
    out = []
    for name, run in runs.items():
        for which in SETS:
            ch = run[which]["change"]
            out.append(single_run(f"rl_recipe run {name} (seed {run['seed']}), {SET_NAME[which]}",
                                  f"{README}: The RL recipe, step by step / headline per-seed p", ch["b"], ch["c"], ch["p_value"]))
    for path in sorted((RESULTS / "make_run").glob("*_results.json")) + sorted((RESULTS / "other_suites").glob("*_results.json")):
        rec = json.loads(path.read_text())
        if "test" in rec["comparison"]:  # written after the fix (test layouts exist): nothing to recompute
            continue
        for which, ch in rec["comparison"].items():
            out.append(single_run(f"{path.stem.removesuffix('_results')} ({rec['task']}), {SET_NAME[which]}",
                                  f"{README} ({path.parent.name})", ch["b"], ch["c"], ch["p_value"]))
    for cond in json.loads((RESULTS / "robustness" / "metrics.json").read_text())["conditions"]:
        out.append(single_run(f"robustness, condition {cond['condition']}", f"{README}: Robustness under LIBERO-PRO",
                              cond["b"], cond["c"], cond["p"]))
    for path in (RESULTS / "diagnosis" / "diagnosis.json", RESULTS / "diagnosis" / "default_sft_D" / "diagnosis.json"):
        ch = json.loads(path.read_text())["starting_policy"]["greedy_vs_sampled"]
        out.append(single_run(f"diagnosis {path.parent.name}: greedy vs sampled", f"{README}: Diagnosis",
                              ch["b"], ch["c"], ch["p_value"]))
    for name, pilot in json.loads((RESULTS / "session_2026-12-02" / "results.json").read_text())["tgrpo_pilots"].items():
        for which in SETS:
            ch = pilot[which]["change"]
            out.append(single_run(f"session 2026-12-02 pilot {name}, {SET_NAME[which]}", "experiments/session_2026-12-02",
                                  ch["b"], ch["c"], ch["p_value"]))
    for which, path in (("standard", RESULTS / "quick" / "results.json"), ("heldout", RESULTS / "quick" / "heldout" / "results.json")):
        rep = json.loads(path.read_text())
        for cell in rep["table1"] + rep["table2"]["cells"]:
            if cell.get("b") is not None and cell["column"] not in ("Average", "Avg."):
                out.append(single_run(f"quick Table {'I' if 'rank' in cell else 'II'} ({SET_NAME[which]}): {cell['method']} "
                                      f"vs TGRPO", f"{README}: The quick reproduction; experiments/quick",
                                      int(cell["b"]), int(cell["c"]), cell["p_value"]))
    text = (RESULTS / "quick" / "sweeps_before_after.md").read_text()
    for axis_value, which, p, b, c in re.findall(r"\| ([\d.]+) \| (\w+) \| .*?p [=<] ([\d.]+) \(exact McNemar, b=(\d+), c=(\d+)\)", text):
        new = sign_flip_p_value([1] * int(c) + [-1] * int(b))
        out.append({"kind": "p", "what": f"quick sweep value {axis_value}, SFT -> trained, {SET_NAME[which]}",
                    "where": "experiments/quick/sweeps_before_after.md", "reported": f"p = {p} (b = {b}, c = {c})",
                    "old_method": "exact McNemar", "old": mcnemar_exact_counts(int(b), int(c))["p_value"], "new": new,
                    "new_text": f"p = {p_text(new)}", "new_method": "one run: exact McNemar", "changed": False})
    return out


NOT_RECOMPUTABLE = [
    ("SFT 150 vs 175 demos (object 0, standard / held-out; libero_10 5; goal 5; spatial 1): p = 0.017 / 1.000 / "
     "0.607 / 0.629 / 0.118; 150 vs 200 demos: p = 0.093 / 0.031; intended-action labels: p = 3.0e-8",
     f"{README}: 175 demos, screened; Starting policy, step by step",
     "one checkpoint against another on the same states (exact McNemar, unit = state): the method stands; "
     "the per-state episode caches were not committed (experiments/sft_demos/paired.py recomputes them)"),
]


def env_steps_rows() -> list[dict]:
    """What each Fig. 5 point of the quick profile cost: the N sweep compared at equal iterations."""
    out = []
    for axis, path in (("alpha1", "03_alpha_sweep_sweep.csv"), ("group_size", "04_group_size_sweep_sweep.csv")):
        lines = (RESULTS / "quick" / path).read_text().splitlines()
        head = lines[0].split(",")
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            out.append({"axis": axis, "value": float(row[axis]), "env_steps": int(row["env_steps"]),
                        "after_standard": float(row["after_standard"]), "after_heldout": float(row["after_heldout"])})
    return out


# ------------------------------------------------------------------------------ output
def markdown(changed: list[dict], unchanged: list[dict], steps: list[dict]) -> str:
    def table(rows, columns):
        lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(f(r)) for _, f in columns) + " |" for r in rows]
        return "\n".join(lines)
    p_changed = [r for r in changed if r["kind"] == "p"]
    intervals = [r for r in changed if r["kind"] == "interval"]
    seeds = [r for r in p_changed if "SFT -> trained" in r["what"] and r["new"] == r["new"]]
    orders = [math.log10(r["new"] / r["old"]) for r in seeds]
    h2h = [r for r in p_changed if "holm" in r]
    parts = [
        "### Summary", "",
        f"- SFT -> trained over several seeds: {len(seeds)} p-values recomputed "
        f"({sum(r['new'] != r['new'] for r in p_changed if 'SFT -> trained' in r['what'])} n/a), each larger by "
        f"{min(orders):.1f} to {max(orders):.1f} orders of magnitude; {sum(r['new'] < 0.05 for r in seeds)} of "
        f"{len(seeds)} stay below 0.05.",
        f"- TGRPO vs GRPO-sparse: {len(h2h)} head-to-heads, smallest run-level p {min(r['new'] for r in h2h):.3f} "
        f"(was {min(r['old'] for r in h2h):.3f}), smallest after Holm {min(r['holm'] for r in h2h):.3f}.",
        f"- {len(intervals)} intervals over several seeds now count 50 distinct states instead of 150.",
        f"- {sum('Fig. 5' in r['what'] for r in p_changed)} Fig. 5 comparisons with the best point: n/a "
        "(one run each; per-state tables not committed).",
        f"- {len(unchanged)} single-run p-values: unchanged.", "",
        "### Changed: p-values over several seeds or between methods", "",
        table(p_changed, [("what", lambda r: r["what"]), ("reported in", lambda r: r["where"]),
                          ("old (as reported; old method)", lambda r: f"{r['reported']}; {r['old_method']}"),
                          ("new", lambda r: r["new_text"]), ("new method", lambda r: r["new_method"])]), "",
        "### Changed: intervals over several seeds (n = distinct init states, not states x seeds)", "",
        table(intervals, [("rate", lambda r: r["what"]), ("reported in", lambda r: r["where"]),
                          ("old", lambda r: f"{interval_text(*r['old'])} ({r['old_method']}"
                                            f"{'; rate quoted, interval not' if r['reported'] == '(rate only)' else ''})"),
                          ("new", lambda r: f"{r['new_text']} ({r['new_method']})")]), "",
        "### Not recomputable from committed files", "",
        table(NOT_RECOMPUTABLE, [("what", lambda r: r[0]), ("reported in", lambda r: r[1]), ("status", lambda r: r[2])]), "",
        "### Fig. 5 of the quick profile: env steps per point (equal iterations, not equal env steps)", "",
        table(steps, [("axis", lambda r: r["axis"]), ("value", lambda r: f"{r['value']:g}"),
                      ("env steps", lambda r: f"{r['env_steps']:,}"), ("after, standard", lambda r: f"{100 * r['after_standard']:.0f} %"),
                      ("after, held-out", lambda r: f"{100 * r['after_heldout']:.0f} %")]), "",
        f"### Unchanged: one run each ({len(unchanged)} p-values)", "",
        "Exact McNemar on one run's init states already has the state as its unit (it equals "
        "`paired_over_seeds` with one run); each is recomputed from its stored b, c and equals the reported value. "
        "Every single-run interval (Wilson on one run's n states) is unchanged for the same reason.", "",
        table(unchanged, [("what", lambda r: r["what"]), ("reported in", lambda r: r["where"]),
                          ("reported", lambda r: r["reported"]), ("recomputed", lambda r: r["new_text"])]),
    ]
    return "\n".join(parts) + "\n"


def main() -> None:
    recipe = json.loads((RESULTS / "rl_recipe" / "results.json").read_text())
    runs = recipe["runs"]
    changed = over_seeds_rows(runs) + head_to_head_rows(runs, recipe["head_to_head"]) + fig5_rows()
    unchanged = single_run_rows(runs)
    steps = env_steps_rows()
    (HERE / "recompute.json").write_text(json.dumps(plain({"changed": changed, "unchanged": unchanged,
                                                           "not_recomputable": NOT_RECOMPUTABLE, "fig5_env_steps": steps}),
                                                    indent=1, allow_nan=False) + "\n")
    md = markdown(changed, unchanged, steps)
    (HERE / "recompute.md").write_text("# Every reported p-value and interval, recomputed\n\n"
                                       "Written by `recompute.py` from the committed files under experiments/ "
                                       "(rules: docs/statistics.md).\n\n" + md)
    if STATISTICS_MD.exists():
        doc = STATISTICS_MD.read_text()
        if BEGIN in doc and END in doc:
            head, rest = doc.split(BEGIN, 1)
            STATISTICS_MD.write_text(head + BEGIN + "\n" + md + END + rest.split(END, 1)[1])
    print(f"{len(changed)} changed, {len(unchanged)} unchanged; wrote {HERE / 'recompute.md'}")


if __name__ == "__main__":
    main()
