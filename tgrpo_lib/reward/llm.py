"""The paper's LLM-written multi-stage reward (Eq. 1): prompt, Claude call, validation, cache.

    prog = llm_program("libero_object", 0, cfg, evidence)     # cached if proven, else Claude
    prog.source_hash, prog.n_stages, prog.cache_path

Flow (`llm_program`), one module per step beside this one:

1. The prompt (`llm_prompt.build_prompt`) follows the paper: the instruction (and LIBERO's goal
   condition), the key objects with their positions read from a real start state and at the end
   of a successful expert demonstration, the key poses of that demonstration, the state keys the
   program may read, and the output contract. Claude decomposes the stages and chooses every
   threshold itself; nothing of the offline compiler's geometry is in it.
2. Cache key = sha256(prompt, model, VALIDATOR_VERSION) (`llm_cache`). A cached program is
   validated again before use; one that fails is reported with its path and regenerated
   (source="llm") or refused (source="cache"), never used.
3. Claude is asked through the installed `anthropic` SDK (`llm_api.ask_llm`; streamed, so
   `request_timeout_s` bounds silence, not answer length), with bounded retries and backoff on
   429 / 529 / 5xx / timeouts.
4. `validate_program` (here): static check, a sandboxed run on the init-state start states, then the
   sanity check on expert successes vs random rollouts (successes out-score every failure and end
   on the last stage). The stage count is the N_STAGES the program set when it ran.
5. Only a proven program is written: `<key>.py` (program), `<key>.prompt.md` (prompt) and
   `<key>.json` (model, answer, validation, written last: an entry without it does not exist).

Every failure raises `RewardGenerationError`, one line naming the cause and the fix. The names of
the step modules are importable from here too, as they were before the split; their tunables
(`llm_api.BACKOFF_BASE_S`, `llm_cache.VALIDATOR_VERSION`) are read where they are defined, so set
or patch them there.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tgrpo_lib
from tgrpo_lib.envs.registry import get_task
from tgrpo_lib.reward import sandbox
from tgrpo_lib.reward.config import RewardConfig
from tgrpo_lib.reward.llm_api import Answer, RewardGenerationError, ask_llm, code_from_answer
from tgrpo_lib.reward.llm_cache import (VALIDATOR_VERSION, cache_dir, cache_key, display_path, entry_paths, read_entry,
                                        source_hash, write_entry)
from tgrpo_lib.reward.llm_prompt import evidence_prompt
from tgrpo_lib.reward.program import RewardOutput, RewardProgram, batch_shape, running_max_stage
from tgrpo_lib.reward.tasks import task_goal

# Re-exported, not used here: the package, its commands and tests import these from `llm`, as before the split.
from tgrpo_lib.reward.llm_api import NO_KEY, api_key_available, make_client  # noqa: F401
from tgrpo_lib.reward.llm_cache import has_cache_entries  # noqa: F401
from tgrpo_lib.reward.llm_prompt import SYSTEM, build_prompt, key_objects  # noqa: F401

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ the program
class LLMRewardProgram(RewardProgram):
    """An LLM-written reward run in the sandbox; reward clipped to [0, N_STAGES + 1].

    `n_stages` is what the program set when it ran during validation; every later run must agree.
    """

    source = "llm"

    def __init__(self, code: str, n_stages: int, cfg: RewardConfig | None = None, record: dict | None = None,
                 cache_path: str | Path | None = None, origin: str = ""):
        sandbox.check_program(code)
        self.origin = origin  # "cache": a validated entry was reused; "generated": Claude wrote it just now
        self.code = code
        self.cfg = cfg or RewardConfig()
        self.record = record or {}
        self.cache_path = None if cache_path is None else str(cache_path)
        self.n_stages = int(n_stages)
        self.stage_names = tuple(f"llm_stage_{k + 1}" for k in range(self.n_stages))
        self.source_hash = source_hash(code)

    @property
    def max_reward(self) -> float:
        return float(self.n_stages + 1)

    def __call__(self, state: dict, step: np.ndarray | None = None) -> RewardOutput:
        batch_shape(state)
        r, raw, n = sandbox.run_program(code=self.code, state=state, step=step,
                                        timeout_s=self.cfg.sandbox_timeout_s, memory_mb=self.cfg.sandbox_memory_mb)
        if n != self.n_stages:
            raise sandbox.SandboxError([f"the program set N_STAGES = {n}, validated with {self.n_stages}"])
        reward = np.clip(r, 0.0, self.max_reward)
        return RewardOutput(reward, running_max_stage(raw), raw, {"llm_reward_unclipped": r})

    def provenance(self) -> dict:
        return {**super().provenance(), "reward_cache_entry": self.cache_path,
                "reward_model": self.record.get("model"), "reward_prompt_key": self.record.get("key")}


# ------------------------------------------------------------------------------ validation
@dataclass
class Validation:
    ok: bool
    reason: str
    n_stages: int | None = None
    sanity: dict | None = None  # the sanity report's row


def validate_program(code: str, evidence, cfg: RewardConfig) -> Validation:
    """Static check, a sandboxed run on the init-state start states, then the sanity check on the
    expert successes and random rollouts of `evidence` (a `RewardEvidence`)."""
    try:
        sandbox.check_program(code)
    except sandbox.SandboxError as e:
        return Validation(False, f"static check: {'; '.join(e.problems[:3])}")
    try:
        _, _, n_stages = sandbox.run_program(code, evidence.start_batch(), timeout_s=cfg.sandbox_timeout_s,
                                             memory_mb=cfg.sandbox_memory_mb)
    except sandbox.SandboxError as e:
        return Validation(False, f"run on {len(evidence.start_states)} init-state start states: "
                                 f"{'; '.join(e.problems[:3])}")
    if not evidence.n_success:
        return Validation(False, f"no successful expert demonstration to check it on (the expert solved 0 of "
                                 f"{evidence.expert_tries} episodes)", n_stages)
    program = LLMRewardProgram(code, n_stages, cfg)
    try:
        rep = evidence.sanity(program, require_monotone=False)
    except sandbox.SandboxError as e:
        return Validation(False, f"run on the demonstrations: {'; '.join(e.problems[:3])}", n_stages)
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in rep.row.items()}
    if not rep.ok:
        return Validation(False, f"sanity check: {row['reason']}", n_stages, row)
    return Validation(True, "ok", n_stages, row)


# ------------------------------------------------------------------------------ the flow
def _save_rejected(suite: str, task_id: int, key: str, prompt: str, answer: Answer, reason: str) -> Path:
    """Rejected answers go to outputs/ for inspection, never to the cache."""
    path = tgrpo_lib.OUTPUTS_DIR / "reward_rejected" / suite / f"task_{task_id}" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"reason": reason, "model": answer.model, "stop_reason": answer.stop_reason,
                                "prompt": prompt, "raw_answer": answer.text}, indent=1))
    return path


def llm_program(suite: str, task_id: int, cfg: RewardConfig, evidence, instruction: str | None = None,
                goal=None, client=None) -> LLMRewardProgram:
    """A proven LLM program for the task: the validated cache entry of this exact prompt, or (source
    "llm") a fresh Claude answer that passed `validate_program`, then cached. See the module doc."""
    known = task_goal(suite, task_id)  # a task without a catalogued goal is refused in one line
    instruction = get_task(suite, task_id).instruction if instruction is None else instruction
    goal = known.goal if goal is None else tuple(tuple(a) for a in goal)
    prompt = evidence_prompt(suite, task_id, instruction, goal, evidence)
    key = cache_key(prompt, cfg.model)
    paths = entry_paths(cfg, suite, task_id, key)
    regenerate = ("run `python -m tgrpo_lib reward generate --suite "
                  f"{suite} --tasks {task_id}` with ANTHROPIC_API_KEY set, or use RewardConfig(source='offline')")
    if paths["json"].exists():
        try:
            code, record = read_entry(paths)
            check = validate_program(code, evidence, cfg)
            problem = None if check.ok else f"failed validation ({check.reason})"
        except ValueError as e:
            problem = str(e)
        if problem is None:
            log.info("LLM reward for %s #%d from %s", suite, task_id, display_path(paths["json"]))
            return LLMRewardProgram(code, check.n_stages, cfg, record, paths["json"], origin="cache")
        bad = f"cached LLM reward {display_path(paths['json'])} {problem}"
        if cfg.source == "cache":
            raise RewardGenerationError(f"{bad}: delete it and {regenerate}", kind="setup")
        log.warning("%s: not used; asking %s for a new one", bad, cfg.model)
    elif cfg.source == "cache":
        others = sorted(cache_dir(cfg, suite, task_id).glob("*.json"))
        note = f" ({len(others)} entries there are for other prompts, models or validator versions)" if others else ""
        raise RewardGenerationError(f"no cached LLM reward for {suite} #{task_id} with this prompt and model "
                                    f"{cfg.model!r} (key {key}) in {display_path(cache_dir(cfg, suite, task_id))}{note}: "
                                    f"{regenerate}", kind="setup")
    answer = ask_llm(prompt, cfg, client)
    code = code_from_answer(answer, cfg)
    check = validate_program(code, evidence, cfg)
    if not check.ok:
        where = _save_rejected(suite, task_id, key, prompt, answer, check.reason)
        raise RewardGenerationError(f"{cfg.model}'s reward for {suite} #{task_id} was rejected and not cached: "
                                    f"{check.reason} (answer kept in {display_path(where)}): rerun to ask again, or use "
                                    "RewardConfig(source='offline')", kind="answer")
    record = dict(suite=suite, task_id=task_id, key=key, model=cfg.model, answer_model=answer.model,
                  validator_version=VALIDATOR_VERSION, source_hash=source_hash(code), n_stages=check.n_stages,
                  created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  stop_reason=answer.stop_reason, usage=answer.usage, tries=answer.tries,
                  validation={"evidence": evidence.describe(), **(check.sanity or {})}, raw_answer=answer.text)
    write_entry(paths, code, prompt, record)
    log.info("LLM reward for %s #%d validated and cached in %s", suite, task_id, display_path(paths["json"]))
    return LLMRewardProgram(code, check.n_stages, cfg, record, paths["json"], origin="generated")


__all__ = ["Answer", "LLMRewardProgram", "NO_KEY", "RewardGenerationError", "VALIDATOR_VERSION", "Validation",
           "api_key_available", "ask_llm", "build_prompt", "cache_dir", "cache_key", "code_from_answer",
           "display_path", "entry_paths", "evidence_prompt", "has_cache_entries", "llm_program", "read_entry", "validate_program"]
