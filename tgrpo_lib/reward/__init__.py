"""Multi-stage dense rewards (the paper's Eq. 1): offline stage compiler, LLM generator, sandbox.

    from tgrpo_lib.reward import RewardConfig, make_reward
    prog = make_reward("libero_object", 0, cfg=RewardConfig())     # goal: reward.tasks; instruction: envs.get_task
    out = prog(states)                                              # states: {key: (N, T, ...)}
    out.reward, out.stage, out.components["f1"], out.components["f2"]
    prog.source_hash, prog.provenance()                             # what a run records

    prog = make_reward("libero_object", 0, cfg=RewardConfig(source="llm"))   # Claude's program, proven
"""
from __future__ import annotations

import logging

from tgrpo_lib.envs.registry import get_task
from tgrpo_lib.infra.demos import task_dir
from tgrpo_lib.reward import llm
from tgrpo_lib.reward.config import FALLBACKS, SOURCES, RewardConfig
from tgrpo_lib.reward.evidence import RewardEvidence, collect_evidence
from tgrpo_lib.reward.llm import LLMRewardProgram, RewardGenerationError
from tgrpo_lib.reward.program import RewardOutput, RewardProgram, StageRewardProgram, compile_program
from tgrpo_lib.reward.sandbox import SandboxError, check_program, run_program
from tgrpo_lib.reward.sanity import SanityReport, check_reward, sanity_table
from tgrpo_lib.reward.stages import compile_stages
from tgrpo_lib.reward.tasks import GOALS, TaskGoal, task_goal

log = logging.getLogger(__name__)

__all__ = ["FALLBACKS", "GOALS", "LLMRewardProgram", "RewardConfig", "RewardEvidence", "RewardGenerationError",
           "RewardOutput", "RewardProgram", "SOURCES", "SandboxError", "SanityReport", "StageRewardProgram", "TaskGoal",
           "check_program", "check_reward", "collect_evidence", "compile_program", "compile_stages", "make_reward",
           "recorded_key_poses", "run_program", "sanity_table", "stages_table", "task_goal"]


def recorded_key_poses(suite: str, task_id: int, cfg: RewardConfig | None = None, root=None) -> list[dict] | None:
    """The key poses a run's reward is compiled with: the mean over the task's first
    ``cfg.key_pose_demos`` recorded expert demos (`tgrpo_lib.expert.load_key_poses`), so a reward
    does not change with how many demos the outputs folder happens to hold; None when none were
    recorded (the compiler then uses object positions)."""
    from tgrpo_lib.expert import load_key_poses  # deferred: the expert package loads only when asked

    return load_key_poses(suite, task_id, root, num_demos=(cfg or RewardConfig()).key_pose_demos)


def make_reward(suite: str, task_id: int, goal=None, instruction: str | None = None,
                cfg: RewardConfig | None = None, key_poses: list[dict] | None = None, *,
                evidence: RewardEvidence | None = None, demos_dir=None, client=None, progress: bool = False,
                require_sanity: bool = False, sanity_trajectories: list[dict] | None = None,
                sanity_success=None) -> RewardProgram:
    """The reward program for one task.

    goal defaults to the task's catalogued goal (``task_goal``, tgrpo_lib/reward/tasks.py), instruction
    to the task's own (``tgrpo_lib.envs.get_task``); key_poses are
    [{"label", "xyz"}] from `tgrpo_lib.expert.load_key_poses` for the offline compiler (None: poses
    from object positions).

    cfg.source "llm"/"cache" return a proven LLM program (`llm.llm_program`): validated on
    `evidence` (default: `collect_evidence` in the simulator, plus up to 2 recorded demos from
    `demos_dir`, default outputs/demos/<suite>/task_<id>). When none can be had, a
    `RewardGenerationError` (one line: cause and fix) is raised, or with cfg.fallback="offline"
    logged and the offline compiler used. `client`: an `anthropic.Anthropic` to use instead of one
    built from the environment.

    With require_sanity=True the program is checked on `sanity_trajectories` / `sanity_success`
    and refused if it fails.
    """
    cfg = cfg or RewardConfig()
    known = GOALS.get((suite, task_id))
    if goal is None or instruction is None:
        known = task_goal(suite, task_id)  # a task without a catalogued goal is refused in one line
        goal = known.goal if goal is None else goal
        instruction = get_task(suite, task_id).instruction if instruction is None else instruction
    goal = tuple(tuple(a) for a in goal)
    initially_true = known.initially_true if known is not None and known.goal == goal else ()
    program: RewardProgram | None = None
    if cfg.source in ("llm", "cache"):
        try:
            program = _llm_reward(suite, task_id, goal, instruction, cfg, evidence, demos_dir, client, progress)
        except RewardGenerationError as e:
            if cfg.fallback != "offline":
                raise
            log.warning("%s -> using the offline stage compiler (RewardConfig.fallback='offline')", e)
    if program is None:
        program = compile_program(goal, instruction, cfg, key_poses, initially_true)
    if require_sanity:
        if not sanity_trajectories:
            raise ValueError("require_sanity=True needs sanity_trajectories and sanity_success (expert demos "
                             "plus failed/random rollouts); pass them or set require_sanity=False")
        rep = check_reward(program, sanity_trajectories, sanity_success, task=f"{suite}/{task_id}")
        if not rep.ok:
            raise ValueError(f"reward for {suite} #{task_id} ({program.source}) failed its sanity check: "
                             f"{rep.row['reason']}; fix the reward (or the demos) or set require_sanity=False")
    return program


def _llm_reward(suite, task_id, goal, instruction, cfg, evidence, demos_dir, client, progress) -> LLMRewardProgram:
    # Fail before spending simulator time on evidence when nothing could come of it.
    if not llm.has_cache_entries(cfg, suite, task_id):
        if cfg.source == "cache":
            raise RewardGenerationError(
                f"no cached LLM reward for {suite} #{task_id} in {llm.cache_dir(cfg, suite, task_id)}: run "
                f"`python -m tgrpo_lib reward generate --suite {suite} --tasks {task_id}` with ANTHROPIC_API_KEY "
                "set, or use RewardConfig(source='offline')", kind="setup")
        if client is None and not llm.api_key_available():
            raise RewardGenerationError(llm.NO_KEY, kind="setup")
    if evidence is None:
        if demos_dir is None:
            demos_dir = task_dir(suite, task_id)
        evidence = collect_evidence(suite, task_id, demos_dir=demos_dir, progress=progress)
    elif (evidence.suite, evidence.task_id) != (suite, task_id):
        raise ValueError(f"evidence is for {evidence.suite} #{evidence.task_id}, not {suite} #{task_id}: "
                         "pass the task's own (collect_evidence(suite, task_id))")
    return llm.llm_program(suite, task_id, cfg, evidence, instruction, goal, client)


def stages_table(cfg: RewardConfig | None = None):
    """All 40 catalogued tasks compiled offline: one row per stage (notebook overview)."""
    import pandas as pd
    frames = []
    for (suite, tid), known in GOALS.items():
        df = compile_program(known.goal, get_task(suite, tid).instruction, cfg, None, known.initially_true).describe()
        df.insert(0, "task_id", tid)
        df.insert(0, "suite", suite)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
