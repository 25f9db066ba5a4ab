"""Articulated parts: drawers (pull by the handle / push shut), the stove knob (turn), the
microwave door (push shut). Geometry comes from ``SceneGeometry.joints`` (measured at reset);
a part's current pose follows from its joint value in the privileged state."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .control import CLOSE, OPEN, Controller, wrap_finger_yaw
from .geometry import axis_rot

DRAWER_OPEN_Q = -0.15  # beyond the Open threshold (-0.14) and short of the stop (-0.16)
KNOB_TURN = 1.0  # rad of wrist turn; the knob must reach 0.5 and coasts a little after release


def drawer_q(ex: Controller, region: str) -> float:
    joint = region.replace("_region", "_level")
    return float(ex.s.get(f"joint/{joint}", [0.0])[0])


def knob_is_on(ex: Controller, stove: str) -> bool:
    return float(ex.s.get(f"joint/{stove}_button", [0.0])[0]) >= 0.5


def _joint_q(ex: Controller, joint: str) -> float:
    return float(ex.s[f"joint/{joint}"][0])


def _handle(ex: Controller, joint: str) -> np.ndarray:
    """Current centre of a drawer's handle: the build-time box slid by the joint's travel."""
    info = ex.geo.joints[joint]
    centre = (info.feature_lo + info.feature_hi) / 2
    return centre + (_joint_q(ex, joint) - info.q0) * info.axis


def _restore_down(ex: Controller, back: np.ndarray) -> Iterator[np.ndarray]:
    """Back away and rise while still horizontal, then turn to point down in free space
    (turning next to the cabinet swings the hand into it and shoves the drawer back)."""
    yield from ex.move(ex.s["eef_pos"] + back, OPEN, tol=0.03, max_steps=25)
    yield from ex.move(ex.s["eef_pos"] + back * 0.3 + np.array([0, 0, 0.08]), OPEN, tol=0.03, max_steps=25)
    ex.rot = None
    # most of the turn; the next skill's first move (a transit in free space) finishes it
    yield from ex.move(np.array(ex.s["eef_pos"]), OPEN, tol=0.03, max_steps=30, yaw_tol=0.5, stall_tol=0.0)


def open_footprint(ex: Controller, joint: str, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """xy box the drawer will cover once fully open, grown by ``margin``."""
    info = ex.geo.joints[joint]
    shift = (-0.16 - info.q0) * info.axis
    return info.part_lo[:2] + shift[:2] - margin, info.part_hi[:2] + shift[:2] + margin


def drawer_out_dir(ex: Controller, region: str) -> np.ndarray | None:
    """Horizontal direction a drawer region opens toward (None for anything that is not a drawer)."""
    joint = region.replace("_region", "_level")
    info = ex.geo.joints.get(joint)
    if info is None or info.kind != "slide":
        return None
    return -info.axis / np.linalg.norm(info.axis)


def open_drawer(ex: Controller, region: str) -> Iterator[np.ndarray]:
    """Grasp the handle from the front (gripper horizontal, fingers closing vertically) and pull."""
    joint = region.replace("_region", "_level")
    if joint not in ex.geo.joints:
        return False
    info = ex.geo.joints[joint]
    out = -info.axis  # opening direction
    out = out / np.linalg.norm(out)
    stage = _handle(ex, joint) + out * 0.09
    yield from ex.move(np.r_[stage[:2], max(ex.s["eef_pos"][2], stage[2] + 0.05)], OPEN, tol=0.03, max_steps=60)
    ex.rot = ex.horizontal_rot(-out)
    yield from ex.move(lambda: _handle(ex, joint) + out * 0.09, OPEN, tol=0.015, max_steps=60, yaw_tol=0.12)
    yield from ex.move(lambda: _handle(ex, joint) + out * 0.004, OPEN, tol=0.008, max_steps=50, speed=0.8)
    yield from ex.close_gripper()
    ex.mark(f"grasp:{region}")
    start = _handle(ex, joint)
    for _ in range(90):
        if _joint_q(ex, joint) < DRAWER_OPEN_Q:
            break
        yield ex.servo(_handle(ex, joint) + out * 0.04 + np.r_[0, 0, start[2] - _handle(ex, joint)[2]], CLOSE, speed=0.6)
    ex.mark(f"open:{region}")
    yield from ex.hold(OPEN, 6)
    yield from _restore_down(ex, out * 0.07)
    return _joint_q(ex, joint) < -0.14


def close_part(ex: Controller, name: str) -> Iterator[np.ndarray]:
    """Push a drawer home by its handle, or swing the microwave door shut."""
    joints = [j for j in ex.geo.joints if j.startswith(name.replace("_region", "_level"))] if name.endswith("_region") \
        else [j for j in ex.geo.joints if j.startswith(name)]
    for joint in joints:
        info = ex.geo.joints[joint]
        if info.kind == "slide":
            yield from _push_drawer(ex, joint)
        else:
            yield from _close_door(ex, joint)
    return True


PUSH_TILT = 0.6  # rad the fingers lean into the push: the wrist trails, clear of the cabinet front above


def _push_drawer(ex: Controller, joint: str) -> Iterator[np.ndarray]:
    """Push the handle home with the closed fingertips, the hand leaning into the push.

    Pointing straight down, the wrist above a bottom drawer's handle meets the cabinet front
    (and the palm the handle of the drawer above) while the drawer still sticks out ~6 cm;
    leaning the fingers forward by ``PUSH_TILT`` keeps everything but the fingertips outside."""
    info = ex.geo.joints[joint]
    out = -info.axis / np.linalg.norm(info.axis)
    across = np.array([-out[1], out[0], 0.0])  # horizontal, across the push
    handle = _handle(ex, joint)
    ex.rot = None
    ex.yaw = wrap_finger_yaw(float(np.arctan2(-across[0], across[1])), ex.yaw)  # finger axis across the push
    yield from ex.move(np.r_[(handle + out * 0.08)[:2], max(ex.s["eef_pos"][2], handle[2] + 0.08)], CLOSE, tol=0.02,
                       max_steps=60)
    ex.rot = axis_rot(across, PUSH_TILT) @ ex.target_rot()  # turns the down-pointing fingers toward -out
    yield from ex.move(lambda: _handle(ex, joint) + out * 0.05 + np.r_[0, 0, 0.005], CLOSE, tol=0.012, max_steps=50,
                       yaw_tol=0.15)
    for _ in range(100):
        if _joint_q(ex, joint) > 0.002:
            break
        yield ex.servo(_handle(ex, joint) - out * 0.05 + np.r_[0, 0, 0.005], CLOSE, speed=0.7)
    ex.mark(f"close:{joint}")
    yield from ex.move(ex.s["eef_pos"] + out * 0.05 + np.r_[0, 0, 0.06], CLOSE, tol=0.02, max_steps=20)
    ex.rot = None


def _close_door(ex: Controller, joint: str) -> Iterator[np.ndarray]:
    """Sweep the door's free edge toward its closed position, pushing from the open side."""
    info = ex.geo.joints[joint]
    ex.rot = None
    centre = (info.feature_lo + info.feature_hi) / 2
    hinge = info.anchor
    arm0 = centre[:2] - hinge[:2]
    radius = float(np.linalg.norm(arm0)) * 0.8
    z = float(info.feature_lo[2] + 0.6 * (info.feature_hi[2] - info.feature_lo[2]))

    def door_point(q_offset: float, r_scale: float = 1.0) -> np.ndarray:
        q = _joint_q(ex, joint) + q_offset
        ang = np.arctan2(arm0[1], arm0[0]) + (q - info.q0)
        return np.r_[hinge[:2] + radius * r_scale * np.array([np.cos(ang), np.sin(ang)]), z]

    # stand off on the side the door closes toward (q increases), then push it round
    yield from ex.move(np.r_[door_point(-0.35, 1.0)[:2], max(ex.s["eef_pos"][2], z + 0.1)], CLOSE, tol=0.03, max_steps=60)
    yield from ex.move(lambda: door_point(-0.35), CLOSE, tol=0.015, max_steps=40)
    for _ in range(120):
        if _joint_q(ex, joint) > -0.004:
            break
        yield ex.servo(door_point(0.45), CLOSE, speed=0.6)
    ex.mark(f"close:{joint}")
    yield from ex.move(ex.s["eef_pos"] + np.r_[0, 0, 0.06], CLOSE, tol=0.02, max_steps=20)


