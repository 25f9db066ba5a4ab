"""Table I and Table II of the paper from our runs, in wide tables and in Markdown, and one run's
before/after comparison.

Success rates are in % (the paper's unit). "SR" follows the paper: per task the mean over seeds,
per suite the mean over its tasks, "Average" the mean over suites. Ranks are 1 = best among *our*
rows by SR, ties share the better rank. Every cell also carries its evidence (``cells.cell_stats``,
the run-level rules in ``tgrpo_lib.analysis.cells`` and docs/statistics.md): n = the distinct init
states of the cell (never states x seeds), the success % over its runs and states with its 95 %
Wilson interval, the mean ± sd of the per-seed SR and the seed count, and the difference from the
TGRPO row of the same cell with its interval and a two-sided test: SFT against TGRPO, paired on the
same states (``stats.paired_over_seeds``, unit = init state); a method against TGRPO,
``stats.compare_methods`` (unit = run), or exact McNemar on the states when each side is one run.
The paper's numbers (``tgrpo_lib.analysis.paper``) sit in separate, labelled tables beside ours and
never enter our means, ranks or tests. A set a run never evaluated shows as "not run".

    tab = runs_table.table_runs(runs_table.load_runs())
    t1 = table_one(tab)                                          # wide: SR, Rank, n, CI, ... per suite
    print(cells_markdown(table_one_cells(tab), TABLE_I_METHODS))
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from tgrpo_lib.algorithm.variants import TABLE_I, TABLE_II, table_methods
from tgrpo_lib.analysis import cells, paper
from tgrpo_lib.analysis.cells import NOT_SIGNIFICANT, REFERENCE_METHOD, SIGNIFICANCE, cell_stats
from tgrpo_lib.analysis.paper import SUITE_LABELS
from tgrpo_lib.analysis.runs_table import method_success
from tgrpo_lib.analysis.stats import format_change, format_rate, format_seeds, paired_change
from tgrpo_lib.infra.runs import INIT_SETS, episodes_path, read_episodes

TABLE_I_METHODS = table_methods(TABLE_I)
"""Our Table I rows -> TrainConfig.algo (SFT: the starting policy, see the module docstring)."""
TABLE_II_METHODS = table_methods(TABLE_II)
CELL_FIELDS = {"n": "n", "runs": "runs", "rate": "rate", "ci_low": "CI low", "ci_high": "CI high",
               "seed_mean": "seed mean", "seed_sd": "seed sd", "n_seeds": "seeds", "diff": f"diff vs {REFERENCE_METHOD}",
               "p_value": f"p vs {REFERENCE_METHOD}"}
"""``cell_stats`` field -> suffix of its column in the wide tables (``"LIBERO-Goal CI low"``)."""


def suite_success(long: pd.DataFrame) -> pd.DataFrame:
    """``cell_stats`` per (method, suite) in the paper's suite order, then per (method, "average")
    over all suites; SR = mean over seeds per task, then over tasks (and over suites for average)."""
    suites = [s for s in paper.SUITES if s in set(long["suite"])] + sorted(set(long["suite"]) - set(paper.SUITES))
    return cell_stats(long, "suite", "average", values=suites)


def wide_table(cells: pd.DataFrame, methods, columns, sr_suffix: str = " SR") -> pd.DataFrame:
    """Cells (``cell_stats`` with a ``column`` label) as one row per method: first the SR (and
    Rank) columns, then per column its ``CELL_FIELDS`` (n, runs, rate, CI low, ...)."""
    out = pd.DataFrame(index=pd.Index([str(m) for m in methods], name="Method"))
    per_column = {col: cells[cells["column"] == col].assign(method=lambda d: d["method"].astype(str))
                  .set_index("method").reindex(out.index) for col in columns}
    for col, c in per_column.items():
        out[f"{col}{sr_suffix}"] = c["sr"].astype(float).to_numpy()
        if "rank" in c:
            out[f"{col} Rank"] = c["rank"].astype(float).to_numpy()
    for col, c in per_column.items():
        for field, name in CELL_FIELDS.items():
            out[f"{col} {name}"] = c[field].astype(float).to_numpy()
    return out


def plain_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Only the SR (and Rank) columns of ``table_one`` / ``table_two``: the numbers ranks and the
    paper's tables compare."""
    fields = tuple(f" {name}" for name in CELL_FIELDS.values())
    return table[[c for c in table.columns if not str(c).endswith(fields)]]


