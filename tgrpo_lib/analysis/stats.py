"""Intervals and paired tests for success rates: the one home for the numbers every table carries.

Every success rate shown or saved carries its n and a 95 % Wilson interval (``success_summary``,
``format_rate``); a before/after change on the same init states carries an exact McNemar test
(``paired_change``, ``format_change``); two rates on different episodes carry Fisher's exact test
(``fisher_exact_counts``); a result over seeds carries mean, sd and the seed count
(``seed_summary``, ``format_seeds``).

Several runs on the same init states are not independent observations of a state: greedy
evaluation of one start checkpoint is deterministic, so every RL seed from it shares the same
"before" flags, and states that are easy stay easy across seeds. The unit of a test is what is
independent (``paired_over_seeds``: the init state, for seeds from one start; ``compare_methods``:
the run, for two methods), and every interval counts distinct init states (``rate_over_runs``).
``holm`` adjusts a declared family of p-values. The functions on flag matrices use numpy.

    before, after = [True, False, ...], [True, True, ...]  # one flag per init state, same order
    print(format_rate(success_summary(after)))   # 46.0 % [33.0, 59.6] (n=50)
    print(format_change(paired_change(before, after)))  # +12.0 pts, p = 0.146 (exact McNemar, b=3, c=9)
"""
from __future__ import annotations

import functools
import itertools
import math
import numbers
import statistics
from typing import Iterable, Mapping

import numpy as np

MCNEMAR_TEST = "exact McNemar (two-sided)"
FISHER_TEST = "Fisher exact (two-sided, unpaired)"
SIGN_FLIP_TEST = "exact sign-flip permutation over init states (two-sided)"
RUN_PERMUTATION_TEST = "exact permutation over runs (two-sided)"
BOOTSTRAP_DRAWS = 10_000
EXACT_SPLITS_MAX = 500_000  # above this many run splits the permutation test is sampled


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name}={value!r}: pass a count (an int >= 0).")
    return int(value)


def _flags(values: Iterable, name: str) -> list[bool]:
    """Success flags as bools; each must be True/False (or 1/0)."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name}: pass a sequence of success flags (True/False), not a string.")
    flags = []
    for i, v in enumerate(values):
        try:
            ok = not isinstance(v, (str, bytes)) and v in (0, 1)  # True == 1, numpy bools included
        except (TypeError, ValueError):  # e.g. an array where a flag was expected
            ok = False
        if not ok:
            raise ValueError(f"{name}[{i}]={v!r}: each success flag must be True/False (or 1/0).")
        flags.append(bool(v))
    return flags


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n = 0.

    With p = successes / n and z the two-sided normal quantile:
    centre = (p + z^2 / 2n) / (1 + z^2 / n), half = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n).
    """
    successes, n = _count(successes, "successes"), _count(n, "n")
    if successes > n:
        raise ValueError(f"successes={successes} > n={n}: a success count cannot exceed its episodes.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r}: pass a level in (0, 1), e.g. 0.95.")
    if n == 0:
        return math.nan, math.nan
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = successes / n, z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # the bounds at 0 / n successes are exactly 0 / 1; rounding would leave them a hair off
    low = 0.0 if successes == 0 else centre - half
    high = 1.0 if successes == n else centre + half
    return low, high


def mcnemar_exact_counts(b: int, c: int) -> dict:
    """Exact two-sided McNemar test from the discordant counts.

    b = before success / after failure, c = before failure / after success. Under no change
    X ~ Bin(b + c, 1/2); p = min(1, 2 P(X <= min(b, c))), and p = 1 when b + c = 0.
    """
    b, c = _count(b, "b"), _count(c, "c")
    m = b + c
    tail = sum(math.comb(m, k) for k in range(min(b, c) + 1))  # exact integers: no underflow
    p = min(1.0, 2 * tail / 2**m)
    return {"b": b, "c": c, "p_value": p, "test": MCNEMAR_TEST}


