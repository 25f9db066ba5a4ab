"""LLM reward generator (the paper's Claude-written multi-stage reward), cached and sandboxed.

`llm_program(...)` builds a prompt from the task (instruction, BDDL goal, key objects with their
positions, key poses, joint thresholds, region sizes) plus the exact API contract, asks Claude for
`def reward(state, step) -> (reward, stage)` and stores prompt, model, raw answer and extracted
program in `rewards/<suite>/task_<id>/<hash>.json` (hash of model + prompt + temperature), so a
run is reproducible without the API. The answer only ever runs through `sandbox.run_program`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

import tgrpo_lib
from tgrpo_lib.reward import sandbox
from tgrpo_lib.reward.config import RewardConfig
from tgrpo_lib.reward.program import RewardOutput, RewardProgram, batch_shape, running_max_stage
from tgrpo_lib.reward.stages import quat_to_mat
from tgrpo_lib.reward.tasks import REGIONS, articulation

log = logging.getLogger(__name__)

SYSTEM = ("You write dense multi-stage reward functions for robot manipulation tasks in the LIBERO "
          "simulator. You answer with one Python code block that follows the given contract exactly.")

API_CONTRACT = f"""\
## Contract (your code is parsed and rejected if it breaks any rule)
Write exactly:
```python
N_STAGES = <int>            # number of stages, 1..64

def reward(state, step):
    ...
    return reward, stage
```
- `state` is a dict of float64 numpy arrays sharing a leading batch shape B = (..., T) (T = time):
  `state["eef_pos"]` (*B, 3) end-effector position (m, world frame); `state["gripper_qpos"]` (*B, 2),
  opening width = gripper_qpos[..., 0] - gripper_qpos[..., 1] (~0.08 open, ~0 closed);
  `state["pos/<name>"]` (*B, 3) object / region positions; `state["quat/<name>"]` (*B, 4) xyzw;
  `state["joint/<joint>"]` (*B, 1) joint positions. `step` (*B,) int = step index in the episode.
  State at t = 0 of each trajectory: `state[k][..., :1, :]` (broadcasts over T).
- Return `reward` (*B,) float and `stage` (*B,) integer-valued in [0, N_STAGES]; stage == N_STAGES
  exactly when the whole goal is satisfied. Keep reward in [0, N_STAGES + 1]: a stage-based object
  progress term (f1) plus an end-effector shaping term toward the current stage's key pose (f2),
  and make the satisfied goal give the largest reward. Must be vectorised (no per-element loops),
  finite, and of shape B exactly (e.g. `np.linalg.norm(a - b, axis=-1)`).
- Allowed: arithmetic, comparisons, and/or/not, if/else, assignments, tuple/list/dict literals,
  indexing like `x[..., 0]`, `for i in range(<int literal <= {sandbox.MAX_LOOP}>)`, calls to
  {', '.join(sandbox.ALLOWED_BUILTINS)} and to `np.<f>` for f in: {', '.join(sorted(set(sandbox.NP_FUNCS)))},
  np.linalg.norm. Module level: only `NAME = <literal>` constants and the one function.
- Forbidden: imports, while, lambda, comprehensions, classes, nested functions, attribute access
  other than `np.<f>` (no `.shape`, `.T`, `.sum()`: use np.shape, np.sum, ...), names starting with "_".
