"""Task registry: every LIBERO suite the installed package ships, its tasks and episode protocol.

The four suites of the paper (``SUITES``) are the ones a policy is trained on. Beside them the
registry knows ``libero_90`` and the LIBERO-PRO perturbation suites shipped with the same
package, ``<base>_<perturbation>`` for a base suite and one of ``lan`` (paraphrased
instruction), ``object`` (changed object appearance), ``swap`` (swapped positions), ``task``
(changed task) and ``with_<distractor>`` (an extra object in the scene): any of them can be
evaluated. A perturbation suite keeps its base suite's step budget; a suite is listed only when
its BDDL files and init states are installed (``shipped_suites``).

Suite facts follow the OpenVLA / LeRobot evaluation scripts: 50 fixed init states per task,
10 no-op warm-up steps, and a per-suite step budget.
"""
from __future__ import annotations

import functools
import os
import re
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
# libero_90: the budget OpenVLA's LIBERO evaluation script gives it.
MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400}
EXTRA_SUITES = ("libero_90",)  # shipped, evaluated, never trained on here (no reward catalogue)
PERTURBATIONS = ("lan", "object", "swap", "task", "with_<distractor>")
_VARIANT = re.compile(r"^(libero_spatial|libero_object|libero_goal|libero_10)_(lan|object|swap|task|with_[a-z_]+)$")
NUM_WARMUP_STEPS = 10
NOOP_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)  # hold still, gripper open


@dataclass(frozen=True)
class TaskSpec:
    """One LIBERO task: everything needed to build and evaluate it."""

    suite: str  # canonical suite name, e.g. "libero_object"
    task_id: int  # 0..9 inside the suite
    name: str  # file-name form of the instruction
    instruction: str  # language instruction given to the policy (task.language; see _instruction)
    bddl_path: str  # absolute path of the BDDL problem file
    max_steps: int  # policy steps after warm-up (220/280/300/520)
    num_warmup_steps: int = NUM_WARMUP_STEPS

    @property
    def key(self) -> str:
        """Short id used in run names: ``libero_object-3``."""
        return f"{self.suite}-{self.task_id}"


def split_suite(suite: str) -> tuple[str, str | None]:
    """``libero_object_lan`` -> (``libero_object``, ``lan``); a base or extra suite -> (suite, None)."""
    m = _VARIANT.match(suite)
    return (m.group(1), m.group(2)) if m else (suite, None)


def base_suite(suite: str) -> str:
    """The suite a perturbation suite perturbs (a base suite is its own base)."""
    return split_suite(suite)[0]


@functools.lru_cache(maxsize=None)
def shipped_suites() -> tuple[str, ...]:
    """Every suite the installed LIBERO can run: the four base suites, ``libero_90`` and each
    LIBERO-PRO perturbation suite whose BDDL files and init states are installed."""
    registered = third_party.libero_benchmark().get_benchmark_dict()
    bddl, init = third_party.libero_path("bddl_files"), third_party.libero_path("init_states")
    extra = sorted(name for name in registered
                   if (name in EXTRA_SUITES or _VARIANT.match(name))
                   and os.path.isdir(os.path.join(bddl, name)) and os.path.isdir(os.path.join(init, name)))
    return SUITES + tuple(extra)


def canonical_suite(suite: str, variants: bool = False) -> str:
    """Map an alias (``spatial|object|goal|long``) to the canonical LIBERO suite name.

    Only the four base suites are accepted unless ``variants``: then also ``libero_90`` and the
    shipped perturbation suites (evaluation only; training needs the reward catalogue)."""
    name = str(suite).strip().lower()
    name = SUITE_ALIASES.get(name, name)
    if name in SUITES:
        return name
    perturbed = bool(_VARIANT.match(name)) or name in EXTRA_SUITES
    if perturbed and not variants:
        raise ValueError(f"{name} is for evaluation only (evaluate(), notebooks/06_robustness.ipynb); training, "
                         f"demonstrations and rewards use a base suite: pass one of {', '.join(SUITES)}.")
    if perturbed and name in shipped_suites():
        return name
    more = " or a shipped variant (tgrpo_lib.envs.shipped_suites())" if variants else ""
    raise ValueError(
        f"Unknown suite {suite!r}: pass one of {', '.join(SUITES)} "
        f"(or an alias: {', '.join(sorted(SUITE_ALIASES))}){more}."
    )


@functools.lru_cache(maxsize=None)
def _benchmark(suite: str):
    # deferred (~0.2 s): canonical_suite and the constants need no libero
    return third_party.libero_benchmark().get_benchmark_dict()[suite]()


