"""Scene geometry the expert needs beyond the privileged state: object extents and region sizes.

The privileged state gives every body's origin and orientation but not its size. The sizes are
read once per environment from the compiled MuJoCo model (collision geoms only, in the body
frame), so at any later step a body's world-frame box follows from ``pos/<name>`` and
``quat/<name>`` alone. The rotation helpers here are pure numpy and shared by every module above.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_MESH, _BOX, _CYLINDER, _CAPSULE, _SPHERE, _ELLIPSOID = 7, 6, 5, 3, 2, 4
_UNIT_CORNERS = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], dtype=np.float64)  # (8, 3)


def quat_to_mat(quat_xyzw: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of quaternions (..., 4) in (x, y, z, w) order, each divided by
    its norm first unless ``normalize`` is False (the reward's stage tests read MuJoCo's quaternions,
    unit already, as they are). The one quaternion -> matrix of the package (expert and reward)."""
    q = np.asarray(quat_xyzw, dtype=np.float64)
    if normalize:
        q = q / (np.linalg.norm(quat_xyzw) if q.ndim == 1 else np.linalg.norm(q, axis=-1, keepdims=True))
    x, y, z, w = np.moveaxis(q, -1, 0)
    rows = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def rot_to_axis_angle(rot: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) axis-angle vector."""
    cos = np.clip((np.trace(rot) - 1) / 2, -1.0, 1.0)
    angle = np.arccos(cos)
    vec = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if angle < 1e-6:
        return vec / 2
    if np.pi - angle < 1e-3:  # near 180 degrees the antisymmetric part vanishes: R ~ 2 n n^T - I
        sym = (rot + np.eye(3)) / 2
        axis = sym[:, int(np.argmax(np.diag(sym)))]
        return axis / (np.linalg.norm(axis) + 1e-12) * angle
    return vec / (2 * np.sin(angle)) * angle


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def axis_rot(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` about unit ``axis`` (Rodrigues)."""
    k = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


@dataclass
class SceneGeometry:
    """Body-frame collision boxes of the scene's objects and fixtures, and region site sizes."""

    local_boxes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """name -> (lo (3,), hi (3,)) corners of the axis-aligned box in the body's own frame."""
    site_sizes: dict[str, np.ndarray] = field(default_factory=dict)
    """region site name -> raw MuJoCo site size (3,) (half extents in the site frame)."""
    site_mats: dict[str, np.ndarray] = field(default_factory=dict)
    """region site name -> (3, 3) world rotation of the site at build time (fixture sites do not turn)."""
    sub_boxes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """moving part (drawer, door, knob body name) -> world (lo, hi) box at build time."""
    joints: dict[str, "JointInfo"] = field(default_factory=dict)
    """articulated joint name -> its axis, anchor and graspable feature at build time."""

    def world_box(self, name: str, state: dict) -> tuple[np.ndarray, np.ndarray]:
        """World-frame axis-aligned (lo, hi) of body ``name`` at ``state``."""
        lo, hi = self.local_boxes[name]
        corners = (lo + hi) / 2 + _UNIT_CORNERS * (hi - lo) / 2  # (8, 3) body frame
        rot = quat_to_mat(state[f"quat/{name}"])
        world = corners @ rot.T + state[f"pos/{name}"]
        return world.min(0), world.max(0)

    def region_half_extents(self, site: str) -> np.ndarray:
        """World half extents |M s| of a region site (the In predicate's box)."""
        return np.abs(self.site_mats[site] @ self.site_sizes[site])

    def height(self, name: str) -> float:
        lo, hi = self.local_boxes[name]
        return float(np.max(hi - lo))


@dataclass
class JointInfo:
    """An articulated joint at build time (world frame)."""

    kind: str  # "slide" or "hinge"
    axis: np.ndarray  # (3,) joint axis
    anchor: np.ndarray  # (3,) a point on the axis
    q0: float  # joint value when measured
    feature_lo: np.ndarray  # (3,) box of the handle (drawer) / lever (knob) / outer edge (door)
    feature_hi: np.ndarray  # (3,)
    part_lo: np.ndarray  # (3,) box of the whole moving part
    part_hi: np.ndarray  # (3,)


