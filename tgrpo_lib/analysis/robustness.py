"""Robustness (notebook 06): does a trained policy's gain over its starting policy hold, shrink
or reverse under perturbation? From the per-episode table of ``evaluation.evaluate_robustness``
(one row per policy, condition and init state), paired on the same init states.

    table = robustness_table(episodes_df, "SFT", "TGRPO")
    print(robustness_answer(table))
"""
from __future__ import annotations

import pandas as pd

from tgrpo_lib.analysis.cells import SIGNIFICANCE
from tgrpo_lib.analysis.stats import format_p, paired_change

VERDICTS = ("holds", "shrinks", "reverses")


def robustness_table(episodes: pd.DataFrame, before: str = "SFT", after: str = "TGRPO",
                     reference: str = "standard") -> pd.DataFrame:
    """Per condition of an ``evaluation.evaluate_robustness`` table: both policies' success with n
    and 95 % Wilson interval, the paired change on the same init states (exact McNemar: b = states
    only ``before`` solved, c = only ``after``) and what becomes of the gain seen on ``reference``
    (``verdict``): ``holds`` when the change is at least half the reference change and not
    negative, ``shrinks`` when it is smaller but not negative, ``reverses`` when ``after`` falls
    below ``before``. ``significant``: whether the change itself has p < SIGNIFICANCE; a verdict
    on a change that is not significant is a point estimate."""
    missing = {before, after} - set(episodes["policy"])
    if missing:
        raise ValueError(f"no episodes of {', '.join(sorted(missing))}: pass before/after among "
                         f"{', '.join(sorted(set(episodes['policy'])))}.")
    rows = []
    for condition, cond in episodes.groupby("condition", sort=False):
        a = cond[cond["policy"] == before].set_index("state_key")
        b = cond[cond["policy"] == after].set_index("state_key")
        keys = [k for k in a.index if k in b.index]
        if not keys:
            continue
        change = paired_change(a.loc[keys, "success"].astype(bool).tolist(), b.loc[keys, "success"].astype(bool).tolist())
        row = {"condition": condition, "suite": cond["suite"].iloc[0], "task_id": int(cond["task_id"].iloc[0]),
               "n": len(keys)}
        for label, summary in ((before, change["before"]), (after, change["after"])):
            row[f"{label} %"] = 100 * summary["rate"]
            row[f"{label} CI low"], row[f"{label} CI high"] = 100 * summary["ci_low"], 100 * summary["ci_high"]
        row.update({"change (pts)": 100 * change["change"], "b": change["b"], "c": change["c"], "p": change["p_value"],
                    "significant": bool(change["p_value"] < SIGNIFICANCE)})
        rows.append(row)
    if not rows:
        raise ValueError(f"{before} and {after} share no init state in any condition: evaluate both on the same task.")
    table = pd.DataFrame(rows).set_index("condition")
    if reference not in table.index:
        raise ValueError(f"reference={reference!r} was not evaluated: pass one of {', '.join(table.index)}.")
    ref = table.at[reference, "change (pts)"]
    table["verdict"] = [verdict(c, ref) for c in table["change (pts)"]]
    table.loc[reference, "verdict"] = "reference"
    return table


def verdict(change: float, reference_change: float) -> str:
    """``holds`` / ``shrinks`` / ``reverses`` for a change (pts) beside the reference condition's."""
    if change < 0:
        return "reverses"
    return "holds" if change >= 0.5 * max(reference_change, 0.0) else "shrinks"


def robustness_answer(table: pd.DataFrame, before: str = "SFT", after: str = "TGRPO") -> str:
    """One line per perturbation: does ``after``'s gain over ``before`` hold, shrink or reverse?"""
    ref = table[table["verdict"] == "reference"].iloc[0]
    lines = [f"Reference ({ref.name}): {before} {ref[f'{before} %']:.1f} % -> {after} {ref[f'{after} %']:.1f} % "
             f"(n={ref['n']}), {ref['change (pts)']:+.1f} pts, {format_p(ref['p'])} "
             f"(exact McNemar, b={ref['b']}, c={ref['c']})."]
    for condition, row in table[table["verdict"] != "reference"].iterrows():
        note = "" if row["significant"] else "; the change itself is not significant"
        lines.append(f"{condition}: the gain {row['verdict']}: {row[f'{before} %']:.1f} % -> {row[f'{after} %']:.1f} % "
                     f"(n={row['n']}), {row['change (pts)']:+.1f} pts, {format_p(row['p'])} "
                     f"(b={row['b']}, c={row['c']}){note}.")
    return "\n".join(lines)


__all__ = ["VERDICTS", "robustness_answer", "robustness_table", "verdict"]
