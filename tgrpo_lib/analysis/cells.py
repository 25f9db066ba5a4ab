"""Run-level statistics of one table cell: which runs are its units, which init states are
distinct, and which test of ``tgrpo_lib.analysis.stats`` a comparison takes (the rules: docs/statistics.md).

A cell (a method in one column of Table I / II, a Fig. 5 point, a sweep value) is a set of runs,
one per (task, seed), given as ``runs_table.method_success``'s long table (suite, task_id, seed,
successes, n, run_dir, tag, init_set). Its runs form a (runs, states) flag matrix: one row per
seed, holding that seed's runs side by side over the cell's tasks, so the columns are the cell's
distinct (task, init state) pairs, read from the runs' per-episode tables (``eval/{tag}_{set}.csv``).

- ``cell_rate``: success over the cell's runs and states with the 95 % Wilson interval of
  ``stats.rate_over_runs``: n counts distinct init states, never states x seeds.
- ``start_versus_trained``: the starting policy (SFT) against the runs trained from it, on the same
  states: ``stats.paired_over_seeds`` (unit = init state), each run against its own before-evaluation.
- ``methods_versus``: two methods, ``stats.compare_methods`` (unit = run). With one run on each side
  it is the exact McNemar test on the states (``paired_over_seeds`` of one run): it compares those
  two runs, and says nothing of the seed-to-seed spread of either method.

A test that needs per-state tables that are missing reads ``n/a (per-state tables missing)``; it
never falls back to counts pooled over seeds. A set no run of the cell evaluated reads ``not run``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from tgrpo_lib.algorithm.variants import VARIANTS
from tgrpo_lib.analysis.stats import (MCNEMAR_TEST, RUN_PERMUTATION_TEST, compare_methods, format_change,
                                      format_over_seeds, format_p, format_rate, paired_over_seeds,
                                      run_permutation_p_value, seed_summary, wilson_interval_fractional)
from tgrpo_lib.infra.runs import read_episodes

REFERENCE_METHOD = VARIANTS["tgrpo"].label
"""The row every other row of a table is tested against, cell by cell."""
SIGNIFICANCE = 0.05
"""Two-sided p at or above this marks a difference as not significant (†, hollow markers, hatched bars)."""
NOT_SIGNIFICANT = "†"
NOT_RUN = "not run"
TABLES_MISSING = "n/a (per-state tables missing)"
TASK = ["suite", "task_id"]


class FlagMatrix(NamedTuple):
    flags: np.ndarray  # (seeds, states) 0/1
    columns: list  # (suite, task_id, state_key) per column
    seeds: list


def evaluated(units: pd.DataFrame) -> pd.DataFrame:
    """The units whose run evaluated the cell's init set (older runs have no ``test`` evaluation)."""
    return units[units["n"].notna() & units["successes"].notna()] if len(units) else units


def _grid(units: pd.DataFrame) -> tuple[list, list] | str:
    """(tasks, seeds) when every seed holds exactly one run of every task; else why not."""
    per = units.groupby([*TASK, "seed"]).size()
    tasks, seeds = sorted(set(zip(units["suite"], units["task_id"]))), sorted(set(units["seed"]))
    if (per > 1).any():
        return "n/a (several runs of one task and seed)"
    if len(per) != len(tasks) * len(seeds):
        return "n/a (not every seed ran every task)"
    return tasks, seeds


def flag_matrix(units: pd.DataFrame, tag: str | None = None) -> FlagMatrix | str:
    """The cell's (seeds, states) flags from the per-episode tables (``tag``: before | after; default
    each unit's own), columns in (suite, task, state key) order so that two arms line up state by
    state; the reason as text when they cannot be formed."""
    grid = _grid(units)
    if isinstance(grid, str):
        return grid
    tasks, seeds = grid
    by = units.set_index([*TASK, "seed"])
    rows, columns = [], None
    for seed in seeds:
        flags, keys = [], []
        for suite, task in tasks:
            run = by.loc[(suite, task, seed)]
            try:
                episodes = read_episodes(run["run_dir"], tag or run["tag"], run["init_set"]).sort_values("state_key")
            except FileNotFoundError:
                return TABLES_MISSING
            flags += episodes["success"].astype(int).tolist()
            keys += [(suite, task, k) for k in episodes["state_key"]]
        if columns is not None and keys != columns:
            return "n/a (the runs hold different init states)"
        rows.append(flags)
        columns = keys
    return FlagMatrix(np.array(rows, dtype=np.int64), columns, seeds)


