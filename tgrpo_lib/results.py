"""Table I, Table II, Fig. 3 and Fig. 5 of the paper, built only from run directories
(config.json + metrics.json + versions.json of ``outputs/train/*`` and ``outputs/sft/*``).

Success rates are in % (the paper's unit): per task the mean over seeds, per suite the mean
over its tasks, "Average" the mean over suites. Ranks are 1 = best among *our* rows, ties
share the better rank. The paper's numbers (``tgrpo_lib.paper``) sit in separate, labelled
tables / panels beside ours and never enter our means or ranks.

The "SFT" row is the before-training evaluation every RL run does of its starting policy (the
SFT checkpoint): the same protocol (``tgrpo_lib.evaluation``), init states and env config as
the after-evaluation it is compared with, and the same cached episodes an SFT run's own
evaluation produces.

    runs = load_runs()                       # every complete outputs/train/* run
    paths = write_results("main", runs)      # outputs/results/main/{table1,table2}.{csv,md}, fig3.png, fig5.png
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tgrpo_lib import OUTPUTS_DIR, paper, runs
from tgrpo_lib.variants import TABLE_I, TABLE_II, VARIANTS, table_methods

SUITE_LABELS = {"libero_spatial": "LIBERO-Spatial", "libero_object": "LIBERO-Object",
                "libero_goal": "LIBERO-Goal", "libero_10": "LIBERO-Long"}
TABLE_I_METHODS = table_methods(TABLE_I)
"""Our Table I rows -> TrainConfig.algo (SFT: the starting policy, see the module docstring)."""
TABLE_II_METHODS = table_methods(TABLE_II)
INIT_SETS = ("standard", "heldout")


# ------------------------------------------------------------------------------ reading run dirs
def load_runs(root: Path | str | None = None, run_names=None, kind: str = "train") -> pd.DataFrame:
    """One row per *complete* training run: config fields, final success rates (fractions),
    episode counts, env steps and package versions (``ver/<package>``)."""
    rows = []
    for run_dir in runs.list_runs(kind, root, complete_only=True):
        if run_names is not None and run_dir.name not in set(run_names):
            continue
        cfg = runs.read_config(run_dir)
        summary = runs.read_json(run_dir / "metrics.json")
        row = {"run_name": run_dir.name, "run_dir": str(run_dir), "model": _model_label(cfg)}
        for key in ("suite", "task_id", "algo", "alpha1", "alpha2", "group_size", "seed", "iterations",
                    "final_eval_episodes", "init_checkpoint"):
            row[key] = cfg.get(key)
        variant = VARIANTS.get(cfg.get("algo"))
        row["alpha1_used"] = variant.advantage_weights(cfg.get("alpha1"), cfg.get("alpha2"))[0] if variant else math.nan
        for tag in ("before", "after"):
            for which in INIT_SETS:
                row[f"{tag}_{which}"] = summary.get(f"{tag}_{which}", math.nan)
                row[f"{tag}_{which}_episodes"] = summary.get(f"{tag}_{which}_episodes", math.nan)
        row["env_steps"] = summary.get("env_steps", math.nan)
        row.update(_versions(run_dir))
        rows.append(row)
    return pd.DataFrame(rows)


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


def table_runs(runs_df: pd.DataFrame, alpha1: float | None = 0.3, group_size: int | None = None) -> pd.DataFrame:
    """The runs Table I / II rest on: TGRPO runs at ``alpha1`` only (the paper's 0.3, so alpha-sweep
    runs never blend into the TGRPO row) and, when given, one group size N for every method."""
    if not len(runs_df):
        return runs_df
    keep = pd.Series(True, index=runs_df.index)
    if alpha1 is not None:
        keep &= (runs_df["algo"] != "tgrpo") | np.isclose(runs_df["alpha1"].astype(float), alpha1)
    if group_size is not None:
        keep &= runs_df["group_size"] == group_size
    return runs_df[keep]


# ------------------------------------------------------------------------------ per-task success
def method_success(runs_df: pd.DataFrame, methods: dict, init_set: str = "standard") -> pd.DataFrame:
    """Long table (method, suite, task_id, seed, success %) for the rows of ``methods``."""
    if init_set not in INIT_SETS:
        raise ValueError(f"init_set={init_set!r}: pass one of {INIT_SETS}.")
    parts = []
    cols = ["suite", "task_id", "seed"]
    for method, algo in methods.items():
        if not len(runs_df):
            continue
        if algo is not None:
            sel = runs_df[runs_df["algo"] == algo]
            if len(sel):
                parts.append(sel[cols].assign(method=method, success=100 * sel[f"after_{init_set}"]))
        else:
            rl = runs_df[runs_df["algo"].isin([a for a in methods.values() if a])]
            # the before-eval is of the same starting policy in every RL run of a (task, seed):
            # average them (identical for greedy evaluation) rather than count them several times
            g = rl.groupby(cols, as_index=False)[f"before_{init_set}"].mean()
            parts.append(g[cols].assign(method=method, success=100 * g[f"before_{init_set}"]))
    if not parts:
        return pd.DataFrame(columns=["method", *cols, "success"])
    out = pd.concat(parts, ignore_index=True)
    out["method"] = pd.Categorical(out["method"], categories=list(methods), ordered=True)
    return out[["method", *cols, "success"]]


def suite_success(long: pd.DataFrame) -> pd.DataFrame:
    """(method x suite) success %: mean over seeds per task, then mean over tasks."""
    per_task = long.groupby(["method", "suite", "task_id"], observed=True)["success"].mean().reset_index()
    return per_task.pivot_table(index="method", columns="suite", values="success", aggfunc="mean", observed=False)


# ------------------------------------------------------------------------------ Table I
def table_one(runs_df: pd.DataFrame, init_set: str = "standard") -> pd.DataFrame:
    """Table I: per suite success % and rank, Average success % (over suites) and Average rank."""
    long = method_success(runs_df, TABLE_I_METHODS, init_set)
    wide = suite_success(long).reindex(index=list(TABLE_I_METHODS))
    suites = [s for s in paper.SUITES if s in wide.columns]
    return _with_ranks(wide[suites])


def _with_ranks(wide: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=wide.index.astype(str))
    out.index.name = "Method"
    ranks = wide.rank(axis=0, ascending=False, method="min")
    for suite in wide.columns:
        label = SUITE_LABELS.get(suite, suite)
        out[f"{label} SR"] = wide[suite].to_numpy()
        out[f"{label} Rank"] = ranks[suite].to_numpy()
    out["Average SR"] = wide.mean(axis=1, skipna=True).to_numpy()
    out["Average Rank"] = ranks.mean(axis=1, skipna=True).to_numpy()
    return out


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


def table_one_side_by_side(ours: pd.DataFrame) -> pd.DataFrame:
    """Success % only: our rows with the paper's comparable row in separate ``paper:`` columns."""
    pap = table_one_paper()
    sr = [c for c in pap.columns if c.endswith(" SR")]
    out = pd.DataFrame(index=list(ours.index) + ["Octo"])
    out.index.name = "Method"
    for c in sr:
        out[f"ours: {c}"] = ours[c] if c in ours.columns else math.nan
    for c in sr:
        out[f"paper: {c}"] = [pap.at[paper.METHOD_TO_PAPER.get(m) or m, c]
                              if (paper.METHOD_TO_PAPER.get(m) or m) in pap.index else math.nan for m in out.index]
    out["paper row"] = [paper.METHOD_TO_PAPER.get(m, m) for m in out.index]
    return out


