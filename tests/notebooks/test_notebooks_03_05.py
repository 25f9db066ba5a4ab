"""Notebooks 03, 04 and 05 under papermill with the smoke profile (two real training cells in
all: 04's only cell is the same config as one of 03's, so it is skipped as complete)."""
import json

import pytest
from figure_outputs import assert_figures_render

from tgrpo_lib.workflows import reproduce

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.sim]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce_smoke")
    mp = pytest.MonkeyPatch()
    mp.setenv("TGRPO_OUTPUTS", str(root))  # reproduce() points the kernels here; restored afterwards
    try:
        report = reproduce.reproduce("smoke", root=root, steps=["03_alpha_sweep", "04_group_size_sweep",
                                                                "05_results_tables"], progress=False)
    finally:
        mp.undo()
    return root, report


def metrics(root, step):
    return json.loads((root / "reproduce" / "smoke" / step / "metrics.json").read_text())


def test_alpha_sweep_notebook(smoke):
    root, report = smoke
    m = metrics(root, "03_alpha_sweep")
    assert (m["cells"], m["complete"], m["failed"], m["skipped"]) == (2, 2, 0, 0)
    assert m["values"] == [0.1, 0.3] and m["seeds"] == [0]
    assert all(0 <= v <= 100 for v in m["success_mean"].values())
    assert m["provenance"]["episodes_per_task"] == [2] and m["provenance"]["iterations"] == [1]
    # every value's point carries n (distinct init states), its interval and its env steps; before/after
    # is paired on the same states (one run per value: exact McNemar), the test set beside the others
    assert [(r["alpha1"], r["n"], r["runs"]) for r in m["summary"]] == [(0.1, 2, 1), (0.3, 2, 1)]
    assert all(r["ci_low"] <= r["rate"] <= r["ci_high"] and r["env_steps"] > 0 for r in m["summary"])
    assert [(r["alpha1"], r["init_set"], r["n"]) for r in m["before_after"]] == [
        (0.1, "standard", 2), (0.1, "heldout", 2), (0.1, "test", 2), (0.3, "standard", 2), (0.3, "heldout", 2),
        (0.3, "test", 2)]  # TrainConfig.test_episodes: as many as final_eval_episodes
    assert all(r["b"] + r["c"] <= r["n"] and 0 < r["p_value"] <= 1 and "McNemar" in r["text"] for r in m["before_after"])
    for run_dir in m["run_dirs"]:
        summary = json.loads((root / "train" / run_dir.rsplit("/", 1)[1] / "metrics.json").read_text())
        assert summary["after_standard_episodes"] == 2 and summary["env_steps"] > 0
    executed = json.loads((root / "reproduce" / "smoke" / "03_alpha_sweep.ipynb").read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
    assert (root / "reproduce" / "smoke" / "03_alpha_sweep" / "fig5_alpha1.png").stat().st_size > 1000


def test_group_size_notebook_skips_the_shared_cell(smoke):
    root, _ = smoke
    m = metrics(root, "04_group_size_sweep")
    assert (m["cells"], m["skipped"], m["failed"]) == (1, 1, 0)
    a = metrics(root, "03_alpha_sweep")
    assert m["run_dirs"][0] in a["run_dirs"]  # the very run 03 made for alpha1 = 0.3, N = 2
    assert m["success_mean"]["2"] == pytest.approx(a["success_mean"]["0.3"])


def test_results_notebook(smoke):
    root, _ = smoke
    m = metrics(root, "05_results_tables")
    a = metrics(root, "03_alpha_sweep")
    assert m["runs"] == 2 and m["table_runs"] == 1  # the alpha1 = 0.1 run stays out of Tables I/II
    tgrpo = next(c for c in m["table1"] if c["method"] == "TGRPO" and c["column"] == "LIBERO-Goal")
    assert tgrpo["sr"] == pytest.approx(a["success_mean"]["0.3"]) and (tgrpo["n"], tgrpo["runs"]) == (2, 1)
    # the reader's Table I: one row per method, our cell beside the paper's, "not run" where no run is
    rows = {r["Method"]: r for r in m["table1_text"]}
    ours, theirs = (next(k for k in rows["DPO"] if k.startswith(f"LIBERO-Goal: {side}")) for side in ("ours", "paper"))
    assert rows["DPO"][ours] == "not run" and rows["DPO"][theirs] == "79.5" and rows["TGRPO"][theirs] == "81.0"
    assert rows["TGRPO"][ours].endswith("(n=2)") and "1 task; standard states" in ours
    assert m["table2_suite"] == "libero_goal"
    res = root / "results" / "smoke"
    for name in ("results.md", "table1.csv", "table1.md", "table2.csv", "table2.md", "fig3.png", "fig5.png"):
        assert (res / name).exists(), name
    assert "seeds: [0]" in (res / "table1.md").read_text()
    assert "**Table I.**" in (res / "results.md").read_text() and "nan" not in (res / "results.md").read_text().lower()


@pytest.mark.parametrize("step", ["03_alpha_sweep", "04_group_size_sweep", "05_results_tables"])
def test_figures_are_images(smoke, step):
    """Fig. 5 (03, 04) and Fig. 3 + Fig. 5 (05) are image/png outputs of the executed notebooks."""
    root, _ = smoke
    assert_figures_render(root / "reproduce" / "smoke" / f"{step}.ipynb", step)
