"""Wilson intervals, exact McNemar and the seed summary, against numbers worked out by hand and
published tables."""
import math

import numpy as np
import pytest

from tgrpo_lib.analysis.stats import (FISHER_TEST, MCNEMAR_TEST, fisher_exact_counts, format_change, format_rate,
                                      format_seeds, mcnemar_exact, mcnemar_exact_counts, paired_change, seed_summary,
                                      success_summary, wilson_interval)

Z95 = 1.959964  # two-sided 95 % normal quantile; z^2 = 3.841459


def test_wilson_by_hand():
    # 0/10: p = 0, 1 + z^2/n = 1.3841459, centre = (z^2/20) / 1.3841459 = 0.138766, half the same -> [0, 0.277533]
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.277533, abs=1e-6))
    # 5/10: centre 0.5; half = z sqrt(0.025 + z^2/400) / 1.3841459 = 1.959964 * 0.186021 / 1.3841459 = 0.263407
    assert wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert wilson_interval(10, 10) == (pytest.approx(0.722467, abs=1e-6), 1.0)  # mirror of 0/10
    # 18/50: p = 0.36, 1 + z^2/50 = 1.0768292, centre = (0.36 + 0.0384146) / 1.0768292 = 0.369989,
    # half = z sqrt(0.004608 + 0.0003841) / 1.0768292 = 0.128601
    assert wilson_interval(18, 50) == pytest.approx((0.241387, 0.498590), abs=1e-6)


def test_wilson_matches_newcombe_1998():
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (score interval without continuity correction)
    for (k, n), expected in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611),
                             (1, 29): (0.0061, 0.1718)}.items():
        assert wilson_interval(k, n) == pytest.approx(expected, abs=5e-5), (k, n)


def test_wilson_properties():
    for n in range(1, 31):
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0
            mirror = wilson_interval(n - k, n)
            assert low == pytest.approx(1 - mirror[1], abs=1e-12) and high == pytest.approx(1 - mirror[0], abs=1e-12)
    width = lambda k, n, conf=0.95: np.subtract(*wilson_interval(k, n, conf)[::-1])  # noqa: E731
    assert width(50, 100) < width(5, 10)  # more episodes, narrower
    assert width(5, 10, 0.99) > width(5, 10) > width(5, 10, 0.80)


def test_wilson_edge_cases_and_bad_input():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    assert wilson_interval(np.int64(5), np.int64(10)) == wilson_interval(5, 10)  # counts straight from numpy sums
    for args in [(-1, 10), (11, 10), (2.5, 10), (5, 10.0), (True, 1), ("5", 10), (5, 10, 0.0), (5, 10, 1.0),
                 (5, 10, 95)]:
        with pytest.raises(ValueError):
            wilson_interval(*args)


def test_mcnemar_by_hand():
    # b = 0, c = 6: X ~ Bin(6, 1/2), p = 2 P(X <= 0) = 2 * 0.5**6
    assert mcnemar_exact_counts(0, 6)["p_value"] == 2 * 0.5**6 == 0.03125
    # b = 3, c = 9: P(X <= 3) for Bin(12, 1/2) = (C(12,0) + C(12,1) + C(12,2) + C(12,3)) / 2**12
    #   = (1 + 12 + 66 + 220) / 4096 = 299 / 4096, so p = 598 / 4096 = 0.14599609375
    assert mcnemar_exact_counts(3, 9) == {"b": 3, "c": 9, "p_value": 598 / 4096, "test": MCNEMAR_TEST}
    # b = 2, c = 8: (1 + 10 + 45) / 1024 = 56 / 1024, p = 0.109375
    assert mcnemar_exact_counts(2, 8)["p_value"] == 0.109375
    # 2 P(X <= min) reaches past 1 whenever b = c, or with a single discordant pair: capped
    assert mcnemar_exact_counts(5, 5)["p_value"] == 1.0 and mcnemar_exact_counts(1, 0)["p_value"] == 1.0
    assert mcnemar_exact_counts(0, 0)["p_value"] == 1.0  # no discordant pair: no evidence either way


def test_mcnemar_on_flags_and_symmetry():
    # 12 init states: 3 lost (b), 9 gained (c), the rest unchanged
    before = [True] * 3 + [False] * 9 + [True] * 5 + [False] * 3
    after = [False] * 3 + [True] * 9 + [True] * 5 + [False] * 3
    assert mcnemar_exact(before, after) == mcnemar_exact_counts(3, 9)
    swapped = mcnemar_exact(after, before)
    assert (swapped["b"], swapped["c"], swapped["p_value"]) == (9, 3, 598 / 4096)
    order = np.random.default_rng(0).permutation(len(before))  # the pairs, not their order, carry the test
    assert mcnemar_exact([before[i] for i in order], [after[i] for i in order]) == mcnemar_exact(before, after)
    assert mcnemar_exact(np.array(before), np.array(after, dtype=int)) == mcnemar_exact(before, after)
    for b in range(8):
        for c in range(8):
            assert mcnemar_exact_counts(b, c)["p_value"] == mcnemar_exact_counts(c, b)["p_value"]
    # exact integers: no underflow or overflow for long evaluations
    assert mcnemar_exact_counts(1000, 1000)["p_value"] == 1.0
    assert mcnemar_exact_counts(0, 2000)["p_value"] == 0.0