def mcnemar_exact(before: Iterable, after: Iterable) -> dict:
    """Exact McNemar test on paired success flags (the same init states, in the same order)."""
    before, after = _flags(before, "before"), _flags(after, "after")
    if len(before) != len(after):
        raise ValueError(f"before has {len(before)} flags, after {len(after)}: pass one flag per init state "
                         "for the same init states.")
    b = sum(x and not y for x, y in zip(before, after))
    c = sum(y and not x for x, y in zip(before, after))
    return mcnemar_exact_counts(b, c)


def fisher_exact_counts(successes_a: int, n_a: int, successes_b: int, n_b: int) -> dict:
    """Fisher's exact two-sided test that two independent success rates are equal.

    With the margins fixed, A's successes X ~ Hypergeometric(n_a + n_b, k = successes_a + successes_b,
    n_a): P(X = x) = C(k, x) C(n - k, n_a - x) / C(n, n_a). p sums P over every table no more likely
    than the observed one (compared as exact integers, so ties are exact); p = 1 when either n is 0.
    """
    successes_a, n_a = _count(successes_a, "successes_a"), _count(n_a, "n_a")
    successes_b, n_b = _count(successes_b, "successes_b"), _count(n_b, "n_b")
    for s, n, side in ((successes_a, n_a, "a"), (successes_b, n_b, "b")):
        if s > n:
            raise ValueError(f"successes_{side}={s} > n_{side}={n}: a success count cannot exceed its episodes.")
    n, k = n_a + n_b, successes_a + successes_b
    weights = [math.comb(k, x) * math.comb(n - k, n_a - x) for x in range(max(0, n_a - (n - k)), min(k, n_a) + 1)]
    observed = math.comb(k, successes_a) * math.comb(n - k, n_a - successes_a)
    p = sum(w for w in weights if w <= observed) / math.comb(n, n_a)  # int / int: exact, then rounded once
    return {"successes_a": successes_a, "n_a": n_a, "successes_b": successes_b, "n_b": n_b,
            "p_value": min(1.0, p), "test": FISHER_TEST}


def success_summary(flags: Iterable, confidence: float = 0.95) -> dict:
    """n, successes, rate and the Wilson interval (ci_low, ci_high) of a list of success flags."""
    flags = _flags(flags, "flags")
    n, successes = len(flags), sum(flags)
    low, high = wilson_interval(successes, n, confidence)
    return {"n": n, "successes": successes, "rate": successes / n if n else math.nan, "ci_low": low, "ci_high": high}


def paired_change(before: Iterable, after: Iterable) -> dict:
    """Before/after on the same init states: both summaries, the change in rate and McNemar's test."""
    before, after = _flags(before, "before"), _flags(after, "after")
    test = mcnemar_exact(before, after)
    summary_before, summary_after = success_summary(before), success_summary(after)
    return {"before": summary_before, "after": summary_after, "change": summary_after["rate"] - summary_before["rate"],
            **test}


def seed_summary(values: Iterable[float]) -> dict:
    """Mean and sample sd (ddof = 1; nan for fewer than two seeds) of one result per seed."""
    values = list(values)
    for i, v in enumerate(values):
        if isinstance(v, (bool, str, bytes)) or not isinstance(v, numbers.Real):
            raise ValueError(f"values[{i}]={v!r}: pass one number per seed.")
    values = [float(v) for v in values]
    mean = statistics.fmean(values) if values else math.nan
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return {"mean": mean, "sd": sd, "n_seeds": len(values)}


def format_rate(summary: dict) -> str:
    """``46.0 % [33.0, 59.6] (n=50)`` from a ``success_summary``."""
    if summary["n"] == 0:
        return "n/a (n=0)"
    low, high = 100 * summary["ci_low"], 100 * summary["ci_high"]
    return f"{100 * summary['rate']:.1f} % [{low:.1f}, {high:.1f}] (n={summary['n']})"


