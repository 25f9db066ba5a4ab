"""The paper's LLM-written multi-stage reward (Eq. 1): prompt, Claude call, validation, cache.

    prog = llm_program("libero_object", 0, cfg, evidence)     # cached if proven, else Claude
    prog.source_hash, prog.n_stages, prog.cache_path

Flow (`llm_program`):

1. The prompt (`build_prompt`) follows the paper: the instruction (and LIBERO's goal condition),
   the key objects with their positions read from a real start state and at the end of a
   successful expert demonstration, the key poses of that demonstration, the state keys the
   program may read, and the output contract. Claude decomposes the stages and chooses every
   threshold itself; nothing of the offline compiler's geometry is in it.
2. Cache key = sha256(prompt, model, VALIDATOR_VERSION). A cached program is validated again
   before use; one that fails is reported with its path and regenerated (source="llm") or
   refused (source="cache"), never used.
3. Claude is asked through the installed `anthropic` SDK (streamed, so `request_timeout_s` bounds
   silence, not answer length), with bounded retries and backoff on 429 / 529 / 5xx / timeouts.
4. `validate_program`: static check, a sandboxed run on the init-state start states, then the
   sanity check on expert successes vs random rollouts (successes out-score every failure and end
   on the last stage). The stage count is the N_STAGES the program set when it ran.
5. Only a proven program is written: `<key>.py` (program), `<key>.prompt.md` (prompt) and
   `<key>.json` (model, answer, validation, written last: an entry without it does not exist).

Every failure raises `RewardGenerationError`, one line naming the cause and the fix.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tgrpo_lib
from tgrpo_lib.envs.registry import get_task
from tgrpo_lib.reward import sandbox
from tgrpo_lib.reward.config import RewardConfig
from tgrpo_lib.reward.program import RewardOutput, RewardProgram, batch_shape, running_max_stage
from tgrpo_lib.reward.tasks import task_goal

log = logging.getLogger(__name__)

VALIDATOR_VERSION = 1
"""Bump when `validate_program` gets stricter: every cache key changes, so old entries are re-proven."""
BACKOFF_BASE_S = 1.0  # waits 1, 2, 4 ... s between tries when the server sends no retry-after
MAX_WAIT_S = 60.0  # a retry-after longer than this ends the call (the user is told to wait and rerun)
MAX_ANSWER_S = 600.0  # overall limit of one streamed answer (request_timeout_s bounds each silence)
NO_KEY = ("ANTHROPIC_API_KEY is not set: export ANTHROPIC_API_KEY=<your key> (and ANTHROPIC_BASE_URL for a "
          "proxy) to let Claude write the reward; without it use RewardConfig(source='offline'), the offline "
          "stage compiler")

SYSTEM = ("You write dense multi-stage reward functions for robot manipulation tasks in the LIBERO "
          "simulator. You answer with one Python code block that follows the given contract exactly.")


class RewardGenerationError(ValueError):
    """An LLM reward could not be obtained; the message is one line naming the cause and the fix.

    kind: "setup" (no key / no cached program), "api" (the request failed: stop a batch),
    "answer" (this answer was unusable or rejected: the next task may work).
    """

    def __init__(self, message: str, kind: str = "answer"):
        super().__init__(sandbox.one_line(message, 600))
        self.kind = kind


# ------------------------------------------------------------------------------ the prompt
def _contract() -> str:
    return f"""\
## Output contract (the program is parsed, run on real states and rejected if it breaks a rule)
Write exactly one ```python block defining:
```python
N_STAGES = <int>            # how many stages you decomposed the task into, 1..64

def reward(state, step):
    ...
    return reward, stage