"""


def _objects_of(goal) -> list[str]:
    names = []
    for atom in goal:
        for n in atom[1:]:
            if n not in names:
                names.append(n)
    return names


def build_prompt(suite: str, task_id: int, instruction: str, goal, key_poses: list[dict] | None = None,
                 example_state: dict | None = None, notes: str = "") -> str:
    """The full user prompt (deterministic for the same inputs)."""
    lines = [f"# Task: LIBERO {suite} #{task_id}", f'Instruction: "{instruction}"',
             "BDDL goal (all atoms must hold at the same time): " + json.dumps([list(a) for a in goal]),
             "", "## Key objects"]
    for n in _objects_of(goal):
        desc = f"- `{n}`: state key `pos/{n}`"
        if example_state is not None and f"pos/{n}" in example_state:
            p = np.asarray(example_state[f"pos/{n}"]).reshape(-1, 3)[0]
            desc += f", at start ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f})"
        if n in REGIONS:
            r = REGIONS[n]
            desc += (f"; In-box half extents {r.in_half} (lower z bound -0.01)" if r.in_half
                     else f"; On-zone size {r.on_size}: |dx|<sx, |dy|<sy, sz-0.005 < dz < sz+0.10")
            if r.on_size and tuple(r.local_quat) != (0.0, 0.0, 0.0, 1.0):  # the tilted wine rack
                m = quat_to_mat(np.array(r.local_quat))
                if r.parent and example_state is not None and f"quat/{r.parent}" in example_state:
                    m = quat_to_mat(np.asarray(example_state[f"quat/{r.parent}"]).reshape(-1, 4)[0]) @ m
                desc += (f"; the zone is TILTED: (dx, dy, dz) = M @ (pos_A - pos_R) with M = "
                         f"{np.round(m, 4).tolist()} (site rotation, as LIBERO codes it)")
        if any(a[0] in ("open", "close", "turnon") and a[1] == n for a in goal):
            art = articulation(n)
            desc += (f"; joint `joint/{art.joint}` range {art.q_range}, open if q < {art.open_below}, "
                     f"closed if q > {art.close_above}, on if q >= {art.on_at_least}")
        lines.append(desc)
    lines += ["", "Predicates: In(A, R): pos/A strictly inside the region box around pos/R. On(A, B object): "
              "B.z <= A.z, contact, xy distance < 0.03 m. On(A, zone): inside the zone box above pos/zone.",
              "", "## Reference key poses (end-effector xyz from successful demonstrations)"]
    if key_poses:
        lines += [f"- {kp['label']}: ({kp['xyz'][0]:.3f}, {kp['xyz'][1]:.3f}, {kp['xyz'][2]:.3f})" for kp in key_poses]
    else:
        lines.append("- none available: derive reference poses from object positions (e.g. grasp = object + 0.03 m z)")
    if notes:
        lines += ["", "## Notes", notes]
    lines += ["", "Decompose the task into stages (e.g. approach, grasp, move, place for pick-and-place) "
              "and write the reward.", "", API_CONTRACT]
    return "\n".join(lines)


def prompt_hash(prompt: str, model: str, temperature: float) -> str:
    blob = json.dumps({"model": model, "prompt": prompt, "temperature": temperature}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def extract_code(answer: str) -> str:
    """The last ```python block of the answer (or the whole answer when it has no block)."""
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", answer, flags=re.S)
    return (blocks[-1] if blocks else answer).strip() + "\n"


def cache_dir(cfg: RewardConfig, suite: str, task_id: int) -> Path:
    root = Path(cfg.cache_dir)
    if not root.is_absolute():
        root = tgrpo_lib.PROJECT_ROOT / root
    return root / suite / f"task_{task_id}"


def load_cached(cfg: RewardConfig, suite: str, task_id: int, sha: str | None = None) -> dict | None:
    """The cached record with this hash, else (sha=None or miss) the newest one for the task."""
    d = cache_dir(cfg, suite, task_id)
    if sha is not None and (d / f"{sha}.json").exists():
        return json.loads((d / f"{sha}.json").read_text())
    if sha is not None:
        return None
    recs = [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []
    recs.sort(key=lambda r: (r.get("model") == cfg.model, r.get("created_utc", "")))
    return recs[-1] if recs else None


def ask_llm(prompt: str, cfg: RewardConfig, client=None) -> str:
    """One Messages API call; `client` defaults to anthropic.Anthropic() (key from ANTHROPIC_API_KEY)."""
    if client is None:
        import anthropic
        client = anthropic.Anthropic()
    resp = client.messages.create(model=cfg.model, max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                                  system=SYSTEM, messages=[{"role": "user", "content": prompt}])
    return "".join(getattr(b, "text", "") for b in resp.content)


def generate(suite: str, task_id: int, instruction: str, goal, cfg: RewardConfig,
             key_poses: list[dict] | None = None, example_state: dict | None = None, notes: str = "",
             client=None) -> dict | None:
    """Cached record {prompt, model, raw_answer, program, ...} or None when neither the cache nor
    the API can answer. Order: exact cache hit -> API (client given or ANTHROPIC_API_KEY set; the
    answer is sandbox-checked, then cached) -> newest cached answer for the task."""
    prompt = build_prompt(suite, task_id, instruction, goal, key_poses, example_state, notes)
    sha = prompt_hash(prompt, cfg.model, cfg.temperature)
    rec = load_cached(cfg, suite, task_id, sha)
    if rec is not None:
        return rec
    if cfg.source == "llm" and (client is not None or os.environ.get("ANTHROPIC_API_KEY")):
        raw = ask_llm(prompt, cfg, client)
        code = extract_code(raw)
        sandbox.check_program(code)  # raises SandboxError with reasons; nothing is cached then
        if example_state is not None:
            sandbox.run_program(code, example_state, timeout_s=cfg.sandbox_timeout_s, memory_mb=cfg.sandbox_memory_mb)
        rec = dict(suite=suite, task_id=task_id, model=cfg.model, temperature=cfg.temperature, prompt_sha=sha,
                   created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                   prompt=prompt, raw_answer=raw, program=code)
        path = cache_dir(cfg, suite, task_id) / f"{sha}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec, indent=1))
        return rec
    if cfg.source == "llm":
        log.warning("ANTHROPIC_API_KEY is not set: no LLM call for %s #%d; using a cached answer if any, "
                    "else the offline stage compiler", suite, task_id)
    rec = load_cached(cfg, suite, task_id)
    if rec is not None:
        log.warning("no cached LLM reward for this exact prompt (%s); using the newest cached one (%s)",
                    sha, rec.get("prompt_sha"))
    return rec


class LLMRewardProgram(RewardProgram):
    """An LLM-written reward, executed in the sandbox; reward clipped to [0, N_STAGES + 1]."""

    source = "llm"

    def __init__(self, code: str, cfg: RewardConfig | None = None, record: dict | None = None):
        sandbox.check_program(code)
        self.code = code
        self.cfg = cfg or RewardConfig()
        self.record = record or {}
        m = re.search(r"^N_STAGES\s*=\s*(\d+)", code, flags=re.M)
        if m is None:
            raise sandbox.SandboxError(["line ?: the program must set N_STAGES = <int> at module level"])
        self.n_stages = int(m.group(1))
        self.stage_names = tuple(f"llm_stage_{k}" for k in range(self.n_stages))

    @property
    def max_reward(self) -> float:
        return float(self.n_stages + 1)

    def __call__(self, state: dict, step: np.ndarray | None = None) -> RewardOutput:
        batch_shape(state)
        r, raw, _ = sandbox.run_program(code=self.code, state=state, step=step,
                                        timeout_s=self.cfg.sandbox_timeout_s, memory_mb=self.cfg.sandbox_memory_mb)
        reward = np.clip(r, 0.0, self.max_reward)
        return RewardOutput(reward, running_max_stage(raw), raw, {"llm_reward_unclipped": r})