# ------------------------------------------------------------------------------ Table II
def table_two(runs_df: pd.DataFrame, suite: str | None = None, init_set: str = "standard") -> pd.DataFrame:
    """Table II: per-task success % of SFT and the advantage ablations on one suite; Avg. over tasks.

    suite None picks the suite with the most ablation runs."""
    long = method_success(runs_df, TABLE_II_METHODS, init_set)
    if suite is None:
        counts = long[long["method"] != "SFT"]["suite"].value_counts()
        suite = counts.index[0] if len(counts) else paper.TABLE_II_SUITE
    long = long[long["suite"] == suite]
    per_task = long.groupby(["method", "task_id"], observed=False)["success"].mean().unstack("task_id")
    per_task = per_task.reindex(index=list(TABLE_II_METHODS))
    per_task.columns = [f"Task{int(t)}" for t in per_task.columns]
    per_task["Avg."] = per_task.mean(axis=1, skipna=True)
    per_task.index = per_task.index.astype(str)
    per_task.index.name = "Method"
    per_task.attrs["suite"] = suite
    return per_task


def table_two_paper() -> pd.DataFrame:
    """The paper's Table II as published (its own Avg. column kept, not recomputed)."""
    rows = {m: {**{f"Task{i}": v for i, v in enumerate(sr)}, "Avg.": avg} for m, (sr, avg) in paper.TABLE_II.items()}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "Method"
    return out


