"""Offline stage compiler: BDDL goal atoms -> an ordered list of reward stages (no API key).

Each stage has three vectorised functions of the privileged state (arrays with any leading
batch shape, the last batch axis being time; `ref` is the state at t = 0 broadcast over time):

- ``milestone``: bool, the stage's completion test ("the object is lifted near the gripper");
- ``progress``: float in [0, 1], geometric progress toward that test, used by f1 of Eq. 1;
- ``key pose``: the reference end-effector position of the stage, used by f2 of Eq. 1.

Stages per atom:

- In/On(obj, target): approach(obj) -> grasp(obj) -> move(obj above target) -> place(predicate);
  "push" instructions drop grasp (the object slides, never lifts).
- Open/Close(part): reach(handle) -> actuate(joint to threshold, progress = normalised q).
- TurnOn(stove): reach(knob) -> actuate.
- An atom that is already true at every init state (10-8's TurnOn) becomes one ``keep`` stage:
  satisfied immediately, and never asks the gripper to go near the part.

Atom order: keeps, then openings (explicit, or implied by an instruction such as "open the top
drawer and put the bowl inside"), turn-ons, then In/On in goal order, then closings. A stage's
milestone only counts while every earlier goal atom still holds ("chain"), so carrying the second
soup can before the first one is in the basket earns nothing.

Hysteresis: approach, grasp, move and reach are entered by a strict test and kept, along the time axis,
while a looser one holds (`latch`): hovering over the object after a missed grasp, still holding
it while carrying it *down* from an elevated start (drawer, cabinet top), swinging during release,
turning the wrist in front of a handle.
A milestone therefore depends on the trajectory so far, not only on the current state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tgrpo_lib.expert.geometry import quat_to_mat
from tgrpo_lib.reward.tasks import (
    ON_OBJECT_DZ,
    ON_OBJECT_XY,
    REGIONS,
    Articulation,
    articulation,
)

# ---- geometric constants (metres); why each value, see the comment beside it -------------------
GRIPPER_OPEN_WIDTH = 0.08  # Panda fingers fully open (gripper_qpos[0] - gripper_qpos[1])
GRIPPER_CLOSED_BELOW = 0.077  # narrower than fully open = fingers are closing/closed on something
REACH_TOL = 0.07  # eef within this of a grasp point counts as "reached" (bowl rims sit 5 cm off-centre)
# Once reached, "approach" holds while the eef hovers over the grasp point (xy < REACH_TOL) up to
# this height: after a missed grasp the expert backs off straight up 9.5-14 cm and retries.
HOVER_DZ = 0.15
HOLD_TOL = 0.10  # a grasped object's grasp point stays this close to the eef
LIFT_MIN = 0.03  # object origin raised this much above its start height counts as lifted
ABOVE_DZ = 0.10  # "above the target": object origin this high over the target point
# Once over the target, "move" holds while the object stays within tolerance + this slack in xy:
# a bowl released 7 cm above the plate swings 3.1-3.3 cm off its centre before it lands.
MOVE_SLACK = 0.03
PART_TOL = 0.07  # eef within this of a handle/knob counts as reached
# Once reached, "reach" holds while the eef stays within PART_TOL + this of the handle: the goal-3
# expert turns its wrist 6-8 cm in front of the drawer handle before it closes in.
PART_SLACK = 0.03
PART_STARTED = 0.15  # ... or the joint already moved this fraction of its range toward the goal
DRAWER_HANDLE_OFFSET = 0.12  # handle = region centre + 0.12 m along the opening direction (measured)
KNOB_DZ = 0.04  # eef target above the stove origin, where the knob sits
# Microwave door free end in the microwave's frame: hinge (measured at q=0) + door length along +x.
MICROWAVE_HINGE_LOCAL = np.array([-0.185, -0.078, 0.096])
MICROWAVE_DOOR_LOCAL = np.array([0.22, -0.03, 0.0])

# Grasp point = object origin + this z offset: origins are at the base (bowls, mugs, bottles,
# books) or at the centre (cans, boxes); values from each object's collision extent in LIBERO.
GRASP_DZ = {
    "akita_black_bowl": 0.04, "plate": 0.02, "alphabet_soup": 0.01, "tomato_sauce": 0.01,
    "cream_cheese": 0.01, "butter": 0.01, "chocolate_pudding": 0.01, "salad_dressing": 0.03,
    "ketchup": 0.03, "bbq_sauce": 0.02, "milk": 0.03, "orange_juice": 0.03, "wine_bottle": 0.08,
    "moka_pot": 0.04, "porcelain_mug": 0.08, "white_yellow_mug": 0.08, "black_book": 0.11,
}
DEFAULT_GRASP_DZ = 0.03


def grasp_dz(obj: str) -> float:
    base = obj.rsplit("_", 1)[0] if obj.rsplit("_", 1)[-1].isdigit() else obj
    return GRASP_DZ.get(base, DEFAULT_GRASP_DZ)


@dataclass(frozen=True)
class Stage:
    """One stage of the multi-stage reward."""

    name: str  # e.g. "grasp:alphabet_soup_1"; also the components' key suffix
    kind: str  # approach | grasp | move | place | reach | actuate | keep
    atom: tuple  # the goal atom it serves, e.g. ("in", "alphabet_soup_1", "basket_1_contain_region")
    atom_index: int  # index of that atom in the compiled atom order
    key_label: str  # key-pose label looked up in `key_poses` (f2); "" = no shaping target
    push: bool = False  # move/place by pushing (no lift required)


@dataclass(frozen=True)
class CompiledTask:
    """Stages plus the atom order they were compiled from."""

    stages: tuple[Stage, ...]
    atoms: tuple[tuple, ...]  # compiled atom order
    required: tuple[bool, ...]  # False for implied prerequisites (not part of the BDDL goal)
    instruction: str


# ---- state access helpers ---------------------------------------------------------------------
def _get(state: dict, key: str) -> np.ndarray:
    if key not in state:
        raise ValueError(f"privileged state has no {key!r}; the env layer must export it "
                         f"(see docs/INTERFACES.md); present keys start with {sorted(state)[:6]}")
    return np.asarray(state[key], dtype=np.float64)


def _pos(state, name):
    return _get(state, f"pos/{name}")  # (..., 3)


def gripper_width(state) -> np.ndarray:
    g = _get(state, "gripper_qpos")
    return g[..., 0] - g[..., 1]  # (...)


def closeness(d: np.ndarray, scale: float) -> np.ndarray:
    """exp(-d / scale): 1 at the target, smooth and never exactly 0 far away."""
    return np.exp(-np.maximum(d, 0.0) / scale)


def quat_rotate(q_xyzw: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vector(s) v by unit quaternion(s) (x, y, z, w), broadcasting."""
    q = np.asarray(q_xyzw, dtype=np.float64)
    u, w = q[..., :3], q[..., 3:4]
    v = np.broadcast_to(v, np.broadcast_shapes(u.shape, np.shape(v)))
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def latch(enter: np.ndarray, stay: np.ndarray) -> np.ndarray:
    """Hysteresis along the last (time) axis: h_t = enter_t or (stay_t and h_{t-1}).

    A milestone entered by a strict test survives while a looser one holds, e.g. a grasp entered
    by "lifted" stays while the gripper keeps holding the object on the way down. Arrays without a
    time axis (0-d) get `enter` back.
    """
    enter, stay = np.broadcast_arrays(np.asarray(enter, dtype=bool), np.asarray(stay, dtype=bool))
    if enter.ndim == 0:
        return enter.copy()
    alive = enter | stay
    idx = np.arange(enter.shape[-1])
    last_break = np.maximum.accumulate(np.where(alive, -1, idx), axis=-1)  # (*B, T)
    last_enter = np.maximum.accumulate(np.where(enter, idx, -1), axis=-1)  # (*B, T)
    return alive & (last_enter > last_break)


