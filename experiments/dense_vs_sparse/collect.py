"""The study's analysis, exactly as PROTOCOL.md registers it: per-run rows, the contrasts H1 and
S1-S3 (``stats.compare_methods``, Holm over S1-S3), the start-vs-trained family
(``stats.paired_over_seeds``, Holm over the 7 cells), a figure, and RESULTS.md. A regime that
amendment 1 leaves out (no eligible weak start; the long start is the weak one) leaves both families.

    python experiments/dense_vs_sparse/collect.py      # reads $TGRPO_OUTPUTS (default outputs/)

A contrast or cell whose pre-registered runs have not all finished gets no test: its runs are
listed with their rates, marked incomplete.

Runs whose records are gone (a machine's outputs/ does not outlive it; ``archive.py`` keeps them in
git since 2026-12-08) are carried from ``results/carried/``: what this script wrote while their
records existed, for the regimes whose runs had all finished. Their rows, and the tests whose runs
are all carried, are taken from there as computed then (marked †).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import study  # noqa: E402
from tgrpo_lib import runs  # noqa: E402
from tgrpo_lib.config import run_name  # noqa: E402
from tgrpo_lib.stats import compare_methods, format_p, holm, paired_over_seeds, rate_over_runs  # noqa: E402

OUT = HERE / "results"
CARRIED = OUT / "carried"
SETS = ("test", "standard", "heldout")
PRIMARY = ("H1", "weak", "tgrpo", "grpo_sparse")
SECONDARY = (("S1", "weak", "tgrpo", "tgrpo_outcome_filter"), ("S2", "strong", "tgrpo", "grpo_sparse"),
             ("S3", "long", "tgrpo", "grpo_sparse"))
LABELS = {"tgrpo": "TGRPO", "grpo_sparse": "GRPO-sparse", "tgrpo_outcome_filter": "TGRPO, outcome filter"}


# ------------------------------------------------------------------------------ one run
def run_row(regime: str, arm: str, seed: int) -> dict:
    """What PROTOCOL.md logs per run; ``complete`` False (and rates missing) until it finished."""
    row = {"regime": regime, "arm": arm, "seed": seed, "complete": False}
    try:
        name = run_name(study.train_config(regime, arm, seed))
    except SystemExit:  # the weak start is not chosen yet
        return row
    d = runs.run_dir_path("train", name)
    row["run_name"] = name
    if not runs.is_complete(d):
        return row
    s = runs.read_json(d / "metrics.json")
    m = runs.read_metrics(d)
    it = m[m["step"] >= 0].dropna(subset=["charts/env_steps"]) if len(m) else m
    updated = it[it["update/skipped"] == 0] if "update/skipped" in it else it.iloc[:0]
    versions = runs.read_json(d / "versions.json")
    row.update(complete=True, env_steps=s.get("env_steps"), iterations=s.get("iterations"),
               all_fail_groups=float(1 - it["charts/group_has_success"].mean()),
               groups_updated=float(1 - it["update/skipped"].mean()),
               kl_to_reference=float(updated["losses/kl_mean"].tail(10).mean()) if len(updated) else math.nan,
               # every sitting's iterations: a resumed run's log is cut back to its checkpoint, so
               # each iteration it kept appears once (metrics.json's seconds count the last sitting)
               train_minutes=float(it["time/iteration"].sum()) / 60 if "time/iteration" in it else math.nan,
               wall_minutes=sum(s.get(k, 0.0) for k in ("seconds_before_eval", "seconds_training",
                                                         "seconds_after_eval")) / 60,
               commit=versions.get("git_commit"), dirty=versions.get("git_dirty"))
    for which in SETS:
        for tag in ("before", "after"):
            row[f"{tag}_{which}"] = s.get(f"{tag}_{which}")
    return row


def flags(regime: str, arm: str, which: str, tag: str = "after") -> np.ndarray:
    """(runs, states) success flags of a cell's finished runs, in seed order."""
    rows = []
    for seed in study.SEEDS[(regime, arm)]:
        d = runs.run_dir_path("train", run_name(study.train_config(regime, arm, seed)))
        if runs.is_complete(d):
            ep = pd.read_csv(d / "eval" / f"{tag}_{which}.csv")
            rows.append(ep["success"].astype(int).to_numpy())
    return np.array(rows)