# ------------------------------------------------------------------------------ Fig. 5 data
def sweep_curve(runs_df: pd.DataFrame, axis: str, init_set: str = "standard", algo: str = "tgrpo",
                suite: str | None = None, fixed: dict | None = None) -> pd.DataFrame:
    """Success % per (axis value, seed): the mean over the tasks each run covers (Fig. 5's y).

    ``suite`` / ``fixed`` ({"group_size": 4}) keep only the runs of one slice, so a curve never
    blends suites or the other sweep's axis; ``n_tasks`` says how many tasks each point averages."""
    if axis not in ("alpha1", "group_size"):
        raise ValueError(f"axis={axis!r}: Fig. 5 sweeps 'alpha1' or 'group_size'.")
    empty = pd.DataFrame(columns=[axis, "seed", "success", "n_tasks"])
    if not len(runs_df):
        return empty
    sel = runs_df[runs_df["algo"] == algo]
    if suite is not None:
        sel = sel[sel["suite"] == suite]
    for key, value in (fixed or {}).items():
        sel = sel[np.isclose(sel[key].astype(float), float(value))]
    if not len(sel):
        return empty
    sel = sel.assign(success=100 * sel[f"after_{init_set}"])
    g = sel.groupby([axis, "seed"]).agg(success=("success", "mean"), n_tasks=("task_id", "nunique"))
    return g.reset_index()


def fig5_curves(runs_df: pd.DataFrame, init_set: str = "standard") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(alpha1 curve, N curve) on the paper's Fig. 5 suite when present: the alpha1 curve holds N
    at its most common value among TGRPO runs, the N curve holds alpha1 at its most common value."""
    tg = runs_df[runs_df["algo"] == "tgrpo"] if len(runs_df) else runs_df
    if not len(tg):
        return sweep_curve(tg, "alpha1"), sweep_curve(tg, "group_size")
    suite = paper.FIG5_SUITE if (tg["suite"] == paper.FIG5_SUITE).any() else tg["suite"].mode()[0]
    tg = tg[tg["suite"] == suite]
    alpha = sweep_curve(tg, "alpha1", init_set, fixed={"group_size": tg["group_size"].mode()[0]})
    n = sweep_curve(tg, "group_size", init_set, fixed={"alpha1": tg["alpha1"].mode()[0]})
    alpha.attrs["suite"] = n.attrs["suite"] = suite
    return alpha, n


def curve_summary(curve: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Mean, std (ddof=1; NaN for one seed) and seed count per axis value."""
    return curve.groupby(axis)["success"].agg(mean="mean", std="std", seeds="count").reset_index()


# ------------------------------------------------------------------------------ one run, before vs after
def run_comparison(run_dir: Path | str, init_sets=INIT_SETS) -> dict:
    """Per init set of one training run: the starting and the trained policy's success (n, rate,
    95 % Wilson interval) and the paired change on the same init states (exact McNemar), from
    the per-episode tables the run saved (``eval/{before,after}_{set}.csv``)."""
    from tgrpo_lib.evaluation import read_episodes
    from tgrpo_lib.stats import paired_change

    out = {}
    for which in init_sets:
        before, after = read_episodes(run_dir, "before", which), read_episodes(run_dir, "after", which)
        if list(before["state_key"]) != list(after["state_key"]):
            raise ValueError(f"{run_dir}: the before and after evaluations of {which} used different init states.")
        out[which] = paired_change(before["success"].astype(bool).tolist(), after["success"].astype(bool).tolist())
    return out