```
- `state` is a dict of float64 numpy arrays sharing a leading batch shape B = (..., T), T = time;
  the keys are listed above. `step` (*B,) int is the step index in the episode. The state at t = 0
  of each trajectory is `state[k][..., :1, :]` (it broadcasts over T).
- Return `reward` (*B,) real-valued and finite, and `stage` (*B,) integer-valued in [0, N_STAGES]:
  the stage the task has reached, with stage == N_STAGES exactly when the whole goal holds. Rewards
  are clipped to [0, N_STAGES + 1]; a trajectory that completes the task must earn more than one
  that does not. Shapes must be B exactly (reduce the last axis, e.g. `np.linalg.norm(a - b, axis=-1)`),
  and the code vectorised (no per-element loops).
- Allowed: arithmetic, comparisons, and/or/not, if/else, assignments, tuple/list/dict literals,
  indexing like `x[..., 0]`, `for i in range(<int literal <= {sandbox.MAX_LOOP}>)`, calls to
  {', '.join(sandbox.ALLOWED_BUILTINS)} and to `np.<f>` for f in: {', '.join(sorted(set(sandbox.NP_FUNCS)))},
  np.linalg.norm. Module level: only `NAME = <literal>` constants and the one function.
- Forbidden: imports, while, lambda, comprehensions, classes, nested functions, attribute access
  other than `np.<f>` (no `.shape`, `.T`, `.sum()`: use np.shape, np.sum, ...), names starting with "_".
"""


def _fmt(v) -> str:
    return "(" + ", ".join(f"{float(x):.3f}" for x in np.asarray(v, dtype=np.float64).reshape(-1)) + ")"


def _names(names) -> str:
    return ", ".join(names) if names else "(none)"


def _bodies(state: dict) -> list[str]:
    return sorted(k[5:] for k in state if k.startswith("quat/"))


def key_objects(goal, state: dict) -> tuple[list[str], list[str]]:
    """(names, joints) the prompt details: the goal's arguments, the bodies carrying goal regions
    (basket_1 for basket_1_contain_region) and the articulated joints of those bodies."""
    names: list[str] = []
    for atom in goal:
        for n in atom[1:]:
            parents = [b for b in _bodies(state) if n.startswith(b + "_") and b != n]
            for m in ([max(parents, key=len)] if parents else []) + [n]:
                if m not in names:
                    names.append(m)
    joints = sorted(k[6:] for k in state if k.startswith("joint/") and any(k[6:].startswith(n + "_") for n in names))
    return names, joints


def build_prompt(suite: str, task_id: int, instruction: str, goal, start_state: dict,
                 end_state: dict | None = None, key_events: list[dict] | None = None) -> str:
    """The user prompt, deterministic for the same inputs (`start_state` / `end_state`: one state,
    no time axis; `key_events`: [{"label", "step", "xyz"}] of the same demonstration)."""
    start = {k: np.asarray(v) for k, v in start_state.items()}
    end = None if end_state is None else {k: np.asarray(v) for k, v in end_state.items()}
    names, joints = key_objects(goal, start)
    lines = [f"# Task: LIBERO {suite} #{task_id}", f'Instruction: "{instruction}"',
             "Goal condition (LIBERO's BDDL goal; every atom must hold at once): " + json.dumps([list(a) for a in goal]),
             "", "## Key objects (world frame, metres; quaternions x, y, z, w)"]
    for n in names:
        parts = []
        for key, what in ((f"pos/{n}", "position"), (f"quat/{n}", "orientation")):
            if key in start:
                text = f"`{key}` {what} at the start {_fmt(start[key])}"
                if end is not None and key in end:
                    text += f", at the end of a successful demonstration {_fmt(end[key])}"
                parts.append(text)
        lines.append(f"- {n}: " + ("; ".join(parts) if parts else "not in the state"))
    for j in joints:
        text = f"- joint `joint/{j}`: {float(np.ravel(start[f'joint/{j}'])[0]):.3f} at the start"
        if end is not None and f"joint/{j}" in end:
            text += f", {float(np.ravel(end[f'joint/{j}'])[0]):.3f} at the end of the successful demonstration"
        lines.append(text)
    if "eef_pos" in start:
        lines.append(f"- end effector `eef_pos` at the start {_fmt(start['eef_pos'])}")
    lines += ["", "## Key poses from a successful demonstration (end-effector position at each critical step)"]
    if key_events:
        lines += [f"- {e['label']} at step {int(e['step'])}: {_fmt(e['xyz'])}" for e in key_events]
    else:
        lines.append("- none recorded: derive reference poses from the object positions")
    others = [b for b in _bodies(start) if b not in names]
    sites = sorted(k[4:] for k in start if k.startswith("pos/") and f"quat/{k[4:]}" not in start and k[4:] not in names)
    lines += ["", "## State keys the program may read",
              "- `eef_pos` (*B, 3) end-effector position; `eef_quat` (*B, 4); `gripper_qpos` (*B, 2) finger "
              "positions, opening width = gripper_qpos[..., 0] - gripper_qpos[..., 1] (about 0.08 open, 0 closed)",
              "- `pos/<name>` (*B, 3) and `quat/<name>` (*B, 4) for every object named above and for: " + _names(others),
              "- `pos/<site>` (*B, 3) for the region sites: " + _names(sites),
              "- `joint/<joint>` (*B, 1) for: " + _names(sorted(k[6:] for k in start if k.startswith("joint/"))),
              "", "## What to write",
              "Decompose the task into stages yourself, choose your own thresholds from the positions above, and "
              "write a dense reward that grows as the task progresses and is largest once the goal holds.",
              "", _contract()]
    return "\n".join(lines)


def evidence_prompt(suite: str, task_id: int, instruction: str, goal, evidence) -> str:
    """The prompt for a task from its evidence: start state of init state 0, end state and key
    events of the first successful expert episode."""
    first = evidence.first_success
    end = None if first is None else {k: np.asarray(v)[-1] for k, v in first.items()}
    return build_prompt(suite, task_id, instruction, goal, evidence.start_states[0], end, evidence.key_events)


def cache_key(prompt: str, model: str) -> str:
    blob = json.dumps({"model": model, "prompt": prompt, "validator": VALIDATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def source_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------ the API call
@dataclass
class Answer:
    text: str
    stop_reason: str | None
    model: str
    usage: dict
    tries: int


def api_key_available() -> bool:
    return bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"))


def make_client(cfg: RewardConfig):
    """The SDK client: our own retries (max_retries=0 here), `request_timeout_s` per silence."""
    try:
        import anthropic
    except ImportError:
        raise RewardGenerationError("the anthropic SDK is not installed: pip install 'anthropic>=2.15,<3'",
                                    kind="setup") from None
    if not api_key_available():
        raise RewardGenerationError(NO_KEY, kind="setup")
    return anthropic.Anthropic(timeout=cfg.request_timeout_s, max_retries=0)


def _api_message(e) -> str:
    """The API's own error text when the body is Anthropic's JSON error, else nothing (no HTML dumps)."""
    body = getattr(e, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return sandbox.one_line(body["error"].get("message", ""), 120)
    return ""


def _retry_after(e) -> float | None:
    headers = getattr(getattr(e, "response", None), "headers", None) or {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers.get(name)) * scale)
        except (TypeError, ValueError):
            continue
    return None


def _failure(e, cfg: RewardConfig, base: str, tries: int) -> tuple[bool, str]:
    """(retryable, one-line message naming the fix) for an exception of one try."""
    import anthropic

    code = getattr(e, "status_code", None)
    detail = _api_message(e)
    detail = f": {detail}" if detail else ""
    if isinstance(e, anthropic.AuthenticationError):
        return False, f"the API at {base} rejected the key (401{detail}): set a valid ANTHROPIC_API_KEY"
    if isinstance(e, anthropic.PermissionDeniedError):
        return False, (f"the key may not use model {cfg.model!r} (403{detail}): check the key's permissions "
                       "or RewardConfig.model")
    if isinstance(e, anthropic.NotFoundError):
        return False, (f"model {cfg.model!r} or the endpoint was not found (404{detail}): check RewardConfig.model "
                       f"and ANTHROPIC_BASE_URL ({base})")
    if isinstance(e, anthropic.RateLimitError):
        return True, (f"rate limited (429{detail}) on all {tries} tries: wait a minute and rerun (validated "
                      "programs are already cached), or raise RewardConfig.max_retries")
    if isinstance(e, anthropic.APIStatusError) and code == 529:
        return True, f"the API is overloaded (529) on all {tries} tries: wait a few minutes and rerun"
    if isinstance(e, anthropic.APIStatusError) and code is not None and code >= 500:
        return True, (f"server error (HTTP {code}) on all {tries} tries: wait and rerun; if it persists check "
                      f"ANTHROPIC_BASE_URL ({base})")
    if isinstance(e, anthropic.APIStatusError):
        return False, (f"the API refused the request (HTTP {code}{detail}): check RewardConfig.model "
                       f"({cfg.model!r}) and RewardConfig.max_tokens ({cfg.max_tokens})")
    name = type(e).__name__
    if isinstance(e, TypeError) and "authentication" in str(e).lower():  # a client built without credentials
        return False, NO_KEY
    if isinstance(e, anthropic.APITimeoutError) or "Timeout" in name:
        return True, (f"no answer from {base} within request_timeout_s={cfg.request_timeout_s:g} s on all {tries} "
                      "tries: check the network and ANTHROPIC_BASE_URL, or raise RewardConfig.request_timeout_s")
    if isinstance(e, anthropic.APIConnectionError) or type(e).__module__.split(".")[0].startswith("httpx"):
        return True, f"cannot reach the API at {base} ({name}, {tries} tries): check the network and ANTHROPIC_BASE_URL"
    return False, (f"malformed answer from the API at {base} ({name}): check that ANTHROPIC_BASE_URL points "
                   "at the Anthropic Messages API")


def ask_llm(prompt: str, cfg: RewardConfig, client=None) -> Answer:
    """One streamed Messages API answer; retries transient failures (RewardConfig.max_retries)."""
    client = client if client is not None else make_client(cfg)
    base = str(getattr(client, "base_url", "the API")).rstrip("/")
    tries = cfg.max_retries + 1
    for attempt in range(tries):
        try:
            t0 = time.monotonic()
            with client.messages.stream(model=cfg.model, max_tokens=cfg.max_tokens, system=SYSTEM,
                                        messages=[{"role": "user", "content": prompt}]) as stream:
                for _ in stream:
                    if time.monotonic() - t0 > MAX_ANSWER_S:
                        raise RewardGenerationError(f"the answer from {base} took over {MAX_ANSWER_S:g} s: rerun "
                                                    "later, or lower RewardConfig.max_tokens", kind="api")
                msg = stream.get_final_message()
            text = "".join(getattr(b, "text", "") for b in msg.content if getattr(b, "type", "") == "text")
            usage = {k: getattr(msg.usage, k, None) for k in ("input_tokens", "output_tokens")}
            return Answer(text, msg.stop_reason, str(getattr(msg, "model", cfg.model)), usage, attempt + 1)
        except RewardGenerationError:
            raise
        except Exception as e:  # noqa: BLE001 - every SDK / transport failure ends in one line
            retryable, message = _failure(e, cfg, base, tries)
            wait = _retry_after(e)
            wait = BACKOFF_BASE_S * 2 ** attempt if wait is None else wait
            if not retryable or attempt + 1 == tries:
                raise RewardGenerationError(message, kind="api") from None
            if wait > MAX_WAIT_S:
                raise RewardGenerationError(f"the API at {base} asks to wait {wait:.0f} s before a retry (HTTP "
                                            f"{getattr(e, 'status_code', '?')}, retry-after): wait and rerun",
                                            kind="api") from None
            log.warning("LLM request failed (%s); retry %d/%d in %.1f s", type(e).__name__, attempt + 1,
                        cfg.max_retries, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def code_from_answer(answer: Answer, cfg: RewardConfig) -> str:
    """The program in an answer: the last ```python block (or a bare answer that is code)."""
    if answer.stop_reason == "max_tokens":
        raise RewardGenerationError(f"the answer was cut at max_tokens={cfg.max_tokens} (stop_reason=max_tokens): "
                                    "raise RewardConfig.max_tokens and rerun", kind="answer")
    if answer.stop_reason == "refusal":
        raise RewardGenerationError("the model refused to answer (stop_reason=refusal): rerun, or try another "
                                    "RewardConfig.model", kind="answer")
    blocks = re.findall(r"```(?:python|py|python3)?[ \t\r]*\n(.*?)```", answer.text, flags=re.S)
    if blocks:
        with_entry = [b for b in blocks if "def reward" in b]
        return (with_entry or blocks)[-1].strip() + "\n"
    if re.search(r"^def reward\(", answer.text, flags=re.M):
        return answer.text.strip() + "\n"
    raise RewardGenerationError("the answer has no ```python code block (prose only): rerun to ask again, or "
                                "try another RewardConfig.model", kind="answer")


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


# ------------------------------------------------------------------------------ cache
def cache_dir(cfg: RewardConfig, suite: str, task_id: int) -> Path:
    root = Path(cfg.cache_dir)
    if not root.is_absolute():
        root = tgrpo_lib.PROJECT_ROOT / root
    return root / suite / f"task_{task_id}"


def entry_paths(cfg: RewardConfig, suite: str, task_id: int, key: str) -> dict[str, Path]:
    d = cache_dir(cfg, suite, task_id)
    return {"json": d / f"{key}.json", "py": d / f"{key}.py", "prompt": d / f"{key}.prompt.md"}


def display_path(path) -> str:
    """`path` relative to the project root when it is inside it (for messages and tables)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(tgrpo_lib.PROJECT_ROOT))
    except ValueError:
        return str(path)


