"""Sweeps declared as data (a base ``TrainConfig`` + axes), one training run per cell, run
locally or as Ray tasks, into the same run tree that the analysis layer reads.

    sweep = Sweep(base=config_for(suite="goal", iterations=20), axes={"alpha1": [0.1, 0.3, 0.5], "seed": [0, 1]})
    table = run_sweep(sweep, executor="ray")      # DataFrame: one row per cell, status/error/run_dir

Axes are TrainConfig fields (``suite``, ``task_id``, ``algo``, ``seed``, ``group_size``, ...) or
nested ones written with a dot (``env.max_steps``). ``alpha1`` alone derives ``alpha2 = 1 - alpha1``
(the paper's constraint; ``config.override``). Cells are the cartesian product in the order the axes are given.

Each cell's ``run_name`` is ``config.run_name`` of its full config (readable key + a hash of the
config), so re-running a sweep finds the complete run directories and skips them, an
interrupted run resumes from its last checkpoint, and two sweeps that contain the same
config share one run.

Ray: each cell is one Ray task reserving ``cpus_per_cell`` CPUs (default 2: a cell already
runs its env worker processes, so on a 2-core machine cells run one at a time) and one GPU when
the cluster has GPUs. By default an embedded Ray is started (``num_cpus`` = the machine's cores,
no dashboard, worker logs kept out of the notebook). ``address="ray://..."`` or ``"auto"``
joins a running cluster instead; the outputs ``root`` must then be a filesystem shared by
every node (NFS, a mounted bucket), since cells write their run dirs where they run. Ray 2.5x+
clusters may use token authentication (``RAY_AUTH_MODE=token``): the driver needs the
cluster's token in ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` (default ``~/.ray/auth_token``).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
from tqdm.auto import tqdm

from tgrpo_lib import OUTPUTS_DIR
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import TrainConfig, config_for, override, run_name
from tgrpo_lib.training.train import train
from tgrpo_lib.workflows.pipeline import sft_checkpoints

SUMMARY_COLUMNS = ("before_standard", "before_heldout", "after_standard", "after_heldout", "env_steps")
"""metrics.json values copied into the sweep table for a quick look (``analysis.runs_table`` reads the run dirs)."""



@dataclass(frozen=True)
class Sweep:
    """A grid of training runs: ``base`` with each combination of ``axes`` values applied."""

    base: TrainConfig = field(default_factory=TrainConfig)
    """Config every cell starts from (its ``run_name`` is ignored: cells get deterministic names)."""
    axes: dict = field(default_factory=dict)
    """Field name -> list of values, e.g. {"alpha1": [0.1, 0.3], "seed": [0, 1], "env.max_steps": [50]}."""
    name: str = "sweep"
    """Label of the sweep in tables and progress bars (not part of run names, so sweeps share runs)."""
    init_checkpoints: dict | None = None
    """Task key ("libero_goal-3") -> starting policy of that task's cells (per-task SFT checkpoints,
    e.g. from ``pipeline.ensure_sft_checkpoint``); tasks missing here keep ``base.init_checkpoint``."""


@dataclass(frozen=True)
class Cell:
    """One point of a sweep: its axis values and the full config that will run."""

    values: dict  # axis name -> value of this cell
    config: TrainConfig  # with run_name set

    @property
    def run_name(self) -> str:
        return self.config.run_name


# ------------------------------------------------------------------------------ expansion
def cell_run_name(cfg: TrainConfig) -> str:
    """A cell's run name: ``config.run_name`` of its config without a user-given name."""
    return run_name(dataclasses.replace(cfg, run_name=None))


def expand(sweep: Sweep) -> list[Cell]:
    """The sweep's cells, in axis order (first axis varies slowest)."""
    axes = {k: list(v) if isinstance(v, (list, tuple, range)) else [v] for k, v in sweep.axes.items()}
    empty = [k for k, v in axes.items() if not v]
    if empty:
        raise ValueError(f"sweep axes {empty} have no values; give each axis at least one value.")
    cells = []
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        # suite aliases become the canonical name; alpha1 alone also sets alpha2 (Eq. 4)
        cfg = override(sweep.base, {**values, "run_name": None})
        ckpt = (sweep.init_checkpoints or {}).get(f"{cfg.suite}-{cfg.task_id}")
        if ckpt is not None:
            cfg = dataclasses.replace(cfg, init_checkpoint=str(ckpt))
        cells.append(Cell(values, dataclasses.replace(cfg, run_name=cell_run_name(cfg))))
    names = [c.run_name for c in cells]
    if len(set(names)) != len(names):
        raise ValueError("two sweep cells have the same config (repeated axis values?); give each axis distinct values.")
    return cells