def comparison_markdown(comparison: dict, title: str, labels=("SFT", "TGRPO")) -> str:
    """``run_comparison`` as a Markdown table: rate [95 % CI] (n) before and after, change and p."""
    from tgrpo_lib.stats import format_change, format_rate

    lines = [f"| {title} | {labels[0]} | {labels[1]} | change (paired) |", "|---|---|---|---|"]
    for which, c in comparison.items():
        lines.append(f"| {which} | {format_rate(c['before'])} | {format_rate(c['after'])} | {format_change(c)} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ provenance
def provenance(runs_df: pd.DataFrame, init_set: str = "standard") -> dict:
    """What the numbers rest on: model, seeds, episodes, init-state set, env steps, versions."""
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
        "init_states": init_set + (" (LIBERO's 50 fixed init states)" if init_set == "standard"
                                   else " (never-seen held-out init states)"),
        "iterations": sorted(int(i) for i in runs_df["iterations"].dropna().unique()),
        "env_steps_total": float(runs_df["env_steps"].fillna(0).sum()),
        "env_steps_per_run_mean": float(runs_df["env_steps"].mean()),
        "versions": {k: (v[0] if len(v) == 1 else v) for k, v in versions.items()},
        "mixed_versions": sorted(k for k, v in versions.items() if len(v) > 1),
        "git_commits": sorted({str(c) for c in runs_df.get("git_commit", pd.Series(dtype=object)).dropna()}),
    }


def provenance_lines(prov: dict) -> list[str]:
    if not prov.get("runs"):
        return ["No complete runs found."]
    v = prov["versions"]
    return [f"- model: {', '.join(prov['model'])}",
            f"- seeds: {prov['seeds']}; episodes per task and evaluation: {prov['episodes_per_task']}",
            f"- init states: {prov['init_states']}; RL iterations: {prov['iterations']}",
            f"- env steps (training): {prov['env_steps_total']:.0f} total, {prov['env_steps_per_run_mean']:.0f} per run",
            "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
            *([f"- WARNING: runs mix versions of {prov['mixed_versions']}"] if prov["mixed_versions"] else []),
            f"- runs: {prov['runs']}; git: {', '.join(c[:10] for c in prov['git_commits']) or 'unknown'}"]


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


