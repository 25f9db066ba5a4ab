"""What the reward compiles a task from, beyond the task itself: its goal, copied from
/work/shared/libero_tasks.md (LIBERO @8f1084e).

The task (its instruction, BDDL file and step budget) has one home, ``tgrpo_lib.envs.get_task``
(``envs.TaskSpec``). What the reward needs besides is plain data kept here: the 40 goals of the
base suites (``GOALS``: BDDL goal atoms as LIBERO parses them, i.e. lower-case predicate names,
and the goal atoms already true at every init state), the articulated parts (joint name,
Open/Close/TurnOn thresholds from ``articulated_objects.py``) and the goal regions' geometry
(half-extents of the In box, raw site size for On). The simulator's parsed goal is the truth at
run time (``env.goal``); this table lets the stage compiler work without building a scene.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")

_BOWL_ON_PLATE = [["on", "akita_black_bowl_1", "plate_1"]]  # every libero_spatial task
_OBJECT_ITEMS = ["alphabet_soup", "cream_cheese", "salad_dressing", "bbq_sauce", "ketchup",
                 "tomato_sauce", "butter", "milk", "chocolate_pudding", "orange_juice"]
_BASKET = "basket_1_contain_region"
_GOAL = [
    [["open", "wooden_cabinet_1_middle_region"]],  # 0: open the middle drawer of the cabinet
    [["on", "akita_black_bowl_1", "flat_stove_1_cook_region"]],  # 1: put the bowl on the stove
    [["on", "wine_bottle_1", "wooden_cabinet_1_top_side"]],  # 2: put the wine bottle on top of the cabinet
    [["in", "akita_black_bowl_1", "wooden_cabinet_1_top_region"]],  # 3: open the top drawer and put the bowl inside
    [["on", "akita_black_bowl_1", "wooden_cabinet_1_top_side"]],  # 4: put the bowl on top of the cabinet
    [["on", "plate_1", "main_table_stove_front_region"]],  # 5: push the plate to the front of the stove
    [["on", "cream_cheese_1", "akita_black_bowl_1"]],  # 6: put the cream cheese in the bowl
    [["turnon", "flat_stove_1"]],  # 7: turn on the stove
    [["on", "akita_black_bowl_1", "plate_1"]],  # 8: put the bowl on the plate
    [["on", "wine_bottle_1", "wine_rack_1_top_region"]],  # 9: put the wine bottle on the rack
]
_LONG = [
    # 0: put both the alphabet soup and the tomato sauce in the basket
    [["in", "alphabet_soup_1", _BASKET], ["in", "tomato_sauce_1", _BASKET]],
    # 1: put both the cream cheese box and the butter in the basket
    [["in", "cream_cheese_1", _BASKET], ["in", "butter_1", _BASKET]],
    # 2: turn on the stove and put the moka pot on it
    [["turnon", "flat_stove_1"], ["on", "moka_pot_1", "flat_stove_1_cook_region"]],
    # 3: put the black bowl in the bottom drawer of the cabinet and close it
    [["close", "white_cabinet_1_bottom_region"], ["in", "akita_black_bowl_1", "white_cabinet_1_bottom_region"]],
    # 4: put the white mug on the left plate and put the yellow and white mug on the right plate
    [["on", "porcelain_mug_1", "plate_1"], ["on", "white_yellow_mug_1", "plate_2"]],
    # 5: pick up the book and place it in the back compartment of the caddy
    [["in", "black_book_1", "desk_caddy_1_back_contain_region"]],
    # 6: put the white mug on the plate and put the chocolate pudding to the right of the plate
    [["on", "porcelain_mug_1", "plate_1"], ["on", "chocolate_pudding_1", "living_room_table_plate_right_region"]],
    # 7: put both the alphabet soup and the cream cheese box in the basket
    [["in", "alphabet_soup_1", _BASKET], ["in", "cream_cheese_1", _BASKET]],
    # 8: put both moka pots on the stove
    [["on", "moka_pot_1", "flat_stove_1_cook_region"], ["on", "moka_pot_2", "flat_stove_1_cook_region"],
     ["turnon", "flat_stove_1"]],
    # 9: put the yellow and white mug in the microwave and close it
    [["in", "white_yellow_mug_1", "microwave_1_heating_region"], ["close", "microwave_1"]],
]


@dataclass(frozen=True)
class TaskGoal:
    """The goal of one LIBERO task as the reward compiler reads it (the task itself, instruction
    included, is ``tgrpo_lib.envs.get_task``)."""

    goal: tuple  # BDDL goal atoms, e.g. (("in", "alphabet_soup_1", "basket_1_contain_region"),)
    initially_true: tuple = ()  # goal atoms already true at every init state (never to be touched)


def _goal(atoms, initially_true=()) -> TaskGoal:
    return TaskGoal(tuple(tuple(a) for a in atoms), tuple(tuple(a) for a in initially_true))


GOALS: dict[tuple[str, int], TaskGoal] = {}
for _i in range(10):
    GOALS["libero_spatial", _i] = _goal(_BOWL_ON_PLATE)
for _i, _item in enumerate(_OBJECT_ITEMS):
    GOALS["libero_object", _i] = _goal([["in", f"{_item}_1", _BASKET]])
for _i, _atoms in enumerate(_GOAL):
    GOALS["libero_goal", _i] = _goal(_atoms)
for _i, _atoms in enumerate(_LONG):
    # 10-8: the knob starts on (q 0.52...2.05) and Turnon is part of the goal: keep, never touch.
    GOALS["libero_10", _i] = _goal(_atoms, [["turnon", "flat_stove_1"]] if _i == 8 else [])


def task_goal(suite: str, task_id: int) -> TaskGoal:
    """The catalogued goal of one task; raises ValueError naming the valid choices."""
    if (suite, task_id) not in GOALS:
        raise ValueError(f"unknown task {suite!r} #{task_id}: rewards are catalogued for the base suites "
                         f"{', '.join(SUITES)} (task_id 0..9); a perturbation suite or libero_90 is evaluated, "
                         "not trained on")
    return GOALS[suite, task_id]


@dataclass(frozen=True)
class Articulation:
    """An articulated part a goal atom refers to (a `*_region` site or the object itself)."""

    joint: str  # state key is f"joint/{joint}"
    q_range: tuple[float, float]  # joint limits (rad or m); progress is normalised over them
    open_below: float | None = None  # Open: q < open_below
    close_above: float | None = None  # Close: q > close_above (strict)
    on_at_least: float | None = None  # TurnOn: q >= on_at_least
    kind: str = "drawer"  # "drawer" | "door" | "knob": selects the handle estimate


_CABINET = dict(q_range=(-0.16, 0.01), open_below=-0.14, close_above=0.0, kind="drawer")


def articulation(name: str) -> Articulation:
    """Joint + thresholds for a region/object named in an open/close/turnon atom.

    Naming rule of LIBERO's articulated objects: drawer region `<cab>_<level>_region` is carried by
    joint `<cab>_<level>_level`; `microwave_1` -> `microwave_1_microjoint`; `flat_stove_1` ->
    `flat_stove_1_button`.
    """
    if "cabinet" in name and name.endswith("_region"):
        return Articulation(joint=name[: -len("_region")] + "_level", **_CABINET)
    if name.startswith("microwave"):
        return Articulation(joint=f"{name}_microjoint", q_range=(-2.094, 0.0), open_below=-1.3,
                            close_above=-0.005, kind="door")
    if name.startswith("flat_stove"):
        return Articulation(joint=f"{name}_button", q_range=(-0.005, 2.1), on_at_least=0.5, kind="knob")
    raise ValueError(f"no articulated part known for {name!r}: add it to tgrpo_lib/reward/tasks.py")


@dataclass(frozen=True)
class Region:
    """Geometry of a goal region (world frame, metres)."""

    in_half: tuple[float, float, float] | None = None  # In box half-extents |M s| (lower z bound -0.01)
    on_size: tuple[float, float, float] | None = None  # On: raw site size s (|dx|<sx, |dy|<sy, dz in (sz-0.005, sz+0.1))
    # Site orientation M = R(quat/<parent>) @ R(local_quat). LIBERO tests In/On in the site's frame,
    # so a tilted site (the wine rack, ~62 deg) or a tipped free parent (the basket) moves the box.
    parent: str | None = None  # body whose `quat/<parent>` carries the site; None: axes never move
    local_quat: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)  # site in parent frame (xyzw)
    site_size: tuple[float, float, float] | None = None  # raw size s; In half-extents = |M s| when set


# Site rotations measured in the simulator (site_xmat vs the parent's body_xquat at init 0):
# the rack site is turned -62.5 deg about the rack's x (cos 0.4617), the basket site 180 deg in yaw.
_RACK_TILT = -float(np.arctan2(0.887011, 0.461749))  # site_xmat rows 2-3: (-0.4617, -0.8870), (-0.8870, 0.4617)
_RACK_LOCAL = (float(np.sin(_RACK_TILT / 2)), 0.0, 0.0, float(np.cos(_RACK_TILT / 2)))

REGIONS: dict[str, Region] = {
    # The basket is a free object: a 0.27 deg tip (init 0 of 10-7) already lifts the box top from
    # 0.06949 to 0.06978 m, enough to decide a soup can falling in at 7 mm/step.
    "basket_1_contain_region": Region(in_half=(0.061, 0.061, 0.0695), parent="basket_1",
                                      local_quat=(0.0, 0.0, 1.0, 0.0), site_size=(0.06108, 0.06108, 0.06949)),
    "wooden_cabinet_1_top_region": Region(in_half=(0.102, 0.076, 0.030)),
    "wooden_cabinet_1_middle_region": Region(in_half=(0.102, 0.076, 0.030)),
    "wooden_cabinet_1_bottom_region": Region(in_half=(0.102, 0.076, 0.030)),
    "white_cabinet_1_bottom_region": Region(in_half=(0.102, 0.076, 0.030)),
    "microwave_1_heating_region": Region(in_half=(0.12, 0.0835, 0.08)),
    "desk_caddy_1_back_contain_region": Region(in_half=(0.028, 0.062, 0.061)),
    "flat_stove_1_cook_region": Region(on_size=(0.075, 0.075, 0.0025)),
    "wooden_cabinet_1_top_side": Region(on_size=(0.125, 0.094, 0.0015)),
    # Tilted site: the On box lives in the rack's rotated frame (see stages.region_frame).
    "wine_rack_1_top_region": Region(on_size=(0.10087, 0.022, 0.00251), parent="wine_rack_1", local_quat=_RACK_LOCAL),
    "main_table_stove_front_region": Region(on_size=(0.04, 0.04, 0.007)),
    "living_room_table_plate_right_region": Region(on_size=(0.05, 0.05, 0.007)),
}

# On(A, B) with B an object: LIBERO requires B.z <= A.z, contact, and xy distance < 0.03 m.
ON_OBJECT_XY = 0.03
# Contact proxy for On(A, B object): A's origin at most this far above B's. Resting on the
# demos: bowl/mug on plate 0.003-0.011 m, cream cheese in the bowl 0.041 m; held above the
# plate before release: >= 0.07 m (a looser band said "placed" while the gripper still held it).
ON_OBJECT_DZ = 0.05