def test_mcnemar_bad_input():
    assert mcnemar_exact([], [])["p_value"] == 1.0
    with pytest.raises(ValueError, match="same init states"):
        mcnemar_exact([True, False], [True])
    for bad in ([0.5], ["yes"], [None], [float("nan")], [2]):
        with pytest.raises(ValueError, match="True/False"):
            mcnemar_exact(bad, [True])
    with pytest.raises(ValueError, match="string"):
        mcnemar_exact("10", [True, False])
    with pytest.raises(ValueError):
        mcnemar_exact_counts(-1, 3)


def test_fisher_by_hand():
    # Fisher's tea: 3/4 vs 1/4; margins 4, 4 of 8, weights C(4,x) C(4,4-x) for x = 0..4: 1, 16, 36, 16, 1 (of 70);
    # the tables no more likely than x = 3 (16): 1 + 16 + 16 + 1 = 34 -> p = 34/70
    tea = fisher_exact_counts(3, 4, 1, 4)
    assert tea == {"successes_a": 3, "n_a": 4, "successes_b": 1, "n_b": 4, "p_value": 34 / 70, "test": FISHER_TEST}
    # 1/3 vs 3/3: k = 4 of 6, x = 1..3 with weights 4, 12, 4 (of C(6,3) = 20) -> p = 8/20
    assert fisher_exact_counts(1, 3, 3, 3)["p_value"] == pytest.approx(0.4)
    # 0/5 vs 5/5: only the two extreme tables (1 each of C(10,5) = 252) -> p = 2/252
    assert fisher_exact_counts(0, 5, 5, 5)["p_value"] == pytest.approx(2 / 252)
    assert fisher_exact_counts(9, 20, 9, 20)["p_value"] == 1.0 and fisher_exact_counts(0, 0, 3, 5)["p_value"] == 1.0
    assert fisher_exact_counts(3, 4, 1, 4)["p_value"] == fisher_exact_counts(1, 4, 3, 4)["p_value"]  # symmetric
    assert fisher_exact_counts(np.int64(3), np.int64(4), 1, 4)["p_value"] == 34 / 70
    assert fisher_exact_counts(0, 2000, 2000, 2000)["p_value"] == 0.0  # exact integers: no overflow
    for args in [(5, 4, 1, 4), (1, 4, 5, 4), (-1, 4, 1, 4), (1.0, 4, 1, 4)]:
        with pytest.raises(ValueError):
            fisher_exact_counts(*args)


def test_format_change_of_an_unpaired_difference():
    change = {"change": 9 / 20 - 17 / 20, **fisher_exact_counts(17, 20, 9, 20)}
    assert format_change(change) == f"-40.0 pts, p = {change['p_value']:.3f} (Fisher exact, unpaired)"
    assert "b=" not in format_change(change)


def test_success_summary_and_format_rate():
    flags = [True] * 23 + [False] * 27
    s = success_summary(flags)
    assert (s["n"], s["successes"], s["rate"]) == (50, 23, 0.46)
    assert (s["ci_low"], s["ci_high"]) == wilson_interval(23, 50)
    assert format_rate(s) == "46.0 % [33.0, 59.6] (n=50)"  # 23/50: [0.329697, 0.596011]
    empty = success_summary([])
    assert empty["n"] == 0 and math.isnan(empty["rate"]) and math.isnan(empty["ci_low"])
    assert format_rate(empty) == "n/a (n=0)"


def test_paired_change_and_format_change():
    # 50 init states: 20 -> 26 successes, 3 lost and 9 gained
    before = [True] * 17 + [True] * 3 + [False] * 9 + [False] * 21
    after = [True] * 17 + [False] * 3 + [True] * 9 + [False] * 21
    ch = paired_change(before, after)
    assert ch["before"] == success_summary(before) and ch["after"] == success_summary(after)
    assert ch["change"] == pytest.approx(0.12) and (ch["b"], ch["c"]) == (3, 9)
    assert ch["p_value"] == 598 / 4096 and ch["test"] == "exact McNemar (two-sided)"
    assert format_change(ch) == "+12.0 pts, p = 0.146 (exact McNemar, b=3, c=9)"
    back = paired_change(after, before)
    assert back["change"] == pytest.approx(-0.12) and (back["b"], back["c"]) == (9, 3)
    assert back["p_value"] == ch["p_value"]
    assert format_change(back) == "-12.0 pts, p = 0.146 (exact McNemar, b=9, c=3)"
    assert format_change(paired_change([False] * 12, [True] * 12)) == "+100.0 pts, p < 0.001 (exact McNemar, b=0, c=12)"
    assert format_change(paired_change([], [])) == "n/a (n=0)"
    with pytest.raises(ValueError):
        paired_change([True], [True, True])


