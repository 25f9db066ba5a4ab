"""What the notebooks share, so each keeps to its parameters, calls and plots: one axis of Fig. 5
run as a sweep (notebooks 03 and 04) and the two policies of a robustness comparison (06).

    study = AxisStudy.declare("alpha1", [0.1, 0.3], suite="libero_goal", task_ids=[0], seeds=[0])
    study.status()                 # the cells, and which are complete already
    study.run(executor="local")    # every cell that is not complete; failures listed, never raised
    study.figure(); study.summary  # Fig. 5 style, and the rate per value with its test against the best
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import pandas as pd

import tgrpo_lib
from tgrpo_lib.analysis import curves, figures, report, runs_table
from tgrpo_lib.infra import runs
from tgrpo_lib.training import evaluation
from tgrpo_lib.workflows.sweeps import Sweep, axis_sweep, run_sweep, sweep_status


@dataclass
class AxisStudy:
    """One axis of Fig. 5 (``alpha1`` or ``group_size``) as a sweep of training runs under ``root``,
    and what the notebooks show of it once run."""

    axis: str
    sweep: Sweep
    root: Path
    table: pd.DataFrame | None = field(default=None, repr=False)
    """``run_sweep``'s table, once ``run``."""

    @classmethod
    def declare(cls, axis: str, values, suite: str, task_ids, seeds, outputs_root: str | Path | None = None,
                sft_checkpoint: str | None = "auto", sft_demos: int | None = None, sft_epochs: int | None = None,
                max_steps: int | None = None, **base) -> "AxisStudy":
        """``axis`` over ``values`` x ``task_ids`` x ``seeds`` (``sweeps.axis_sweep``: "auto" gives each
        task its SFT policy, made if missing), every other field from ``base`` (``config_for`` keys);
        ``max_steps`` None keeps the suite's step budget; runs under ``outputs_root`` (None: the outputs root)."""
        sweep = axis_sweep(axis, values, suite=suite, task_ids=task_ids, seeds=seeds, sft_checkpoint=sft_checkpoint,
                           sft_demos=sft_demos, sft_epochs=sft_epochs, env={"max_steps": max_steps}, **base)
        return cls(axis, sweep, tgrpo_lib.outputs_path(root=outputs_root))

    def status(self) -> pd.DataFrame:
        """The cells and whether each run directory is complete already (those are skipped)."""
        return sweep_status(self.sweep, self.root)

    def run(self, executor: str = "ray", address: str | None = None, cpus_per_cell: float = 2,
            cell_fn: Callable | None = None) -> pd.DataFrame:
        """Every cell that is not complete (``sweeps.run_sweep``); prints each failed cell with its run
        directory and traceback; returns the table without those two columns."""
        self.table = run_sweep(self.sweep, executor=executor, root=self.root, address=address,
                               cpus_per_cell=cpus_per_cell, cell_fn=cell_fn)
        for _, row in self.failed.iterrows():
            print("FAILED", row.run_dir, "\n", row.traceback or row.error)
        self.__dict__.pop("runs_df", None)  # read the run directories again
        return self.table.drop(columns=["run_dir", "traceback"])

    @property
    def failed(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "failed"]

    @cached_property
    def runs_df(self) -> pd.DataFrame:
        """The sweep's complete runs (``runs_table.load_runs``)."""
        if self.table is None:
            raise RuntimeError("run the study first: study.run(...)")
        return runs_table.load_runs(self.root, run_names=self.table["run_name"])

    @property
    def curve(self) -> pd.DataFrame:
        return curves.sweep_curve(self.runs_df, self.axis)

    @property
    def summary(self) -> pd.DataFrame:
        """Per value: the rate over its runs and distinct init states with its 95 % Wilson interval,
        its env steps, and the test against the best value (``curves.curve_summary``)."""
        return curves.curve_summary(self.curve, self.axis)

    @property
    def before_after(self) -> pd.DataFrame:
        """Per value and init set: SFT start -> trained, paired on the same states (``curves.sweep_before_after``)."""
        return curves.sweep_before_after(self.runs_df, self.axis)

    def before_after_view(self):
        """``before_after`` as one line per value and init set."""
        table = self.before_after
        return table[[self.axis, "init_set", "runs", "text"]].style.hide(axis="index") if len(table) else table

    def figure(self):
        """Fig. 5 style: a point per seed, per value the rate with its interval; the paper's stated points."""
        label = ", ".join(sorted(self.runs_df["model"].unique())) if len(self.runs_df) else "no runs"
        return figures.figure_sweep(self.curve, self.axis, ours_label=label)

    def metrics(self) -> dict:
        """What a sweep notebook stores in metrics.json."""
        table, summary = self.table, self.summary
        return {"cells": len(table), "complete": int(table["status"].isin(["complete", "skipped"]).sum()),
                "skipped": int((table["status"] == "skipped").sum()), "failed": int(len(self.failed)),
                "axis": self.axis, "values": sorted(float(v) for v in self.curve[self.axis].unique()),
                "success_mean": {str(k): float(v) for k, v in zip(summary[self.axis], summary["mean"])},
                "summary": summary, "before_after": self.before_after,
                "seeds": sorted(int(s) for s in self.runs_df["seed"].unique()) if len(self.runs_df) else [],
                "run_dirs": table["run_dir"].tolist(), "provenance": report.provenance(self.runs_df)}


# ------------------------------------------------------------------ notebook 06
def robustness_policies(run_name: str | None = None, before_checkpoint=None, after_checkpoint=None, suite=None,
                        task_id=None, labels=("SFT", "TGRPO"), root=None) -> tuple[dict, str, int]:
    """({label: checkpoint} of the two policies to compare, suite, task_id): from ``run_name``, a complete
    run under ``<root>/train/`` (its start checkpoint, its trained policy, its task), each overridden
    by what is given; without a run name all four must be given."""
    if run_name is not None:
        run_dir = runs.run_dir_path("train", run_name, root)
        start, trained = evaluation.run_checkpoints(run_dir)
        config = runs.read_config(run_dir)
        before_checkpoint, after_checkpoint = before_checkpoint or start, after_checkpoint or trained
        suite = suite or config["suite"]
        task_id = config["task_id"] if task_id is None else task_id
    if before_checkpoint is None or after_checkpoint is None or suite is None or task_id is None:
        raise ValueError("pass run_name (a complete training run that started from a checkpoint), or "
                         "before_checkpoint, after_checkpoint, suite and task_id")
    return dict(zip(labels, (before_checkpoint, after_checkpoint))), suite, int(task_id)


def conditions_table(suite: str, task_id: int, variants=None) -> pd.DataFrame:
    """``evaluation.robustness_conditions`` as a table: condition, suite, task, init states, instruction."""
    conditions = evaluation.robustness_conditions(suite, task_id, variants)
    return pd.DataFrame([{"condition": c, "suite": t.suite, "task_id": t.task_id, "init states": s,
                          "instruction": t.instruction} for c, t, s in conditions])


__all__ = ["AxisStudy", "conditions_table", "robustness_policies"]
