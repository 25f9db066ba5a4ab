"""Reproduce the paper's tables and figures by executing the notebooks with papermill.

    python -m tgrpo_lib reproduce --profile smoke            # minutes: CI, every notebook on tiny settings
    python -m tgrpo_lib reproduce --profile quick            # hours on one CPU machine
    python -m tgrpo_lib reproduce --profile full --address auto   # the paper's protocol on a Ray cluster

Steps, in order: 01_reward_generation, 02_training_run, the Table I / II training sweep (a
plain ``run_sweep`` call, no notebook), 03_alpha_sweep, 04_group_size_sweep and
05_results_tables. Each notebook runs with kernel ``python3`` and its cwd set to notebooks/
(as when opened in JupyterLab); the executed copy is saved as
``<root>/reproduce/<profile>/<NN_name>.ipynb`` and its ``metrics.json`` beside it in
``<root>/reproduce/<profile>/<NN_name>/`` (the notebook's ``output_dir``, passed relative to the
outputs root, which every notebook resolves with ``tgrpo_lib.outputs_path``). Sweep cells have
deterministic run names, so an interrupted reproduction run again skips every complete run
directory and resumes the rest. ``<root>/reproduce/<profile>/reproduce.json`` records each step's
status, seconds and sittings, kept current while a step runs, so the time of a reproduction spread
over several sittings adds up there.
All profiles live in ``PROFILES`` below.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import tgrpo_lib
from tgrpo_lib.algorithm import variants

NOTEBOOKS = ("01_reward_generation", "02_training_run", "tables_sweep", "03_alpha_sweep", "04_group_size_sweep",
             "05_results_tables", "06_robustness")
"""Steps in execution order; ``tables_sweep`` is the only one that is not a notebook."""

ALL_SUITES = ["libero_spatial", "libero_object", "libero_goal", "libero_10"]
ALPHAS = [0.1, 0.3, 0.5, 0.7, 0.9]
GROUP_SIZES = [2, 4, 6, 8]
QUICK_ALPHAS = [0.1, 0.3, 0.9]  # the quick profile: fewer cells, each with 50 + 50 episodes
QUICK_GROUP_SIZES = [2, 4, 8]

# Tiny training settings shared by every smoke step: 1 iteration, 10-step episodes, 2 trajectories,
# 2 evaluation episodes, fresh policy. 03 and 04 then share one cell (alpha1 0.3, N 2) that 04 skips.
_SMOKE_TRAIN = {"iterations": 1, "max_steps": 10, "final_eval_episodes": 2, "eval_interval": 0, "seeds": [0],
                "sft_checkpoint": None}

PROFILES: dict[str, dict] = {
    "smoke": {
        "description": "minutes on 2 cores (CI): every step on tiny settings; numbers are meaningless",
        "01_reward_generation": {"suite": "libero_object", "task_id": 0, "n_expert": 1, "n_random": 1,
                                 "random_steps": 20},
        "02_training_run": {"suite": "libero_object", "task_id": 0, "iterations": 1, "group_size": 2,
                            "max_steps": 10, "final_eval_episodes": 2, "eval_interval": 0, "sft_checkpoint": None},
        "tables_sweep": None,
        "03_alpha_sweep": {**_SMOKE_TRAIN, "suite": "libero_goal", "task_ids": [0], "alpha1_values": [0.1, 0.3],
                           "group_size": 2},
        "04_group_size_sweep": {**_SMOKE_TRAIN, "suite": "libero_goal", "task_ids": [0], "group_sizes": [2],
                                "alpha1": 0.3},
        "05_results_tables": {"final_eval_episodes": 2, "results_name": "smoke"},
        # 02's smoke run starts from a fresh (unsaved) policy, so both sides are its trained policy: plumbing only
        "06_robustness": {"variants": ["lan"], "episodes": 2, "max_steps": 10, "before_label": "trained",
                          "after_label": "trained again"},
    },
    "quick": {
        "description": "about 3 h 15 min on one 2-core machine, so more than one sitting (resumable; the "
                       "timings per step: docs/history.md, \"The quick reproduction\"): every experiment on "
                       "libero_object task 0 from one SFT checkpoint, 1 seed, the recipe's 50 iterations, 50 "
                       "standard + 50 held-out evaluation episodes per cell; 10 cells (Table I's four algorithms, "
                       "Table II's two ablations, alpha1 0.1 / 0.9 and N 2 / 8), since cells with equal configs are "
                       "one run (TGRPO with alpha1 0.3 and N 4 serves Table I and both sweeps)",
        "01_reward_generation": {"suite": "libero_object", "task_id": 0},
        "02_training_run": {"suite": "libero_object", "task_id": 0, "final_eval_episodes": 50, "eval_interval": 10},
        "tables_sweep": {"suites": ["libero_object"], "task_ids": [0], "seeds": [0], "final_eval_episodes": 50,
                         "ablation_suite": "libero_object"},
        "03_alpha_sweep": {"suite": "libero_object", "task_ids": [0], "alpha1_values": QUICK_ALPHAS, "seeds": [0],
                           "final_eval_episodes": 50, "sft_checkpoint": "auto"},
        "04_group_size_sweep": {"suite": "libero_object", "task_ids": [0], "group_sizes": QUICK_GROUP_SIZES,
                                "seeds": [0], "final_eval_episodes": 50, "sft_checkpoint": "auto"},
        # the profile's own cells only: one seed, one suite (other runs in the outputs folder stay out)
        "05_results_tables": {"final_eval_episodes": 50, "results_name": "quick", "group_size": 4, "seeds": [0],
                              "suites": ["libero_object"]},
        "06_robustness": {"variants": ["lan", "object", "swap", "task", "with_mug", "with_red_box"], "episodes": 50},
    },
    "full": {
        "description": "the paper's protocol: 4 suites x 10 tasks, 50 episodes per task on the standard and "
                       "held-out states (Table I / II: all 100 test layouts), 3 seeds; days of CPU time - run it "
                       "on a Ray cluster (--address)",
        "01_reward_generation": {"suite": "libero_object", "task_id": 0},
        "02_training_run": {"suite": "libero_object", "task_id": 0},
        # Table I / II report all 100 untouched test layouts per task (TrainConfig's default is 50)
        "tables_sweep": {"suites": ALL_SUITES, "task_ids": list(range(10)), "seeds": [0, 1, 2],
                         "final_eval_episodes": 50, "test_eval_episodes": 100, "ablation_suite": "libero_goal"},
        "03_alpha_sweep": {"suite": "libero_goal", "task_ids": list(range(10)), "alpha1_values": ALPHAS,
                           "seeds": [0, 1, 2], "final_eval_episodes": 50, "sft_checkpoint": "auto"},
        "04_group_size_sweep": {"suite": "libero_goal", "task_ids": list(range(10)), "group_sizes": GROUP_SIZES,
                                "seeds": [0, 1, 2], "final_eval_episodes": 50, "sft_checkpoint": "auto"},
        "05_results_tables": {"final_eval_episodes": 50, "results_name": "full", "group_size": 4},
        "06_robustness": {"episodes": 50},
    },
}

TABLE_I_ALGOS = list(variants.TABLE_I)
TABLE_II_ALGOS = [a for a in variants.TABLE_II if a not in variants.TABLE_I]  # tgrpo runs are shared with Table I


def tables_sweeps(params: dict, sft_checkpoints: dict | None = None) -> list:
    """The Table I runs (suites x tasks x algos x seeds) and the Table II ablations on one suite."""
    # deferred: pandas (config) and torch (sweeps) load only when a sweep is built, so a bad flag is
    # refused in a fraction of a second
    from tgrpo_lib.infra.config import config_for
    from tgrpo_lib.workflows.sweeps import Sweep

    base = {k: params[k] for k in ("iterations", "final_eval_episodes", "test_eval_episodes") if k in params}
    cfg = config_for(eval_interval=0, **base)
    table1 = Sweep(base=cfg, name="table1", init_checkpoints=sft_checkpoints,
                   axes={"suite": params["suites"], "task_id": params["task_ids"], "algo": TABLE_I_ALGOS,
                         "seed": params["seeds"]})
    table2 = Sweep(base=cfg, name="table2", init_checkpoints=sft_checkpoints,
                   axes={"suite": [params["ablation_suite"]], "task_id": params["task_ids"], "algo": TABLE_II_ALGOS,
                         "seed": params["seeds"]})
    return [table1, table2]


def run_tables_sweep(params: dict, root: Path, executor: str, address: str | None) -> dict:
    """Train every Table I / II cell that is not complete yet (SFT checkpoints made first if missing)."""
    # deferred: torch (pipeline, sweeps) loads only when the sweep runs, so a bad flag is refused in a
    # fraction of a second
    from tgrpo_lib.workflows import pipeline
    from tgrpo_lib.workflows.sweeps import run_sweep

    tasks = {(s, t) for s in params["suites"] for t in params["task_ids"]}
    tasks |= {(params["ablation_suite"], t) for t in params["task_ids"]}
    ckpts = {f"{s}-{t}": pipeline.resolve_sft_checkpoint("auto", s, t) for s, t in sorted(tasks)}
    tables = [run_sweep(sw, executor=executor, root=root, address=address) for sw in tables_sweeps(params, ckpts)]
    status = {}
    for table in tables:
        for k, v in table["status"].value_counts().items():
            status[k] = status.get(k, 0) + int(v)
    failed = [r for t in tables for r in t[t["status"] == "failed"][["run_dir", "error"]].to_dict("records")]
    return {"cells": status, "failed": failed}


def notebook_parameters(profile: str, step: str, root: Path, executor: str, address: str | None) -> dict:
    """Papermill parameters of one notebook: the profile's values + where to write: ``output_dir``
    relative to the outputs root (``root``: the kernels' ``TGRPO_OUTPUTS`` and 03-05's ``outputs_root``)."""
    params = dict(PROFILES[profile][step])
    params["output_dir"] = str(Path("reproduce", profile, step))
    if step in ("03_alpha_sweep", "04_group_size_sweep", "05_results_tables", "06_robustness"):
        params["outputs_root"] = str(root)
    if step in ("03_alpha_sweep", "04_group_size_sweep"):
        params.update(executor=executor, address=address)
    if step in ("02_training_run", "06_robustness"):  # a fixed name: an interrupted reproduction resumes this run
        params["run_name"] = f"reproduce-{profile}-02_training_run"
    if step == "06_robustness":
        if PROFILES[profile]["02_training_run"].get("sft_checkpoint", "auto") is None:  # no start checkpoint saved
            params["before_checkpoint"] = str(root / "train" / params["run_name"] / "checkpoints" / "policy")
    return params


def kernel_config():
    """papermill's kernel settings: CurveZMQ encryption of the kernel's sockets, which
    jupyter_client (>= 8.10) provisions when asked and the kernelspec declares (ipykernel's does),
    instead of the plain TCP that makes every kernel warn "running over TCP without encryption".
    Without CurveZMQ in pyzmq or an older jupyter_client, the default (plain TCP) stays."""
    import zmq
    from jupyter_client import KernelManager
    from traitlets.config import Config

    if zmq.has("curve") and KernelManager.class_traits().get("transport_encryption") is not None:
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    return Config()


def step_entry(previous: dict | None, seconds: float, status: str) -> dict:
    """A step's timing record: this sitting's ``seconds`` added to those of earlier sittings that
    were cut off ("running") or failed before the step finished, so a reproduction run over several
    sittings states what each step cost in all (the cells a cut-off sitting completed are skipped
    by the next). A step that had finished starts a new record when run again, and keeps the
    finished one's timing as ``previous`` (a rerun that skips every complete cell takes seconds;
    the time the step took when it did the work stays on record)."""
    unfinished = previous and previous.get("status") in ("running", "failed")
    carried = previous if unfinished else {"seconds": 0.0, "sittings": 0}
    entry = {"status": status, "seconds": round(carried["seconds"] + seconds, 1), "sittings": carried["sittings"] + 1}
    if unfinished and "previous" in previous:
        entry["previous"] = previous["previous"]
    elif previous and not unfinished and "seconds" in previous:
        entry["previous"] = {k: previous[k] for k in ("status", "seconds", "sittings") if k in previous}
    return entry


class StepClock:
    """Times one reproduction step into ``reproduce.json`` (beside the executed notebooks): the
    file is rewritten every ``heartbeat`` seconds while the step runs, so a sitting that is killed
    leaves its time there and the next run adds to it (`step_entry`); other steps' records stay."""

    def __init__(self, path: Path, step: str, heartbeat: float = 60.0):
        self.path, self.step, self.heartbeat = Path(path), step, heartbeat
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _write(self, status: str, extra: dict | None = None) -> dict:
        from tgrpo_lib.infra import runs  # deferred: pandas and tensorboard load only once a step runs

        with self._lock:
            report = json.loads(self.path.read_text()) if self.path.exists() else {}
            entry = {**(extra or {}), **step_entry(self._previous, time.perf_counter() - self._t0, status)}
            report[self.step] = entry
            runs.write_json_atomic(self.path, report)
            return entry

    def _beat(self):
        while not self._stop.wait(self.heartbeat):
            self._write("running")

    def __enter__(self) -> "StepClock":
        report = json.loads(self.path.read_text()) if self.path.exists() else {}
        self._previous = report.get(self.step)
        self._t0 = time.perf_counter()
        self._write("running")
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def _halt(self) -> None:
        self._stop.set()
        self._thread.join()

    def done(self, result: dict) -> dict:
        """Stop the clock; the step's record is its timing plus ``result`` (the step's metrics)."""
        self._halt()
        return self._write("done", result)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:  # the step raised: its time so far is kept as "failed"
            self._halt()
            self._write("failed", {"error": f"{exc_type.__name__}: {exc}"})
        return False