def _quat(state, name, like):
    key = f"quat/{name}"
    if key in state:
        return np.asarray(state[key], dtype=np.float64)
    return np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), like.shape[:-1] + (4,))


# ---- predicates (geometric versions of LIBERO's; contact is not in the state) -------------------
def region_frame(state, region: str, like: np.ndarray) -> np.ndarray:
    """Site rotation M (..., 3, 3) of a goal region: parent body orientation times the site's own."""
    reg = REGIONS[region]
    local = quat_to_mat(np.array(reg.local_quat), normalize=False)
    if reg.parent is None:
        return np.broadcast_to(local, like.shape[:-1] + (3, 3))
    return quat_to_mat(_quat(state, reg.parent, like), normalize=False) @ local


def _target_point(state, target: str) -> np.ndarray:
    """Where the object origin should end up: region centre, or on top of a target object."""
    p = _pos(state, target)
    if target in REGIONS and REGIONS[target].on_size is not None:
        # LIBERO tests d = M (pos - centre) against the box, so the box's "up" is M^T e_z.
        up = np.swapaxes(region_frame(state, target, p), -1, -2)[..., 2]  # (..., 3)
        return p + up * (REGIONS[target].on_size[2] + 0.01)
    return p


def _xy_tol(target: str) -> float:
    reg = REGIONS.get(target)
    if reg is None:
        return ON_OBJECT_XY
    half = reg.in_half if reg.in_half is not None else reg.on_size
    return float(min(half[0], half[1]))