def cell_rate(units: pd.DataFrame) -> dict:
    """Success over the evaluated units' runs and distinct init states (fractions): rate, n (distinct
    (task, state) pairs), ci_low, ci_high and runs. Each task's rate is its mean over runs; the
    interval counts the distinct states (``stats.wilson_interval_fractional``, as
    ``stats.rate_over_runs`` does for a flag matrix). Only counts are needed."""
    done = evaluated(units)
    empty = {"rate": math.nan, "n": math.nan, "ci_low": math.nan, "ci_high": math.nan, "runs": int(len(done))}
    if not len(done):
        return empty
    per_task = [task for _, task in done.groupby(TASK)]
    if any(task["n"].nunique() > 1 for task in per_task):
        return {**empty, "note": "n/a (runs of one task on different numbers of states)"}
    states = sum(int(task["n"].iloc[0]) for task in per_task)
    successes = sum(float(task["successes"].astype(float).mean()) for task in per_task)  # mean over runs, per task
    low, high = wilson_interval_fractional(successes, states)
    return {"rate": successes / states, "n": states, "ci_low": low, "ci_high": high, "runs": int(len(done))}


def _no_test(diff: float, reason: str) -> dict:
    return {"diff": diff, "diff_low": math.nan, "diff_high": math.nan, "p_value": math.nan, "test": reason,
            "b": math.nan, "c": math.nan,
            "versus": reason if math.isnan(diff) else f"{diff:+.1f} pts, {reason}"}


def _rate_diff(units: pd.DataFrame, ref: pd.DataFrame) -> float:
    return 100 * (cell_rate(units)["rate"] - cell_rate(ref)["rate"])


def _paired_record(r: dict, flip: bool) -> dict:
    """A ``paired_over_seeds`` result as a cell's difference in % (``-change`` when ``flip``). One
    run: exact McNemar, b = the first side of the pair succeeds where the cell's own fails (with
    ``flip``, the trained run where the start fails), c the reverse."""
    sign = -1 if flip else 1
    diff, (low, high) = sign * r["change"], sorted((sign * r["ci_low"], sign * r["ci_high"]))
    out = {"diff": 100 * diff, "diff_low": 100 * low, "diff_high": 100 * high, "p_value": r["p_value"],
           "test": r["test"], "b": math.nan, "c": math.nan}
    if r["n_runs"] == 1:
        b, c = (r["states_gained"], r["states_lost"]) if flip else (r["states_lost"], r["states_gained"])
        return {**out, "test": MCNEMAR_TEST, "b": b, "c": c,
                "versus": format_change({"change": diff, "p_value": r["p_value"], "b": b, "c": c})}
    return {**out, "versus": format_over_seeds({**r, "change": diff, "ci_low": low, "ci_high": high})}


def paired_start(runs: pd.DataFrame) -> dict | str:
    """``stats.paired_over_seeds`` of the runs' before- against their after-evaluation (rows the seeds,
    columns the (task, state) pairs), or why it cannot be formed."""
    before, after = flag_matrix(runs, "before"), flag_matrix(runs, "after")
    for m in (before, after):
        if isinstance(m, str):
            return m
    if before.columns != after.columns:
        return "n/a (before and after on different init states)"
    return paired_over_seeds(before.flags, after.flags)


def start_versus_trained(start: pd.DataFrame, ref: pd.DataFrame) -> dict:
    """The starting policy's cell (``start``, tag before) minus the runs trained from it (``ref``):
    ``paired_start(ref)`` (unit = init state), in % (diff, diff_low, diff_high), with p_value, test,
    b / c (one run: exact McNemar, b = states only the trained policy solves) and ``versus`` (one line)."""
    start, ref = evaluated(start), evaluated(ref)
    if not len(start) or not len(ref):
        return _no_test(math.nan, NOT_RUN)
    diff = _rate_diff(start, ref)
    if set(zip(start["suite"], start["task_id"])) != set(zip(ref["suite"], ref["task_id"])):
        return _no_test(diff, "n/a (not the same tasks)")
    r = paired_start(ref)
    return _no_test(diff, r) if isinstance(r, str) else _paired_record(r, flip=True)


