"""Sweep curves and a sweep's before/after (``analysis.curves``) from synthetic run directories,
against intervals and tests worked out by hand."""
import math

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from run_dirs import write_run

from tgrpo_lib.analysis import curves, figures, runs_table
from tgrpo_lib.analysis.stats import MCNEMAR_TEST, SIGN_FLIP_TEST, rate_over_runs, wilson_interval


def test_fig5_curves_mean_spread_and_intervals(tmp_path):
    for alpha1, seed, after in ((0.1, 0, 0.4), (0.1, 1, 0.5), (0.3, 0, 0.6), (0.3, 1, 0.8), (0.5, 0, 0.0), (0.5, 1, 0.1)):
        write_run(tmp_path, "tgrpo", "libero_goal", 0, seed, after, before=0.1, alpha1=alpha1)
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.9, before=0.1, alpha1=0.3, group_size=2, env_steps=500)
    write_run(tmp_path, "tgrpo", "libero_object", 0, 0, 0.0, before=0.1, alpha1=0.1)  # other suite: not in Fig. 5
    alpha, n = curves.fig5_curves(runs_table.load_runs(tmp_path))
    point = alpha.set_index(["alpha1", "seed"]).loc[(0.1, 1)]  # one run per point here
    assert (point["successes"], point["n"]) == (5, 10)
    assert (point["ci_low"], point["ci_high"]) == pytest.approx(tuple(100 * v for v in wilson_interval(5, 10)))
    summ = curves.curve_summary(alpha, "alpha1").set_index("alpha1")
    assert summ.loc[0.1, "mean"] == pytest.approx(45) and summ.loc[0.3, "mean"] == pytest.approx(70)
    assert summ.loc[0.1, "std"] == pytest.approx(math.sqrt(50))  # ddof=1 over seeds 40, 50
    assert summ["seeds"].tolist() == [2, 2, 2]
    # alpha1 = 0.1: two runs on the same 10 states -> n = 10 (not 20), 45 %: Wilson with 4.5 of 10,
    # centre = (0.45 + 0.192073) / 1.384146 = 0.463877, half = 0.262454 -> [0.201423, 0.726330]
    assert (summ.loc[0.1, "n"], summ.loc[0.1, "runs"], summ.loc[0.1, "rate"]) == (10, 2, 45)
    assert (summ.loc[0.1, "ci_low"], summ.loc[0.1, "ci_high"]) == pytest.approx((20.1423, 72.6330), abs=1e-4)
    # best: 0.3 (70 %). Against it, unit = run: 0.1's runs 40 / 50 % vs 60 / 80 % are the most extreme
    # 2 of the 6 splits -> p = 1/3, and so are 0.5's: neither is shown below the best (pooled Fisher
    # on 1 / 20 vs 14 / 20 episodes had said p = 3.9e-5)
    assert summ["best"].tolist() == [False, True, False] and math.isnan(summ.loc[0.3, "p_vs_best"])
    assert summ.loc[0.1, "p_vs_best"] == pytest.approx(1 / 3) and summ.loc[0.5, "p_vs_best"] == pytest.approx(1 / 3)
    assert summ["not_sig_vs_best"].tolist() == [True, False, True] and summ.loc[0.3, "vs_best"] == "best"
    nsum = curves.curve_summary(n, "group_size").set_index("group_size")
    assert nsum.loc[2, "mean"] == pytest.approx(90) and nsum.loc[4, "mean"] == pytest.approx(70)
    assert (nsum.loc[2, "n"], nsum.loc[4, "n"]) == (10, 10) and (nsum.loc[2, "runs"], nsum.loc[4, "runs"]) == (1, 2)
    assert (nsum.loc[2, "env_steps"], nsum.loc[4, "env_steps"]) == (500, 1000)
    md = curves.curve_markdown(summ.reset_index(), "alpha1")
    assert "45.0 % [20.1, 72.6] (n=10 states, 2 runs)" in md and "| 1,000 |" in md

    fig = figures.figure_sweep(alpha, "alpha1")
    ax = fig.axes[0]
    bars = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    segments = bars.lines[2][0].get_segments()  # one vertical segment per point: (x, low) -> (x, high)
    drawn = [(seg[0][0], seg[0][1], seg[1][1]) for seg in segments]
    expected = [(x, 100 * r["ci_low"], 100 * r["ci_high"]) for x, r in
                ((x, rate_over_runs([[1] * a + [0] * (10 - a), [1] * b + [0] * (10 - b)]))
                 for x, a, b in ((0.1, 4, 5), (0.3, 6, 8), (0.5, 0, 1)))]
    assert np.allclose(drawn, expected)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("95 % Wilson" in t for t in legend) and any("not shown below best" in t for t in legend)
    hollow = next(line for line in ax.lines if line.get_label().startswith("not shown below best"))
    assert hollow.get_xdata().tolist() == [0.1, 0.5] and hollow.get_markerfacecolor() == "white"
    # the N panel says what each N cost: equal iterations, not equal env steps
    nax = figures.figure_sweep(n, "group_size").axes[0]
    assert [t.get_text() for t in nax.get_xticklabels()] == ["2\n0.5k steps", "4\n1.0k steps"]
    assert "equal iterations, not equal env steps" in nax.get_xlabel()


