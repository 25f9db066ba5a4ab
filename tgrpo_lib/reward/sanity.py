"""Sanity checks of a reward on demonstrations before any training uses it (RLinf #940 trap).

`check_reward(program, trajectories, success)`: trajectories are state dicts of (T, ...) arrays
(lengths may differ). Checks:
- monotone: on successful trajectories the *raw* (instantaneous) stage never goes back
  (regressions are counted; the reported stage is a running max and cannot regress); checked for
  the offline compiler, reported only for LLM programs (`require_monotone=False`): the paper's
  LLM decides how its stages behave, what it must get right is the two checks below;
- reaches_last: every successful trajectory ends at raw stage == n_stages;
- ordered: every success's return beats every failure's. Returns are summed over a common
  horizon H = the longest trajectory; a success is padded with its last reward (LIBERO stops an
  episode at success, so success is absorbing), a failure with its last reward too;
- bounded: rewards finite and within [0, program.max_reward].
Also reports the reward scale per reported stage (min/mean/max).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tgrpo_lib.reward.program import RewardProgram


@dataclass
class SanityReport:
    ok: bool
    row: dict  # one row of pass/fail columns + `reason`
    per_stage: pd.DataFrame  # reward min/mean/max per reported stage
    outputs: list  # RewardOutput per trajectory (for plotting)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.row])


def padded_returns(rewards: list[np.ndarray], horizon: int | None = None) -> np.ndarray:
    """Sum of rewards over a common horizon, each trajectory padded with its last reward."""
    h = horizon or max(len(r) for r in rewards)
    return np.array([r.sum() + (h - len(r)) * r[-1] for r in rewards])


def check_reward(program: RewardProgram, trajectories: list[dict], success, task: str = "",
                 max_raw_regressions: int = 0, require_monotone: bool = True) -> SanityReport:
    """Run the checks above; a failing reward gets ok=False and a human-readable `reason`."""
    success = np.asarray(success, dtype=bool)
    if len(trajectories) != len(success) or not success.any():
        raise ValueError("check_reward needs one success flag per trajectory and at least one successful "
                         "trajectory (record expert demos with tgrpo_lib.expert first)")
    outs = [program(tr) for tr in trajectories]
    rewards = [o.reward for o in outs]
    reasons = []
    regress = [int(np.sum(np.diff(o.raw_stage) < 0)) for o, s in zip(outs, success) if s]
    n_regress = int(sum(regress))
    monotone_ok = n_regress <= max_raw_regressions or not require_monotone
    if not monotone_ok:
        first = next(i for i, (o, s) in enumerate(zip(outs, success)) if s and np.any(np.diff(o.raw_stage) < 0))
        t = int(np.argmax(np.diff(outs[first].raw_stage) < 0)) + 1
        reasons.append(f"raw stage went back {n_regress}x on successes (first: traj {first}, t={t})")
    last = [int(o.raw_stage[-1]) for o, s in zip(outs, success) if s]
    reaches = all(v == program.n_stages for v in last)
    if not reaches:
        reasons.append(f"successes end at raw stages {last}, not {program.n_stages}")
    rets = padded_returns(rewards)
    if (~success).any():
        margin = float(rets[success].min() - rets[~success].max())
        ordered = margin > 0
        if not ordered:
            reasons.append(f"a failure's return beats a success's by {-margin:.2f}")
    else:
        margin, ordered = float("nan"), True
    allr = np.concatenate([r.ravel() for r in rewards])
    bounded = bool(np.all(np.isfinite(allr)) and allr.min() >= 0 and allr.max() <= program.max_reward + 1e-9)
    if not bounded:
        reasons.append(f"rewards outside [0, {program.max_reward}] or non-finite")
    ok = monotone_ok and reaches and ordered and bounded
    row = dict(task=task, source=program.source, n_stages=program.n_stages, n_traj=len(trajectories),
               n_success=int(success.sum()), raw_regressions=n_regress, monotone_ok=monotone_ok,
               reaches_last_ok=reaches, ordered_ok=ordered, return_margin=margin, bounded_ok=bounded,
               mean_return_success=float(rets[success].mean()),
               mean_return_failure=float(rets[~success].mean()) if (~success).any() else float("nan"),
               ok=ok, reason="; ".join(reasons) or "ok")
    st = np.concatenate([o.stage.ravel() for o in outs])
    per_stage = (pd.DataFrame({"stage": st, "reward": allr}).groupby("stage")["reward"]
                 .agg(["min", "mean", "max", "count"]).reset_index())
    return SanityReport(ok, row, per_stage, outs)


def sanity_table(reports: list[SanityReport]) -> pd.DataFrame:
    """One row per task (notebook-friendly)."""
    return pd.DataFrame([r.row for r in reports])