def placed(state, obj: str, target: str) -> np.ndarray:
    """In/On test on positions only (LIBERO's On also needs contact, approximated by a z band)."""
    d = _pos(state, obj) - _pos(state, target)  # (..., 3)
    reg = REGIONS.get(target)
    if reg is None:  # On(obj, object): xy < 3 cm and resting on it (contact proxy)
        return (np.linalg.norm(d[..., :2], axis=-1) < ON_OBJECT_XY) & (d[..., 2] >= 0.0) & (d[..., 2] < ON_OBJECT_DZ)
    if reg.in_half is not None:
        if reg.site_size is not None:  # |M s| of the current (possibly tipped) site
            h = np.abs(region_frame(state, target, d) @ np.array(reg.site_size))  # (..., 3)
        else:
            h = np.broadcast_to(np.array(reg.in_half), d.shape)
        return (np.all(np.abs(d[..., :2]) < h[..., :2], axis=-1) & (d[..., 2] > -h[..., 2] - 0.01)
                & (d[..., 2] < h[..., 2]))
    s = np.array(reg.on_size)
    d = (region_frame(state, target, d) @ d[..., None])[..., 0]  # M (pos - centre), as LIBERO codes it
    return (np.all(np.abs(d[..., :2]) < s[:2], axis=-1) & (d[..., 2] > s[2] - 0.005) & (d[..., 2] < s[2] + 0.10))


def joint_q(state, art: Articulation) -> np.ndarray:
    return _get(state, f"joint/{art.joint}")[..., 0]


def joint_goal(pred: str, art: Articulation) -> float:
    if pred == "open":
        return art.open_below
    if pred == "close":
        return art.close_above
    return art.on_at_least


def joint_progress(state, pred: str, art: Articulation) -> np.ndarray:
    """Normalised joint position in [0, 1] toward the predicate's threshold."""
    q = joint_q(state, art)
    lo, hi = art.q_range
    if pred == "open":  # opening = negative q
        p = (hi - q) / (hi - art.open_below)
    elif pred == "close":
        p = (q - lo) / (art.close_above - lo)
    else:
        p = (q - lo) / (art.on_at_least - lo)
    return np.clip(p, 0.0, 1.0)


def atom_holds(state, atom: tuple) -> np.ndarray:
    pred = atom[0]
    if pred in ("in", "on"):
        return placed(state, atom[1], atom[2])
    art = articulation(atom[1])
    q = joint_q(state, art)
    if pred == "open":
        return q < art.open_below
    if pred == "close":
        return q > art.close_above
    if pred == "turnon":
        return q >= art.on_at_least
    raise ValueError(f"unsupported goal predicate {pred!r} in {atom}")


def part_handle(state, name: str, art: Articulation, q: np.ndarray | None = None) -> np.ndarray:
    """Estimated handle/knob position (..., 3); `q` overrides the joint value (for goal poses)."""
    if art.kind == "knob":
        return _pos(state, name) + np.array([0.0, 0.0, KNOB_DZ])
    q_now = joint_q(state, art)
    if art.kind == "drawer":
        cabinet = name.rsplit("_", 2)[0]  # wooden_cabinet_1_top_region -> wooden_cabinet_1
        centre = _pos(state, name)
        open_dir = quat_rotate(_quat(state, cabinet, centre), np.array([0.0, -1.0, 0.0]))
        shift = 0.0 if q is None else (q_now - q)  # opening (q decreasing) slides along open_dir
        return centre + open_dir * (DRAWER_HANDLE_OFFSET + np.asarray(shift)[..., None])
    base = _pos(state, name)  # door (microwave): rotate the free end about the hinge's +z
    qq = q_now if q is None else np.broadcast_to(q, q_now.shape)
    c, s = np.cos(qq), np.sin(qq)
    dx, dy = MICROWAVE_DOOR_LOCAL[0], MICROWAVE_DOOR_LOCAL[1]
    local = MICROWAVE_HINGE_LOCAL + np.stack([c * dx - s * dy, s * dx + c * dy, np.zeros_like(c)], -1)
    return base + quat_rotate(_quat(state, name, base), local)


