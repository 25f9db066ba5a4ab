"""Sweep curves: success against alpha1 or group size N (the data of the paper's Fig. 5), and
a sweep's before/after per value, from the runs' tables (``runs_table.load_runs``).

A curve has one row per run; a point is every run of one axis value (``curve_summary``: rate over
its runs and distinct init states with its 95 % Wilson interval, the best point, and every other
point tested against it). Points compare at equal RL iterations, not equal env steps.

    curve = sweep_curve(load_runs(root), "alpha1")
    print(curve_markdown(curve_summary(curve, "alpha1"), "alpha1"))
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tgrpo_lib.analysis import cells, paper
from tgrpo_lib.analysis.cells import NOT_SIGNIFICANT, SIGNIFICANCE
from tgrpo_lib.analysis.runs_table import distinct_runs
from tgrpo_lib.analysis.stats import format_seeds
from tgrpo_lib.analysis.tables import to_markdown
from tgrpo_lib.infra.runs import INIT_SETS

CURVE_COLUMNS = ["seed", "suite", "task_id", "success", "successes", "n", "ci_low", "ci_high", "env_steps", "run_dir",
                 "tag", "init_set"]


def sweep_curve(runs_df: pd.DataFrame, axis: str, init_set: str = "standard", algo: str = "tgrpo",
                suite: str | None = None, fixed: dict | None = None) -> pd.DataFrame:
    """One row per run of the sweep: its axis value, seed, task, success % on ``init_set`` with the
    counts behind it (successes of n states) and their 95 % Wilson interval, the env steps it took,
    and where its per-episode tables are (run_dir, tag, init_set): the units ``curve_summary``
    tests. A Fig. 5 seed point is the mean of a seed's runs over the tasks (``seed_points``).

    ``suite`` / ``fixed`` ({"group_size": 4}) keep only the runs of one slice, so a curve never
    blends suites or the other sweep's axis."""
    if axis not in ("alpha1", "group_size"):
        raise ValueError(f"axis={axis!r}: Fig. 5 sweeps 'alpha1' or 'group_size'.")
    empty = pd.DataFrame(columns=[axis, *CURVE_COLUMNS])
    if not len(runs_df):
        return empty
    sel = runs_df[runs_df["algo"] == algo]
    if suite is not None:
        sel = sel[sel["suite"] == suite]
    for key, value in (fixed or {}).items():
        sel = sel[np.isclose(sel[key].astype(float), float(value))]
    if not len(sel):
        return empty
    key = f"after_{init_set}"
    out = pd.DataFrame({axis: sel[axis], "seed": sel["seed"], "suite": sel["suite"], "task_id": sel["task_id"],
                        "success": 100 * sel[key], "successes": sel[f"{key}_successes"], "n": sel[f"{key}_episodes"],
                        "env_steps": sel["env_steps"], "run_dir": sel["run_dir"], "tag": "after", "init_set": init_set})
    bounds = [cells.cell_rate(out.loc[[i]]) for i in out.index]  # one run: the Wilson interval of its n states
    out["ci_low"], out["ci_high"] = [100 * b["ci_low"] for b in bounds], [100 * b["ci_high"] for b in bounds]
    return out.sort_values([axis, "seed", "suite", "task_id"]).reset_index(drop=True)[[axis, *CURVE_COLUMNS]]