def test_seed_summary_and_format():
    # 0.4, 0.5, 0.6: mean 0.5, sd = sqrt((0.01 + 0 + 0.01) / (3 - 1)) = 0.1
    s = seed_summary([0.4, 0.5, 0.6])
    assert s["mean"] == pytest.approx(0.5) and s["sd"] == pytest.approx(0.1) and s["n_seeds"] == 3
    assert format_seeds(seed_summary([40.0, 50.0, 60.0])) == "50.0 ± 10.0 (3 seeds)"
    one = seed_summary([0.3])
    assert one["mean"] == 0.3 and math.isnan(one["sd"]) and one["n_seeds"] == 1
    assert format_seeds(one, digits=2) == "0.30 ± n/a (1 seed)"
    assert seed_summary([])["n_seeds"] == 0 and format_seeds(seed_summary([])) == "n/a (0 seeds)"
    assert seed_summary(np.array([1.0, 3.0]))["sd"] == pytest.approx(math.sqrt(2))
    for bad in (["0.5"], [None], [True, False]):
        with pytest.raises(ValueError):
            seed_summary(bad)


def test_agrees_with_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    for n in range(1, 41):
        for k in range(n + 1):
            for conf in (0.95, 0.9):
                ci = stats.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
                assert wilson_interval(k, n, conf) == pytest.approx((ci.low, ci.high), abs=1e-12)
    for b in range(25):
        for c in range(25):
            if b + c:
                expected = stats.binomtest(b, b + c).pvalue
                assert mcnemar_exact_counts(b, c)["p_value"] == pytest.approx(expected, rel=1e-12)
    for n_a, n_b in ((4, 4), (10, 7), (20, 20), (50, 25)):
        for k_a in range(n_a + 1):
            for k_b in range(0, n_b + 1, 3):
                expected = stats.fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]]).pvalue
                assert fisher_exact_counts(k_a, n_a, k_b, n_b)["p_value"] == pytest.approx(expected, rel=1e-9, abs=1e-15)


# ------------------------------------------------------------------------------ runs sharing init states
from tgrpo_lib.analysis.stats import (RUN_PERMUTATION_TEST, SIGN_FLIP_TEST, compare_methods,  # noqa: E402
                                      format_over_seeds, holm, paired_over_seeds, rate_over_runs,
                                      run_permutation_p_value, sign_flip_p_value)


def test_sign_flip_by_hand():
    # scores 2 and 1: the 4 sign patterns sum to 3, 1, -1, -3; |T| >= 3 in 2 of 4
    assert sign_flip_p_value([2, 1]) == 0.5
    # 3 runs gained states 0 and 1 in all 3 seeds, state 2 in one seed: +-3 +-3 +-1 over 8 patterns sums to
    # 7, 5, 1, -1, 1, -1, -5, -7; |T| >= 7 in 2 of 8
    assert sign_flip_p_value([3, 3, 1, 0, 0]) == 0.25
    assert sign_flip_p_value([0, 0]) == 1.0  # no state changed
    # 6 states all gained: only the all-plus and all-minus patterns reach |T| = 6 -> 2 / 64
    assert sign_flip_p_value([1] * 6) == 2 / 64


def test_sign_flip_on_one_run_is_exact_mcnemar():
    rng = np.random.default_rng(3)
    for _ in range(20):
        before, after = rng.integers(0, 2, 40), rng.integers(0, 2, 40)
        assert paired_over_seeds(before, after)["p_value"] == pytest.approx(mcnemar_exact(before, after)["p_value"],
                                                                            abs=1e-15)


