"""Post-hoc diagnostics of the study's runs: NOT pre-registered, no p-values. How each arm's
training went (success of its rollout groups on the training states, the dense stage reached in
groups without a success, KL to the reference), to read beside the registered tests of
``collect.py``, never instead of them.

    python experiments/dense_vs_sparse/explore.py   # same environment as collect.py; writes results/exploratory.*

The per-run diagnostics are pure functions of a run's metrics log; finding the runs needs the
study's package (the worktree's ``tgrpo_lib``), as ``collect.py`` does.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
WINDOW = 10  # iterations per point of a training curve, and per "first" / "last" block


def iterations(m: pd.DataFrame) -> pd.DataFrame:
    """The training iterations of a run's metrics log (evaluation rows and the step -1 row dropped)."""
    return m[m["step"] >= 0].dropna(subset=["charts/env_steps"]).sort_values("step").reset_index(drop=True)


def run_diagnostics(it: pd.DataFrame, window: int = WINDOW) -> dict:
    """One run's training, from its iterations (one rollout group per iteration): the group's
    success rate over the first and the last ``window`` iterations; among groups without a
    success, the mean highest stage reached (Eq. 1's stages) in the first and second half of
    training (dense-reward arms: the sparse reward has no stages); the KL to the reference over
    the last ``window`` updated groups (as ``collect.py``'s ``kl_to_reference``)."""
    half = len(it) // 2
    fail = it["charts/group_has_success"] == 0
    stage = it.get("reward/max_stage_reached", pd.Series(np.nan, index=it.index))  # dense-reward arms only
    updated = it[it["update/skipped"] == 0]
    return {"iterations": len(it),
            "group_success_first": float(it["charts/group_success_rate"].head(window).mean()),
            "group_success_last": float(it["charts/group_success_rate"].tail(window).mean()),
            "all_fail_groups": int(fail.sum()),
            "fail_stage_first_half": float(stage[fail & (it.index < half)].mean()),
            "fail_stage_second_half": float(stage[fail & (it.index >= half)].mean()),
            "kl_last": float(updated["losses/kl_mean"].tail(window).mean()) if len(updated) else float("nan")}


def stages(first: float, second: float) -> str:
    return "–" if np.isnan(first) and np.isnan(second) else f"{first:.2f} → {second:.2f}"


def curve(it: pd.DataFrame, window: int = WINDOW) -> pd.Series:
    """Group success on the training states, as a trailing mean over ``window`` iterations, by env steps."""
    return pd.Series(it["charts/group_success_rate"].rolling(window, min_periods=window).mean().to_numpy(),
                     index=it["charts/env_steps"].cumsum().to_numpy())


def with_carried(rows: pd.DataFrame, carried: pd.DataFrame) -> pd.DataFrame:
    """The per-run diagnostics of this machine's runs, plus those of ``carried`` (an earlier
    exploratory.csv) for runs not here (their metrics logs are lost: no curves), column
    ``records``: "here" or "carried"."""
    key = ["regime", "arm", "seed"]
    if not len(rows):
        return carried.assign(records="carried")
    rows = rows.assign(records="here")
    have = set(map(tuple, rows[key].to_numpy()))
    extra = carried[[tuple(k) not in have for k in carried[key].to_numpy()]].assign(records="carried")
    return pd.concat([rows, extra], ignore_index=True) if len(extra) else rows