def with_carried(table: pd.DataFrame, carried: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per registered run, from this machine's records) with each run that did
    not finish here taken from ``carried`` (an earlier runs.csv) if its whole regime had finished
    there (a block the loss interrupted is rerun whole); column ``records``: "here" or "carried"."""
    whole = {regime for regime, sel in carried.groupby("regime") if sel["complete"].astype(bool).all()}
    done = {r["run_name"]: r for r in carried.to_dict("records") if r["complete"] and r["regime"] in whole}
    rows = []
    for row in table.to_dict("records"):
        name = row.get("run_name")
        if row["complete"]:
            row["records"] = "here"
        elif isinstance(name, str) and name in done:
            row.update({k: v for k, v in done[name].items() if k in table.columns}, complete=True, records="carried")
        rows.append(row)
    return pd.DataFrame(rows, columns=[*table.columns, "records"])


def read_carried() -> tuple[pd.DataFrame, dict]:
    """results/carried/: the earlier runs.csv and results.json (empty when there is none)."""
    if not (CARRIED / "runs.csv").is_file():
        return pd.DataFrame(columns=["run_name", "complete"]), {}
    found = json.loads((CARRIED / "results.json").read_text())
    return pd.read_csv(CARRIED / "runs.csv"), {"contrasts": {c["contrast"]: c for c in found["contrasts"]},
                                               "cells": {(c["regime"], c["arm"]): c for c in found["before_after"]}}


def records(table: pd.DataFrame, regime: str, arms) -> set[str]:
    """Where the runs of these cells have their records: a subset of {"here", "carried"}."""
    sel = table[(table.regime == regime) & table.arm.isin(arms)]
    return set(sel["records"]) if "records" in sel else {"here"}


def carry(entry: dict, earlier: dict | None) -> dict:
    """A test whose runs are all carried: as computed while their records existed, if it was complete."""
    if earlier and earlier.get("complete"):
        entry.update({k: v for k, v in earlier.items() if k != "p_holm"}, carried=True)
    else:
        entry["complete"] = False
    return entry


def cell_complete(table: pd.DataFrame, regime: str, arm: str) -> bool:
    sel = table[(table.regime == regime) & (table.arm == arm)]
    return len(sel) == len(study.SEEDS[(regime, arm)]) and bool(sel["complete"].all())


# ------------------------------------------------------------------------------ the registered tests
def not_run(regime: str) -> str | None:
    """Why amendment 1 leaves a regime out (no eligible weak start; the long start is the weak
    one), or None. Only read once the qualification has been written (it never runs it)."""
    if regime not in ("weak", "long") or not (study.STUDY_DIR / "weak_start.json").is_file():
        return None
    if not study.skipped(regime):
        return None
    return "no eligible weak start" if regime == "weak" else "the long start is the weak one"


def planned(table: pd.DataFrame) -> pd.Series:
    """Per row of ``table``: whether its regime runs (``not_run`` asked once per regime)."""
    left_out = {regime: not_run(regime) for regime in table["regime"].unique()}
    return table["regime"].map(lambda regime: left_out[regime] is None)


def contrasts(table: pd.DataFrame, earlier: dict | None = None) -> list[dict]:
    """H1 and S1-S3; the secondary family is those whose regime runs (amendment 1: S1, S2 when the
    long start is the weak one), Holm-adjusted once all of them are complete. ``earlier``: the
    carried results (``read_carried``), for tests whose runs are all carried."""
    out = []
    for label, regime, a, b in (PRIMARY, *SECONDARY):
        entry = {"contrast": label, "regime": regime, "a": a, "b": b}
        if why := not_run(regime):
            entry.update(complete=False, not_run=why)
        elif not (cell_complete(table, regime, a) and cell_complete(table, regime, b)):
            entry["complete"] = False
        elif "carried" in records(table, regime, (a, b)):
            entry = carry(entry, ((earlier or {}).get("contrasts") or {}).get(label)
                          if records(table, regime, (a, b)) == {"carried"} else None)
        else:
            r = compare_methods(flags(regime, a, "test"), flags(regime, b, "test"))
            entry.update(complete=True, diff=r["diff"], ci_low=r["ci_low"], ci_high=r["ci_high"], p=r["p_value"],
                         rate_a=r["a"]["rate"], rate_b=r["b"]["rate"], runs_a=r["n_runs_a"], runs_b=r["n_runs_b"],
                         n_states=r["n_states"], test=r["test"])
        out.append(entry)
    secondary = [c for c in out if c["contrast"] != "H1" and "not_run" not in c]
    if secondary and all(c["complete"] for c in secondary):
        for c, p in zip(secondary, holm([c["p"] for c in secondary])):
            c["p_holm"] = p
    return out


def before_after(table: pd.DataFrame, earlier: dict | None = None) -> list[dict]:
    """Start vs trained per (regime, arm) cell; Holm over the cells of the regimes that run."""
    cells = []
    for (regime, arm) in study.SEEDS:
        entry = {"regime": regime, "arm": arm}
        if why := not_run(regime):
            entry.update(complete=False, not_run=why)
        elif not cell_complete(table, regime, arm):
            entry["complete"] = False
        elif "carried" in records(table, regime, (arm,)):
            entry = carry(entry, ((earlier or {}).get("cells") or {}).get((regime, arm))
                          if records(table, regime, (arm,)) == {"carried"} else None)
        else:
            r = paired_over_seeds(flags(regime, arm, "test", "before"), flags(regime, arm, "test"))
            entry.update(complete=True, before=r["before"]["rate"], after=r["after"]["rate"], change=r["change"],
                         ci_low=r["ci_low"], ci_high=r["ci_high"], p=r["p_value"], runs=r["n_runs"],
                         n_states=r["n_states"], run_change_sd=r["run_change_sd"])
        cells.append(entry)
    family = [c for c in cells if "not_run" not in c]
    if family and all(c["complete"] for c in family):
        for c, p in zip(family, holm([c["p"] for c in family])):
            c["p_holm"] = p
    return cells


# ------------------------------------------------------------------------------ the report
def pct(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def rate_text(rate: float, states: int, n_runs: int) -> str:
    """An arm's rate over runs with its interval over the distinct states (``rate_over_runs``,
    which depends on the flags only through their mean: any flags with that many successes)."""
    x = np.zeros(n_runs * states)
    x[:int(round(rate * n_runs * states))] = 1
    r = rate_over_runs(x.reshape(n_runs, states))
    return f"{100 * r['rate']:.1f} % [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}] (n={r['n']} states, {r['n_runs']} runs)"


def mark(c: dict) -> str:
    return " †" if c.get("carried") else ""


def figure(table: pd.DataFrame, found: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = table[table["complete"]]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    ticks = []
    for i, (regime, arm) in enumerate(study.SEEDS):
        sel = done[(done.regime == regime) & (done.arm == arm)]
        ticks.append(regime + "\n" + LABELS[arm].replace(", ", ",\n"))  # the long label on 2 lines
        ax.scatter(np.full(len(sel), i) + np.linspace(-0.15, 0.15, max(len(sel), 1))[:len(sel)],
                   100 * sel["after_test"].astype(float), s=18, color=f"C{list(LABELS).index(arm)}")
        if len(sel):
            ax.hlines(100 * float(sel["before_test"].iloc[0]), i - 0.3, i + 0.3, colors="grey", linestyles=":")
    ax.set_xticks(range(len(ticks)), ticks, fontsize=7)
    ax.set_ylabel("greedy success on the 100 test layouts (%)")
    ax.set_title("one dot per run (dotted: the start)", fontsize=9)
    shown = [c for c in found if c["complete"]]
    for j, c in enumerate(shown):
        bx.errorbar(100 * c["diff"], j, xerr=[[100 * (c["diff"] - c["ci_low"])], [100 * (c["ci_high"] - c["diff"])]],
                    fmt="o", color="k")
    bx.axvline(0, color="grey", lw=0.8)
    bx.set_yticks(range(len(shown)), [f"{c['contrast']} {c['regime']}: {LABELS[c['a']]} − {LABELS[c['b']]}"
                                      for c in shown], fontsize=7)
    bx.set_xlabel("difference in test success (pts, 95 % interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(table: pd.DataFrame, found: list[dict], cells: list[dict]) -> str:
    in_plan = planned(table)
    n_done, n_all = int(table["complete"][in_plan].sum()), int(in_plan.sum())
    holm_family = ", ".join(c["contrast"] for c in found if c["contrast"] != "H1" and "not_run" not in c)
    lines = [f"Runs finished: **{n_done} of {n_all}** pre-registered" + (f" that run ({len(table) - n_all} left out by "
             "amendment 1)." if n_all < len(table) else ".") + ("" if n_done == n_all else
             " Incomplete cells get no test (PROTOCOL.md)."), "",
             "## Contrasts on the test layouts (unit = run)", "",
             f"| | regime | A | B | A | B | A − B [95 % CI] | p | p (Holm, {holm_family}) |", "|---|---|---|---|---|---|---|---|---|"]
    for c in found:
        if c["complete"]:
            lines.append(f"| {c['contrast']}{mark(c)} | {c['regime']} | {LABELS[c['a']]} | {LABELS[c['b']]} | "
                         f"{rate_text(c['rate_a'], c['n_states'], c['runs_a'])} | "
                         f"{rate_text(c['rate_b'], c['n_states'], c['runs_b'])} | "
                         f"{100 * c['diff']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}] | "
                         f"{format_p(c['p'])} | {format_p(c['p_holm']) if 'p_holm' in c else '–'} |")
        elif "not_run" in c:
            lines.append(f"| {c['contrast']} | {c['regime']} | {LABELS[c['a']]} | {LABELS[c['b']]} | not run | not run | "
                         f"not run: {c['not_run']} (PROTOCOL.md, amendment 1) | – | – |")
        else:
            done = [int(table[(table.regime == c["regime"]) & (table.arm == arm)]["complete"].sum()) for arm in (c["a"], c["b"])]
            need = [len(study.SEEDS[(c["regime"], arm)]) for arm in (c["a"], c["b"])]
            lines.append(f"| {c['contrast']} | {c['regime']} | {LABELS[c['a']]} | {LABELS[c['b']]} | "
                         f"{done[0]}/{need[0]} runs | {done[1]}/{need[1]} runs | incomplete | – | – |")
    family = sum("not_run" not in c for c in cells)
    lines += ["", "## Start → trained on the test layouts (unit = init state)", "",
              f"| regime | arm | runs | start | trained | change [95 % CI] | p | p (Holm, {family} cells) | seed sd |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        if c["complete"]:
            lines.append(f"| {c['regime']}{mark(c)} | {LABELS[c['arm']]} | {c['runs']} | {pct(c['before'])} % | {pct(c['after'])} % | "
                         f"{100 * c['change']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}] | {format_p(c['p'])} | "
                         f"{format_p(c['p_holm']) if 'p_holm' in c else '–'} | {pct(c['run_change_sd'])} |")
        else:
            why = f"not run: {c['not_run']}" if "not_run" in c else "incomplete"
            lines.append(f"| {c['regime']} | {LABELS[c['arm']]} | {why} | | | | | | |")
    cols = ["regime", "arm", "seed", "before_test", "after_test", "after_standard", "after_heldout", "env_steps",
            "iterations", "all_fail_groups", "groups_updated", "kl_to_reference", "train_minutes",
            "wall_minutes (last sitting)"]
    lines += ["", "## Every run (rates in %, n = 100 test / 50 standard / 50 held-out states)", "",
              "train_minutes: the training iterations of every sitting (metrics.jsonl); wall_minutes: "
              "evaluations + training of a run's last sitting only (all the study's code records).", "",
              "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table[table["complete"]].iterrows():
        vals = [r["regime"] + (" †" if r.get("records", "here") == "carried" else ""), LABELS[r["arm"]], str(r["seed"]), *(pct(r[k]) for k in cols[3:7]), f"{int(r['env_steps'])}",
                f"{int(r['iterations'])}", pct(r["all_fail_groups"]), pct(r["groups_updated"]), f"{r['kl_to_reference']:.3f}",
                f"{r['train_minutes']:.0f}", f"{r['wall_minutes']:.0f}"]
        lines.append("| " + " | ".join(vals) + " |")
    if any(c.get("carried") for c in [*found, *cells]) or ("records" in table and (table["records"] == "carried").any()):
        lines += ["", "† carried from `results/carried/` (collect.py's output while these runs' per-episode "
                  "records existed; they were lost with that machine's outputs/): the numbers as computed then."]
    return "\n".join(lines) + "\n"


def main() -> None:
    columns = ["regime", "arm", "seed", "complete", "run_name", "env_steps", "iterations", "all_fail_groups",
               "groups_updated", "kl_to_reference", "train_minutes", "wall_minutes", "commit", "dirty",
               *(f"{tag}_{which}" for which in SETS for tag in ("before", "after"))]
    carried, earlier = read_carried()
    table = with_carried(pd.DataFrame([run_row(*q) for q in study.queue()]).reindex(columns=columns), carried)
    found, cells = contrasts(table, earlier), before_after(table, earlier)
    OUT.mkdir(exist_ok=True)
    table.to_csv(OUT / "runs.csv", index=False)
    (OUT / "results.json").write_text(json.dumps({"contrasts": found, "before_after": cells,
                                                  "runs_finished": int(table["complete"].sum()),
                                                  "runs_registered": len(table),
                                                  "runs_planned": int(planned(table).sum())},
                                                 indent=1, default=float))
    qualification = study.STUDY_DIR / "weak_start.json"
    if qualification.is_file():  # the weak start's measurement, beside the runs it chose
        (OUT / "weak_start.json").write_text(qualification.read_text())
    figure(table, found, OUT / "figure.png")
    (OUT / "tables.md").write_text(markdown(table, found, cells))
    print((OUT / "tables.md").read_text())


if __name__ == "__main__":
    main()