# ---- compiler ---------------------------------------------------------------------------------
def _implied_prerequisites(goal, instruction: str) -> list[tuple]:
    """Openings an instruction asks for that the BDDL goal omits (goal3: "open the top drawer and
    put the bowl inside" scores only In, yet the drawer starts closed)."""
    words = instruction.lower()
    explicit = {a[1] for a in goal if a[0] == "open"}
    extra = []
    for a in goal:
        if a[0] == "in" and "cabinet" in a[2] and a[2] not in explicit and "open" in words:
            extra.append(("open", a[2]))
    return extra


def order_atoms(goal, instruction: str = "", initially_true=()) -> tuple[list[tuple], list[bool]]:
    goal = [tuple(a) for a in goal]
    init = {tuple(a) for a in initially_true}
    prereq = _implied_prerequisites(goal, instruction)
    keeps = [a for a in goal if a in init]
    rest = [a for a in goal if a not in init]
    opens = prereq + [a for a in rest if a[0] in ("open", "turnon")]
    places = [a for a in rest if a[0] in ("in", "on")]
    closes = [a for a in rest if a[0] == "close"]
    unknown = [a for a in rest if a[0] not in ("open", "turnon", "in", "on", "close")]
    if unknown:
        raise ValueError(f"goal atoms {unknown} use predicates the stage compiler does not know; "
                         f"supported: in, on, open, close, turnon")
    atoms = keeps + opens + places + closes
    required = [a not in prereq for a in atoms]
    return atoms, required


def compile_stages(goal, instruction: str = "", initially_true=()) -> CompiledTask:
    """Compile BDDL goal atoms (e.g. [['in', 'x_1', 'basket_1_contain_region']]) into stages.

    Deterministic: the same goal, instruction and initially-true atoms give the same stages.
    """
    if not goal:
        raise ValueError("empty goal: pass the BDDL goal atoms, e.g. env.env.parsed_problem['goal_state']")
    atoms, required = order_atoms(goal, instruction, initially_true)
    init = {tuple(a) for a in initially_true}
    push = instruction.lower().lstrip().startswith("push")
    stages: list[Stage] = []
    for i, atom in enumerate(atoms):
        pred = atom[0]
        if atom in init:
            stages.append(Stage(f"keep:{pred}:{atom[1]}", "keep", atom, i, ""))
        elif pred in ("in", "on"):
            obj = atom[1]
            stages.append(Stage(f"approach:{obj}", "approach", atom, i, f"grasp:{obj}", push))
            if not push:
                stages.append(Stage(f"grasp:{obj}", "grasp", atom, i, f"grasp:{obj}"))
            stages.append(Stage(f"move:{obj}", "move", atom, i, f"above:{obj}", push))
            stages.append(Stage(f"place:{obj}", "place", atom, i, f"place:{obj}", push))
        else:
            articulation(atom[1])  # fail early for an unknown part
            stages.append(Stage(f"reach:{atom[1]}", "reach", atom, i, f"handle:{atom[1]}"))
            stages.append(Stage(f"{pred}:{atom[1]}", "actuate", atom, i, f"{pred}:{atom[1]}"))
    return CompiledTask(tuple(stages), tuple(atoms), tuple(required), instruction)


# ---- per-stage evaluation (vectorised) -------------------------------------------------------
def _grasp_point(state, obj):
    return _pos(state, obj) + np.array([0.0, 0.0, grasp_dz(obj)])


def _lifted(state, ref, obj):
    return _pos(state, obj)[..., 2] - _pos(ref, obj)[..., 2] > LIFT_MIN


def held(state, ref, obj) -> np.ndarray:
    """Grasp with hysteresis: entered when the closed gripper has lifted the object, kept while the
    gripper stays closed next to it (carrying it below its start height is still holding it)."""
    near = np.linalg.norm(_get(state, "eef_pos") - _grasp_point(state, obj), axis=-1) < HOLD_TOL
    closed = gripper_width(state) < GRIPPER_CLOSED_BELOW
    return latch(near & closed & _lifted(state, ref, obj), near & closed)


def _above_point(state, target):
    return _target_point(state, target) + np.array([0.0, 0.0, ABOVE_DZ])