def _joint_info(model, data, joint: str, kind: str) -> JointInfo | None:
    jid = model.joint_name2id(joint)
    body = int(model.jnt_bodyid[jid])
    axis = np.array(data.xaxis[jid], dtype=np.float64)
    anchor = np.array(data.xanchor[jid], dtype=np.float64)
    q0 = float(data.qpos[model.jnt_qposadr[jid]])
    boxes = []
    for g in _subtree_geoms(model, body):
        pts = _geom_points(model, data, g)
        if pts is not None:
            boxes.append((pts.min(0), pts.max(0)))
    if not boxes:
        return None
    part_lo = np.min([b[0] for b in boxes], axis=0)
    part_hi = np.max([b[1] for b in boxes], axis=0)
    if kind == "slide":  # the handle is the geom that sticks out furthest in the opening direction (-axis)
        out = -axis
        feature = max(boxes, key=lambda b: float(((b[0] + b[1]) / 2) @ out))
    else:  # knob lever / door: the geoms that rise highest above the part's base
        tall = [b for b in boxes if b[1][2] > part_lo[2] + 0.6 * (part_hi[2] - part_lo[2])]
        feature = (np.min([b[0] for b in tall], axis=0), np.max([b[1] for b in tall], axis=0))
    return JointInfo(kind, axis, anchor, q0, feature[0], feature[1], part_lo, part_hi)


def _geom_points(model, data, g: int) -> np.ndarray | None:
    """World-frame points bounding collision geom ``g`` (mesh vertices or primitive box corners)."""
    kind, size = int(model.geom_type[g]), np.asarray(model.geom_size[g])
    if kind == _MESH:
        mesh = int(model.geom_dataid[g])
        start, count = int(model.mesh_vertadr[mesh]), int(model.mesh_vertnum[mesh])
        local = np.asarray(model.mesh_vert[start:start + count], dtype=np.float64)
    elif kind in (_BOX, _ELLIPSOID):
        local = _UNIT_CORNERS * size
    elif kind == _CYLINDER:
        local = _UNIT_CORNERS * np.array([size[0], size[0], size[1]])
    elif kind == _CAPSULE:
        local = _UNIT_CORNERS * np.array([size[0], size[0], size[1] + size[0]])
    elif kind == _SPHERE:
        local = _UNIT_CORNERS * size[0]
    else:  # planes and height fields bound nothing useful
        return None
    rot = np.asarray(data.geom_xmat[g]).reshape(3, 3)
    return local @ rot.T + np.asarray(data.geom_xpos[g])


def _subtree_geoms(model, root: int) -> list[int]:
    geoms = []
    for g in range(model.ngeom):
        if model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0:
            continue  # visual-only geom: the gripper can pass through it
        body = int(model.geom_bodyid[g])
        while body not in (0, root):
            body = int(model.body_parentid[body])
        if body == root:
            geoms.append(g)
    return geoms


def scene_geometry(env) -> SceneGeometry:
    """Measure the scene of a ``LiberoEnv`` (reads its compiled model; call after ``reset``)."""
    model, data = env.sim.model, env.sim.data
    geo = SceneGeometry()
    for name, root in env.body_ids.items():
        pts = [p for g in _subtree_geoms(model, root) if (p := _geom_points(model, data, g)) is not None]
        if not pts:
            continue
        rot = np.asarray(data.body_xmat[root]).reshape(3, 3)
        local = (np.concatenate(pts) - np.asarray(data.body_xpos[root])) @ rot  # world -> body frame
        geo.local_boxes[name] = (local.min(0), local.max(0))
    for site in env.site_names:
        sid = model.site_name2id(site)
        geo.site_sizes[site] = np.array(model.site_size[sid], dtype=np.float64)
        geo.site_mats[site] = np.array(data.site_xmat[sid], dtype=np.float64).reshape(3, 3)
    for joint in env.articulated_joints:
        jid = model.joint_name2id(joint)
        kind = {2: "slide", 3: "hinge"}[int(model.jnt_type[jid])]
        info = _joint_info(model, data, joint, kind)
        if info is not None:
            geo.joints[joint] = info
    for b in range(model.nbody):
        name = model.body_id2name(b) or ""
        if any(part in name for part in ("_cabinet_", "microdoor", "_button")):
            pts = [p for g in _subtree_geoms(model, b) if (p := _geom_points(model, data, g)) is not None]
            if pts:
                allp = np.concatenate(pts)
                geo.sub_boxes[name] = (allp.min(0), allp.max(0))
    return geo
