"""Low-level control and scene queries that the skills (``articulated.py``, ``planner.py``) are
written against; ``core.ScriptedExpert`` adds the plan on top.

Actions follow the env (OSC_POSE deltas): xyz in units of 0.05 m, rotation in units of
0.5 rad (world-frame axis-angle), gripper +1 close / -1 open.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .geometry import SceneGeometry, quat_to_mat, rot_to_axis_angle, rot_z

# Gripper pointing straight down with the fingers closing along world y (the Panda's home pose).
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
OPEN, CLOSE = -1.0, 1.0


@dataclass(frozen=True)
class ExpertConfig:
    """Knobs of the scripted expert (defaults: the settings the success table was measured with)."""

    gain: float = 20.0
    """P gain from position error (m) to action units; 1/gain m is where the action saturates."""
    rot_gain: float = 1.5
    """P gain from orientation error (rad) to rotation action (1.0 = 0.5 rad)."""
    action_noise: float = 0.0
    """Std of Gaussian noise added to the xyz/rotation action dims (demo diversity)."""
    waypoint_jitter: float = 0.0
    """Half width (m) of the uniform jitter applied to grasp / place offsets (demo diversity)."""
    max_grasp_attempts: int = 3
    """Re-grasps after a failed lift before the expert gives up on an object."""


def gripper_yaw(quat_xyzw: np.ndarray) -> float:
    """Yaw of the finger-closing axis (0 = fingers close along world y)."""
    fingers = quat_to_mat(quat_xyzw)[:, 0]
    return float(np.arctan2(-fingers[0], fingers[1]))


def wrap_finger_yaw(yaw: float, current: float) -> float:
    """The finger axis is symmetric under a half turn: pick the equivalent yaw nearest ``current``,
    kept inside the wrist's comfortable range (|yaw| <= ~100 degrees)."""
    cands = [yaw + k * np.pi for k in (-2, -1, 0, 1, 2)]
    cands = [c for c in cands if abs(c) <= 1.75] or cands
    return float(min(cands, key=lambda c: abs(c - current)))


