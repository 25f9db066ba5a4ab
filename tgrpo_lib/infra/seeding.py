"""Seeding in one place: the global RNGs of python, numpy and torch, and their state for exact resume.

Code that owns its own generator (``np.random.default_rng(seed)``, ``torch.Generator``) must
save that generator's state itself; these helpers cover the process-global ones.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> int:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and every CUDA device). Returns seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}; pass e.g. seed=0")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds all CUDA devices
    return seed


def rng_state() -> dict:
    """Snapshot of the python, numpy and torch global RNG states (picklable, for checkpoints)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore a snapshot from ``rng_state()``: the next draws repeat those after the snapshot."""
    missing = {"python", "numpy", "torch"} - set(state)
    if missing:
        raise ValueError(f"RNG state lacks {sorted(missing)}; pass the dict returned by rng_state()")
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