def sweep_status(sweep: Sweep, root: Path | str | None = None) -> pd.DataFrame:
    """The cells and whether each run dir is already complete, without running anything."""
    rows = []
    for cell in expand(sweep):
        run_dir = runs.run_dir_path("train", cell.run_name, root)
        rows.append({**cell.values, "run_name": cell.run_name, "run_dir": str(run_dir),
                     "status": "complete" if runs.is_complete(run_dir) else "pending"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ execution
def train_cell(cfg: TrainConfig, root: str) -> dict:
    """Default cell: one training + evaluation run (``train.train``); returns its summary."""
    return train(cfg, root=root, progress=False).summary


def _run_one(cell_fn: Callable, cfg: TrainConfig, root: str) -> dict:
    """Run a cell, turning any exception into a failed record (so one cell never stops the rest)."""
    t0 = time.perf_counter()
    try:
        summary = cell_fn(cfg, root)
        return {"status": "complete", "error": None, "seconds": time.perf_counter() - t0, "summary": summary or {}}
    except Exception as exc:  # noqa: BLE001 - the cell's own error is the report
        tb = traceback.format_exc(limit=-3)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": tb,
                "seconds": time.perf_counter() - t0, "summary": {}}


def run_sweep(sweep: Sweep, executor: str = "ray", root: Path | str | None = None, address: str | None = None,
              num_cpus: int | None = None, cpus_per_cell: float = 2, gpus_per_cell: float | None = None,
              cell_fn: Callable[[TrainConfig, str], dict] | None = None, max_retries: int = 0,
              shutdown: bool = True, progress: bool = True) -> pd.DataFrame:
    """Run every cell that is not complete yet; returns one row per cell.

    Columns: the axis values, ``run_name``, ``status`` (skipped = complete before this call,
    complete = finished now, failed), ``error`` (+ ``traceback``), ``run_dir``, ``seconds`` and the summary's
    success rates. ``executor``: "ray" (Ray tasks, see the module docstring) or "local" (one
    after the other in this process). ``root``: outputs root holding train/<run_name>/
    (default ``tgrpo_lib.OUTPUTS_DIR``; shared storage on a cluster). ``cell_fn(cfg, root)``
    replaces the training run (tests, dry runs); with Ray it must be importable or picklable.
    ``shutdown``: stop an embedded Ray at the end (keep it for repeated calls in a notebook).
    """
    if executor not in ("ray", "local"):
        raise ValueError(f"executor={executor!r}: pass 'ray' or 'local'.")
    root = str(Path(OUTPUTS_DIR if root is None else root).resolve())
    cell_fn = cell_fn or train_cell
    cells = expand(sweep)
    records: dict[str, dict] = {}
    todo = []
    for cell in cells:
        run_dir = runs.run_dir_path("train", cell.run_name, root)
        if runs.is_complete(run_dir):
            records[cell.run_name] = {"status": "skipped", "error": None, "seconds": 0.0,
                                      "summary": runs.read_json(run_dir / "metrics.json")}
        else:
            todo.append(cell)
    if todo and executor == "local":
        for cell in tqdm(todo, desc=f"{sweep.name} (local)", disable=not progress):
            records[cell.run_name] = _run_one(cell_fn, cell.config, root)
    elif todo:
        records.update(_run_ray(todo, cell_fn, root, address, num_cpus, cpus_per_cell, gpus_per_cell,
                                max_retries, shutdown, progress, sweep.name))
    rows = []
    for cell in cells:
        rec = records[cell.run_name]
        row = {**cell.values, "run_name": cell.run_name, "status": rec["status"], "error": rec["error"],
               "run_dir": str(runs.run_dir_path("train", cell.run_name, root)), "seconds": rec["seconds"],
               "traceback": rec.get("traceback")}
        row.update({k: rec["summary"].get(k) for k in SUMMARY_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)


def _check_cpus(cpus_per_cell: float, total_cpus: float) -> None:
    if cpus_per_cell > total_cpus:
        raise ValueError(f"cpus_per_cell={cpus_per_cell} exceeds the Ray cluster's {total_cpus:g} CPUs, so no "
                         f"cell could ever start: pass cpus_per_cell<={total_cpus:g} (or a larger num_cpus).")


def _run_ray(cells: list[Cell], cell_fn, root, address, num_cpus, cpus_per_cell, gpus_per_cell,
             max_retries, shutdown, progress, label) -> dict[str, dict]:
    import ray

    started_here = not ray.is_initialized()
    if started_here and address is None:
        _check_cpus(cpus_per_cell, num_cpus or os.cpu_count())  # before paying for a Ray start
    if started_here:
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        if address is None:  # embedded single-machine Ray
            kwargs["num_cpus"] = num_cpus or os.cpu_count()
        ray.init(address=address, **kwargs)
    try:
        resources = ray.cluster_resources()
        _check_cpus(cpus_per_cell, resources.get("CPU", 0))
        if gpus_per_cell is None:
            gpus_per_cell = 1 if resources.get("GPU", 0) >= 1 else 0
        remote = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell, max_retries=max_retries)(_run_one)
        pending = {remote.remote(cell_fn, cell.config, root): cell for cell in cells}
        out = {}
        with tqdm(total=len(cells), desc=f"{label} (ray)", disable=not progress) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                cell = pending.pop(done[0])
                try:
                    out[cell.run_name] = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - a worker that died (OOM kill, segfault in a simulator)
                    out[cell.run_name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                                          "seconds": float("nan"), "summary": {}}
                bar.update(1)
                bar.set_postfix(last=out[cell.run_name]["status"])
        return out
    finally:
        if started_here and shutdown:
            ray.shutdown()


def axis_sweep(axis: str, values, suite: str, task_ids, seeds, sft_checkpoint: str | None = "auto",
               sft_demos: int | None = None, sft_epochs: int | None = None, **base) -> Sweep:
    """The notebooks' single-axis sweep (Fig. 5): ``axis`` over ``values`` x tasks x seeds, every
    other field from ``base`` (config_for keys); ``sft_checkpoint="auto"`` gives each task its own
    SFT policy (recorded and trained if missing), a path starts every cell there, None from scratch."""
    base_cfg = config_for(suite=suite, **base)  # validated before any SFT policy is made
    init, per_task = sft_checkpoints(sft_checkpoint, base_cfg.suite, task_ids, sft_demos, sft_epochs)
    return Sweep(base=override(base_cfg, init_checkpoint=init), name=axis, init_checkpoints=per_task,
                 axes={"task_id": list(task_ids), axis: list(values), "seed": list(seeds)})


__all__ = ["Cell", "Sweep", "axis_sweep", "cell_run_name", "expand", "run_sweep", "sweep_status", "train_cell"]