def _bddl_path(task) -> str:
    return os.path.join(third_party.libero_path("bddl_files"), task.problem_folder, task.bddl_file)


@functools.lru_cache(maxsize=None)
def _bddl_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def _bddl_language(path: str) -> str:
    m = re.search(r"\(:language\s+([^)]*)\)", _bddl_text(path))
    return m.group(1).strip() if m else ""


def _bddl_goal(path: str) -> str:
    text = _bddl_text(path)
    return " ".join(text[text.find("(:goal"):].split())


def _same_words(a: str, b: str) -> bool:
    """Instructions equal up to case and the filler words LIBERO's file names add or drop."""
    words = lambda s: [w for w in s.lower().split() if w not in ("up", "the")]  # noqa: E731
    return words(a) == words(b)


def _instruction(suite: str, task) -> str:
    """``task.language`` (the file-name form the policy is trained on), except where a
    perturbation suite rewrites the instruction (``_lan`` paraphrases, ``_task`` new goals, some
    distractor scenes): then the BDDL's own ``(:language ...)``, the instruction LIBERO-PRO means."""
    base, perturbation = split_suite(suite)
    if perturbation is None:
        return task.language
    own = _bddl_language(_bddl_path(task))
    for b in _benchmark(base).tasks:  # the base task with this goal or this instruction
        if _same_words(b.language, task.language) or _bddl_goal(_bddl_path(b)) == _bddl_goal(_bddl_path(task)):
            return b.language if _same_words(_bddl_language(_bddl_path(b)), own) else own.lower()
    return own.lower()


def get_task(suite: str, task_id: int) -> TaskSpec:
    """Look up one task of any shipped suite; raises ValueError naming the valid range for a bad id."""
    suite = canonical_suite(suite, variants=True)
    bench = _benchmark(suite)
    if not isinstance(task_id, (int, np.integer)) or not 0 <= int(task_id) < bench.n_tasks:
        raise ValueError(f"Task id {task_id!r} is out of range for {suite}: pass 0..{bench.n_tasks - 1}.")
    task = bench.get_task(int(task_id))
    return TaskSpec(
        suite=suite,
        task_id=int(task_id),
        name=task.name,
        instruction=_instruction(suite, task),
        bddl_path=_bddl_path(task),
        max_steps=MAX_STEPS[base_suite(suite)],
    )


def perturbations(suite: str) -> list[str]:
    """The perturbation suites shipped for a base suite, e.g. ``libero_object_lan``, in name order."""
    suite = canonical_suite(suite)
    return [s for s in shipped_suites() if split_suite(s)[0] == suite and s != suite]


def perturbed_task(suite: str, task_id: int, variant: str) -> TaskSpec | None:
    """The task of perturbation suite ``variant`` that perturbs base task (suite, task_id), or None
    when the variant has no counterpart of it.

    Perturbation suites do not keep the base suite's task order (the distractor scenes shuffle
    it), so a counterpart is found by its goal (same BDDL goal), else by its instruction; the
    ``object`` and ``task`` suites change the goal on purpose and keep the order, so there it is the
    task with the same index."""
    base = get_task(suite, task_id)
    variant = canonical_suite(variant, variants=True)
    if split_suite(variant)[0] != base.suite:
        raise ValueError(f"{variant} is not a perturbation of {base.suite}: pass one of {', '.join(perturbations(base.suite))}.")
    tasks = [get_task(variant, i) for i in range(_benchmark(variant).n_tasks)]
    if split_suite(variant)[1] in ("object", "task"):
        return tasks[task_id] if task_id < len(tasks) else None
    goal = _bddl_goal(base.bddl_path)
    same_goal = [t for t in tasks if _bddl_goal(t.bddl_path) == goal]
    if same_goal:  # several scenes with this goal: the one at the base task's index, else the first
        return next((t for t in same_goal if t.task_id == task_id), same_goal[0])
    same_words = [t for t in tasks if _same_words(_bddl_language(t.bddl_path), _bddl_language(base.bddl_path))]
    return same_words[0] if same_words else None


def list_tasks(suite: str | None = None) -> list[TaskSpec]:
    """All tasks of one suite (any shipped suite), or of the four base suites when ``suite`` is None."""
    suites = SUITES if suite is None else (canonical_suite(suite, variants=True),)
    return [get_task(s, i) for s in suites for i in range(_benchmark(s).n_tasks)]


def standard_init_states(suite: str, task_id: int) -> np.ndarray:
    """The 50 fixed init states of a task (flattened MuJoCo states), shape (50, D)."""
    spec = get_task(suite, task_id)
    states = _benchmark(spec.suite).get_task_init_states(spec.task_id)
    return np.asarray(states, dtype=np.float64)