def finished(regime: str, arm: str) -> list[tuple[dict, pd.DataFrame]]:
    """(``collect.run_row``'s row, iterations) of a cell's finished runs."""
    import study
    from collect import run_row
    from tgrpo_lib import runs

    rows = [run_row(regime, arm, seed) for seed in study.SEEDS[(regime, arm)]]
    return [(row, iterations(runs.read_metrics(runs.run_dir_path("train", row["run_name"]))))
            for row in rows if row["complete"]]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(HERE))  # the study's scripts; tgrpo_lib is the study's package (PYTHONPATH)
    import study
    from collect import CARRIED, LABELS, OUT

    rows, regimes = [], list(dict.fromkeys(r for r, _ in study.SEEDS))
    fig, axes = plt.subplots(1, len(regimes), figsize=(4 * len(regimes), 3.4), sharey=True)
    for ax, regime in zip(np.atleast_1d(axes), regimes):
        for arm in [a for r, a in study.SEEDS if r == regime]:
            for k, (row, it) in enumerate(finished(regime, arm)):
                rows.append({"regime": regime, "arm": LABELS[arm], "seed": row["seed"], **run_diagnostics(it),
                             "test_after": row["after_test"]})
                c = curve(it)
                ax.plot(c.index / 1000, 100 * c.to_numpy(), color=f"C{list(LABELS).index(arm)}", lw=0.8, alpha=0.7,
                        label=LABELS[arm] if k == 0 else None)
        ax.set_title(f"{regime}: one line per run", fontsize=9)
        ax.set_xlabel("env steps (thousands)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel(f"group success on training states\n(%, trailing {WINDOW} iterations)")
    fig.tight_layout()
    OUT.mkdir(exist_ok=True)
    fig.savefig(OUT / "exploratory_training.png", dpi=120)
    plt.close(fig)
    earlier = CARRIED / "exploratory.csv"
    table = with_carried(pd.DataFrame(rows),
                         pd.read_csv(earlier) if earlier.is_file() else pd.DataFrame(columns=["regime", "arm", "seed"]))
    rank = {"regime": {r: i for i, r in enumerate(regimes)}, "arm": {LABELS[a]: i for i, a in enumerate(LABELS)}}
    table = table.sort_values(["regime", "arm", "seed"], kind="stable",
                              key=lambda col: col.map(rank[col.name]) if col.name in rank else col)
    table.to_csv(OUT / "exploratory.csv", index=False)
    by_arm = table.groupby(["regime", "arm"], sort=False).agg(
        runs=("seed", "size"), group_success_first=("group_success_first", "mean"),
        group_success_last=("group_success_last", "mean"), all_fail_groups=("all_fail_groups", "mean"),
        fail_stage_first_half=("fail_stage_first_half", "mean"), fail_stage_second_half=("fail_stage_second_half", "mean"),
        kl_last=("kl_last", "mean"), test_after=("test_after", "mean"))
    kl_vs_test = {regime: float(sel["kl_last"].corr(sel["test_after"], method="spearman"))
                  for regime, sel in table.groupby("regime") if len(sel) >= 4}
    text = ["# Post-hoc diagnostics (not pre-registered; descriptive, no tests)", "",
            f"Means over each cell's finished runs. Group success: the share of an iteration's N = 4 rollouts "
            f"that succeeded, on the training states, first / last {WINDOW} iterations. Stage in all-fail groups: "
            "the highest stage of Eq. 1's reward reached in groups without a success, first / second half of "
            "training (–: no such group, or the sparse reward, which has no stages). KL: mean over the last "
            f"{WINDOW} updated groups. Curves: `exploratory_training.png`; per "
            "run: `exploratory.csv`. Every run visits the same training states in the same order (iteration i: "
            "standard state i mod 50), so the curves' common dips are hard states, and the arms line up "
            "iteration by iteration."
            + (f" {int((table['records'] == 'carried').sum())} runs' diagnostics are carried from "
               "`carried/exploratory.csv` (their metrics logs were lost with an earlier machine; their curves: `carried/exploratory_training.png`)."
               if (table["records"] == "carried").any() else ""), "",
            "| regime | arm | runs | group success, first → last (%) | all-fail groups per run | "
            "stage in all-fail groups, 1st → 2nd half | KL, last | test after (%) |",
            "|---|---|---|---|---|---|---|---|",
            *(f"| {regime} | {arm} | {int(r.runs)} | {100 * r.group_success_first:.0f} → {100 * r.group_success_last:.0f} | "
              f"{r.all_fail_groups:.1f} | {stages(r.fail_stage_first_half, r.fail_stage_second_half)} | "
              f"{r.kl_last:.3f} | {100 * r.test_after:.1f} |" for (regime, arm), r in by_arm.iterrows()), "",
            "Spearman correlation of a run's final KL with its test success, all arms of a regime together: "
            + ", ".join(f"{r} {v:+.2f}" for r, v in kl_vs_test.items()) + "."]
    (OUT / "exploratory.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