# ---------------------------------------------------------------------- Table I
def table_one_cells(runs_df: pd.DataFrame, init_set: str = "standard") -> pd.DataFrame:
    """Table I as cells: ``cell_stats`` per (method, suite label) and (method, "Average") over the
    paper's suites, with ``column`` (the label) and ``rank`` (per suite: 1 = best SR of our rows;
    Average: the mean of the method's suite ranks)."""
    long = method_success(runs_df, TABLE_I_METHODS, init_set)
    cells = suite_success(long[long["suite"].isin(paper.SUITES)])
    cells["column"] = [SUITE_LABELS.get(s, "Average" if s == "average" else s) for s in cells["suite"]]
    in_suite = cells["suite"] != "average"
    cells["rank"] = cells[in_suite].groupby("suite")["sr"].rank(ascending=False, method="min")
    mean_rank = cells[in_suite].groupby("method", observed=True)["rank"].mean()
    cells.loc[~in_suite, "rank"] = cells.loc[~in_suite, "method"].map(mean_rank).astype(float)
    return cells


def table_one(runs_df: pd.DataFrame, init_set: str = "standard") -> pd.DataFrame:
    """Table I: per suite SR % and rank, Average SR % (over suites) and Average rank, then each
    cell's n (distinct init states), runs, rate %, 95 % Wilson CI, seed mean / sd / count, diff and p vs TGRPO
    (``CELL_FIELDS``; ``plain_rates`` keeps only SR and Rank)."""
    return table_one_wide(table_one_cells(runs_df, init_set))


def table_one_wide(cells: pd.DataFrame) -> pd.DataFrame:
    """``table_one`` from ``table_one_cells``' cells (computed once when a caller needs both)."""
    columns = [SUITE_LABELS[s] for s in paper.SUITES if s in set(cells["suite"])] + ["Average"]
    return wide_table(cells, TABLE_I_METHODS, columns)


def table_one_paper() -> pd.DataFrame:
    """The paper's Table I as published (OpenVLA-7B), same columns as ``table_one``."""
    rows = {}
    for method, published in paper.TABLE_I.items():
        row = {}
        for suite in paper.SUITES:
            row[f"{SUITE_LABELS[suite]} SR"], row[f"{SUITE_LABELS[suite]} Rank"] = published[suite]
        row["Average SR"], row["Average Rank"] = published["average"]
        rows[method] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "Method"
    return out


def table_one_side_by_side(ours: pd.DataFrame, init_set: str = "standard", scale: str = "this workbook") -> pd.DataFrame:
    """Success %: our rows (SR, then each suite's n distinct init states and 95 % Wilson interval)
    beside the paper's comparable row. Each column is headed by what it rests on: ours by ``scale``
    (``ours_scale``) and ``init_set``, the paper's by ``paper.SCALE`` and its standard init states,
    so a held-out or test rate of ours never stands under a header of the paper's standard-state
    rates (the paper gives no intervals)."""
    pap = table_one_paper()
    sr = [c for c in pap.columns if c.endswith(" SR")]
    ours_head, paper_head = side_by_side_heads(init_set, scale)
    out = pd.DataFrame(index=list(ours.index) + ["Octo"])
    out.index.name = "Method"
    for c in sr:
        out[f"{ours_head}: {c}"] = ours[c] if c in ours.columns else math.nan
    for c in sr:
        for field in ("n", "CI low", "CI high"):
            col = f"{c[:-3]} {field}"
            out[f"{ours_head}: {col}"] = ours[col] if col in ours.columns else math.nan
    for c in sr:
        out[f"{paper_head}: {c}"] = [pap.at[paper.METHOD_TO_PAPER.get(m) or m, c]
                                     if (paper.METHOD_TO_PAPER.get(m) or m) in pap.index else math.nan for m in out.index]
    out["paper row"] = [paper.METHOD_TO_PAPER.get(m, m) for m in out.index]
    return out


def side_by_side_heads(init_set: str, scale: str) -> tuple[str, str]:
    """The column heads of ``table_one_side_by_side``: ours (scale, init set) and the paper's."""
    ours = f"ours ({scale}; {init_set} init states)"
    return ours, f"paper ({paper.SCALE}; standard init states)"


# --------------------------------------------------------------------- Table II
def table_two_cells(runs_df: pd.DataFrame, suite: str | None = None, init_set: str = "standard") -> pd.DataFrame:
    """Table II as cells: ``cell_stats`` per (method, task) and (method, "Avg.": over the suite's
    tasks) with ``column`` = "Task<i>" / "Avg."; ``attrs["suite"]`` names the suite.

    suite None picks the suite with the most ablation runs."""
    long = method_success(runs_df, TABLE_II_METHODS, init_set)
    if suite is None:
        counts = long[long["method"] != "SFT"]["suite"].value_counts()
        suite = counts.index[0] if len(counts) else paper.TABLE_II_SUITE
    cells = cell_stats(long[long["suite"] == suite], "task_id", "Avg.")
    cells["column"] = [t if t == "Avg." else f"Task{int(t)}" for t in cells["task_id"]]
    cells.attrs["suite"] = suite
    return cells


