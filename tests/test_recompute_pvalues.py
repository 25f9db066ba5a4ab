"""experiments/recompute_pvalues/recompute.py on the committed per-state results: the old method
still reproduces every quoted value (the script stops otherwise), and the headline numbers of
docs/statistics.md come out of the new rules."""
import importlib.util
import json

import pytest

from tgrpo_lib import PROJECT_ROOT


@pytest.fixture(scope="module")
def recompute():
    spec = importlib.util.spec_from_file_location("recompute", PROJECT_ROOT / "experiments" / "recompute_pvalues" / "recompute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_headline_over_seeds_takes_the_state_as_unit(recompute):
    runs = json.loads((recompute.RESULTS / "rl_recipe" / "results.json").read_text())["runs"]
    rows = {(r["what"], r["kind"]): r for r in recompute.over_seeds_rows(runs)}
    std = rows[("TGRPO from D (175 demos), headline: SFT -> trained, standard (3 seeds)", "p")]
    # pooled McNemar on 150 (seed, state) pairs (b = 11, c = 35) said 5.4e-4; the 50 states as the unit say 0.031
    assert std["old"] == pytest.approx(5.36e-4, rel=1e-2) and std["new"] == pytest.approx(0.0308, abs=1e-4)
    start = rows[("TGRPO from D (175 demos), headline: SFT start, standard, 74.0 %", "interval")]
    assert [round(100 * v, 1) for v in start["old"]] == [66.4, 80.4]  # n = 150
    assert [round(100 * v, 1) for v in start["new"]] == [60.4, 84.1]  # n = 50 distinct states
    no_flags = rows[("TGRPO e3 from A (lr 3e-4; per-state tables not kept): SFT -> trained, standard (3 seeds)", "p")]
    assert no_flags["new_text"] == recompute.TABLES_MISSING


def test_head_to_heads_are_run_level_and_holm_adjusted(recompute):
    recipe = json.loads((recompute.RESULTS / "rl_recipe" / "results.json").read_text())
    rows = recompute.head_to_head_rows(recipe["runs"], recipe["head_to_head"])
    c_held = next(r for r in rows if "start C" in r["what"] and "held-out" in r["what"])
    assert c_held["old"] == pytest.approx(0.0213, abs=1e-4) and c_held["new"] == pytest.approx(0.4)
    assert all(r["new"] >= 0.1 for r in rows) and min(r["holm"] for r in rows) == 1.0  # 3 vs 3 runs: p >= 0.1


def test_single_runs_are_unchanged_and_fig5_has_no_pooled_test(recompute):
    runs = json.loads((recompute.RESULTS / "rl_recipe" / "results.json").read_text())["runs"]
    single = recompute.single_run_rows(runs)
    assert single and all(r["new"] == pytest.approx(r["old"], rel=1e-6) for r in single)
    assert all(r["new_text"] == recompute.TABLES_MISSING for r in recompute.fig5_rows())
