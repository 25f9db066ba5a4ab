"""``analysis.report``: every file of a results directory (``write_results``), the provenance the
numbers rest on, and the metrics.json every notebook ends with (``write_metrics``)."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from run_dirs import write_run

from tgrpo_lib.analysis import cells, report, runs_table, tables
from tgrpo_lib.analysis.stats import RUN_PERMUTATION_TEST, wilson_interval


def test_write_results_files_and_provenance(tree, tmp_path):
    paths = report.write_results("synthetic", runs_table.load_runs(tree), out_dir=tmp_path / "res")
    for key in ("table1", "table1_paper", "table1_side_by_side", "table2", "table2_paper", "fig3", "fig5", "fig5_md",
                "results_json", "results_md"):
        assert paths[key].exists() and paths[key].stat().st_size > 100
    t1 = pd.read_csv(paths["table1"], index_col=0)
    assert t1.at["TGRPO", "Average SR"] == pytest.approx(76)
    assert t1.at["TGRPO", "LIBERO-Object n"] == 100 and t1.at["TGRPO", "LIBERO-Object CI low"] == pytest.approx(77.8628, abs=1e-4)
    side = pd.read_csv(paths["table1_side_by_side"], index_col=0)
    ours, theirs = tables.side_by_side_heads("standard", "2 tasks per suite, tiny_vla, cpu")
    assert side.at["TGRPO", f"{ours}: LIBERO-Object n"] == 100 and math.isnan(side.at["TGRPO", f"{ours}: LIBERO-Spatial n"])
    assert side.at["TGRPO", f"{theirs}: LIBERO-Object SR"] == 92.2
    md = paths["table1_md"].read_text()
    assert "## Ours (2 tasks per suite, tiny_vla, cpu), init states: standard" in md
    assert "## Paper (10 tasks per suite, 40 in Average, OpenVLA-7B + LoRA, one NVIDIA A100" in md
    # TGRPO on Object: 86 % of 100 distinct states, Wilson [77.9, 91.5], seeds 85 and 87; rank 1
    assert "| TGRPO | 86.0 % [77.9, 91.5] (n=100); 86.0 ± 1.4 (2 seeds) | 1.0 |" in md
    assert "76.0 % [69.6, 81.4] (n=200); 76.0 ± 1.4 (2 seeds) | 76.0 | 1.5 |" in md  # Average: rate, SR, rank
    assert "permutation over 2 vs 2 runs" in md and "Fisher" not in md and cells.NOT_SIGNIFICANT in md
    assert "seeds: [0, 1]" in md and "torch 2.13.0" in md and "episodes per task and evaluation: [50]" in md
    md2 = paths["table2_md"].read_text()
    assert "LIBERO-Goal" in md2 and "## Paper (10 tasks, OpenVLA-7B + LoRA" in md2
    # w/o step-level adv., Task0: 59 % of 50 states vs TGRPO's 61 % -> marked not significant
    assert "59.0 % [45.2, 71.5] (n=50); 59.0 ± 1.4 (2 seeds) †" in md2
    # results.md, the page to read: Table I and Table II as one table each, ours beside the paper's
    page = paths["results_md"].read_text()
    assert page.count("**Table I.**") == page.count("**Table II.**") == 1 and "nan" not in page.lower()
    assert ("| TGRPO | 86.0 % [77.9, 91.5] (n=100 states, 4 runs) | 92.2 | 66.0 % [56.3, 74.5] (n=100 states, 4 runs) "
            "| 81.0 | 76.0 % [69.6, 81.4] (n=200 states, 8 runs) | 80.7 |") in page
    assert "| Task0: ours (tiny_vla, cpu; standard states) | Task0: paper (OpenVLA-7B + LoRA; standard " in page
    assert "![Fig. 3" in page and "[table1.md](table1.md)" in page and "- seeds: [0, 1]" in page
    written = json.loads(paths["results_json"].read_text())
    cell = next(c for c in written["table1"] if c["method"] == "DPO" and c["column"] == "LIBERO-Object")
    assert (cell["n"], cell["runs"], cell["n_seeds"]) == (100, 4, 2)
    assert cell["ci_low"] == pytest.approx(100 * wilson_interval(66, 100)[0])
    assert cell["p_value"] == pytest.approx(1 / 3) and cell["test"] == RUN_PERMUTATION_TEST
    tg = next(c for c in written["table1"] if c["method"] == "TGRPO" and c["column"] == "Average")
    assert tg["p_value"] is None and tg["rank"] == 1.5
    assert written["table2"]["suite"] == "libero_goal" and written["reference"] == "TGRPO"
    assert {p["alpha1"] for p in written["fig5"]["alpha1"]} == {0.3} and written["fig5"]["alpha1"][0]["n"] == 100
    fig5 = paths["fig5_md"].read_text()
    assert "(n=100 states, 4 runs)" in fig5 and "equal RL iterations, not at equal env steps" in fig5
    assert "env steps per run" in fig5
    prov = json.loads(paths["provenance"].read_text())
    assert prov["env_steps_total"] == 40 * 1000 and prov["mixed_versions"] == []


def test_mixed_versions_are_flagged(tmp_path):
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.5, 0.1)
    write_run(tmp_path, "tgrpo", "libero_goal", 1, 0, 0.5, 0.1, torch_version="2.5.0")
    prov = report.provenance(runs_table.load_runs(tmp_path))
    assert prov["mixed_versions"] == ["torch"] and prov["versions"]["torch"] == ["2.13.0", "2.5.0"]


def test_write_metrics_makes_everything_json_and_saves_the_files(tmp_path):
    frame = pd.DataFrame({"n": [np.int64(50), 10], "rate": [np.float64(0.5), math.nan]},
                         index=pd.Index(["standard", "lan"], name="condition"))
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    written = report.write_metrics("nb/06", {"task_id": np.int64(3), "ok": np.bool_(True), "table": frame,
                                             "run_dir": Path("/runs/a"), "nested": {"p": [np.float32(0.25), math.inf]},
                                             "plain": pd.DataFrame({"x": [1, 2]}).iloc[[1]]},
                                   root=tmp_path, files={"table.csv": frame, "fig.png": fig})
    out = tmp_path / "nb" / "06"
    assert json.loads((out / "metrics.json").read_text()) == written == {
        "task_id": 3, "ok": True, "run_dir": "/runs/a", "nested": {"p": [0.25, None]}, "plain": [{"x": 2}],
        "table": [{"condition": "standard", "n": 50, "rate": 0.5}, {"condition": "lan", "n": 10, "rate": None}]}
    assert list(pd.read_csv(out / "table.csv").columns) == ["condition", "n", "rate"]  # a named index is kept
    assert (out / "fig.png").read_bytes().startswith(b"\x89PNG")
