"""Power of the study's primary test, simulated before any study run (PROTOCOL.md, "Power").

A run's success on state s is Bernoulli(sigmoid(mu_arm + u_s + v_run)): u_s ~ N(0, state_sd) is
how hard the layout is (shared by every run: the same test states), v_run ~ N(0, run_sd) is how
good one RL seed's policy came out. The spreads are the ones measured on the committed runs from
checkpoint D (state spread 1.5 on the logit scale, run-to-run spread 0.6: issue 33's re-analysis).
For a true difference of ``delta`` points at a baseline rate, the share of simulated studies in
which ``stats.run_permutation_p_value`` over runs rejects at 0.05 is the power; at delta = 0 it is
the false-positive rate. Prints one Markdown table.

    .venv/bin/python experiments/dense_vs_sparse/power.py            # ~1 min
"""
from __future__ import annotations

import argparse

import numpy as np

from tgrpo_lib.stats import run_permutation_p_value


def simulate(runs: int, states: int, base: float, delta: float, state_sd: float, run_sd: float,
             sims: int, rng: np.random.Generator) -> float:
    """Share of ``sims`` simulated studies rejecting at 0.05 (two-sided, unit = run)."""
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    mu_a, mu_b = logit(base + delta), logit(base)
    rejections = 0
    for _ in range(sims):
        u = rng.normal(0, state_sd, states)
        rates = []
        for mu in (mu_a, mu_b):
            v = rng.normal(0, run_sd, (runs, 1))
            p = 1 / (1 + np.exp(-(mu + u[None, :] + v)))
            rates.append((rng.random((runs, states)) < p).mean(1))
        rejections += run_permutation_p_value(*rates) < 0.05
    return rejections / sims


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sims", type=int, default=400)
    ap.add_argument("--base", type=float, default=0.5, help="the sparse arm's success rate")
    ap.add_argument("--state-sd", type=float, default=1.5)
    ap.add_argument("--run-sd", type=float, default=0.6)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"| runs per arm | test states | true difference | rejections at 0.05 ({a.sims} simulated studies) |")
    print("|---|---|---|---|")
    for runs in (4, 8):
        for delta in (0.0, 0.10, 0.15):
            power = simulate(runs, 100, a.base, delta, a.state_sd, a.run_sd, a.sims, rng)
            print(f"| {runs} | 100 | {100 * delta:+.0f} pts (from {100 * a.base:.0f} %) | {100 * power:.1f} % |", flush=True)


if __name__ == "__main__":
    main()