class Controller:
    """The expert's state for one episode and the primitives a skill is built from.

    Each primitive is a generator that reads the latest privileged state (``self.s``) and yields
    one action per control step. ``events`` collects (step, label, eef_xyz) whenever a skill
    grasps, releases or moves a joint past its threshold; they become key poses.
    """

    def __init__(self, goal: list[list[str]], geometry: SceneGeometry, cfg: ExpertConfig = ExpertConfig(),
                 seed: int = 0):
        self.goal = [[str(t).lower() for t in atom] for atom in goal]
        self.geo, self.cfg = geometry, cfg
        self.rng = np.random.default_rng(seed)
        self.s: dict = {}
        self.t = 0
        self.yaw = 0.0
        self.rot: np.ndarray | None = None  # full target orientation; None = pointing down at ``yaw``
        self.events: list[tuple[int, str, list[float]]] = []

    def mark(self, label: str) -> None:
        self.events.append((self.t, label, [float(v) for v in self.s["eef_pos"]]))

    # ------------------------------------------------------------------ low level control
    def servo(self, target: np.ndarray, grip: float, speed: float = 1.0) -> np.ndarray:
        """P control on position and (down-pointing, yawed) orientation, clipped to the action box."""
        err = np.asarray(target, dtype=np.float64) - self.s["eef_pos"]
        a_pos = np.clip(err * self.cfg.gain, -speed, speed)
        r_err = self.target_rot() @ quat_to_mat(self.s["eef_quat"]).T
        a_rot = np.clip(rot_to_axis_angle(r_err) * self.cfg.rot_gain / 0.5 * 0.5, -1.0, 1.0)
        return np.concatenate([a_pos, a_rot, [grip]])

    def target_rot(self) -> np.ndarray:
        return self.rot if self.rot is not None else rot_z(self.yaw) @ R_DOWN

    def yaw_error(self) -> float:
        """Angle (rad) between the current and the target gripper orientation."""
        return float(np.linalg.norm(rot_to_axis_angle(self.target_rot() @ quat_to_mat(self.s["eef_quat"]).T)))

    def horizontal_rot(self, approach: np.ndarray) -> np.ndarray:
        """Gripper pointing along horizontal ``approach`` with the fingers closing vertically."""
        z = np.array([approach[0], approach[1], 0.0])
        z /= np.linalg.norm(z)
        current = quat_to_mat(self.s["eef_quat"])
        options = []
        for up in (1.0, -1.0):
            x = np.array([0.0, 0.0, up])
            options.append(np.stack([x, np.cross(z, x), z], axis=1))
        return min(options, key=lambda r: np.linalg.norm(rot_to_axis_angle(r @ current.T)))

    def move(self, target: Callable[[], np.ndarray] | np.ndarray, grip: float, tol: float = 0.01,
             max_steps: int = 60, speed: float = 1.0, yaw_tol: float = 0.15,
             stall_tol: float = 0.04) -> Iterator[np.ndarray]:
        """Servo toward a (possibly moving) target until within ``tol`` m; returns whether reached.

        Gives up early when the gripper has stopped moving within ``stall_tol`` m of the target."""
        trail: list[np.ndarray] = []
        for _ in range(max_steps):
            goal = np.asarray(target() if callable(target) else target, dtype=np.float64)
            dist = np.linalg.norm(goal - self.s["eef_pos"])
            if dist < tol and self.yaw_error() < yaw_tol:
                return True
            trail.append(np.array(self.s["eef_pos"]))
            # blocked by contact (fingers on a rim, object on its support): waiting wastes the budget
            if stall_tol > 0 and len(trail) > 6 and dist < stall_tol and np.linalg.norm(trail[-1] - trail[-7]) < 0.002:
                return False
            yield self.servo(goal, grip, speed)
        return False

    def hold(self, grip: float, steps: int, target: np.ndarray | None = None) -> Iterator[np.ndarray]:
        goal = np.array(self.s["eef_pos"] if target is None else target, dtype=np.float64)
        for _ in range(steps):
            yield self.servo(goal, grip)

    def close_gripper(self, max_steps: int = 14) -> Iterator[np.ndarray]:
        """Close in place until the fingers stop moving (on the object, or shut on nothing)."""
        goal = np.array(self.s["eef_pos"], dtype=np.float64)
        widths = []
        for k in range(max_steps):
            widths.append(self.gripper_width())
            if k >= 6 and abs(widths[-1] - widths[-3]) < 5e-4:
                return
            yield self.servo(goal, 1.0)

    def gripper_width(self) -> float:
        q = self.s["gripper_qpos"]
        return float(q[0] - q[1])

    def jitter(self, n: int = 3) -> np.ndarray:
        j = self.cfg.waypoint_jitter
        return self.rng.uniform(-j, j, n) if j > 0 else np.zeros(n)

    # ------------------------------------------------------------------ scene queries
    def pos(self, name: str) -> np.ndarray:
        return np.asarray(self.s[f"pos/{name}"], dtype=np.float64)

    def box(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.geo.world_box(name, self.s)

    def obstacle_boxes(self, exclude: tuple[str, ...] = ()) -> list[tuple[np.ndarray, np.ndarray]]:
        """World boxes of every object and fixture (tables excluded), drawers at their current slide."""
        boxes = [self.box(n) for n in self.geo.local_boxes if n not in exclude and f"pos/{n}" in self.s]
        for joint, info in self.geo.joints.items():  # an opened drawer sticks out of its cabinet's box
            if info.kind == "slide" and f"joint/{joint}" in self.s:
                shift = (float(self.s[f"joint/{joint}"][0]) - info.q0) * info.axis
                boxes.append((info.part_lo + shift, info.part_hi + shift))
        return [(lo, hi) for lo, hi in boxes if np.max(hi[:2] - lo[:2]) <= 0.6]  # tables: everything stands on them

    def overhead_blocked(self, point: np.ndarray, exclude: tuple[str, ...] = (), radius: float = 0.045) -> bool:
        """Whether something hangs over ``point`` (e.g. an opened drawer over a bowl): no vertical descent."""
        for lo, hi in self.obstacle_boxes(exclude):
            gap = np.maximum(np.maximum(lo[:2] - point[:2], point[:2] - hi[:2]), 0)
            if np.linalg.norm(gap) < radius and point[2] + 0.01 < lo[2] < point[2] + 0.3:
                return True
        return False

    def clearance_z(self, xy_from: np.ndarray, xy_to: np.ndarray, exclude: tuple[str, ...] = (),
                    margin: float = 0.06) -> float:
        """Highest top among bodies whose footprint meets the straight corridor between two xy points."""
        top = -np.inf
        a, b = np.asarray(xy_from[:2]), np.asarray(xy_to[:2])
        for lo, hi in self.obstacle_boxes(exclude):
            # distance from the segment to the footprint, sampled (cheap and good enough)
            pts = a + np.linspace(0, 1, 12)[:, None] * (b - a)
            gap = np.maximum(np.maximum(lo[:2] - pts, pts - hi[:2]), 0)
            if np.min(np.linalg.norm(gap, axis=1)) < margin:
                top = max(top, float(hi[2]))
        return top