def read_entry(paths: dict[str, Path]) -> tuple[str, dict]:
    """(program, record) of a cache entry; raises ValueError naming what is wrong with it."""
    try:
        record = json.loads(paths["json"].read_text())
        code = paths["py"].read_text()
    except (OSError, ValueError) as e:
        raise ValueError(f"unreadable ({type(e).__name__})") from None
    if record.get("source_hash") != source_hash(code):
        raise ValueError(f"{paths['py'].name} was edited after validation (hash {source_hash(code)}, "
                         f"recorded {record.get('source_hash')})")
    return code, record


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_entry(paths: dict[str, Path], code: str, prompt: str, record: dict) -> None:
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    paths["json"].unlink(missing_ok=True)  # an entry exists only once its record is written, last
    _write_atomic(paths["py"], code)
    _write_atomic(paths["prompt"], prompt)
    _write_atomic(paths["json"], json.dumps(record, indent=1, sort_keys=True) + "\n")


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


def has_cache_entries(cfg: RewardConfig, suite: str, task_id: int) -> bool:
    d = cache_dir(cfg, suite, task_id)
    return d.exists() and any(d.glob("*.json"))


__all__ = ["Answer", "LLMRewardProgram", "NO_KEY", "RewardGenerationError", "VALIDATOR_VERSION", "Validation",
           "api_key_available", "ask_llm", "build_prompt", "cache_dir", "cache_key", "code_from_answer",
           "display_path", "entry_paths", "evidence_prompt", "has_cache_entries", "llm_program", "read_entry", "validate_program"]
