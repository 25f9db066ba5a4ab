"""Init-state sets: LIBERO's 50 fixed states per task (``standard``) or held-out layouts.

Held-out init states come from LIBERO's own placement sampler (a new scene layout per seed)
with seeds disjoint from anything else in the project, and are cached to disk, so results can
be reported on states a policy was never trained on.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import tgrpo_lib

from .config import EnvConfig
from .core import make_env
from .registry import get_task, standard_init_states

HELDOUT_SEED_BASE = 1_000_003  # seeds used only for held-out layouts (standard states ship with LIBERO)
TRAINING_SEED_BASE = 2_000_003  # seeds of the layouts demonstrations are recorded on (disjoint from held-out)
INIT_STATE_SETS = ("standard", "heldout")


def heldout_seeds(task_id: int, n: int) -> np.ndarray:
    """The ``np.random`` seeds of a task's first ``n`` held-out layouts."""
    return HELDOUT_SEED_BASE + 1000 * int(task_id) + np.arange(n)


def training_layout_seeds(task_id: int, n: int) -> np.ndarray:
    """The ``np.random`` seeds of a task's first ``n`` training layouts (expert demonstrations on
    fresh scenes; never equal to a held-out seed: both bases leave 1000 seeds per task)."""
    return TRAINING_SEED_BASE + 1000 * int(task_id) + np.arange(n)


def heldout_init_states(suite: str, task_id: int, n: int = 50, cache_dir: Path | None = None) -> np.ndarray:
    """``n`` init states drawn by LIBERO's placement sampler, cached as .npz; shape (n, D)."""
    spec = get_task(suite, task_id)
    cache_dir = Path(cache_dir or tgrpo_lib.CACHE_DIR / "heldout_init_states") / spec.suite
    path = cache_dir / f"task_{spec.task_id}_n{n}.npz"
    if path.exists():
        return np.load(path)["states"]
    seeds = heldout_seeds(spec.task_id, n)
    # Layouts drawn on the reused model equal those of a model rebuild per state (~2 s each)
    # bit for bit, at ~0.03 s each (tests/envs/test_init_states.py).
    env = make_env(spec.suite, spec.task_id, EnvConfig(cameras=(), hard_reset=False))
    try:
        states = np.stack([env.sample_layout(seed=int(seed)) for seed in seeds])
    finally:
        env.close()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, states=states, seeds=seeds)
    os.replace(tmp, path)
    return states


def init_states_for(suite: str, task_id: int, which: str = "standard", n: int | None = None) -> np.ndarray:
    """The init-state set named ``which`` (``standard`` = LIBERO's 50, ``heldout`` = sampled)."""
    if which == "standard":
        states = standard_init_states(suite, task_id)
        return states if n is None else states[:n]
    if which == "heldout":
        return heldout_init_states(suite, task_id, n=n or 50)
    raise ValueError(f"init_states={which!r}: pass one of {INIT_STATE_SETS}.")