def test_sweep_before_after_pairs_each_run_with_its_start_and_counts_states(tmp_path):
    T, F = True, False
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.75, 0.25, alpha1=0.1, episodes=4,
              flags={"before": [T, F, F, F], "after": [T, T, T, F]})
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 1, 0.5, 0.5, alpha1=0.1, episodes=4,
              flags={"before": [F, F, T, T], "after": [T, F, T, F]})
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.25, 0.25, alpha1=0.9, episodes=4,
              flags={"before": [T, F, F, F], "after": [F, F, F, T]})
    table = curves.sweep_before_after(runs_table.load_runs(tmp_path), "alpha1", init_sets=("standard", "test"))
    assert table["alpha1"].tolist() == [0.1, 0.1, 0.9, 0.9] and table["runs"].tolist() == [2, 0, 1, 0]
    low = table.iloc[0]
    # two runs on the same 4 states: n = 4 (not 8); before 3 of 8 flags = 37.5 %, after 62.5 %.
    # Per state, the change summed over both runs: +1, +1, +1, -1 (state 3 lost by seed 1);
    # sign-flip over the 4 states: |sum| >= 2 in 10 of the 16 patterns -> p = 0.625
    assert (low["n"], low["before"], low["after"], low["change"]) == (4, 37.5, 62.5, 25.0)
    assert low["p_value"] == pytest.approx(0.625) and low["test"] == SIGN_FLIP_TEST
    # Wilson over 4 states with 1.5 and 2.5 successes: [9.2, 78.1] and [21.9, 90.8]
    assert (low["after_low"], low["after_high"]) == pytest.approx((21.9427, 90.8101), abs=1e-4)
    assert low["text"].startswith("37.5 % [9.2, 78.1] (n=4 states, 2 runs) -> 62.5 % [21.9, 90.8] (n=4 states, 2 runs), "
                                  "+25.0 pts [") and low["text"].endswith("p = 0.625 (sign-flip over 4 states, 2 runs)")
    high = table.iloc[2]  # one run: exact McNemar, b = states lost, c = states gained
    assert (high["b"], high["c"], high["p_value"], high["test"]) == (1, 1, 1.0, MCNEMAR_TEST)
    assert high["text"].endswith("+0.0 pts, p = 1.000 (exact McNemar, b=1, c=1)")
    assert table.iloc[1]["text"] == "not run" and table.iloc[3]["text"] == "not run"  # no test evaluation
    assert curves.sweep_before_after(runs_table.load_runs(tmp_path / "none"), "alpha1").empty