def methods_versus(units: pd.DataFrame, ref: pd.DataFrame) -> dict:
    """A trained method's cell (``units``) minus another's (``ref``), both tag after: one run each,
    exact McNemar on the same states (b = ``ref`` succeeds where ``units`` fails); more, the exact
    permutation test over runs (``stats.compare_methods``: its interval needs the per-state tables;
    its p-value only the runs' rates, so without the tables it comes without an interval)."""
    units, ref = evaluated(units), evaluated(ref)
    if not len(units) or not len(ref):
        return _no_test(math.nan, NOT_RUN)
    diff = _rate_diff(units, ref)
    a, b = flag_matrix(units), flag_matrix(ref)  # a layout that is no grid of seeds x tasks says so here
    reason = next((m for m in (a, b) if isinstance(m, str)), None)
    one_each = units["seed"].nunique() == 1 and ref["seed"].nunique() == 1
    if reason is None and a.columns != b.columns:
        return _no_test(diff, "n/a (the two methods ran on different init states)")
    if reason is not None and (one_each or reason != TABLES_MISSING):
        return _no_test(diff, reason)
    if one_each:
        return _paired_record(paired_over_seeds(b.flags, a.flags), flip=False)
    if reason is None:
        r = compare_methods(a.flags, b.flags)
        return {"diff": 100 * r["diff"], "diff_low": 100 * r["ci_low"], "diff_high": 100 * r["ci_high"],
                "p_value": r["p_value"], "test": r["test"], "b": math.nan, "c": math.nan, "versus": format_over_seeds(r)}
    rates = [seed_rates(side) for side in (units, ref)]
    p = run_permutation_p_value(*rates)
    return {**_no_test(diff, RUN_PERMUTATION_TEST), "p_value": p,
            "versus": f"{diff:+.1f} pts, {format_p(p)} (permutation over {len(rates[0])} vs {len(rates[1])} runs; "
                      f"no interval: per-state tables missing)"}


def seed_rates(units: pd.DataFrame) -> list[float]:
    """Each seed's success over its runs' states (the cell's tasks side by side), from the counts."""
    per_seed = units.groupby("seed")[["successes", "n"]].sum()
    return (per_seed["successes"] / per_seed["n"]).tolist()


BEFORE_AFTER_COLUMNS = ["runs", "n", "before", "before_low", "before_high", "after", "after_low", "after_high",
                        "change", "change_low", "change_high", "p_value", "test", "b", "c", "text"]


def before_after(before: pd.DataFrame, after: pd.DataFrame) -> dict:
    """Runs' starting (``before``, tag before) and trained policy (``after``, the same runs, tag
    after) on the same init states: both rates with their intervals over the distinct states
    (``cell_rate``), the change with its interval and test (``paired_start``: unit = init state; one
    run: exact McNemar, b = states lost, c = states gained), in % (``BEFORE_AFTER_COLUMNS``)."""
    rates = {tag: cell_rate(units) for tag, units in (("before", before), ("after", after))}
    row = {"runs": rates["after"]["runs"], "n": rates["after"]["n"],
           **{f"{tag}{suffix}": 100 * r[key] for tag, r in rates.items()
              for suffix, key in (("", "rate"), ("_low", "ci_low"), ("_high", "ci_high"))}}
    if not row["runs"]:
        return {**row, "test": NOT_RUN, "text": NOT_RUN}
    head = f"{rate_text(rates['before'])} -> {rate_text(rates['after'])}"
    r = paired_start(evaluated(after))
    if isinstance(r, str):
        return {**row, "change": row["after"] - row["before"], "test": r, "text": f"{head}, {r}"}
    change = _paired_record(r, flip=False)
    if r["n_runs"] == 1:  # before first: b = states lost, c = states gained
        change.update(b=r["states_lost"], c=r["states_gained"])
    return {**row, "change": change["diff"], "change_low": change["diff_low"], "change_high": change["diff_high"],
            **{k: change[k] for k in ("p_value", "test", "b", "c")}, "text": f"{head}, {change['versus']}"}


