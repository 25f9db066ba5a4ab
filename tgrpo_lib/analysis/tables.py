"""Table I, Table II, Fig. 3 and Fig. 5 of the paper, built only from run directories
(config.json + metrics.json + versions.json of ``outputs/train/*`` and ``outputs/sft/*``, and the
per-episode tables ``eval/{before,after}_{set}.csv`` for paired tests).

Success rates are in % (the paper's unit). "SR" follows the paper: per task the mean over seeds,
per suite the mean over its tasks, "Average" the mean over suites. Ranks are 1 = best among *our*
rows by SR, ties share the better rank. Every cell also carries its evidence (``cell_stats``, the
run-level rules in ``tgrpo_lib.analysis.cells`` and docs/statistics.md): n = the distinct init states of the
cell (never states x seeds), the success % over its runs and states with its 95 % Wilson interval,
the mean ± sd of the per-seed SR and the seed count, and the difference from the TGRPO row of the
same cell with its interval and a two-sided test: SFT against TGRPO, paired on the same states
(``stats.paired_over_seeds``, unit = init state); a method against TGRPO, ``stats.compare_methods``
(unit = run), or exact McNemar on the states when each side is one run. The paper's numbers
(``tgrpo_lib.analysis.paper``) sit in separate, labelled tables / panels beside ours and never enter our
means, ranks or tests. Three init-state sets: standard (LIBERO's 50, RL's training states),
heldout and test (``SET_LABELS``); a set a run never evaluated shows as "not run".

The "SFT" row is the before-training evaluation every RL run does of its starting policy (the SFT
checkpoint): the same protocol (``tgrpo_lib.training.evaluation``), init states and env config as
the after-evaluation it is compared with, and the same cached episodes an SFT run's own
evaluation produces. It is counted once per starting checkpoint and task, so episodes shared by
several RL runs never add to its n.

    runs = load_runs()                       # every complete outputs/train/* run
    paths = write_results("main", runs)      # outputs/results/main/: table1/2 .csv + .md, fig3/5 .png, results.json
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from tgrpo_lib import OUTPUTS_DIR, PROJECT_ROOT
from tgrpo_lib.algorithm.variants import TABLE_I, TABLE_II, VARIANTS, table_methods
from tgrpo_lib.analysis import cells, paper
from tgrpo_lib.analysis.figures import NotebookFigure
from tgrpo_lib.analysis.stats import format_change, format_p, format_rate, format_seeds, paired_change, seed_summary
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.runs import INIT_SETS, episodes_path, read_episodes

SUITE_LABELS = {"libero_spatial": "LIBERO-Spatial", "libero_object": "LIBERO-Object",
                "libero_goal": "LIBERO-Goal", "libero_10": "LIBERO-Long"}
TABLE_I_METHODS = table_methods(TABLE_I)
"""Our Table I rows -> TrainConfig.algo (SFT: the starting policy, see the module docstring)."""
TABLE_II_METHODS = table_methods(TABLE_II)
SET_LABELS = {"standard": "standard (LIBERO's 50 init states: RL's training states)",
              "heldout": "held-out (fresh layouts from the same sampler; used for choosing settings)",
              "test": "test (untouched layouts from a new seed base; never used to choose anything)"}
"""What each init-state set is (tgrpo_lib.envs.init_states), as tables name it."""
REFERENCE_METHOD = VARIANTS["tgrpo"].label
"""The row every other row of a table is tested against, cell by cell."""
SIGNIFICANCE = 0.05
"""Two-sided p at or above this marks a difference as not significant (†, hollow markers, hatched bars)."""
NOT_SIGNIFICANT = "†"
CELL_FIELDS = {"n": "n", "runs": "runs", "rate": "rate", "ci_low": "CI low", "ci_high": "CI high",
               "seed_mean": "seed mean", "seed_sd": "seed sd", "n_seeds": "seeds", "diff": f"diff vs {REFERENCE_METHOD}",
               "p_value": f"p vs {REFERENCE_METHOD}"}
"""``cell_stats`` field -> suffix of its column in the wide tables (``"LIBERO-Goal CI low"``)."""


# ------------------------------------------------------------------------------ reading run dirs
def load_runs(root: Path | str | None = None, run_names=None, kind: str = "train") -> pd.DataFrame:
    """One row per *complete* training run: config fields, final success rates (fractions),
    episode and success counts (``{before,after}_{set}_episodes`` / ``_successes``; NaN for a set
    the run did not evaluate, e.g. ``test`` in runs older than that set), env steps and package
    versions (``ver/<package>``)."""
    rows = []
    for run_dir in runs.list_runs(kind, root, complete_only=True):
        if run_names is not None and run_dir.name not in set(run_names):
            continue
        cfg = runs.read_config(run_dir)
        summary = runs.read_json(run_dir / "metrics.json")
        row = {"run_name": run_dir.name, "run_dir": str(run_dir), "model": _model_label(cfg),
               "device": (cfg.get("policy") or {}).get("device")}
        for key in ("suite", "task_id", "algo", "alpha1", "alpha2", "group_size", "seed", "iterations",
                    "final_eval_episodes", "init_checkpoint"):
            row[key] = cfg.get(key)
        variant = VARIANTS.get(cfg.get("algo"))
        row["alpha1_used"] = variant.advantage_weights(cfg.get("alpha1"), cfg.get("alpha2"))[0] if variant else math.nan
        for tag in ("before", "after"):
            for which in INIT_SETS:
                key = f"{tag}_{which}"
                row[key] = _number(summary.get(key))
                row[f"{key}_episodes"] = _number(summary.get(f"{key}_episodes"))
                row[f"{key}_successes"] = _successes(row[key], row[f"{key}_episodes"], run_dir, key)
        row["env_steps"] = summary.get("env_steps", math.nan)
        row.update(_versions(run_dir))
        rows.append(row)
    return pd.DataFrame(rows)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _successes(rate: float, episodes: float, run_dir: Path, key: str) -> float:
    """The success count behind a metrics.json rate (the evaluation writes rate = successes / episodes)."""
    if math.isnan(rate) or math.isnan(episodes):
        return math.nan
    count = round(rate * episodes)
    if abs(rate * episodes - count) > 1e-6:
        raise ValueError(f"{run_dir}/metrics.json: {key}={rate!r} is not a whole number of successes out of "
                         f"{key}_episodes={episodes:g}; the file was not written by the evaluation protocol: "
                         "re-run the run (or its evaluation) to rewrite it.")
    return float(count)


def _model_label(cfg: dict) -> str:
    pol = cfg.get("policy") or {}
    label = pol.get("kind", "?")
    if pol.get("model_path"):
        label += f" ({Path(pol['model_path']).name})"
    return label + (" from SFT checkpoint" if cfg.get("init_checkpoint") else " from scratch")


def _versions(run_dir: Path) -> dict:
    path = Path(run_dir) / "versions.json"
    if not path.exists():
        return {}
    v = json.loads(path.read_text())
    out = {f"ver/{k}": val for k, val in (v.get("packages") or {}).items()}
    out["ver/python"] = v.get("python")
    out["git_commit"] = v.get("git_commit")
    return out


SAME_CELL_SEED = ("suite", "task_id", "algo", "alpha1", "alpha2", "group_size", "seed", "init_checkpoint",
                  "iterations", "final_eval_episodes")
"""Runs that agree on all of these are one experiment repeated (e.g. ``make run``'s TGRPO run and
notebook 02's, which only adds evaluations on the way): a table counts one of them. alpha1 /
alpha2 are compared as the variant uses them (GRPO-sparse's are fixed)."""


def _checkpoint_key(path) -> str:
    if path is None or path != path:
        return ""
    path = Path(str(path))
    return str((path if path.is_absolute() else PROJECT_ROOT / path).resolve())


def distinct_runs(runs_df: pd.DataFrame) -> pd.DataFrame:
    """Runs that repeat one experiment (same ``SAME_CELL_SEED`` fields, the checkpoint compared by
    its resolved path) counted once: the first by run name is kept, since a repeat is not another
    seed and counting it would double its episodes and seeds. The names left out are in
    ``.attrs["repeats_left_out"]`` (`provenance` reports them)."""
    if not len(runs_df):
        return runs_df
    ordered = runs_df.sort_values("run_name", kind="stable")
    key = ordered[list(SAME_CELL_SEED)].astype(object)
    key = key.where(key.notna(), None)
    key["init_checkpoint"] = [_checkpoint_key(c) for c in ordered["init_checkpoint"]]
    # the weights a variant really uses (GRPO-sparse's and the ablations' are fixed, whatever is configured)
    used = [VARIANTS[a].advantage_weights(a1, a2) if a in VARIANTS else (a1, a2)
            for a, a1, a2 in zip(ordered["algo"], key["alpha1"], key["alpha2"])]
    key["alpha1"], key["alpha2"] = [u[0] for u in used], [u[1] for u in used]
    repeat = key.astype(str).duplicated(keep="first").to_numpy()
    out = ordered[~repeat].sort_index()
    out.attrs["repeats_left_out"] = sorted(ordered.loc[repeat, "run_name"].tolist())
    return out


def table_runs(runs_df: pd.DataFrame, alpha1: float | None = 0.3, group_size: int | None = None) -> pd.DataFrame:
    """The runs Table I / II rest on: TGRPO runs at ``alpha1`` only (the paper's 0.3, so alpha-sweep
    runs never blend into the TGRPO row) and, when given, one group size N for every method;
    repeated runs once (`distinct_runs`)."""
    if not len(runs_df):
        return runs_df
    keep = pd.Series(True, index=runs_df.index)
    if alpha1 is not None:
        keep &= (runs_df["algo"] != "tgrpo") | np.isclose(runs_df["alpha1"].astype(float), alpha1)
    if group_size is not None:
        keep &= runs_df["group_size"] == group_size
    return distinct_runs(runs_df[keep])


# ------------------------------------------------------------------------------ per-task success
UNIT_COLUMNS = ["method", "suite", "task_id", "seed", "success", "successes", "n", "run_dir", "tag", "init_set"]


def method_success(runs_df: pd.DataFrame, methods: dict, init_set: str = "standard") -> pd.DataFrame:
    """Long table, one row per evaluation the rows of ``methods`` rest on: method, suite, task_id,
    seed, success % with its counts (successes of n episodes) and where the episodes are (run_dir,
    tag: ``after`` for a trained policy, ``before`` for SFT; init_set).

    SFT rows: the before-evaluation of the RL runs' starting policy, once per (suite, task, starting
    checkpoint), or per (suite, task, seed) for runs without a checkpoint (their fresh policies differ
    by seed). Greedy episodes of one checkpoint are cached, so every RL run starting from it holds the
    same episodes: counting each once keeps them from inflating n."""
    if init_set not in INIT_SETS:
        raise ValueError(f"init_set={init_set!r}: pass one of {INIT_SETS}.")
    parts = []
    rl_algos = [a for a in methods.values() if a]
    for method, algo in methods.items():
        if not len(runs_df):
            continue
        if algo is not None:
            sel, tag = runs_df[runs_df["algo"] == algo], "after"
        else:
            rl = runs_df[runs_df["algo"].isin(rl_algos)].sort_values("run_name")
            # one checkpoint however its path is spelled (relative or absolute)
            start = pd.Series([_checkpoint_key(c) or f"seed {sd}" for c, sd in zip(rl["init_checkpoint"], rl["seed"])],
                              index=rl.index)
            sel, tag = rl.assign(start=start).drop_duplicates(["suite", "task_id", "start"]), "before"
        if len(sel):
            key = f"{tag}_{init_set}"
            parts.append(pd.DataFrame({"method": method, "suite": sel["suite"], "task_id": sel["task_id"],
                                       "seed": sel["seed"], "success": 100 * sel[key],
                                       "successes": sel[f"{key}_successes"], "n": sel[f"{key}_episodes"],
                                       "run_dir": sel["run_dir"], "tag": tag, "init_set": init_set}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=UNIT_COLUMNS)
    out["method"] = pd.Categorical(out["method"], categories=list(methods), ordered=True)
    return out[UNIT_COLUMNS]


# ------------------------------------------------------------------------------ one cell: n, interval, seeds, test
CELL_COLUMNS = ["sr", "n", "runs", "rate", "ci_low", "ci_high", "seed_mean", "seed_sd", "n_seeds",
                "diff", "diff_low", "diff_high", "p_value", "test", "b", "c", "versus"]


def cell_stats(long: pd.DataFrame, by: str, overall: str, values=None, reference: str = REFERENCE_METHOD) -> pd.DataFrame:
    """One row per (method, value of ``by``) and per (method, ``overall``: every unit of the method),
    from ``method_success``'s long table. Columns (rates in %):

    sr        the paper's convention: mean over seeds per task, over tasks per suite, over suites
    n, runs, rate, ci_low, ci_high   the cell's distinct init states ((task, state) pairs), its runs
              that evaluated the set (0: "not run"), success over those runs and states and its
              95 % Wilson interval over the n states (``cells.cell_rate``)
    seed_mean, seed_sd, n_seeds   the SR of each seed in the cell: mean, sd (ddof 1), count
    diff, diff_low, diff_high, p_value, test, b, c, versus   this row's rate minus the ``reference``
              row's in the same cell, its 95 % interval and two-sided test (``cells.start_versus_trained``
              for the SFT row, else ``cells.methods_versus``), one line in ``versus``; empty for the
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


_NO_TEST = {"diff": math.nan, "diff_low": math.nan, "diff_high": math.nan, "p_value": math.nan, "test": "",
            "b": math.nan, "c": math.nan, "versus": ""}


def _sr(units: pd.DataFrame) -> float:
    per_task = units.groupby(["suite", "task_id"])["success"].mean()
    return float(per_task.groupby(level="suite").mean().mean()) if len(per_task) else math.nan


def _cell(units: pd.DataFrame) -> dict:
    rate = cells.cell_rate(units)
    per_seed = [v for v in (_sr(g) for _, g in units.groupby("seed")) if not math.isnan(v)]
    seeds = seed_summary(per_seed)
    return {"sr": _sr(units), "n": rate["n"], "runs": rate["runs"], "rate": 100 * rate["rate"],
            "ci_low": 100 * rate["ci_low"], "ci_high": 100 * rate["ci_high"], "seed_mean": seeds["mean"],
            "seed_sd": seeds["sd"], "n_seeds": seeds["n_seeds"]}


def _versus(units: pd.DataFrame, ref: pd.DataFrame, is_reference: bool) -> dict:
    if is_reference or not len(ref):
        return _NO_TEST
    if (units["tag"] == "before").all():
        return cells.start_versus_trained(units, ref)
    return cells.methods_versus(units, ref)


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


# ------------------------------------------------------------------------------ Table I
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
    return _table_one_wide(table_one_cells(runs_df, init_set))


def _table_one_wide(cells: pd.DataFrame) -> pd.DataFrame:
    columns = [SUITE_LABELS[s] for s in paper.SUITES if s in set(cells["suite"])] + ["Average"]
    return wide_table(cells, TABLE_I_METHODS, columns)


def table_one_paper() -> pd.DataFrame:
    """The paper's Table I as published (OpenVLA-7B), same columns as ``table_one``."""
    rows = {}
    for method, cells in paper.TABLE_I.items():
        row = {}
        for suite in paper.SUITES:
            row[f"{SUITE_LABELS[suite]} SR"], row[f"{SUITE_LABELS[suite]} Rank"] = cells[suite]
        row["Average SR"], row["Average Rank"] = cells["average"]
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


def ours_scale(runs_df: pd.DataFrame) -> str:
    """What our numbers rest on, for headers beside the paper's: ``1 task per suite, tiny_vla, cpu``."""
    if not len(runs_df):
        return "no runs"
    per_suite = runs_df.groupby("suite")["task_id"].nunique()
    counts = sorted(set(per_suite))
    tasks = (f"{counts[0]} task{'s' * (counts[0] > 1)} per suite" if len(counts) == 1 else
             ", ".join(f"{SUITE_LABELS.get(su, su)} {k} tasks" for su, k in per_suite.items()))
    kinds = sorted({str(m).split(" ")[0] for m in runs_df["model"].dropna()})
    devices = sorted({str(d) for d in runs_df.get("device", pd.Series(dtype=object)).dropna()})
    return ", ".join([tasks, *kinds, *devices])


# ------------------------------------------------------------------------------ Table II
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
    return _table_two_wide(table_two_cells(runs_df, suite, init_set))


def _table_two_wide(cells: pd.DataFrame) -> pd.DataFrame:
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


# ------------------------------------------------------------------------------ Fig. 5 data
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


# ------------------------------------------------------------------------------ one run, before vs after
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


# ------------------------------------------------------------------------------ provenance
def provenance(runs_df: pd.DataFrame, init_set: str = "standard") -> dict:
    """What the numbers rest on: model, scale, seeds, episodes, init-state set (and how many runs
    evaluated it), env steps, versions."""
    if not len(runs_df):
        return {"runs": 0}
    eps = runs_df[f"after_{init_set}_episodes"].dropna().unique()
    ver_cols = [c for c in runs_df.columns if c.startswith("ver/")]
    versions = {c[4:]: sorted({str(v) for v in runs_df[c].dropna()}) for c in ver_cols}
    return {
        "runs": int(len(runs_df)),
        "model": sorted(runs_df["model"].dropna().unique().tolist()),
        "seeds": sorted(int(s) for s in runs_df["seed"].dropna().unique()),
        "episodes_per_task": sorted(int(e) for e in eps),
        "scale": ours_scale(runs_df),
        "init_states": SET_LABELS.get(init_set, init_set),
        "runs_evaluated_on_set": int(runs_df[f"after_{init_set}_episodes"].notna().sum()),
        "iterations": sorted(int(i) for i in runs_df["iterations"].dropna().unique()),
        "env_steps_total": float(runs_df["env_steps"].fillna(0).sum()),
        "env_steps_per_run_mean": float(runs_df["env_steps"].mean()),
        "versions": {k: (v[0] if len(v) == 1 else v) for k, v in versions.items()},
        "mixed_versions": sorted(k for k, v in versions.items() if len(v) > 1),
        "git_commits": sorted({str(c) for c in runs_df.get("git_commit", pd.Series(dtype=object)).dropna()}),
        "repeats_left_out": list(runs_df.attrs.get("repeats_left_out", [])),
    }


def provenance_lines(prov: dict) -> list[str]:
    if not prov.get("runs"):
        return ["No complete runs found."]
    v = prov["versions"]
    return [f"- model: {', '.join(prov['model'])}",
            f"- seeds: {prov['seeds']}; episodes per task and evaluation: {prov['episodes_per_task']}",
            f"- init states: {prov['init_states']}; evaluated by {prov['runs_evaluated_on_set']} of "
            f"{prov['runs']} runs; RL iterations: {prov['iterations']}",
            f"- env steps (training): {prov['env_steps_total']:.0f} total, {prov['env_steps_per_run_mean']:.0f} per run",
            "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
            *([f"- WARNING: runs mix versions of {prov['mixed_versions']}"] if prov["mixed_versions"] else []),
            f"- runs: {prov['runs']}; git: {', '.join(c[:10] for c in prov['git_commits']) or 'unknown'}",
            *([f"- left out as repeats of a counted run (same task, method, seed and settings): "
               f"{', '.join(prov['repeats_left_out'])}"] if prov.get("repeats_left_out") else [])]


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


# ------------------------------------------------------------------------------ figures
def figure_three(ours: pd.DataFrame, ours_label: str = "this workbook", init_set: str = "standard") -> NotebookFigure:
    """Fig. 3: success % per suite, one bar per method; ours and the paper's in separate panels,
    each titled with its scale and init states (``ours_label``: ``ours_scale``).

    Ours (a ``table_one``): bars at each cell's rate over its runs and init states with its 95 %
    Wilson interval as error bars, hatched where a difference from TGRPO is not shown (p >=
    SIGNIFICANCE, or no test). The paper states no intervals, so its bars have none."""
    fig = NotebookFigure(figsize=(12, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    ours_title = (f"Ours ({ours_label}; {init_set} init states)\nbars: success % over runs and init states; 95 % Wilson "
                  f"interval over distinct states;\nhatched: not significantly different from {REFERENCE_METHOD} "
                  f"(p >= {SIGNIFICANCE} or no test)")
    paper_title = f"Paper ({paper.SCALE};\nstandard init states; no intervals published)"
    panels = ((axes[0], ours, ours_title), (axes[1], table_one_paper(), paper_title))
    for ax, table, title in panels:
        labels = [c[:-3] for c in table.columns if c.endswith(" SR")]
        with_ci = all(f"{lab} {CELL_FIELDS[f]}" in table.columns for lab in labels
                      for f in ("rate", "ci_low", "ci_high", "p_value"))
        x = np.arange(len(labels))
        width = 0.8 / max(len(table), 1)
        for i, method in enumerate(table.index):
            field = (lambda f: [table.at[method, f"{lab} {CELL_FIELDS[f]}"] for lab in labels])
            if with_ci:
                heights = np.array(field("rate"), dtype=float)
                yerr = _yerr(heights, field("ci_low"), field("ci_high"))
            else:
                heights, yerr = np.array([table.at[method, f"{lab} SR"] for lab in labels], dtype=float), None
            bars = ax.bar(x + i * width - 0.4 + width / 2, heights, width, yerr=yerr, capsize=2,
                          error_kw={"elinewidth": 0.8}, label=str(method))
            if with_ci and str(method) != REFERENCE_METHOD:
                for patch, p in zip(bars.patches, field("p_value")):
                    if not p < SIGNIFICANCE:
                        patch.set_hatch("///")
        ax.set_xticks(x, labels, rotation=15)
        ax.set_title(title, fontsize=9)
        handles, _ = ax.get_legend_handles_labels()
        if with_ci:
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                                 label=f"p >= {SIGNIFICANCE} vs {REFERENCE_METHOD}, or no test"))
        ax.legend(handles=handles, fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    if not np.isfinite(ours[[c for c in ours.columns if c.endswith(" SR")]].to_numpy(dtype=float)).any():
        axes[0].text(0.5, 0.5, cells.NOT_RUN if len(ours.columns) else "no runs", ha="center", transform=axes[0].transAxes)
    axes[0].set_ylabel("success rate (%)")
    axes[0].set_ylim(0, 100)
    return fig


def _yerr(centre, low, high) -> np.ndarray:
    """matplotlib's asymmetric yerr (2, n): distances from ``centre`` down to ``low`` and up to ``high``."""
    centre, low, high = (np.asarray(v, dtype=float) for v in (centre, low, high))
    return np.nan_to_num(np.clip(np.stack([centre - low, high - centre]), 0, None))


FIG5_AXES = {"alpha1": (paper.FIG5_ALPHA1, "alpha1 (alpha2 = 1 - alpha1)"), "group_size": (paper.FIG5_GROUP_SIZE, "group size N")}


def _sweep_panels(ax, pax, axis: str, curve: pd.DataFrame, ours_label: str) -> None:
    """Ours on ``ax``: one grey dot per seed, and per axis value the rate over its runs and states
    with its 95 % Wilson interval; a star marks the best point, hollow circles the points not shown
    below it (``curve_summary``); each tick says the env steps per run its runs took (the points
    compare at equal iterations). The paper's stated points on ``pax``."""
    stated, xlabel = FIG5_AXES[axis]
    if len(curve):
        summ = curve_summary(curve, axis)
        x, y = summ[axis].astype(float).to_numpy(), summ["rate"].to_numpy(dtype=float)
        dots = seed_points(curve, axis)
        ax.scatter(dots[axis].astype(float), dots["success"], s=18, alpha=0.5, color="gray",
                   label="one seed (mean over its tasks)")
        ax.errorbar(x, y, yerr=_yerr(y, summ["ci_low"], summ["ci_high"]), fmt="-", color="tab:blue", capsize=4,
                    label="over runs and init states, 95 % Wilson interval")
        marks = ((summ["best"], dict(marker="*", ms=13, color="tab:blue"), "best (highest rate)"),
                 (summ["not_sig_vs_best"], dict(marker="o", mfc="white", color="tab:blue"),
                  f"not shown below best (p >= {SIGNIFICANCE} or no test)"),
                 (~summ["best"] & ~summ["not_sig_vs_best"] & summ["rate"].notna(), dict(marker="o", color="tab:blue"),
                  f"below best (p < {SIGNIFICANCE})"))
        for mask, style, label in marks:
            if mask.any():
                ax.plot(x[mask.to_numpy()], y[mask.to_numpy()], ls="none", label=label, **style)
        steps = ["" if s != s else f"\n{s / 1000:.1f}k steps" for s in summ["env_steps"]]
        ax.set_xticks(x, [f"{v:g}{st}" for v, st in zip(x, steps)], fontsize=7)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no runs", ha="center", transform=ax.transAxes)
    ax.set_title(f"Ours ({ours_label})", fontsize=9)
    ax.set_xlabel(f"{xlabel}; env steps per run below (equal iterations, not equal env steps)", fontsize=8)
    xs = np.array(list(stated), dtype=float)
    ys = np.array(list(stated.values()), dtype=float)
    pax.plot(xs[~np.isnan(ys)], ys[~np.isnan(ys)], "s", color="tab:red", label="stated in the paper's text (no interval)")
    for x in xs[np.isnan(ys)]:
        pax.axvline(x, color="lightgray", ls=":", lw=1)
    pax.set_xticks(xs)
    pax.set_title(f"Paper ({SUITE_LABELS[paper.FIG5_SUITE]}, {paper.TASKS_PER_SUITE} tasks, {paper.MODEL})\n"
                  "dotted: value not stated", fontsize=9)
    pax.legend(fontsize=8)
    pax.set_xlabel(xlabel)
    for a in (ax, pax):
        a.set_ylabel("success rate (%)")


def figure_sweep(curve: pd.DataFrame, axis: str, ours_label: str = "this workbook") -> NotebookFigure:
    """One Fig. 5 panel pair: success % vs ``axis`` (alpha1 or group_size), ours beside the paper's."""
    if axis not in FIG5_AXES:
        raise ValueError(f"axis={axis!r}: pass one of {list(FIG5_AXES)}.")
    fig = NotebookFigure(figsize=(10, 3.8), layout="constrained")
    ax, pax = fig.subplots(1, 2)
    _sweep_panels(ax, pax, axis, curve, ours_label)
    return fig


def figure_five(alpha_curve: pd.DataFrame, n_curve: pd.DataFrame, ours_label: str = "this workbook") -> NotebookFigure:
    """Fig. 5: success % vs alpha1 and vs group size N. Top: ours (seed points; rate over runs and states with 95 %
    Wilson error bars; best point starred, points not significantly below it hollow); bottom: the
    values the paper's text states (others not stated, so not drawn)."""
    fig = NotebookFigure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2)
    _sweep_panels(axes[0, 0], axes[1, 0], "alpha1", alpha_curve, ours_label)
    _sweep_panels(axes[0, 1], axes[1, 1], "group_size", n_curve, ours_label)
    return fig


# ------------------------------------------------------------------------------ robustness (notebook 06)
VERDICTS = ("holds", "shrinks", "reverses")


def robustness_table(episodes: pd.DataFrame, before: str = "SFT", after: str = "TGRPO",
                     reference: str = "standard") -> pd.DataFrame:
    """Per condition of an ``evaluation.evaluate_robustness`` table: both policies' success with n
    and 95 % Wilson interval, the paired change on the same init states (exact McNemar: b = states
    only ``before`` solved, c = only ``after``) and what becomes of the gain seen on ``reference``
    (``verdict``): ``holds`` when the change is at least half the reference change and not
    negative, ``shrinks`` when it is smaller but not negative, ``reverses`` when ``after`` falls
    below ``before``. ``significant``: whether the change itself has p < SIGNIFICANCE; a verdict
    on a change that is not significant is a point estimate."""
    missing = {before, after} - set(episodes["policy"])
    if missing:
        raise ValueError(f"no episodes of {', '.join(sorted(missing))}: pass before/after among "
                         f"{', '.join(sorted(set(episodes['policy'])))}.")
    rows = []
    for condition, cond in episodes.groupby("condition", sort=False):
        a = cond[cond["policy"] == before].set_index("state_key")
        b = cond[cond["policy"] == after].set_index("state_key")
        keys = [k for k in a.index if k in b.index]
        if not keys:
            continue
        change = paired_change(a.loc[keys, "success"].astype(bool).tolist(), b.loc[keys, "success"].astype(bool).tolist())
        row = {"condition": condition, "suite": cond["suite"].iloc[0], "task_id": int(cond["task_id"].iloc[0]),
               "n": len(keys)}
        for label, summary in ((before, change["before"]), (after, change["after"])):
            row[f"{label} %"] = 100 * summary["rate"]
            row[f"{label} CI low"], row[f"{label} CI high"] = 100 * summary["ci_low"], 100 * summary["ci_high"]
        row.update({"change (pts)": 100 * change["change"], "b": change["b"], "c": change["c"], "p": change["p_value"],
                    "significant": bool(change["p_value"] < SIGNIFICANCE)})
        rows.append(row)
    if not rows:
        raise ValueError(f"{before} and {after} share no init state in any condition: evaluate both on the same task.")
    table = pd.DataFrame(rows).set_index("condition")
    if reference not in table.index:
        raise ValueError(f"reference={reference!r} was not evaluated: pass one of {', '.join(table.index)}.")
    ref = table.at[reference, "change (pts)"]
    table["verdict"] = [verdict(c, ref) for c in table["change (pts)"]]
    table.loc[reference, "verdict"] = "reference"
    return table


def verdict(change: float, reference_change: float) -> str:
    """``holds`` / ``shrinks`` / ``reverses`` for a change (pts) beside the reference condition's."""
    if change < 0:
        return "reverses"
    return "holds" if change >= 0.5 * max(reference_change, 0.0) else "shrinks"


def robustness_answer(table: pd.DataFrame, before: str = "SFT", after: str = "TGRPO") -> str:
    """One line per perturbation: does ``after``'s gain over ``before`` hold, shrink or reverse?"""
    ref = table[table["verdict"] == "reference"].iloc[0]
    lines = [f"Reference ({ref.name}): {before} {ref[f'{before} %']:.1f} % -> {after} {ref[f'{after} %']:.1f} % "
             f"(n={ref['n']}), {ref['change (pts)']:+.1f} pts, {format_p(ref['p'])} "
             f"(exact McNemar, b={ref['b']}, c={ref['c']})."]
    for condition, row in table[table["verdict"] != "reference"].iterrows():
        note = "" if row["significant"] else "; the change itself is not significant"
        lines.append(f"{condition}: the gain {row['verdict']}: {row[f'{before} %']:.1f} % -> {row[f'{after} %']:.1f} % "
                     f"(n={row['n']}), {row['change (pts)']:+.1f} pts, {format_p(row['p'])} "
                     f"(b={row['b']}, c={row['c']}){note}.")
    return "\n".join(lines)


def figure_robustness(table: pd.DataFrame, before: str = "SFT", after: str = "TGRPO") -> NotebookFigure:
    """Success % of both policies per condition with 95 % Wilson intervals; ``after``'s bar hatched
    where its change from ``before`` is not significant (p >= SIGNIFICANCE); the verdict on top."""
    fig = NotebookFigure(figsize=(max(6.0, 0.8 * len(table) + 2), 4.4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(table))
    for offset, label in ((-0.2, before), (0.2, after)):
        heights = table[f"{label} %"].to_numpy(dtype=float)
        bars = ax.bar(x + offset, heights, 0.4, label=label, capsize=2, error_kw={"elinewidth": 0.8},
                      yerr=_yerr(heights, table[f"{label} CI low"], table[f"{label} CI high"]))
        if label == after:
            for patch, sig in zip(bars.patches, table["significant"]):
                if not sig:
                    patch.set_hatch("///")
    for xi, v in zip(x, table["verdict"]):
        ax.text(xi, 103, v, ha="center", fontsize=7)
    ax.set_xticks(x, list(table.index), rotation=30, ha="right")
    ax.set_ylim(0, 112)
    ax.set_ylabel("greedy success (%)")
    ax.set_title(f"{table['suite'].iloc[0]} task {table['task_id'].iloc[0]}: {before} vs {after} under perturbation\n"
                 f"95 % Wilson intervals; hatched: change not significant (p >= {SIGNIFICANCE})", fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    return fig


# ------------------------------------------------------------------------------ everything at once
def write_results(name: str, runs_df: pd.DataFrame, out_dir: Path | str | None = None, init_set: str = "standard",
                  alpha1: float | None = 0.3, group_size: int | None = None) -> dict:
    """Write Table I/II (CSV + Markdown, ours and the paper's side by side, each headed by its scale
    and init states), Fig. 3, Fig. 5 (PNG + fig5.md, with the env steps of each point), results.json
    (every cell: n distinct init states, runs, rate, 95 % Wilson CI, seeds, difference from TGRPO
    with its interval and test; every Fig. 5 point) and provenance.json to ``out_dir`` (default
    outputs/results/<name>/); returns the paths. Tables use ``table_runs(runs_df, alpha1,
    group_size)``; Fig. 5 uses every run."""
    out = Path(out_dir) if out_dir is not None else runs.run_dir_path("results", name, OUTPUTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    tab = table_runs(runs_df, alpha1, group_size)
    prov = provenance(tab, init_set)  # what the tables rest on
    head = provenance_lines(prov)
    cells1, cells2 = table_one_cells(tab, init_set), table_two_cells(tab, init_set=init_set)
    t1, t2 = _table_one_wide(cells1), _table_two_wide(cells2)
    scale = prov.get("scale", "no runs")
    paths = {}
    for stem, table in (("table1", t1), ("table1_paper", table_one_paper()),
                        ("table1_side_by_side", table_one_side_by_side(t1, init_set, scale)),
                        ("table2", t2), ("table2_paper", table_two_paper())):
        table.to_csv(out / f"{stem}.csv")
        paths[stem] = out / f"{stem}.csv"
    sft_note = ("SFT row = before-training evaluation of the RL runs' starting policy (counted once per starting "
                "checkpoint and task)")
    ours_head = f"## Ours ({scale}), init states: {SET_LABELS[init_set]}"
    paper_head = f"## Paper ({paper.SCALE}; {paper.EPISODES_PER_TASK} episodes per task on its standard init states"
    apart = ([] if init_set == "standard" else
             [f"Our rows above are on the {init_set} init states; the paper's below are on its standard (training) "
              "states: not the same measurement.", ""])
    (out / "table1.md").write_text("\n".join([
        f"# Table I: success rate % and rank per suite ({init_set} init states)", "", *head, f"- {sft_note}", "",
        ours_head, "", cells_markdown(cells1, TABLE_I_METHODS), "", *apart,
        f"{paper_head}; no intervals published)", "",
        to_markdown(table_one_paper(), "{:g}"), "", f"Note: {paper.TABLE_I_NOTE}", ""]))
    suite2 = cells2.attrs["suite"]
    (out / "table2.md").write_text("\n".join([
        f"# Table II: advantage ablation per task on {SUITE_LABELS.get(suite2, suite2)} ({init_set} init states)", "",
        *head, f"- {sft_note}", "", ours_head, "", cells_markdown(cells2, TABLE_II_METHODS), "", *apart,
        f"## Paper ({paper.TASKS_PER_SUITE} tasks, {paper.MODEL}, {paper.HARDWARE}; standard init states; "
        f"{paper.TABLE_II_NOTE}; no intervals published)", "", to_markdown(table_two_paper(), "{:g}"), ""]))
    paths["table1_md"], paths["table2_md"] = out / "table1.md", out / "table2.md"
    fig3 = figure_three(t1, scale, init_set)
    fig3.savefig(out / "fig3.png", dpi=110)
    curves = fig5_curves(runs_df, init_set)
    fig5 = figure_five(*curves, f"{scale}; {init_set} init states")
    fig5.savefig(out / "fig5.png", dpi=110)
    summaries = {axis: curve_summary(c, axis) for axis, c in zip(("alpha1", "group_size"), curves)}
    (out / "fig5.md").write_text("\n".join([
        f"# Fig. 5 points ({init_set} init states, suite {curves[0].attrs.get('suite', '-')})", "",
        *[f"## {axis}\n\n{curve_markdown(summ, axis)}\n" for axis, summ in summaries.items()], FIG5_NOTE, ""]))
    paths["fig3"], paths["fig5"], paths["fig5_md"] = out / "fig3.png", out / "fig5.png", out / "fig5.md"
    report = {"init_set": init_set, "alpha1": alpha1, "group_size": group_size, "reference": REFERENCE_METHOD,
              "significance": SIGNIFICANCE, "note": CELL_NOTE,
              "table1": _records(cells1.drop(columns=["suite"])),
              "table2": {"suite": suite2, "cells": _records(cells2.drop(columns=["task_id"]))},
              "fig5": {"suite": curves[0].attrs.get("suite"), **{a: _records(s) for a, s in summaries.items()}},
              "provenance": prov}
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, default=str) + "\n")
    paths["results_json"], paths["provenance"] = out / "results.json", out / "provenance.json"
    return paths


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: numpy scalars as Python numbers, NaN as null."""
    def plain(v):
        v = v.item() if isinstance(v, np.generic) else v
        return None if isinstance(v, float) and math.isnan(v) else v
    return [{str(k): plain(v) for k, v in row.items()} for row in df.to_dict("records")]


__all__ = ["CELL_FIELDS", "CELL_NOTE", "FIG5_NOTE", "INIT_SETS", "REFERENCE_METHOD", "SAME_CELL_SEED", "SET_LABELS",
           "SIGNIFICANCE", "TABLE_I_METHODS", "TABLE_II_METHODS", "VERDICTS", "cell_stats", "cell_text", "cells_markdown",
           "comparison_markdown", "curve_markdown", "curve_summary", "difference_text", "distinct_runs", "fig5_curves",
           "figure_five", "figure_robustness", "figure_sweep", "figure_three", "load_runs", "method_success", "ours_scale",
           "plain_rates", "provenance", "robustness_answer", "robustness_table", "run_comparison",
           "seed_points", "side_by_side_heads", "suite_success", "sweep_before_after", "sweep_curve", "table_one",
           "table_one_cells", "table_one_paper", "table_one_side_by_side", "table_runs", "table_two", "table_two_cells",
           "table_two_paper", "to_markdown", "verdict", "wide_table", "write_results"]
