"""The scripted expert: BDDL goal atoms -> a chain of motion primitives -> 7-D delta actions.

Each primitive is a generator that reads the latest privileged state (``self.s``) and yields
one action per control step, so a skill reads top to bottom like the motion it scripts
(approach, descend, grasp, lift, carry, lower, release, retreat). Targets are recomputed from
the state at every step, so a bumped object or basket is tracked rather than missed.

The primitives live in ``control.py``, the skills in ``articulated.py`` / ``planner.py``; this
module only plans at ``reset`` and steps the plan in ``act``.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .control import OPEN, Controller, ExpertConfig, gripper_yaw
from .geometry import SceneGeometry
from .planner import plan_goal


class ScriptedExpert(Controller):
    """Drives one episode. ``reset(state)`` plans from the goal; ``act(state)`` returns (7,) actions.

    ``events`` (see ``Controller``) holds the episode's grasps, releases and joint crossings."""

    def __init__(self, goal: list[list[str]], geometry: SceneGeometry, cfg: ExpertConfig = ExpertConfig(),
                 seed: int = 0):
        super().__init__(goal, geometry, cfg, seed)
        self._plan: Iterator[np.ndarray] | None = None
        self.done = False
        self.intended: np.ndarray | None = None
        """The last action before ``action_noise``: what the expert meant to do at that state."""

    def reset(self, state: dict) -> None:
        self.s, self.t, self.events, self.done = state, 0, [], False
        self.yaw = gripper_yaw(state["eef_quat"])
        self._plan = plan_goal(self)

    def act(self, state: dict) -> np.ndarray:
        if self._plan is None:
            raise ValueError("ScriptedExpert.act called before reset(state): call reset with the first observation's state.")
        self.s = state
        try:
            action = next(self._plan)
        except StopIteration:
            self.done = True
            action = self.servo(self.s["eef_pos"], OPEN)
        self.t += 1
        self.intended = np.clip(action, -1.0, 1.0)  # the label a demonstration records (DART: noise only executed)
        if self.cfg.action_noise > 0:
            action = action.copy()
            action[:6] += self.rng.normal(0, self.cfg.action_noise, 6)
        return np.clip(action, -1.0, 1.0)
