"""experiments/dense_vs_sparse/explore.py: the post-hoc per-run diagnostics, on a synthetic
metrics log whose numbers are worked out by hand."""
import sys

import numpy as np
import pandas as pd
import pytest

from tgrpo_lib import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "experiments" / "dense_vs_sparse"))
import explore  # noqa: E402


def log(success, has_success, stage=None, skipped=None, kl=None, steps=100):
    n = len(success)
    m = {"step": np.arange(n), "charts/group_success_rate": success, "charts/group_has_success": has_success,
         "charts/env_steps": np.full(n, steps), "update/skipped": skipped if skipped is not None else np.zeros(n),
         "losses/kl_mean": kl if kl is not None else np.zeros(n)}
    if stage is not None:
        m["reward/max_stage_reached"] = stage
    return pd.DataFrame(m)


def test_iterations_drops_evaluation_rows_and_sorts():
    m = pd.DataFrame({"step": [-1, 1, 0, 2], "charts/env_steps": [np.nan, 10, 20, np.nan]})
    assert explore.iterations(m)["step"].tolist() == [0, 1]


def test_run_diagnostics_worked_numbers():
    # 6 iterations, window 2; all-fail groups at iterations 1 (first half, stage 1) and 4, 5 (second half, stages 2, 3)
    it = log(success=[0.5, 0.0, 1.0, 0.25, 0.0, 0.0], has_success=[1, 0, 1, 1, 0, 0], stage=[4, 1, 4, 4, 2, 3],
             skipped=[0, 0, 0, 1, 0, 1], kl=[0.1, 0.2, 0.3, 9.0, 0.5, 9.0])
    d = explore.run_diagnostics(it, window=2)
    assert d["iterations"] == 6 and d["all_fail_groups"] == 3
    assert d["group_success_first"] == pytest.approx(0.25) and d["group_success_last"] == pytest.approx(0.0)
    assert d["fail_stage_first_half"] == pytest.approx(1.0) and d["fail_stage_second_half"] == pytest.approx(2.5)
    assert d["kl_last"] == pytest.approx(0.4)  # updated iterations 0, 1, 2, 4: the last two are 0.3, 0.5


def test_run_diagnostics_sparse_reward_has_no_stages():
    d = explore.run_diagnostics(log(success=[0.0, 1.0], has_success=[0, 1]), window=1)
    assert np.isnan(d["fail_stage_first_half"]) and np.isnan(d["fail_stage_second_half"])
    assert explore.stages(d["fail_stage_first_half"], d["fail_stage_second_half"]) == "–"
    assert explore.stages(1.0, 2.5) == "1.00 → 2.50"


def test_curve_is_a_trailing_mean_by_cumulative_env_steps():
    c = explore.curve(log(success=[0.0, 1.0, 0.5, 0.5], has_success=[0, 1, 1, 1], steps=10), window=2)
    assert c.index.tolist() == [10, 20, 30, 40]
    assert np.isnan(c.iloc[0]) and c.iloc[1:].tolist() == pytest.approx([0.5, 0.75, 0.5])


def test_with_carried_adds_only_runs_not_finished_here():
    here = pd.DataFrame([{"regime": "long", "arm": "TGRPO", "seed": 0, "kl_last": 5.0}])
    earlier = pd.DataFrame([{"regime": "long", "arm": "TGRPO", "seed": 0, "kl_last": 9.9},
                            {"regime": "weak", "arm": "TGRPO", "seed": 1, "kl_last": 0.5}])
    t = explore.with_carried(here, earlier)
    assert t[["seed", "kl_last", "records"]].to_dict("records") == [
        {"seed": 0, "kl_last": 5.0, "records": "here"}, {"seed": 1, "kl_last": 0.5, "records": "carried"}]
    assert explore.with_carried(pd.DataFrame(), earlier)["records"].tolist() == ["carried", "carried"]