def turn_on_knob(ex: Controller, stove: str) -> Iterator[np.ndarray]:
    """Grip the knob's lever from above and turn the wrist about +z."""
    joint = f"{stove}_button"
    if joint not in ex.geo.joints:
        return False
    info = ex.geo.joints[joint]
    ext = info.feature_hi - info.feature_lo
    lever0 = 0.0 if ext[0] >= ext[1] else np.pi / 2  # lever direction at build time
    centre = np.r_[info.anchor[:2], info.feature_hi[2] - 0.018]
    for _attempt in range(2):
        q = _joint_q(ex, joint)
        phi = lever0 + (q - info.q0)
        # fingers close across the lever (finger axis = phi + pi/2, i.e. yaw = phi); leave room to turn +KNOB_TURN
        cands = [phi + k * np.pi for k in range(-3, 4)]
        cands = [c for c in cands if -1.75 <= c <= 1.75 - KNOB_TURN] or cands
        ex.rot = None
        ex.yaw = float(min(cands, key=lambda c: abs(c)))
        yield from ex.move(np.r_[centre[:2], max(ex.s["eef_pos"][2], centre[2] + 0.08)], OPEN, tol=0.02, max_steps=60)
        yield from ex.move(np.r_[centre[:2], centre[2] + 0.06], OPEN, tol=0.012, max_steps=40, yaw_tol=0.08)
        yield from ex.move(centre, OPEN, tol=0.006, max_steps=40, speed=0.5)
        yield from ex.close_gripper()
        ex.mark(f"grasp:{joint}")
        start_yaw = ex.yaw
        for k in range(50):
            if _joint_q(ex, joint) >= 0.6:
                break
            ex.yaw = min(start_yaw + KNOB_TURN, start_yaw + 0.08 * (k + 1))
            yield ex.servo(centre, CLOSE)
        yield from ex.hold(OPEN, 6)
        yield from ex.move(ex.s["eef_pos"] + np.r_[0, 0, 0.08], OPEN, tol=0.02, max_steps=25)
        if knob_is_on(ex, stove):
            ex.mark(f"turnon:{stove}")
            return True
    return False