def format_p(p: float) -> str:
    """``p = 0.146``, or ``p < 0.001`` below three decimals."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def format_change(change: dict) -> str:
    """``+12.0 pts, p = 0.146 (exact McNemar, b=3, c=9)`` from a ``paired_change``; a change
    tested with ``fisher_exact_counts`` (``test`` = FISHER_TEST) reads ``(Fisher exact, unpaired)``."""
    if math.isnan(change["change"]):
        return "n/a (n=0)"
    if change.get("test", MCNEMAR_TEST) == FISHER_TEST:
        test = "Fisher exact, unpaired"
    else:
        test = f"exact McNemar, b={change['b']}, c={change['c']}"
    return f"{100 * change['change']:+.1f} pts, {format_p(change['p_value'])} ({test})"


def format_seeds(summary: dict, digits: int = 1) -> str:
    """``46.0 ± 3.1 (3 seeds)`` from a ``seed_summary`` (values printed in their own units)."""
    if summary["n_seeds"] == 0:
        return "n/a (0 seeds)"
    sd = "n/a" if math.isnan(summary["sd"]) else f"{summary['sd']:.{digits}f}"
    seeds = "1 seed" if summary["n_seeds"] == 1 else f"{summary['n_seeds']} seeds"
    return f"{summary['mean']:.{digits}f} ± {sd} ({seeds})"


# ------------------------------------------------------------------------------ runs that share init states
def _flag_matrix(values, name: str) -> np.ndarray:
    """(runs, states) 0/1 matrix; a 1-D sequence is one run."""
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name}: pass 0/1 success flags shaped (runs, states), got shape {arr.shape}.")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name}: each success flag must be True/False (or 1/0).")
    return arr.astype(np.int64)


def rate_over_runs(flags, confidence: float = 0.95) -> dict:
    """Success of one arm over ``runs`` x ``states`` flags (every run on the same states).

    rate = the mean over runs and states; the Wilson interval counts the *distinct init states*
    (n = states, successes = rate x states), never states x runs: the runs share their states,
    so a state that is hard for one seed is hard for the others. For one run it is
    ``success_summary``'s interval. The per-run rates' mean / sd describe the seed spread."""
    x = _flag_matrix(flags, "flags")
    runs, states = x.shape
    rate = float(x.mean())
    low, high = wilson_interval_fractional(rate * states, states, confidence)
    per_run = x.mean(1)
    return {"rate": rate, "n": states, "n_states": states, "n_runs": runs, "ci_low": low, "ci_high": high,
            "run_rates": per_run.tolist(), "run_sd": float(per_run.std(ddof=1)) if runs > 1 else math.nan}


def wilson_interval_fractional(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """``wilson_interval`` for a (possibly fractional) success count: a rate averaged over runs
    on n distinct init states (the same formula; an integer count gives exactly ``wilson_interval``)."""
    if float(successes).is_integer():
        return wilson_interval(int(successes), n, confidence)
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = successes / n, z * z
    denom = 1 + z2 / n
    centre, half = (p + z2 / (2 * n)) / denom, z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def sign_flip_p_value(scores: Iterable[int]) -> float:
    """Exact two-sided p-value of the sign-flip permutation test on integer paired scores.

    H0: each score is symmetric about 0, so flipping its sign leaves the sum T's distribution
    unchanged (Fisher 1935, Ch. 21; Good, "Permutation Tests", 2nd ed., Sec. 3.6). The null
    distribution of T = sum(+-|s_i|) over all 2^k sign patterns is counted exactly by dynamic
    programming over the attainable sums; p = P(|T| >= |t_obs|). With scores in {-1, 0, +1}
    this is the exact McNemar (sign) test."""
    scores = [int(v) for v in scores]
    observed = abs(sum(scores))
    counts = {0: 1}  # attainable sum -> number of sign patterns (exact integers)
    for v in (abs(s) for s in scores if s):
        nxt: dict[int, int] = {}
        for total, ways in counts.items():
            for t in (total + v, total - v):
                nxt[t] = nxt.get(t, 0) + ways
        counts = nxt
    tail = sum(ways for total, ways in counts.items() if abs(total) >= observed)
    return min(1.0, tail / sum(counts.values()))


def paired_over_seeds(before, after, confidence: float = 0.95, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> dict:
    """Before/after over several runs that share their init states (RL seeds from one start).

    ``before``, ``after``: 0/1 arrays (runs, states), row r of each the same run, column s the
    same init state in both (a 1-D array is one run; a single ``before`` row is used for every
    run, as for a deterministic greedy start). The unit is the init state: each state's change
    d_s = mean over runs of (after - before), and the test is the exact sign-flip permutation
    over states of sum_s d_s (``sign_flip_p_value`` on runs x d_s, integers): exact, no large-sample
    approximation (Durkalski et al. 2003's clustered McNemar is its chi-square counterpart), and
    for one run it is exactly McNemar's test. Stacking one run k times leaves every d_s, hence the
    p-value, unchanged. The interval of the mean change is a percentile bootstrap over states
    (Efron & Tibshirani 1993, Ch. 13); the seed spread is the sd of the runs' own changes."""
    a = _flag_matrix(after, "after")
    b = _flag_matrix(before, "before")
    if b.shape[0] == 1 and a.shape[0] > 1:
        b = np.repeat(b, a.shape[0], axis=0)
    if a.shape != b.shape:
        raise ValueError(f"before is {b.shape} and after {a.shape}: pass (runs, states) flags for the same runs "
                         "and the same init states.")
    runs, states = a.shape
    per_state = (a - b).mean(0)  # (S,) d_s
    scores = (a - b).sum(0)  # (S,) runs x d_s, integers
    boot = np.random.default_rng(seed).integers(0, states, size=(draws, states))
    means = per_state[boot].mean(1)
    alpha = (1 - confidence) / 2
    per_run = (a - b).mean(1)
    return {"before": rate_over_runs(b, confidence), "after": rate_over_runs(a, confidence),
            "change": float(per_state.mean()), "p_value": sign_flip_p_value(scores), "test": SIGN_FLIP_TEST,
            "ci_low": float(np.quantile(means, alpha)), "ci_high": float(np.quantile(means, 1 - alpha)),
            "n_states": states, "n_runs": runs, "states_gained": int((per_state > 0).sum()),
            "states_lost": int((per_state < 0).sum()), "run_changes": per_run.tolist(),
            "run_change_sd": float(per_run.std(ddof=1)) if runs > 1 else math.nan}


def run_permutation_p_value(a: Iterable[float], b: Iterable[float], samples: int = 200_000, seed: int = 0) -> float:
    """Two-sided permutation p-value for mean(a) - mean(b), the runs' labels exchanged.

    Exact over every split of the pooled runs into groups of len(a) and len(b) when there are at
    most ``EXACT_SPLITS_MAX`` splits (Good 2005, Sec. 3.1); else ``samples`` random splits with
    the observed one counted in (Phipson & Smyth 2010), so p is never 0. With 3 runs per arm
    there are 20 splits: no p below 2/20 = 0.1."""
    a, b = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("pass at least one run per arm.")
    pooled, k = np.concatenate([a, b]), len(a)
    total = pooled.sum()
    observed = abs(a.mean() - b.mean())
    tol = 1e-12 * max(1.0, observed)

    def stat(sum_a):
        return np.abs(sum_a / k - (total - sum_a) / len(b))
    if math.comb(len(pooled), k) <= EXACT_SPLITS_MAX:
        sums = pooled[_splits(len(pooled), k)].sum(1)
        return float((stat(sums) >= observed - tol).mean())
    rng = np.random.default_rng(seed)
    sums = np.array([pooled[rng.permutation(len(pooled))[:k]].sum() for _ in range(samples)])
    return float(((stat(sums) >= observed - tol).sum() + 1) / (samples + 1))


@functools.lru_cache(maxsize=16)
def _splits(n: int, k: int) -> np.ndarray:
    """(C(n, k), k) indices of every k-subset of n runs."""
    return np.array(list(itertools.combinations(range(n), k)), dtype=np.int64).reshape(-1, k)


def compare_methods(a, b, confidence: float = 0.95, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> dict:
    """Two methods on the same init states, one row per independent run: ``a`` (runs_a, states),
    ``b`` (runs_b, states), column s the same init state in both.

    The unit is the run: each run's success rate over the states, and an exact permutation test
    of the difference of the arms' mean rates (``run_permutation_p_value``). The interval of the
    difference is a percentile bootstrap that resamples runs within each arm and, jointly for both
    arms, the init states (a two-way bootstrap: Davison & Hinkley 1997, Sec. 3.8), so it carries
    both the run-to-run and the state-to-state spread."""
    x, y = _flag_matrix(a, "a"), _flag_matrix(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"a has {x.shape[1]} states and b {y.shape[1]}: pass both methods on the same init states.")
    states = x.shape[1]
    rng = np.random.default_rng(seed)
    w = rng.multinomial(states, np.full(states, 1 / states), size=draws)  # (B, S) state weights
    diffs = []
    for m in (x, y):
        runs = m.shape[0]
        u = rng.multinomial(runs, np.full(runs, 1 / runs), size=draws)  # (B, R) run weights
        diffs.append(((u @ m) * w).sum(1) / (runs * states))
    boot = diffs[0] - diffs[1]
    alpha = (1 - confidence) / 2
    return {"a": rate_over_runs(x, confidence), "b": rate_over_runs(y, confidence),
            "diff": float(x.mean() - y.mean()), "p_value": run_permutation_p_value(x.mean(1), y.mean(1), seed=seed),
            "test": RUN_PERMUTATION_TEST, "ci_low": float(np.quantile(boot, alpha)),
            "ci_high": float(np.quantile(boot, 1 - alpha)), "n_states": states,
            "n_runs_a": x.shape[0], "n_runs_b": y.shape[0]}


def holm(p_values: Mapping[str, float] | Iterable[float]) -> dict | list:
    """Holm's step-down adjustment of a declared family (Holm 1979): the i-th smallest of m
    p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)). Controls the family-wise error
    rate under any dependence. Returns the same shape it was given (dict or list)."""
    keys = list(p_values) if isinstance(p_values, Mapping) else None
    values = [float(p_values[k]) for k in keys] if keys is not None else [float(p) for p in p_values]
    for v in values:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"p-value {v!r}: each must lie in [0, 1].")
    m, running, adjusted = len(values), 0.0, [0.0] * len(values)
    for rank, i in enumerate(sorted(range(m), key=values.__getitem__)):
        running = max(running, min(1.0, (m - rank) * values[i]))
        adjusted[i] = running
    return dict(zip(keys, adjusted)) if keys is not None else adjusted


def format_over_seeds(result: dict) -> str:
    """``+12.0 pts [4.0, 20.0], p = 0.031 (sign-flip over 50 states, 3 runs)`` from
    ``paired_over_seeds``; ``compare_methods``' result reads ``(permutation over 3 vs 3 runs, 50 states)``."""
    if "n_runs_a" in result:
        how, diff = f"permutation over {result['n_runs_a']} vs {result['n_runs_b']} runs, {result['n_states']} states", result["diff"]
    else:
        runs = "1 run" if result["n_runs"] == 1 else f"{result['n_runs']} runs"
        how, diff = f"sign-flip over {result['n_states']} states, {runs}", result["change"]
    return (f"{100 * diff:+.1f} pts [{100 * result['ci_low']:+.1f}, {100 * result['ci_high']:+.1f}], "
            f"{format_p(result['p_value'])} ({how})")
