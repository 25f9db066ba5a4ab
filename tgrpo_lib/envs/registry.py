"""Task registry: the four LIBERO suites of the paper, their tasks and episode protocol.

Suite facts follow the OpenVLA / LeRobot evaluation scripts: 50 fixed init states per task,
10 no-op warm-up steps, and a per-suite step budget.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

import tgrpo_lib  # noqa: F401  (sets MUJOCO_GL / LIBERO_CONFIG_PATH before libero is imported)

from . import third_party

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
SUITE_ALIASES = {
    "spatial": "libero_spatial",
    "object": "libero_object",
    "goal": "libero_goal",
    "long": "libero_10",
    "10": "libero_10",
    "libero_long": "libero_10",
}
MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520}
NUM_WARMUP_STEPS = 10
NOOP_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)  # hold still, gripper open


@dataclass(frozen=True)
class TaskSpec:
    """One LIBERO task: everything needed to build and evaluate it."""

    suite: str  # canonical suite name, e.g. "libero_object"
    task_id: int  # 0..9 inside the suite
    name: str  # file-name form of the instruction
    instruction: str  # language instruction given to the policy (task.language)
    bddl_path: str  # absolute path of the BDDL problem file
    max_steps: int  # policy steps after warm-up (220/280/300/520)
    num_warmup_steps: int = NUM_WARMUP_STEPS

    @property
    def key(self) -> str:
        """Short id used in run names: ``libero_object-3``."""
        return f"{self.suite}-{self.task_id}"


def canonical_suite(suite: str) -> str:
    """Map an alias (``spatial|object|goal|long``) to the canonical LIBERO suite name."""
    name = str(suite).strip().lower()
    name = SUITE_ALIASES.get(name, name)
    if name not in SUITES:
        raise ValueError(
            f"Unknown suite {suite!r}: pass one of {', '.join(SUITES)} "
            f"(or an alias: {', '.join(sorted(SUITE_ALIASES))})."
        )
    return name


@functools.lru_cache(maxsize=None)
def _benchmark(suite: str):
    # deferred (~0.2 s): canonical_suite and the constants need no libero
    return third_party.libero_benchmark().get_benchmark_dict()[suite]()


def get_task(suite: str, task_id: int) -> TaskSpec:
    """Look up one task; raises ValueError naming the valid range for a bad id."""
    suite = canonical_suite(suite)
    bench = _benchmark(suite)
    if not isinstance(task_id, (int, np.integer)) or not 0 <= int(task_id) < bench.n_tasks:
        raise ValueError(f"Task id {task_id!r} is out of range for {suite}: pass 0..{bench.n_tasks - 1}.")
    task = bench.get_task(int(task_id))
    bddl = os.path.join(third_party.libero_path("bddl_files"), task.problem_folder, task.bddl_file)
    return TaskSpec(
        suite=suite,
        task_id=int(task_id),
        name=task.name,
        instruction=task.language,
        bddl_path=bddl,
        max_steps=MAX_STEPS[suite],
    )


def list_tasks(suite: str | None = None) -> list[TaskSpec]:
    """All tasks of one suite, or of the four suites when ``suite`` is None."""
    suites = SUITES if suite is None else (canonical_suite(suite),)
    return [get_task(s, i) for s in suites for i in range(_benchmark(s).n_tasks)]


def standard_init_states(suite: str, task_id: int) -> np.ndarray:
    """The 50 fixed init states of a task (flattened MuJoCo states), shape (50, D)."""
    spec = get_task(suite, task_id)
    states = _benchmark(spec.suite).get_task_init_states(spec.task_id)
    return np.asarray(states, dtype=np.float64)
