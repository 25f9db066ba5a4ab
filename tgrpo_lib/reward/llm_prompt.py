"""The prompt Claude gets for a task's LLM reward (step 1 of ``llm.llm_program``).

It follows the paper: the instruction (and LIBERO's goal condition), the key objects with their
positions read from a real start state and at the end of a successful expert demonstration, the
key poses of that demonstration, the state keys the program may read, and the output contract
(the rules ``sandbox.check_program`` enforces). Claude decomposes the stages and chooses every
threshold itself; nothing of the offline compiler's geometry is in it. The prompt is
deterministic for the same inputs, since it is part of the cache key (``llm_cache.cache_key``).
"""
from __future__ import annotations

import json

import numpy as np

from tgrpo_lib.reward import sandbox

SYSTEM = ("You write dense multi-stage reward functions for robot manipulation tasks in the LIBERO "
          "simulator. You answer with one Python code block that follows the given contract exactly.")


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
