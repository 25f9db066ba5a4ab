"""Intervals and paired tests for success rates: the one home for the numbers every table carries.

Every success rate shown or saved carries its n and a 95 % Wilson interval (``success_summary``,
``format_rate``); a before/after change on the same init states carries an exact McNemar test
(``paired_change``, ``format_change``); two rates on different episodes carry Fisher's exact test
(``fisher_exact_counts``); a result over seeds carries mean, sd and the seed count
(``seed_summary``, ``format_seeds``). Pure python (``math``, ``statistics``): no numpy or scipy.

    before, after = [True, False, ...], [True, True, ...]  # one flag per init state, same order
    print(format_rate(success_summary(after)))   # 46.0 % [33.0, 59.6] (n=50)
    print(format_change(paired_change(before, after)))  # +12.0 pts, p = 0.146 (exact McNemar, b=3, c=9)
"""
from __future__ import annotations

import math
import numbers
import statistics
from typing import Iterable

MCNEMAR_TEST = "exact McNemar (two-sided)"
FISHER_TEST = "Fisher exact (two-sided, unpaired)"


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