def test_paired_over_seeds_counts_a_state_once_however_many_seeds_repeat_it():
    before = np.array([1] * 37 + [0] * 13)
    after = before.copy()
    after[37:47], after[:2] = 1, 0  # 10 states gained, 2 lost: exact McNemar b=2, c=10, p = 2 * 79 / 4096
    one = paired_over_seeds(before, after)
    assert one["p_value"] == pytest.approx(158 / 4096, abs=1e-15)
    stacked = paired_over_seeds(np.stack([before] * 3), np.stack([after] * 3))
    assert stacked["p_value"] == one["p_value"]  # pooling (seed, state) pairs would give b=6, c=30, p = 6e-5
    assert mcnemar_exact_counts(6, 30)["p_value"] < 1e-4
    assert stacked["change"] == pytest.approx(8 / 50) and stacked["n_states"] == 50 and stacked["n_runs"] == 3
    assert (stacked["ci_low"], stacked["ci_high"]) == (one["ci_low"], one["ci_high"])
    assert stacked["run_change_sd"] == 0.0 and stacked["states_gained"] == 10 and stacked["states_lost"] == 2
    # the start's rate counts 50 states (74 % -> [60.4, 84.1]), not 150
    assert stacked["before"]["n"] == 50 and stacked["before"]["ci_low"] == pytest.approx(wilson_interval(37, 50)[0])


def test_paired_over_seeds_broadcasts_one_deterministic_start_and_averages_seeds():
    before = np.array([0, 0, 0, 1])
    after = np.array([[1, 1, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]])
    r = paired_over_seeds(before, after)
    # per-state changes 3/3, 2/3, 1/3, 0 -> scores 3, 2, 1: sums over 8 sign patterns 6, 4, 2, 0, 0, -2, -4, -6
    assert r["p_value"] == 2 / 8
    assert r["change"] == pytest.approx((1 + 2 / 3 + 1 / 3) / 4)
    assert r["run_changes"] == pytest.approx([0.5, 0.25, 0.75]) and r["run_change_sd"] == pytest.approx(0.25)
    assert r["test"] == SIGN_FLIP_TEST and r["ci_low"] <= r["change"] <= r["ci_high"]


def test_paired_over_seeds_bad_input():
    with pytest.raises(ValueError, match="same init states"):
        paired_over_seeds(np.zeros((2, 5)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="True/False"):
        paired_over_seeds([0, 2], [1, 1])


def test_run_permutation_by_hand():
    # 3 vs 3 runs: 20 splits; the observed split and its mirror are the two most extreme -> 2/20
    assert run_permutation_p_value([0.9, 0.8, 0.7], [0.5, 0.6, 0.4]) == pytest.approx(0.1)
    # [1, 2] vs [3]: splits {1,2}|3 -> |1.5 - 3| = 1.5, {1,3}|2 -> 0, {2,3}|1 -> 1.5: 2 of 3 reach 1.5
    assert run_permutation_p_value([1, 2], [3]) == pytest.approx(2 / 3)
    # 8 vs 8 with complete separation: 2 of C(16, 8) = 12870 splits
    assert run_permutation_p_value(np.arange(8) + 10, np.arange(8)) == pytest.approx(2 / 12870)


def test_compare_methods_unit_is_the_run():
    states = 50
    a = np.zeros((3, states), int)
    b = np.zeros((3, states), int)
    a[:, :40], b[:, :20] = 1, 1
    r = compare_methods(a, b)
    assert r["diff"] == pytest.approx(0.4) and r["test"] == RUN_PERMUTATION_TEST
    assert r["p_value"] == pytest.approx(0.1)  # the floor of 3 vs 3, however large the difference
    assert r["ci_low"] <= 0.4 <= r["ci_high"] and r["ci_low"] > 0
    assert r["a"]["n"] == states and r["a"]["n_runs"] == 3 and r["n_runs_b"] == 3
    # equal arms: the difference 0 sits inside the interval and p = 1
    same = compare_methods(a, a.copy())
    assert same["p_value"] == 1.0 and same["ci_low"] <= 0 <= same["ci_high"]
    with pytest.raises(ValueError, match="same init states"):
        compare_methods(a, b[:, :10])


def test_rate_over_runs_counts_distinct_states():
    flags = np.stack([np.r_[np.ones(37), np.zeros(13)]] * 3)
    r = rate_over_runs(flags)
    assert r["n"] == 50 and r["n_runs"] == 3 and r["rate"] == pytest.approx(0.74)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.604, 0.841), abs=1e-3)  # Wilson 37 of 50
    # a fractional count (mean over runs) lies between its integer neighbours' intervals
    half = rate_over_runs(np.array([[1, 1, 0, 0], [1, 0, 0, 0]]))
    assert wilson_interval(1, 4)[0] < half["ci_low"] < wilson_interval(2, 4)[0]


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04: 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; 1 x 0.04 = 0.04 -> raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm({"primary": 0.2, "other": 0.01}) == pytest.approx({"primary": 0.2, "other": 0.02})
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError):
        holm([1.5])


def test_format_over_seeds():
    r = paired_over_seeds([0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1])
    assert format_over_seeds(r).endswith("p = 0.031 (sign-flip over 6 states, 1 run)")
    assert "permutation over 3 vs 3 runs, 6 states" in format_over_seeds(compare_methods(np.ones((3, 6)), np.zeros((3, 6))))