def seed_points(curve: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Fig. 5's dots: per (axis value, seed) the mean success % over the seed's tasks."""
    return curve.groupby([axis, "seed"], as_index=False)["success"].mean()


def sweep_before_after(runs_df: pd.DataFrame, axis: str, init_sets=INIT_SETS) -> pd.DataFrame:
    """Per sweep value and init set: the starting and the trained policy's success over the value's
    runs and distinct init states, and the paired change (``cells.before_after``: unit = init state,
    each run against its own before-evaluation; one run: exact McNemar). Columns: axis,
    ``cells.BEFORE_AFTER_COLUMNS`` (rates and change in %); ``text`` one line, "not run" for a set
    the value's runs never evaluated."""
    rows = []
    for value, group in runs_df.groupby(axis, sort=True) if len(runs_df) else []:
        for which in init_sets:
            before, after = (pd.DataFrame({"suite": group["suite"], "task_id": group["task_id"], "seed": group["seed"],
                                           "successes": group[f"{tag}_{which}_successes"],
                                           "n": group[f"{tag}_{which}_episodes"], "run_dir": group["run_dir"],
                                           "tag": tag, "init_set": which}) for tag in ("before", "after"))
            rows.append({axis: value, "init_set": which, **cells.before_after(before, after)})
    return pd.DataFrame(rows, columns=[axis, "init_set", *cells.BEFORE_AFTER_COLUMNS]) if rows else pd.DataFrame()


def fig5_curves(runs_df: pd.DataFrame, init_set: str = "standard") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(alpha1 curve, N curve) on the paper's Fig. 5 suite when present: the alpha1 curve holds N
    at its most common value among TGRPO runs, the N curve holds alpha1 at its most common value
    (repeated runs once, `distinct_runs`)."""
    tg = distinct_runs(runs_df[runs_df["algo"] == "tgrpo"]) if len(runs_df) else runs_df
    if not len(tg):
        return sweep_curve(tg, "alpha1"), sweep_curve(tg, "group_size")
    suite = paper.FIG5_SUITE if (tg["suite"] == paper.FIG5_SUITE).any() else tg["suite"].mode()[0]
    tg = tg[tg["suite"] == suite]
    alpha = sweep_curve(tg, "alpha1", init_set, fixed={"group_size": tg["group_size"].mode()[0]})
    n = sweep_curve(tg, "group_size", init_set, fixed={"alpha1": tg["alpha1"].mode()[0]})
    alpha.attrs["suite"] = n.attrs["suite"] = suite
    return alpha, n


def curve_summary(curve: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Per axis value: mean, std (ddof=1; NaN for one seed) and count (seeds) of the seed points;
    n (distinct init states), runs, rate with its 95 % Wilson interval over the n states
    (``cells.cell_rate``), the env steps per run (mean: the points compare at equal iterations,
    not equal env steps); ``best`` (the highest rate, first on ties) and every other point against
    it (``cells.methods_versus``: exact permutation over runs, or exact McNemar with one run on each
    side; not corrected for picking the best): diff_vs_best (pts), p_vs_best, vs_best (one line),
    and ``not_sig_vs_best`` = not shown below the best (p >= SIGNIFICANCE or no test)."""
    rows = []
    for value, units in curve.groupby(axis, sort=True):
        points = seed_points(units, axis)["success"]
        rate = cells.cell_rate(units)
        rows.append({axis: value, "mean": points.mean(), "std": points.std(), "seeds": int(points.count()),
                     "n": rate["n"], "runs": rate["runs"], "rate": 100 * rate["rate"], "ci_low": 100 * rate["ci_low"],
                     "ci_high": 100 * rate["ci_high"], "env_steps": float(units["env_steps"].mean())})
    out = pd.DataFrame(rows, columns=[axis, "mean", "std", "seeds", "n", "runs", "rate", "ci_low", "ci_high", "env_steps"])
    known = out["rate"].notna()
    best = out.loc[known, "rate"].idxmax() if known.any() else None
    out["best"] = out.index == best
    versus = [cells.methods_versus(curve[curve[axis] == v], curve[curve[axis] == out.at[best, axis]])
              if best is not None and i != best and ok else {} for i, v, ok in zip(out.index, out[axis], known)]
    out["diff_vs_best"] = [v.get("diff", math.nan) for v in versus]
    out["p_vs_best"] = [v.get("p_value", math.nan) for v in versus]
    out["vs_best"] = ["best" if b else v.get("versus", "-") for b, v in zip(out["best"], versus)]
    out["not_sig_vs_best"] = ~out["best"] & known & ~(out["p_vs_best"] < SIGNIFICANCE)
    return out


def curve_markdown(summary: pd.DataFrame, axis: str) -> str:
    """A ``curve_summary`` in Markdown: success % [95 % Wilson] (n states), seeds, env steps per
    run, and the test against the best point."""
    rows = {}
    for r in summary.to_dict("records"):
        mark = f" {NOT_SIGNIFICANT}" if r["not_sig_vs_best"] else ""
        seeds = {"mean": r["mean"], "sd": r["std"], "n_seeds": int(r["seeds"])}
        steps = "-" if r["env_steps"] != r["env_steps"] else f"{r['env_steps']:,.0f}"
        rows[f"{r[axis]:g}"] = {"success % [95 % CI] (n states)": cells.rate_text({**r, "rate": r["rate"] / 100,
                                                                             "ci_low": r["ci_low"] / 100,
                                                                             "ci_high": r["ci_high"] / 100}),
                                "seeds: mean ± sd": format_seeds(seeds), "env steps per run": steps,
                                "vs best": f"{r['vs_best']}{mark}"}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = axis
    return to_markdown(out) if len(out) else "no runs"


FIG5_NOTE = (f"Points compare at equal RL iterations, not at equal env steps (the env steps column: a larger N "
             f"samples more per iteration). {NOT_SIGNIFICANT} = not shown below the best point (two-sided p >= "
             f"{SIGNIFICANCE}, or no test): exact permutation over runs, or exact McNemar on the same init states "
             f"with one run on each side; not corrected for picking the best. n = distinct init states.")


__all__ = ["CURVE_COLUMNS", "FIG5_NOTE", "curve_markdown", "curve_summary", "fig5_curves", "seed_points",
           "sweep_before_after", "sweep_curve"]
