"""Scripted privileged-state trajectories without a simulator (tests, notebook illustrations).

    tb = ScriptedTrajectory({"eef_pos": [-0.2, 0, 0.3], "gripper_qpos": [0.04, -0.04],
                             "pos/alphabet_soup_1": [-0.1, -0.2, 0.015], ...})
    tb.move_eef([-0.1, -0.2, 0.03], steps=20).close_gripper(5).move_eef(..., carry="alphabet_soup_1")
    states = tb.states()   # {key: (T, ...)}

Kinematics only: a carried object keeps its offset to the eef; nothing falls or collides.
"""
from __future__ import annotations

import numpy as np

from tgrpo_lib.reward.evidence import RewardEvidence


class ScriptedTrajectory:
    """Piecewise-linear state sequences built from waypoint commands (chainable)."""

    def __init__(self, start: dict):
        self._cur = {k: np.asarray(v, dtype=np.float64).copy() for k, v in start.items()}
        self._rows = [self._snapshot()]

    def _snapshot(self) -> dict:
        return {k: v.copy() for k, v in self._cur.items()}

    def _interp(self, targets: dict, steps: int, carry: str | None = None):
        start = self._snapshot()
        offset = None if carry is None else self._cur[f"pos/{carry}"] - self._cur["eef_pos"]
        for i in range(1, steps + 1):
            a = i / steps
            for k, v in targets.items():
                self._cur[k] = (1 - a) * start[k] + a * np.asarray(v, dtype=np.float64)
            if offset is not None:
                self._cur[f"pos/{carry}"] = self._cur["eef_pos"] + offset
            self._rows.append(self._snapshot())
        return self

    def move_eef(self, xyz, steps: int = 10, carry: str | None = None, **others):
        """Move the eef (and a carried object) linearly; `others` moves more keys, e.g. a drawer."""
        targets = {"eef_pos": xyz}
        targets.update({k.replace("__", "/"): v for k, v in others.items()})
        return self._interp(targets, steps, carry)

    def set(self, steps: int = 5, carry: str | None = None, **targets):
        """Move arbitrary keys (write "pos/x" as pos__x) linearly over `steps`."""
        return self._interp({k.replace("__", "/"): v for k, v in targets.items()}, steps, carry)

    def close_gripper(self, steps: int = 5, width: float = 0.05):
        return self._interp({"gripper_qpos": [width / 2, -width / 2]}, steps)

    def open_gripper(self, steps: int = 5):
        return self._interp({"gripper_qpos": [0.04, -0.04]}, steps)

    def wait(self, steps: int = 5):
        return self._interp({}, steps)

    def position(self, name: str) -> np.ndarray:
        """Where object ``name`` is now (a copy)."""
        return self._cur[f"pos/{name}"].copy()

    def states(self) -> dict[str, np.ndarray]:
        return {k: np.stack([r[k] for r in self._rows]) for k in self._rows[0]}  # (T, ...)


def pick_and_place(tb: ScriptedTrajectory, obj: str, dest: np.ndarray, grasp_dz: float = 0.03,
                   steps: int = 10) -> ScriptedTrajectory:
    """Scripted expert: above object -> down -> close -> lift -> over dest -> lower to dest -> open.

    `dest` is where the object origin ends up."""
    p = tb.position(obj)
    g = p + [0, 0, grasp_dz]
    dest = np.asarray(dest, dtype=np.float64)
    tb.move_eef(g + [0, 0, 0.12], steps).move_eef(g, steps).close_gripper(steps // 2)
    tb.move_eef(g + [0, 0, 0.20], steps, carry=obj)
    tb.move_eef(dest + [0, 0, grasp_dz + 0.15], steps, carry=obj)
    tb.move_eef(dest + [0, 0, grasp_dz], steps, carry=obj).open_gripper(steps // 2)
    return tb.move_eef(dest + [0, 0, grasp_dz + 0.15], steps)


SOUP_START = {"eef_pos": [-0.2, 0.0, 0.3], "eef_quat": [1.0, 0.0, 0.0, 0.0], "gripper_qpos": [0.04, -0.04],
              "pos/alphabet_soup_1": [-0.12, -0.24, 0.015], "quat/alphabet_soup_1": [0.0, 0.0, 0.0, 1.0],
              "pos/basket_1": [0.0, 0.15, 0.01], "quat/basket_1": [0.0, 0.0, 0.0, 1.0],
              "pos/basket_1_contain_region": [0.0, 0.15, 0.072]}


def soup_evidence(n_start: int = 3, seed: int = 0):
    """A simulator-free `RewardEvidence` for libero_object #0 (alphabet soup into the basket):
    jittered start states, one scripted success, a hovering and a random failure, the success's
    grasp / release key events. For tests and illustrations; kinematics only."""
    rng = np.random.default_rng(seed)
    starts = []
    for _ in range(n_start):
        s = {k: np.asarray(v, dtype=np.float64) for k, v in SOUP_START.items()}
        s["pos/alphabet_soup_1"] = s["pos/alphabet_soup_1"] + np.r_[rng.uniform(-0.01, 0.01, 2), 0.0]
        starts.append(s)
    tb = pick_and_place(ScriptedTrajectory(SOUP_START), "alphabet_soup_1", [0.0, 0.15, 0.06], grasp_dz=0.01)
    ok = tb.states()
    hover = ScriptedTrajectory(SOUP_START).move_eef([-0.12, -0.24, 0.1], 20).wait(60).states()  # never grasps
    rand = ScriptedTrajectory(SOUP_START)
    for _ in range(30):
        rand.move_eef(np.array([-0.2, 0.0, 0.3]) + rng.uniform(-0.1, 0.1, 3), 2)
    events = [{"label": "grasp:alphabet_soup_1", "step": 25, "xyz": [-0.12, -0.24, 0.025]},
              {"label": "release:alphabet_soup_1", "step": 65, "xyz": [0.0, 0.15, 0.07]}]
    return RewardEvidence("libero_object", 0, starts, [ok, hover, rand.states()], [True, False, False],
                          ["expert", "random", "random"], events, expert_tries=1)