def table_two(runs_df: pd.DataFrame, suite: str | None = None, init_set: str = "standard") -> pd.DataFrame:
    """Table II: per-task SR % of SFT and the advantage ablations on one suite, Avg. over tasks,
    then each cell's ``CELL_FIELDS`` ("Task0 n", "Task0 CI low", ...; ``plain_rates`` keeps the SR).

    suite None picks the suite with the most ablation runs."""
    return table_two_wide(table_two_cells(runs_df, suite, init_set))


def table_two_wide(cells: pd.DataFrame) -> pd.DataFrame:
    """``table_two`` from ``table_two_cells``' cells (computed once when a caller needs both)."""
    tasks = sorted(t for t in set(cells["task_id"]) if t != "Avg.")
    out = wide_table(cells, TABLE_II_METHODS, [f"Task{int(t)}" for t in tasks] + ["Avg."], sr_suffix="")
    out.attrs["suite"] = cells.attrs["suite"]
    return out


def table_two_paper() -> pd.DataFrame:
    """The paper's Table II as published (its own Avg. column kept, not recomputed)."""
    rows = {m: {**{f"Task{i}": v for i, v in enumerate(sr)}, "Avg.": avg} for m, (sr, avg) in paper.TABLE_II.items()}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "Method"
    return out


# --------------------------------------------------------------------- Markdown
def to_markdown(df: pd.DataFrame, floatfmt: str = "{:.1f}") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency); NaN shows as '-'."""
    def cell(v):
        if isinstance(v, float):
            return "-" if math.isnan(v) else (str(int(v)) if v.is_integer() and abs(v) < 100 and floatfmt == "{:g}" else floatfmt.format(v))
        return "-" if v is None else str(v)
    header = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [cell(v) for v in row.tolist()]) + " |")
    return "\n".join(lines)


CELL_NOTE = (f"Each cell: success % over the cell's runs and init states [95 % Wilson interval] (n = the cell's "
             f"distinct init states, never states x seeds); then, where the cell has >= 2 seeds, mean ± sd of the "
             f"per-seed SR and the seed count; 'not run' where no run of the cell evaluated this init-state set. "
             f"{NOT_SIGNIFICANT} = the difference from {REFERENCE_METHOD} in that cell is not significant (two-sided "
             f"p >= {SIGNIFICANCE}). Tests below, with the difference's 95 % interval: SFT against {REFERENCE_METHOD} "
             f"on the same states, each {REFERENCE_METHOD} run against its own before-evaluation, unit = init state "
             f"(exact sign-flip permutation over states; one run: exact McNemar); a method against {REFERENCE_METHOD}, "
             f"unit = run (exact permutation over runs: with 3 runs per arm no p below 0.1; one run on each side: exact "
             f"McNemar on the states, which compares those two runs, not the methods' seed spread); 'n/a (per-state "
             f"tables missing)' where a test needs per-episode tables a run lacks. No correction for multiple "
             f"comparisons (docs/statistics.md). SR (and Rank, 1 = best of our rows) follow the paper: mean over seeds "
             f"per task, over tasks per suite, over suites for the average; SR equals the rate when every task has "
             f"the same seeds and states.")


def cell_text(cell: dict | None) -> str:
    """``46.0 % [33.0, 59.6] (n=50); 46.0 ± 3.1 (3 seeds)`` for one ``cell_stats`` row, with ``†``
    when its difference from the reference row is not significant; ``-`` for no cell, ``not run``
    for a cell whose runs never evaluated the set."""
    if cell is None:
        return "-"
    if not cell["runs"] and cell["sr"] != cell["sr"]:
        return cells.NOT_RUN
    if cell["n"] != cell["n"]:
        text = f"{cell['sr']:.1f} % (n unknown)"
    else:
        text = format_rate({"n": int(cell["n"]), "rate": cell["rate"] / 100, "ci_low": cell["ci_low"] / 100,
                            "ci_high": cell["ci_high"] / 100})
    if cell["n_seeds"] >= 2:
        text += "; " + format_seeds({"mean": cell["seed_mean"], "sd": cell["seed_sd"], "n_seeds": int(cell["n_seeds"])})
    return text + (f" {NOT_SIGNIFICANT}" if cell["p_value"] >= SIGNIFICANCE else "")


def difference_text(cell: dict | None) -> str:
    """``-20.0 pts, p = 0.003 (exact McNemar, b=12, c=2)`` or ``-3.3 pts [-9.3, +2.7], p = 0.700
    (permutation over 3 vs 3 runs, 50 states)`` for one ``cell_stats`` row; ``-`` for the reference."""
    if cell is None or not cell["versus"]:
        return "-"
    return cell["versus"]


def cells_markdown(cells: pd.DataFrame, methods, columns=None, ranked: bool | None = None) -> str:
    """Our table in Markdown: every cell as ``cell_text`` (the last column, the average, also with
    its SR), then each row's difference from the reference row per cell, then ``CELL_NOTE``.

    ``columns``: default the cells' ``column`` labels in order; ``ranked``: default whether the
    cells carry a rank (``table_one_cells``)."""
    columns = list(dict.fromkeys(cells["column"])) if columns is None else list(columns)
    ranked = "rank" in cells.columns if ranked is None else ranked
    if not columns:
        return "No complete runs for this table."
    methods, last = [str(m) for m in methods], columns[-1]
    lookup = {(str(r["method"]), r["column"]): r for r in cells.to_dict("records")}
    rows = {}
    for m in methods:
        row = {}
        for col in columns:
            cell = lookup.get((m, col))
            row[f"{col} (all runs)" if col == last else col] = cell_text(cell)
            if col == last:
                row[f"{col} SR"] = cell["sr"] if cell else math.nan
            if ranked:
                row[f"{col} Rank"] = cell["rank"] if cell else math.nan
        rows[m] = row
    main = pd.DataFrame.from_dict(rows, orient="index")
    main.index.name = "Method"
    diffs = pd.DataFrame.from_dict({m: {col: difference_text(lookup.get((m, col))) for col in columns}
                                    for m in methods if m != REFERENCE_METHOD}, orient="index")
    diffs.index.name = "Method"
    return "\n".join([to_markdown(main), "", f"### Difference from {REFERENCE_METHOD} (pts [95 % interval], two-sided test)", "",
                      to_markdown(diffs), "", CELL_NOTE])


# ----------------------------------------------------- one run, before vs after
def run_comparison(run_dir: Path | str, init_sets=None) -> dict:
    """Per init set of one training run: the starting and the trained policy's success (n, rate,
    95 % Wilson interval) and the paired change on the same init states (exact McNemar: one run,
    so the init state is the unit already), from the per-episode tables the run saved
    (``eval/{before,after}_{set}.csv``). ``init_sets`` None: every set the run evaluated before and
    after (runs older than the ``test`` set have none for it)."""
    if init_sets is None:
        init_sets = [w for w in INIT_SETS if all(episodes_path(run_dir, tag, w).exists() for tag in ("before", "after"))]
    return {which: paired_change(*_paired_flags(run_dir, which)) for which in init_sets}


def _paired_flags(run_dir: Path | str, which: str) -> tuple[list[bool], list[bool]]:
    """Success per init state of one run's before and after evaluation of ``which``, in state order."""
    before, after = read_episodes(run_dir, "before", which), read_episodes(run_dir, "after", which)
    if list(before["state_key"]) != list(after["state_key"]):
        raise ValueError(f"{run_dir}: the before and after evaluations of {which} used different init states.")
    return before["success"].astype(bool).tolist(), after["success"].astype(bool).tolist()


def comparison_markdown(comparison: dict, title: str, labels=("SFT", "TGRPO")) -> str:
    """``run_comparison`` as a Markdown table: rate [95 % CI] (n) before and after, change and p."""
    lines = [f"| {title} | {labels[0]} | {labels[1]} | change (paired) |", "|---|---|---|---|"]
    for which, c in comparison.items():
        lines.append(f"| {which} | {format_rate(c['before'])} | {format_rate(c['after'])} | {format_change(c)} |")
    return "\n".join(lines) + "\n"


__all__ = ["CELL_FIELDS", "CELL_NOTE", "TABLE_I_METHODS", "TABLE_II_METHODS", "cell_text", "cells_markdown",
           "comparison_markdown", "difference_text", "plain_rates", "run_comparison", "side_by_side_heads",
           "suite_success", "table_one", "table_one_cells", "table_one_paper", "table_one_side_by_side", "table_one_wide",
           "table_two", "table_two_cells", "table_two_paper", "table_two_wide", "to_markdown", "wide_table"]
