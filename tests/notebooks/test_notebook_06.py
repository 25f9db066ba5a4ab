"""Notebook 06 under papermill with the smoke profile: a 02 smoke run, then both of its sides on the
standard, held-out and one LIBERO-PRO condition (the smoke run has no saved start policy, so both
sides are its trained policy: the plumbing is tested, not a gain)."""
import json

import pandas as pd
import pytest
from figure_outputs import assert_figures_render

from tgrpo_lib.training import evaluation
from tgrpo_lib.workflows import reproduce

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.sim]


def test_robustness_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("TGRPO_OUTPUTS", str(tmp_path))
    report = reproduce.reproduce("smoke", root=tmp_path, steps=["02_training_run", "06_robustness"], progress=False)
    out = tmp_path / "reproduce" / "smoke" / "06_robustness"
    m = json.loads((out / "metrics.json").read_text())
    assert report["06_robustness"]["suite"] == "libero_object"
    assert [c["condition"] for c in m["conditions"]] == ["standard", "heldout", "lan"]
    assert all(c["n"] == 2 and c["b"] == c["c"] == 0 for c in m["conditions"])  # one policy on both sides
    assert m["answer"][0].startswith("Reference (standard)")
    assert [line.split(":")[0] for line in m["answer"][1:]] == ["heldout", "lan"]
    assert m["answer"][2].startswith("lan: the gain holds")  # +0 pts beside +0 pts on the standard states
    episodes = pd.read_csv(out / "episodes.csv")
    assert list(episodes.columns) == list(evaluation.ROBUSTNESS_COLUMNS)
    assert set(episodes.loc[episodes.condition == "lan", "suite"]) == {"libero_object_lan"}
    assert (out / "robustness.png").stat().st_size > 1000
    assert_figures_render(tmp_path / "reproduce" / "smoke" / "06_robustness.ipynb", "06_robustness")
