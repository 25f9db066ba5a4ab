"""Everything at once: Table I / II, Fig. 3 and Fig. 5 written to one results directory, with the
provenance they rest on (model, scale, seeds, episodes, init states, env steps, versions); and the
``metrics.json`` every notebook ends with.

    paths = write_results("main", load_runs())   # outputs/results/main/: results.md (the page to read),
                                                 # table1/2 .csv + .md, fig3/5 .png, results.json
    write_metrics("notebooks/05_results_tables", {"runs": 12, "table1": cells_df}, files={"fig.png": fig})
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from tgrpo_lib import OUTPUTS_DIR, outputs_path
from tgrpo_lib.analysis import paper
from tgrpo_lib.analysis.cells import REFERENCE_METHOD, SIGNIFICANCE
from tgrpo_lib.analysis.curves import FIG5_NOTE, curve_markdown, curve_summary, fig5_curves
from tgrpo_lib.analysis.figures import figure_five, figure_three
from tgrpo_lib.analysis.paper import SUITE_LABELS
from tgrpo_lib.analysis.runs_table import SET_LABELS, ours_scale, table_runs
from tgrpo_lib.analysis.tables import (CELL_NOTE, TABLE_I_METHODS, TABLE_II_METHODS, cells_markdown, table_one_cells,
                                       table_one_paper, table_one_side_by_side, table_one_wide, table_two_cells,
                                       table_two_paper, table_two_wide, to_markdown)
from tgrpo_lib.analysis.table_views import table_one_view, table_two_view
from tgrpo_lib.infra import runs


def write_results(name: str, runs_df: pd.DataFrame, out_dir: Path | str | None = None, init_set: str = "standard",
                  alpha1: float | None = 0.3, group_size: int | None = None) -> dict:
    """Write results.md (Table I and Table II as one table each, ours beside the paper's, each column
    headed by its scale and init states: ``table_views``; the figures; the provenance), Table I/II
    in detail (CSV + Markdown: each cell's seed spread and its difference from TGRPO), Fig. 3,
    Fig. 5 (PNG + fig5.md, with the env steps of each point), results.json (every cell: n distinct
    init states, runs, rate, 95 % Wilson CI, seeds, difference from TGRPO with its interval and
    test; every Fig. 5 point) and provenance.json to ``out_dir`` (default outputs/results/<name>/);
    returns the paths. Tables use ``table_runs(runs_df, alpha1, group_size)``; Fig. 5 every run."""
    out = Path(out_dir) if out_dir is not None else runs.run_dir_path("results", name, OUTPUTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    tab = table_runs(runs_df, alpha1, group_size)
    prov = provenance(tab, init_set)  # what the tables rest on
    head = provenance_lines(prov)
    cells1, cells2 = table_one_cells(tab, init_set), table_two_cells(tab, init_set=init_set)
    t1, t2 = table_one_wide(cells1), table_two_wide(cells2)
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
    (out / "results.md").write_text(results_markdown(name, init_set, head, table_one_view(tab, init_set, cells1),
                                                     table_two_view(tab, init_set, cells2)))
    paths["results_md"] = out / "results.md"
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
              "table1": json_ready(cells1.drop(columns=["suite"])),
              "table2": {"suite": suite2, "cells": json_ready(cells2.drop(columns=["task_id"]))},
              "fig5": {"suite": curves[0].attrs.get("suite"), **{a: json_ready(s) for a, s in summaries.items()}},
              "provenance": prov}
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, default=str) + "\n")
    paths["results_json"], paths["provenance"] = out / "results.json", out / "provenance.json"
    return paths


def results_markdown(name: str, init_set: str, provenance_text: list[str], table_one, table_two) -> str:
    """results.md: the provenance, Table I and Table II (``table_views.TableView``), the figures and
    where the details are."""
    return "\n".join([
        f"# Results: {name} ({init_set} init states)", "", *provenance_text, "", "## Table I", "", table_one.markdown(),
        "", "## Table II", "", table_two.markdown(), "", "## Fig. 3 and Fig. 5", "",
        "![Fig. 3: success per suite, ours and the paper's](fig3.png)", "",
        "![Fig. 5: success against alpha1 and N](fig5.png)", "",
        "Details: [table1.md](table1.md) and [table2.md](table2.md) (each cell's seed spread and its difference from "
        f"{REFERENCE_METHOD} with its 95 % interval and test), [fig5.md](fig5.md) (each point's env steps), "
        "results.json (every number).", ""])


def json_ready(value):
    """``value`` as JSON can hold it: a DataFrame as a list of records (a named index as a column),
    a Series as a dict, numpy scalars and arrays as Python numbers and lists, NaN (and inf) as null,
    a path or any other object as its text."""
    if isinstance(value, pd.DataFrame):
        frame = value.reset_index() if _named(value.index) else value
        return [json_ready(row) for row in frame.to_dict("records")]
    if isinstance(value, pd.Series):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [json_ready(v) for v in (sorted(value, key=str) if isinstance(value, set) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value if value is None or isinstance(value, (bool, int, str)) else str(value)


def _named(index: pd.Index) -> bool:
    return any(name is not None for name in index.names)


def write_metrics(output_dir: Path | str, metrics: dict, root: Path | str | None = None,
                  files: dict | None = None) -> dict:
    """A notebook's last step: ``metrics`` (``json_ready``) as ``metrics.json`` in ``output_dir``
    (relative: under the outputs root, ``tgrpo_lib.outputs_path``), beside ``files`` (name -> a
    figure, saved as PNG, or a DataFrame, saved as CSV with its index when it is named); returns
    what was written."""
    out = outputs_path(output_dir, root)
    out.mkdir(parents=True, exist_ok=True)
    for name, item in (files or {}).items():
        if isinstance(item, pd.DataFrame):
            item.to_csv(out / name, index=_named(item.index))
        else:
            item.savefig(out / name, dpi=110, bbox_inches="tight")
    written = json_ready(metrics)
    (out / "metrics.json").write_text(json.dumps(written, indent=2, allow_nan=False) + "\n")
    return written


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


__all__ = ["json_ready", "provenance", "provenance_lines", "results_markdown", "write_metrics", "write_results"]
