"""Init-state sets, three per task, named for what they are:

- ``standard``: LIBERO's 50 fixed states (the paper trains RL on them and reports on them, and
  so does this workbook by default: tables call them training states).
- ``heldout``: fresh layouts from LIBERO's own placement sampler on seeds disjoint from anything
  else (~1-2 cm from one another: a new sample of the same distribution). Allowed for choosing
  settings (learning rate, temperature, checkpoints).
- ``test``: 100 more layouts from the same sampler on a third seed base, generated once; their
  content hash is recorded in the package (``data/test_init_states.json``) and checked every
  time they are loaded. Never used to choose anything: the untouched set results are reported on.

Sampled sets are cached to disk (``.cache``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

import tgrpo_lib

from .config import EnvConfig
from .core import make_env
from .registry import SUITES, get_task, standard_init_states

HELDOUT_SEED_BASE = 1_000_003  # seeds used only for held-out layouts (standard states ship with LIBERO)
TRAINING_SEED_BASE = 2_000_003  # seeds of the layouts demonstrations are recorded on (disjoint from held-out)
TEST_SEED_BASE = 3_000_017  # seeds of the untouched test layouts (disjoint from both bases above)
N_TEST_STATES = 100
INIT_STATE_SETS = ("standard", "heldout", "test")
TEST_HASHES = Path(tgrpo_lib.__file__).parent / "data" / "test_init_states.json"


def heldout_seeds(task_id: int, n: int) -> np.ndarray:
    """The ``np.random`` seeds of a task's first ``n`` held-out layouts."""
    return HELDOUT_SEED_BASE + 1000 * int(task_id) + np.arange(n)


def training_layout_seeds(task_id: int, n: int) -> np.ndarray:
    """The ``np.random`` seeds of a task's first ``n`` training layouts (expert demonstrations on
    fresh scenes; never equal to a held-out seed: both bases leave 1000 seeds per task)."""
    return TRAINING_SEED_BASE + 1000 * int(task_id) + np.arange(n)


def test_seeds(task_id: int, n: int = N_TEST_STATES) -> np.ndarray:
    """The ``np.random`` seeds of a task's test layouts."""
    return TEST_SEED_BASE + 1000 * int(task_id) + np.arange(n)


def states_hash(states: np.ndarray) -> str:
    """sha256 of a set of init states, rounded to 1e-9 first (a layout is positions in metres and
    quaternions: the last float bits carry nothing a policy could see)."""
    return hashlib.sha256(np.ascontiguousarray(np.round(states, 9), dtype=np.float64).tobytes()).hexdigest()


def recorded_test_hashes() -> dict[str, str]:
    """``{"<suite>-<task>": sha256}`` of every task's test layouts, as generated once."""
    return json.loads(TEST_HASHES.read_text())["hashes"] if TEST_HASHES.is_file() else {}


def test_init_states(suite: str, task_id: int, cache_dir: Path | None = None, check: bool = True) -> np.ndarray:
    """The task's 100 untouched test layouts, shape (100, D), checked against the recorded hash:
    a simulator or LIBERO that lays them out differently is refused rather than silently tested
    on other scenes."""
    spec = get_task(suite, task_id)
    states = _sampled_states(spec, test_seeds(spec.task_id), Path(cache_dir or tgrpo_lib.CACHE_DIR / "test_init_states")
                             / spec.suite / f"task_{spec.task_id}.npz")
    if check:
        expected = recorded_test_hashes().get(spec.key)
        if expected is None:
            raise ValueError(f"{spec.key} has no recorded test-layout hash in {TEST_HASHES}: generate it once with "
                             "`python -m tgrpo_lib.envs.init_states --record-test-hashes` and commit the file.")
        if states_hash(states) != expected:
            raise ValueError(f"the test layouts of {spec.key} differ from the recorded ones ({TEST_HASHES}): the "
                             "simulator or LIBERO lays scenes out differently here; install the locked versions "
                             "(make env) and delete the cache folder .cache/test_init_states.")
    return states


def heldout_init_states(suite: str, task_id: int, n: int = 50, cache_dir: Path | None = None) -> np.ndarray:
    """``n`` init states drawn by LIBERO's placement sampler, cached as .npz; shape (n, D)."""
    spec = get_task(suite, task_id)
    cache_dir = Path(cache_dir or tgrpo_lib.CACHE_DIR / "heldout_init_states") / spec.suite
    return _sampled_states(spec, heldout_seeds(spec.task_id, n), cache_dir / f"task_{spec.task_id}_n{n}.npz")


def _sampled_states(spec, seeds: np.ndarray, path: Path) -> np.ndarray:
    """One layout per seed from LIBERO's placement sampler, cached at ``path``."""
    if path.exists():
        return np.load(path)["states"]
    # Layouts drawn on the reused model equal those of a model rebuild per state (~2 s each)
    # bit for bit, at ~0.03 s each (tests/envs/test_init_states.py).
    env = make_env(spec.suite, spec.task_id, EnvConfig(cameras=(), hard_reset=False))
    try:
        states = np.stack([env.sample_layout(seed=int(seed)) for seed in seeds])
    finally:
        env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, states=states, seeds=seeds)
    os.replace(tmp, path)
    return states


def init_states_for(suite: str, task_id: int, which: str = "standard", n: int | None = None) -> np.ndarray:
    """The init-state set named ``which``: ``standard`` (LIBERO's 50), ``heldout`` (sampled, 50 by
    default) or ``test`` (the 100 recorded layouts; ``n`` takes the first n)."""
    if which == "standard":
        states = standard_init_states(suite, task_id)
        return states if n is None else states[:n]
    if which == "heldout":
        return heldout_init_states(suite, task_id, n=n or 50)
    if which == "test":
        if n is not None and not 1 <= n <= N_TEST_STATES:
            raise ValueError(f"n={n}: the test set holds {N_TEST_STATES} layouts per task; pass 1..{N_TEST_STATES}.")
        return test_init_states(suite, task_id)[:n]
    raise ValueError(f"init_states={which!r}: pass one of {INIT_STATE_SETS}.")


def record_test_hashes(suites=SUITES) -> dict[str, str]:
    """Generate every task's test layouts and write their hashes to ``TEST_HASHES`` (run once;
    the file is committed). Tasks already recorded keep their hash: a mismatch is raised, not
    overwritten."""
    recorded = recorded_test_hashes()
    for suite in suites:
        for task_id in range(10):  # every suite of the paper has 10 tasks
            key = get_task(suite, task_id).key
            states = test_init_states(suite, task_id, check=key in recorded)
            recorded[key] = states_hash(states)
            print(f"{key}: {recorded[key][:16]}", flush=True)
    TEST_HASHES.parent.mkdir(parents=True, exist_ok=True)
    doc = {"about": f"sha256 (states_hash) of each task's {N_TEST_STATES} test layouts, seeds TEST_SEED_BASE + "
                    "1000 * task_id + 0..99 (tgrpo_lib/envs/init_states.py); generated once, checked on every load",
           "hashes": dict(sorted(recorded.items()))}
    TEST_HASHES.write_text(json.dumps(doc, indent=1) + "\n")
    return recorded


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--record-test-hashes"]:
        sys.exit("usage: python -m tgrpo_lib.envs.init_states --record-test-hashes")
    record_test_hashes()