def reproduce(profile: str, root: Path | str | None = None, steps=None, executor: str = "ray",
              address: str | None = None, progress: bool = True) -> dict:
    """Run the steps of ``profile`` (default all, in NOTEBOOKS order); returns {step: record} of the
    steps run now: each step's metrics plus its status, seconds and sittings (`StepClock`), the
    same records ``reproduce.json`` keeps for every step run so far."""
    import papermill as pm

    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r}: pass one of {sorted(PROFILES)}.")
    steps = list(NOTEBOOKS if steps is None else steps)
    unknown = [s for s in steps if s not in NOTEBOOKS]
    if unknown:
        raise ValueError(f"unknown steps {unknown}: pick from {NOTEBOOKS}.")
    root = tgrpo_lib.outputs_path(root=root).resolve()
    os.environ["TGRPO_OUTPUTS"] = str(root)  # the kernels' tgrpo_lib.OUTPUTS_DIR: 01/02 resolve output_dir there
    nb_dir = tgrpo_lib.PROJECT_ROOT / "notebooks"
    out_dir = root / "reproduce" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / "reproduce.json"
    report = {}
    for step in [s for s in NOTEBOOKS if s in steps]:
        with StepClock(report_path, step) as clock:
            if step == "tables_sweep":
                params = PROFILES[profile]["tables_sweep"]
                result = run_tables_sweep(params, root, executor, address) if params else {"skipped": True}
            else:
                params = notebook_parameters(profile, step, root, executor, address)
                print(f"[reproduce:{profile}] {step} {json.dumps(params)}", flush=True)
                pm.execute_notebook(nb_dir / f"{step}.ipynb", out_dir / f"{step}.ipynb", parameters=params,
                                    kernel_name="python3", cwd=str(nb_dir), progress_bar=progress,
                                    config=kernel_config())
                metrics = tgrpo_lib.outputs_path(params["output_dir"], root) / "metrics.json"
                result = json.loads(metrics.read_text()) if metrics.exists() else {}
            report[step] = clock.done(result)
    return report


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m tgrpo_lib reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    p.add_argument("--address", default=None, help="Ray cluster address to join (default: embedded Ray)")
    p.add_argument("--executor", choices=("ray", "local"), default="ray")
    p.add_argument("--root", default=None, help="outputs root (default tgrpo_lib.OUTPUTS_DIR; shared storage on a cluster)")
    p.add_argument("--steps", nargs="*", default=None, choices=NOTEBOOKS, help="run only these steps")
    a = p.parse_args(argv)
    report = reproduce(a.profile, a.root, a.steps, a.executor, a.address)
    print(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