def milestone(stage: Stage, state, ref) -> np.ndarray:
    """Completion test of one stage (bool, batch shape)."""
    eef = _get(state, "eef_pos")
    pred, name = stage.atom[0], stage.atom[1]
    if stage.kind == "approach":
        d = eef - _grasp_point(state, name)  # (..., 3)
        hover = (np.linalg.norm(d[..., :2], axis=-1) < REACH_TOL) & (d[..., 2] > -REACH_TOL) & (d[..., 2] < HOVER_DZ)
        return latch(np.linalg.norm(d, axis=-1) < REACH_TOL, hover)
    if stage.kind == "grasp":
        return held(state, ref, name)
    if stage.kind == "move":
        target = stage.atom[2]
        d_xy = np.linalg.norm(_pos(state, name)[..., :2] - _target_point(state, target)[..., :2], axis=-1)
        over = d_xy < _xy_tol(target)
        if stage.push:
            return over
        carried = _lifted(state, ref, name) | held(state, ref, name)
        return latch(over & carried, d_xy < _xy_tol(target) + MOVE_SLACK)
    if stage.kind in ("place", "actuate", "keep"):
        return atom_holds(state, stage.atom)
    if stage.kind == "reach":
        art = articulation(name)
        d = np.linalg.norm(eef - part_handle(state, name, art), axis=-1)
        started = joint_progress(state, pred, art) - joint_progress(ref, pred, art) > PART_STARTED
        return latch((d < PART_TOL) | started, (d < PART_TOL + PART_SLACK) | started)
    raise ValueError(f"unknown stage kind {stage.kind!r}")


def progress(stage: Stage, state, ref, scale: float) -> np.ndarray:
    """Geometric progress toward the stage's milestone, in [0, 1] (batch shape)."""
    eef = _get(state, "eef_pos")
    pred, name = stage.atom[0], stage.atom[1]
    if stage.kind == "approach":
        return closeness(np.linalg.norm(eef - _grasp_point(state, name), axis=-1), scale)
    if stage.kind == "grasp":
        closure = np.clip((GRIPPER_OPEN_WIDTH - gripper_width(state)) / 0.04, 0.0, 1.0)
        lift = np.clip((_pos(state, name)[..., 2] - _pos(ref, name)[..., 2]) / LIFT_MIN, 0.0, 1.0)
        near = closeness(np.linalg.norm(eef - _grasp_point(state, name), axis=-1), scale)
        return 0.3 * closure * near + 0.7 * lift * near
    if stage.kind == "move":
        target = stage.atom[2]
        if stage.push:
            d = np.linalg.norm(_pos(state, name)[..., :2] - _target_point(state, target)[..., :2], axis=-1)
        else:
            d = np.linalg.norm(_pos(state, name) - _above_point(state, target), axis=-1)
        return closeness(d, scale)
    if stage.kind == "place":
        return closeness(np.linalg.norm(_pos(state, name) - _target_point(state, stage.atom[2]), axis=-1), scale)
    if stage.kind == "reach":
        return closeness(np.linalg.norm(eef - part_handle(state, name, articulation(name)), axis=-1), scale)
    if stage.kind in ("actuate", "keep"):
        return joint_progress(state, pred, articulation(name))
    raise ValueError(f"unknown stage kind {stage.kind!r}")


def fallback_key_pose(stage: Stage, state, ref) -> np.ndarray:
    """Reference eef position (..., 3) when no expert key pose carries `stage.key_label`.

    Derived from the current object positions:
    grasp (approach and grasp stages) = object + grasp_dz; above = target + 0.10 m +
    grasp_dz; place = target point + grasp_dz; handle = estimated handle/knob; open/close/turnon =
    the handle where it will be once the joint reaches its threshold; keep = the eef itself
    (no shaping: the part must not be touched).
    """
    eef = _get(state, "eef_pos")
    pred, name = stage.atom[0], stage.atom[1]
    up = np.array([0.0, 0.0, grasp_dz(name) if stage.kind in ("approach", "grasp", "move", "place") else 0.0])
    if stage.kind == "approach":
        return _grasp_point(state, name)
    if stage.kind == "grasp":  # close the fingers where the approach ended
        return _grasp_point(state, name)
    if stage.kind == "move":
        return (_target_point(state, stage.atom[2]) + up) if stage.push else _above_point(state, stage.atom[2]) + up
    if stage.kind == "place":
        return _target_point(state, stage.atom[2]) + up
    if stage.kind == "reach":
        return part_handle(state, name, articulation(name))
    if stage.kind == "actuate":
        art = articulation(name)
        goal_q = joint_goal(pred, art) + (0.01 if pred == "close" else 0.0) * (art.kind == "drawer")
        return part_handle(state, name, art, q=goal_q)
    return eef  # keep
