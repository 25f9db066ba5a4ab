"""Multi-stage dense rewards (the paper's Eq. 1): offline stage compiler, LLM generator, sandbox.

    from tgrpo_lib.reward import RewardConfig, make_reward
    prog = make_reward("libero_object", 0, cfg=RewardConfig())     # goal + instruction from the catalogue
    out = prog(states)                                              # states: {key: (N, T, ...)}
    out.reward, out.stage, out.components["f1"], out.components["f2"]
"""
from __future__ import annotations

import logging

from tgrpo_lib.reward.config import RewardConfig
from tgrpo_lib.reward.program import RewardOutput, RewardProgram, StageRewardProgram, compile_program
from tgrpo_lib.reward.sandbox import SandboxError, check_program, run_program
from tgrpo_lib.reward.sanity import SanityReport, check_reward, sanity_table
from tgrpo_lib.reward.stages import compile_stages
from tgrpo_lib.reward.tasks import TASKS, get_task

log = logging.getLogger(__name__)

__all__ = ["RewardConfig", "RewardOutput", "RewardProgram", "StageRewardProgram", "SandboxError",
           "SanityReport", "TASKS", "check_program", "check_reward", "compile_program", "compile_stages",
           "get_task", "make_reward", "run_program", "sanity_table", "stages_table"]


def make_reward(suite: str, task_id: int, goal=None, instruction: str | None = None,
                cfg: RewardConfig | None = None, key_poses: list[dict] | None = None, *,
                example_state: dict | None = None, client=None, require_sanity: bool = False,
                sanity_trajectories: list[dict] | None = None, sanity_success=None) -> RewardProgram:
    """The reward program for one task.

    goal/instruction default to the catalogue (tgrpo_lib/reward/tasks.py); key_poses are
    [{"label", "xyz"}] from `tgrpo_lib.expert.load_key_poses` (None: poses from object positions).
    cfg.source "llm"/"cache" use a cached or fresh Claude answer and fall back to the offline
    compiler (with a logged warning) when neither is available. With require_sanity=True the
    program is checked on `sanity_trajectories` / `sanity_success` and refused if it fails.
    """
    cfg = cfg or RewardConfig()
    known = TASKS.get((suite, task_id))
    if goal is None or instruction is None:
        if known is None:
            get_task(suite, task_id)  # raises the clear error
        goal = known.goal if goal is None else goal
        instruction = known.instruction if instruction is None else instruction
    goal = tuple(tuple(a) for a in goal)
    initially_true = known.initially_true if known is not None and known.goal == goal else ()
    program: RewardProgram | None = None
    if cfg.source in ("llm", "cache"):
        from tgrpo_lib.reward import llm
        notes = ""
        if initially_true:
            notes = f"Atoms {[list(a) for a in initially_true]} already hold at the start: never touch them."
        rec = llm.generate(suite, task_id, instruction, goal, cfg, key_poses, example_state, notes, client)
        if rec is not None:
            program = llm.LLMRewardProgram(rec["program"], cfg, rec)
        else:
            log.warning("no LLM reward available for %s #%d: using the offline stage compiler", suite, task_id)
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


def stages_table(cfg: RewardConfig | None = None):
    """All 40 catalogued tasks compiled offline: one row per stage (notebook overview)."""
    import pandas as pd
    frames = []
    for (suite, tid), spec in TASKS.items():
        df = compile_program(spec.goal, spec.instruction, cfg, None, spec.initially_true).describe()
        df.insert(0, "task_id", tid)
        df.insert(0, "suite", suite)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
