"""Run directories as one table: what Tables I / II, the sweeps and the report rest on.

``load_runs`` reads every complete run under ``outputs/train/`` (config.json, metrics.json,
versions.json: ``infra.runs``) into one row per run; ``distinct_runs`` counts a repeated experiment
once; ``table_runs`` keeps the runs a table rests on; ``method_success`` turns them into the long
table of evaluations (one row per run and method) that ``cells.cell_stats`` summarises.

The "SFT" row is the before-training evaluation every RL run does of its starting policy (the SFT
checkpoint): the same protocol (``tgrpo_lib.training.evaluation``), init states and env config as
the after-evaluation it is compared with, and the same cached episodes an SFT run's own
evaluation produces. It is counted once per starting checkpoint and task, so episodes shared by
several RL runs never add to its n.

    runs_df = load_runs()                          # every complete outputs/train/* run
    long = method_success(table_runs(runs_df), tables.TABLE_I_METHODS)
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from tgrpo_lib import PROJECT_ROOT
from tgrpo_lib.analysis.paper import SUITE_LABELS
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import config_from_dict
from tgrpo_lib.infra.runs import INIT_SETS

SET_LABELS = {"standard": "standard (LIBERO's 50 init states: RL's training states)",
              "heldout": "held-out (fresh layouts from the same sampler; used for choosing settings)",
              "test": "test (untouched layouts from a new seed base; never used to choose anything)"}
"""What each init-state set is (tgrpo_lib.envs.init_states), as tables name it."""


# ------------------------------------------------------------- reading run dirs
def load_runs(root: Path | str | None = None, run_names=None, kind: str = "train") -> pd.DataFrame:
    """One row per *complete* training run: config fields, the advantage weights its variant used
    (``alpha1_used``, ``alpha2_used``: ``TrainConfig.advantage_weights``), final success rates
    (fractions), episode and success counts (``{before,after}_{set}_episodes`` / ``_successes``; NaN for a set
    the run did not evaluate, e.g. ``test`` in runs older than that set), env steps and package
    versions (``ver/<package>``)."""
    rows = []
    for run_dir in runs.list_runs(kind, root, complete_only=True):
        if run_names is not None and run_dir.name not in set(run_names):
            continue
        cfg = runs.read_config(run_dir)
        summary = runs.read_json(run_dir / "metrics.json")
        row = {"run_name": run_dir.name, "run_dir": str(run_dir), "model": _model_label(cfg),
               "device": (cfg.get("policy") or {}).get("device")}
        for key in ("suite", "task_id", "algo", "alpha1", "alpha2", "group_size", "seed", "iterations",
                    "final_eval_episodes", "init_checkpoint"):
            row[key] = cfg.get(key)
        # the weights the variant really uses (GRPO-sparse's and the ablations' are fixed, whatever is configured)
        weights = config_from_dict(cfg, source=str(run_dir / "config.json")).advantage_weights
        row["alpha1_used"], row["alpha2_used"] = weights
        for tag in ("before", "after"):
            for which in INIT_SETS:
                key = f"{tag}_{which}"
                row[key] = _number(summary.get(key))
                row[f"{key}_episodes"] = _number(summary.get(f"{key}_episodes"))
                row[f"{key}_successes"] = _successes(row[key], row[f"{key}_episodes"], run_dir, key)
        row["env_steps"] = summary.get("env_steps", math.nan)
        row.update(_versions(run_dir))
        rows.append(row)
    return pd.DataFrame(rows)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _successes(rate: float, episodes: float, run_dir: Path, key: str) -> float:
    """The success count behind a metrics.json rate (the evaluation writes rate = successes / episodes)."""
    if math.isnan(rate) or math.isnan(episodes):
        return math.nan
    count = round(rate * episodes)
    if abs(rate * episodes - count) > 1e-6:
        raise ValueError(f"{run_dir}/metrics.json: {key}={rate!r} is not a whole number of successes out of "
                         f"{key}_episodes={episodes:g}; the file was not written by the evaluation protocol: "
                         "re-run the run (or its evaluation) to rewrite it.")
    return float(count)


def _model_label(cfg: dict) -> str:
    pol = cfg.get("policy") or {}
    label = pol.get("kind", "?")
    if pol.get("model_path"):
        label += f" ({Path(pol['model_path']).name})"
    return label + (" from SFT checkpoint" if cfg.get("init_checkpoint") else " from scratch")


def _versions(run_dir: Path) -> dict:
    path = Path(run_dir) / "versions.json"
    if not path.exists():
        return {}
    v = json.loads(path.read_text())
    out = {f"ver/{k}": val for k, val in (v.get("packages") or {}).items()}
    out["ver/python"] = v.get("python")
    out["git_commit"] = v.get("git_commit")
    return out


SAME_CELL_SEED = ("suite", "task_id", "algo", "alpha1", "alpha2", "group_size", "seed", "init_checkpoint",
                  "iterations", "final_eval_episodes")
"""Runs that agree on all of these are one experiment repeated (e.g. ``make run``'s TGRPO run and
notebook 02's, which only adds evaluations on the way): a table counts one of them. alpha1 /
alpha2 are compared as the variant uses them (GRPO-sparse's are fixed)."""


def _checkpoint_key(path) -> str:
    if path is None or path != path:
        return ""
    path = Path(str(path))
    return str((path if path.is_absolute() else PROJECT_ROOT / path).resolve())


def distinct_runs(runs_df: pd.DataFrame) -> pd.DataFrame:
    """Runs that repeat one experiment (same ``SAME_CELL_SEED`` fields, the checkpoint compared by
    its resolved path) counted once: the first by run name is kept, since a repeat is not another
    seed and counting it would double its episodes and seeds. The names left out are in
    ``.attrs["repeats_left_out"]`` (`provenance` reports them)."""
    if not len(runs_df):
        return runs_df
    ordered = runs_df.sort_values("run_name", kind="stable")
    key = ordered[list(SAME_CELL_SEED)].astype(object)
    key = key.where(key.notna(), None)
    key["init_checkpoint"] = [_checkpoint_key(c) for c in ordered["init_checkpoint"]]
    key["alpha1"], key["alpha2"] = ordered["alpha1_used"].astype(object), ordered["alpha2_used"].astype(object)
    repeat = key.astype(str).duplicated(keep="first").to_numpy()
    out = ordered[~repeat].sort_index()
    out.attrs["repeats_left_out"] = sorted(ordered.loc[repeat, "run_name"].tolist())
    return out


def table_runs(runs_df: pd.DataFrame, alpha1: float | None = 0.3, group_size: int | None = None) -> pd.DataFrame:
    """The runs Table I / II rest on: TGRPO runs at ``alpha1`` only (the paper's 0.3, so alpha-sweep
    runs never blend into the TGRPO row) and, when given, one group size N for every method;
    repeated runs once (`distinct_runs`)."""
    if not len(runs_df):
        return runs_df
    keep = pd.Series(True, index=runs_df.index)
    if alpha1 is not None:
        keep &= (runs_df["algo"] != "tgrpo") | np.isclose(runs_df["alpha1"].astype(float), alpha1)
    if group_size is not None:
        keep &= runs_df["group_size"] == group_size
    return distinct_runs(runs_df[keep])


# ------------------------------------------------------------- per-task success
UNIT_COLUMNS = ["method", "suite", "task_id", "seed", "success", "successes", "n", "run_dir", "tag", "init_set"]


def method_success(runs_df: pd.DataFrame, methods: dict, init_set: str = "standard") -> pd.DataFrame:
    """Long table, one row per evaluation the rows of ``methods`` rest on: method, suite, task_id,
    seed, success % with its counts (successes of n episodes) and where the episodes are (run_dir,
    tag: ``after`` for a trained policy, ``before`` for SFT; init_set).

    SFT rows: the before-evaluation of the RL runs' starting policy, once per (suite, task, starting
    checkpoint), or per (suite, task, seed) for runs without a checkpoint (their fresh policies differ
    by seed). Greedy episodes of one checkpoint are cached, so every RL run starting from it holds the
    same episodes: counting each once keeps them from inflating n."""
    if init_set not in INIT_SETS:
        raise ValueError(f"init_set={init_set!r}: pass one of {INIT_SETS}.")
    parts = []
    rl_algos = [a for a in methods.values() if a]
    for method, algo in methods.items():
        if not len(runs_df):
            continue
        if algo is not None:
            sel, tag = runs_df[runs_df["algo"] == algo], "after"
        else:
            rl = runs_df[runs_df["algo"].isin(rl_algos)].sort_values("run_name")
            # one checkpoint however its path is spelled (relative or absolute)
            start = pd.Series([_checkpoint_key(c) or f"seed {sd}" for c, sd in zip(rl["init_checkpoint"], rl["seed"])],
                              index=rl.index)
            sel, tag = rl.assign(start=start).drop_duplicates(["suite", "task_id", "start"]), "before"
        if len(sel):
            key = f"{tag}_{init_set}"
            parts.append(pd.DataFrame({"method": method, "suite": sel["suite"], "task_id": sel["task_id"],
                                       "seed": sel["seed"], "success": 100 * sel[key],
                                       "successes": sel[f"{key}_successes"], "n": sel[f"{key}_episodes"],
                                       "run_dir": sel["run_dir"], "tag": tag, "init_set": init_set}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=UNIT_COLUMNS)
    out["method"] = pd.Categorical(out["method"], categories=list(methods), ordered=True)
    return out[UNIT_COLUMNS]


def ours_setup(runs_df: pd.DataFrame) -> str:
    """The model kinds and devices our runs used: ``tiny_vla, cpu`` ("no runs" for none)."""
    if not len(runs_df):
        return "no runs"
    kinds = sorted({str(m).split(" ")[0] for m in runs_df["model"].dropna()})
    devices = sorted({str(d) for d in runs_df.get("device", pd.Series(dtype=object)).dropna()})
    return ", ".join([*kinds, *devices]) or "model unknown"


def ours_scale(runs_df: pd.DataFrame) -> str:
    """What our numbers rest on, for headers beside the paper's: ``1 task per suite, tiny_vla, cpu``."""
    if not len(runs_df):
        return "no runs"
    per_suite = runs_df.groupby("suite")["task_id"].nunique()
    counts = sorted(set(per_suite))
    tasks = (f"{counts[0]} task{'s' * (counts[0] > 1)} per suite" if len(counts) == 1 else
             ", ".join(f"{SUITE_LABELS.get(su, su)} {k} tasks" for su, k in per_suite.items()))
    return f"{tasks}, {ours_setup(runs_df)}"


def select_runs(runs_df: pd.DataFrame, final_eval_episodes: int | None = None, seeds=None, suites=None) -> pd.DataFrame:
    """The runs of ``load_runs`` evaluated on ``final_eval_episodes`` episodes (one protocol per
    table), of ``seeds`` and on ``suites``; None keeps every value."""
    if not len(runs_df):
        return runs_df
    keep = pd.Series(True, index=runs_df.index)
    if final_eval_episodes is not None:
        keep &= runs_df["final_eval_episodes"] == final_eval_episodes
    if seeds is not None:
        keep &= runs_df["seed"].isin(list(seeds))
    if suites is not None:
        keep &= runs_df["suite"].isin(list(suites))
    return runs_df[keep]


__all__ = ["INIT_SETS", "SAME_CELL_SEED", "SET_LABELS", "UNIT_COLUMNS", "distinct_runs", "load_runs", "method_success",
           "ours_scale", "ours_setup", "select_runs", "table_runs"]
