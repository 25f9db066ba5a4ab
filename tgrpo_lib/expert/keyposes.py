"""Key poses: end-effector positions at a task's critical steps, read off successful demos.

A critical step is where the gripper closes on an object that then rises (``grasp:<obj>``),
where it opens after carrying it (``release:<obj>``; the last step when the episode succeeded
while still holding), or where an articulated joint of the goal passes its threshold
(``open:<region>``, ``close:<name>``, ``turnon:<name>``). Per task the demos' event
sequences are aligned by label order, and the modal sequence is averaged.

File: ``outputs/demos/<suite>/task_<id>/key_poses.json`` =
``{"suite", "task_id", "num_demos", "key_poses": [{"label", "xyz", "std", "count"}, ...],
"per_demo": [[{"label", "step", "xyz"}, ...], ...]}``: ``key_poses`` over every recorded demo,
``per_demo`` each successful demo's events in the order of ``demos.h5``, so that
``load_key_poses(..., num_demos=N)`` averages the first N only and a run's reward does not depend
on how many demos the outputs folder happens to hold (175 recorded for ``make run`` or 200 for an
older recipe give the same poses at N = 175).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from tgrpo_lib.envs.registry import canonical_suite
from tgrpo_lib.infra.demos import task_dir

LIFT_MIN = 0.02  # m an object must rise after a close for that close to count as a grasp
_OPEN_Q = {"cabinet": -0.14, "microwave": -1.3}
_CLOSE_Q = {"cabinet": 0.0, "microwave": -0.005}


def _goal_objects(goal: Sequence[Sequence[str]], states: dict) -> list[str]:
    names = {t for atom in goal for t in atom[1:]}
    return sorted(n for n in names if f"quat/{n}" in states and f"pos/{n}" in states)


def _joint_for(name: str, states: dict, suffix_hint: str) -> str | None:
    if name.endswith("_region"):
        key = f"joint/{name[: -len('_region')]}_level"
        return key if key in states else None
    keys = [k for k in states if k.startswith(f"joint/{name}_") and suffix_hint in k]
    return keys[0] if keys else None


def extract_key_events(actions: np.ndarray, states: dict[str, np.ndarray], goal: Sequence[Sequence[str]],
                       success: bool = True) -> list[dict]:
    """Critical steps of one trajectory: [{"label", "step", "xyz"}] in time order.

    ``actions`` (T, 7); ``states[key]`` (T+1, ...) or (T, ...) privileged state incl. ``eef_pos``.
    """
    actions = np.asarray(actions)
    eef = np.asarray(states["eef_pos"])
    T = len(actions)
    closed = actions[:, 6] > 0
    objects = _goal_objects(goal, states)
    events: list[dict] = []
    held: tuple[str, int] | None = None
    for t in range(T):
        if closed[t] and (t == 0 or not closed[t - 1]) and objects:
            dists = [np.linalg.norm(np.asarray(states[f"pos/{o}"][t]) - eef[t]) for o in objects]
            obj = objects[int(np.argmin(dists))]
            t_end = t + 1
            while t_end < T and closed[t_end]:
                t_end += 1
            z = np.asarray(states[f"pos/{obj}"])[:, 2]
            if np.max(z[t:min(t_end, len(z) - 1) + 1]) > z[t] + LIFT_MIN:
                events.append({"label": f"grasp:{obj}", "step": t, "xyz": eef[t].tolist()})
                held = (obj, t_end)
        if held is not None and not closed[t] and t > 0 and closed[t - 1] and t == held[1]:
            events.append({"label": f"release:{held[0]}", "step": t, "xyz": eef[t].tolist()})
            held = None
    if held is not None and success:
        events.append({"label": f"release:{held[0]}", "step": T - 1, "xyz": eef[min(T - 1, len(eef) - 1)].tolist()})
    for atom in goal:
        kind, name = atom[0], atom[1]
        if kind not in ("open", "close", "turnon"):
            continue
        joint = _joint_for(name, states, "button" if kind == "turnon" else "")
        if joint is None:
            continue
        q = np.asarray(states[joint]).reshape(-1)[:T + 1]
        part = "microwave" if "microwave" in joint else "cabinet"
        if kind == "open":
            hits = np.nonzero(q < _OPEN_Q[part])[0]
            t = int(hits[0]) if len(hits) and q[0] >= _OPEN_Q[part] else None
        elif kind == "close":
            hits = np.nonzero(q <= _CLOSE_Q[part])[0]
            t = int(hits[-1]) + 1 if len(hits) and hits[-1] + 1 < len(q) else None
        else:
            hits = np.nonzero(q >= 0.5)[0]
            t = int(hits[0]) if len(hits) and q[0] < 0.5 else None
        if t is not None:
            t = min(t, len(eef) - 1)
            events.append({"label": f"{kind}:{name}", "step": t, "xyz": eef[t].tolist()})
    return sorted(events, key=lambda e: e["step"])


def aggregate_key_poses(per_demo_events: Sequence[list[dict]]) -> tuple[list[dict], int]:
    """Average the demos whose label sequence is the most common one; returns (poses, demos used)."""
    seqs = [tuple(e["label"] for e in events) for events in per_demo_events if events]
    if not seqs:
        return [], 0
    modal, count = Counter(seqs).most_common(1)[0]
    chosen = [events for events in per_demo_events if tuple(e["label"] for e in events) == modal]
    xyz = np.array([[e["xyz"] for e in events] for events in chosen])  # (D, K, 3)
    poses = [{"label": label, "xyz": np.round(xyz[:, k].mean(0), 4).tolist(),
              "std": np.round(xyz[:, k].std(0), 4).tolist(), "count": int(count)}
             for k, label in enumerate(modal)]
    return poses, count


def save_key_poses(path: str | Path, suite: str, task_id: int, poses: list[dict], num_demos: int,
                   per_demo: Sequence[list[dict]] | None = None) -> Path:
    """Write the aggregate ``poses`` and, when given, every demo's own events (``per_demo``, demo order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"suite": suite, "task_id": int(task_id), "num_demos": int(num_demos), "key_poses": poses}
    if per_demo is not None:
        doc["per_demo"] = [list(events) for events in per_demo]  # extract_key_events' plain-JSON events
    path.write_text(json.dumps(doc, indent=1))
    return path


def load_key_poses(suite: str, task_id: int, root: str | Path | None = None,
                   num_demos: int | None = None) -> list[dict] | None:
    """Key poses of a task (``[{"label", "xyz", ...}]``), or None when none were extracted.

    ``num_demos``: average the first ``num_demos`` recorded demos only (all when fewer are
    recorded; ``RewardConfig.key_pose_demos`` in a run). A file written before per-demo events
    were stored has only the aggregate over all its demos, which is returned as it is."""
    if num_demos is not None and (isinstance(num_demos, bool) or not isinstance(num_demos, int) or num_demos < 1):
        raise ValueError(f"num_demos={num_demos!r}: pass a positive integer (or None for every demo).")
    path = task_dir(canonical_suite(suite), task_id, root) / "key_poses.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    if num_demos is None or "per_demo" not in doc:
        return doc["key_poses"]
    poses, _ = aggregate_key_poses(doc["per_demo"][:num_demos])
    return poses or None