def rate_text(rate: dict) -> str:
    """``74.0 % [60.4, 84.1] (n=50)`` for a ``cell_rate``; over several runs ``(n=50 states, 3 runs)``;
    ``not run`` for none."""
    if not rate["runs"]:
        return NOT_RUN
    if rate["n"] != rate["n"]:
        return rate.get("note", "n/a")
    n = int(rate["n"])
    text = format_rate({"n": n, "rate": rate["rate"], "ci_low": rate["ci_low"], "ci_high": rate["ci_high"]})
    return text if rate["runs"] == 1 else text.replace(f"(n={n})", f"(n={n} states, {rate['runs']} runs)")



# ------------------------------------------------------------- one row per cell
CELL_COLUMNS = ["sr", "n", "runs", "rate", "ci_low", "ci_high", "seed_mean", "seed_sd", "n_seeds",
                "diff", "diff_low", "diff_high", "p_value", "test", "b", "c", "versus"]


def cell_stats(long: pd.DataFrame, by: str, overall: str, values=None, reference: str = REFERENCE_METHOD) -> pd.DataFrame:
    """One row per (method, value of ``by``) and per (method, ``overall``: every unit of the method),
    from ``method_success``'s long table. Columns (rates in %):

    sr        the paper's convention: mean over seeds per task, over tasks per suite, over suites
    n, runs, rate, ci_low, ci_high   the cell's distinct init states ((task, state) pairs), its runs
              that evaluated the set (0: "not run"), success over those runs and states and its
              95 % Wilson interval over the n states (``cell_rate``)
    seed_mean, seed_sd, n_seeds   the SR of each seed in the cell: mean, sd (ddof 1), count
    diff, diff_low, diff_high, p_value, test, b, c, versus   this row's rate minus the ``reference``
              row's in the same cell, its 95 % interval and two-sided test (``start_versus_trained``
              for the SFT row, else ``methods_versus``), one line in ``versus``; empty for the
              reference row itself

    ``values``: the values of ``by`` in table order (default: sorted)."""
    values = sorted(long[by].dropna().unique()) if values is None else list(values)
    methods = list(long["method"].cat.categories) if isinstance(long["method"].dtype, pd.CategoricalDtype) \
        else list(long["method"].unique())
    rows = []
    for value, units_v in [*((v, long[long[by] == v]) for v in values), (overall, long)]:
        ref = units_v[units_v["method"] == reference]
        for method in methods:
            units = units_v[units_v["method"] == method]
            if len(units):
                rows.append({"method": method, by: value, **_cell(units), **_versus(units, ref, method == reference)})
    return pd.DataFrame(rows, columns=["method", by, *CELL_COLUMNS])


def _sr(units: pd.DataFrame) -> float:
    per_task = units.groupby(["suite", "task_id"])["success"].mean()
    return float(per_task.groupby(level="suite").mean().mean()) if len(per_task) else math.nan


def _cell(units: pd.DataFrame) -> dict:
    rate = cell_rate(units)
    per_seed = [v for v in (_sr(g) for _, g in units.groupby("seed")) if not math.isnan(v)]
    seeds = seed_summary(per_seed)
    return {"sr": _sr(units), "n": rate["n"], "runs": rate["runs"], "rate": 100 * rate["rate"],
            "ci_low": 100 * rate["ci_low"], "ci_high": 100 * rate["ci_high"], "seed_mean": seeds["mean"],
            "seed_sd": seeds["sd"], "n_seeds": seeds["n_seeds"]}


def _versus(units: pd.DataFrame, ref: pd.DataFrame, is_reference: bool) -> dict:
    if is_reference or not len(ref):
        return _no_test(math.nan, "")
    if (units["tag"] == "before").all():
        return start_versus_trained(units, ref)
    return methods_versus(units, ref)


__all__ = ["BEFORE_AFTER_COLUMNS", "CELL_COLUMNS", "NOT_RUN", "NOT_SIGNIFICANT", "REFERENCE_METHOD", "SIGNIFICANCE",
           "TABLES_MISSING", "FlagMatrix", "before_after", "cell_rate", "cell_stats", "evaluated", "flag_matrix",
           "methods_versus", "paired_start", "rate_text", "seed_rates", "start_versus_trained"]