# ------------------------------------------------------------------------------ figures
def figure_three(ours: pd.DataFrame, ours_label: str = "this workbook") -> Figure:
    """Fig. 3: success % per suite, one bar per method; ours and the paper's in separate panels."""
    fig = Figure(figsize=(12, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, table, title in ((axes[0], ours, f"Ours ({ours_label})"), (axes[1], table_one_paper(), paper.MODEL)):
        cols = [c for c in table.columns if c.endswith(" SR")]
        x = np.arange(len(cols))
        width = 0.8 / max(len(table), 1)
        for i, (method, row) in enumerate(table[cols].iterrows()):
            ax.bar(x + i * width - 0.4 + width / 2, row.to_numpy(dtype=float), width, label=str(method))
        ax.set_xticks(x, [c[:-3] for c in cols], rotation=15)
        ax.set_title(title)
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    axes[0].set_ylabel("success rate (%)")
    axes[0].set_ylim(0, 100)
    return fig


FIG5_AXES = {"alpha1": (paper.FIG5_ALPHA1, "alpha1 (alpha2 = 1 - alpha1)"), "group_size": (paper.FIG5_GROUP_SIZE, "group size N")}


def _sweep_panels(ax, pax, axis: str, curve: pd.DataFrame, ours_label: str) -> None:
    """Ours (seed points, mean +- std over seeds) on ``ax``; the paper's stated points on ``pax``."""
    stated, xlabel = FIG5_AXES[axis]
    if len(curve):
        summ = curve_summary(curve, axis)
        ax.scatter(curve[axis].astype(float), curve["success"], s=18, alpha=0.5, color="gray", label="one seed")
        ax.errorbar(summ[axis].astype(float), summ["mean"], yerr=summ["std"].fillna(0), marker="o", capsize=4,
                    label="mean +- std over seeds")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no runs", ha="center", transform=ax.transAxes)
    ax.set_title(f"Ours ({ours_label})", fontsize=9)
    xs = np.array(list(stated), dtype=float)
    ys = np.array(list(stated.values()), dtype=float)
    pax.plot(xs[~np.isnan(ys)], ys[~np.isnan(ys)], "s", color="tab:red", label="stated in the paper's text")
    for x in xs[np.isnan(ys)]:
        pax.axvline(x, color="lightgray", ls=":", lw=1)
    pax.set_xticks(xs)
    pax.set_title(f"Paper ({SUITE_LABELS[paper.FIG5_SUITE]}, {paper.MODEL})\ndotted: value not stated", fontsize=9)
    pax.legend(fontsize=8)
    for a in (ax, pax):
        a.set_xlabel(xlabel)
        a.set_ylabel("success rate (%)")


def figure_sweep(curve: pd.DataFrame, axis: str, ours_label: str = "this workbook") -> Figure:
    """One Fig. 5 panel pair: success % vs ``axis`` (alpha1 or group_size), ours beside the paper's."""
    if axis not in FIG5_AXES:
        raise ValueError(f"axis={axis!r}: pass one of {list(FIG5_AXES)}.")
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax, pax = fig.subplots(1, 2)
    _sweep_panels(ax, pax, axis, curve, ours_label)
    return fig


def figure_five(alpha_curve: pd.DataFrame, n_curve: pd.DataFrame, ours_label: str = "this workbook") -> Figure:
    """Fig. 5: success % vs alpha1 and vs group size N. Top: ours (seed points, mean, +-1 std);
    bottom: the values the paper's text states (others not stated, so not drawn)."""
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2)
    _sweep_panels(axes[0, 0], axes[1, 0], "alpha1", alpha_curve, ours_label)
    _sweep_panels(axes[0, 1], axes[1, 1], "group_size", n_curve, ours_label)
    return fig


# ------------------------------------------------------------------------------ everything at once
def write_results(name: str, runs_df: pd.DataFrame, out_dir: Path | str | None = None, init_set: str = "standard",
                  alpha1: float | None = 0.3, group_size: int | None = None) -> dict:
    """Write Table I/II (CSV + Markdown, ours and the paper's side by side), Fig. 3, Fig. 5 (PNG)
    and provenance.json to ``out_dir`` (default outputs/results/<name>/); returns the paths.
    Tables use ``table_runs(runs_df, alpha1, group_size)``; Fig. 5 uses every run."""
    out = Path(out_dir) if out_dir is not None else runs.run_dir_path("results", name, OUTPUTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    tab = table_runs(runs_df, alpha1, group_size)
    prov = provenance(tab, init_set)  # what the tables rest on
    head = provenance_lines(prov)
    t1 = table_one(tab, init_set)
    t2 = table_two(tab, init_set=init_set)
    paths = {}
    for stem, table in (("table1", t1), ("table1_paper", table_one_paper()), ("table1_side_by_side", table_one_side_by_side(t1)),
                        ("table2", t2), ("table2_paper", table_two_paper())):
        table.to_csv(out / f"{stem}.csv")
        paths[stem] = out / f"{stem}.csv"
    sft_note = "SFT row = before-training evaluation of the RL runs' starting policy"
    (out / "table1.md").write_text("\n".join([
        f"# Table I: success rate % and rank per suite ({init_set} init states)", "", *head, f"- {sft_note}", "",
        "## Ours", "", to_markdown(t1), "", f"## Paper ({paper.MODEL}, {paper.EPISODES_PER_TASK} episodes per task)", "",
        to_markdown(table_one_paper(), "{:g}"), "", f"Note: {paper.TABLE_I_NOTE}", ""]))
    (out / "table2.md").write_text("\n".join([
        f"# Table II: advantage ablation per task on {SUITE_LABELS.get(t2.attrs['suite'], t2.attrs['suite'])} "
        f"({init_set} init states)", "", *head, f"- {sft_note}", "", "## Ours", "", to_markdown(t2), "",
        f"## Paper ({paper.MODEL}; {paper.TABLE_II_NOTE})", "", to_markdown(table_two_paper(), "{:g}"), ""]))
    paths["table1_md"], paths["table2_md"] = out / "table1.md", out / "table2.md"
    label = ", ".join(prov.get("model", [])) or "no runs"
    fig3 = figure_three(t1, label)
    fig3.savefig(out / "fig3.png", dpi=110)
    fig5 = figure_five(*fig5_curves(runs_df, init_set), label)
    fig5.savefig(out / "fig5.png", dpi=110)
    paths["fig3"], paths["fig5"] = out / "fig3.png", out / "fig5.png"
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, default=str) + "\n")
    paths["provenance"] = out / "provenance.json"
    return paths


__all__ = ["INIT_SETS", "TABLE_I_METHODS", "TABLE_II_METHODS", "curve_summary", "fig5_curves", "figure_five", "figure_sweep", "figure_three",
           "comparison_markdown", "load_runs", "method_success", "provenance", "run_comparison", "suite_success", "table_runs",
           "sweep_curve", "table_one", "table_one_paper", "table_one_side_by_side", "table_two", "table_two_paper",
           "to_markdown", "write_results"]
