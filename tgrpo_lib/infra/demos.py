"""Demonstrations on disk: the project's own HDF5 format and the official LIBERO (robomimic) files.

Both sources load into the same ``Demo`` dataclass so SFT code reads either.

Project format (written by ``save_demos``; one file per task)::

    outputs/demos/<suite>/task_<id>/demos.h5
      attrs: format="tgrpo-demos-v1", suite, task_id, instruction, env_config (JSON),
             expert_config (JSON)
      demo_<k>/                       k = 0, 1, ... in the order written
        attrs: success (bool), init_index (int, -1 = not a standard init state), seed (int),
               num_steps (int T), events (JSON list of [step, label, [x, y, z]])
        actions     (T, 7) float32   the expert's intended env actions (before its action noise, which
                                     is executed only): dx dy dz (x0.05 m), drot (x0.5 rad), gripper +1 close
        proprio     (T, 8) float32   eef pos (3) + axis-angle (3) + gripper qpos (2), before each action
        agentview   (T, H, W, 3) uint8, upright (already flipped), optional
        wrist       (T, H, W, 3) uint8, upright, optional
        state/<key> (T+1, ...) float64 privileged state (docs/INTERFACES.md) before each action and
                    after the last one; keys keep their slashes (state/pos/basket_1 ...), optional

Official LIBERO format (``load_libero_hdf5``; e.g. ``libero_object/<task>_demo.hdf5``)::

    data.attrs["problem_info"]   JSON with "language_instruction"
    data/demo_<k>/actions        (T, 7)
    data/demo_<k>/obs/agentview_rgb, eye_in_hand_rgb   (T, 128, 128, 3) uint8, as rendered (upside down)
    data/demo_<k>/obs/ee_pos (T, 3), ee_ori (T, 3), gripper_states (T, 2)   [or ee_states (T, 6)]

Official images are rendered upside down; the loader flips them (``img[::-1, ::-1]``) so both
sources match the env's observations.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

import tgrpo_lib
from tgrpo_lib.envs.core import quat_to_axis_angle  # the proprio convention of our own env
from tgrpo_lib.envs.registry import SUITES, canonical_suite

FORMAT = "tgrpo-demos-v1"
DEMO_FILE = "demos.h5"


@dataclass
class Demo:
    """One demonstration: what SFT needs (images, proprio, actions, instruction) plus provenance."""

    instruction: str
    actions: np.ndarray  # (T, 7) float32
    proprio: np.ndarray  # (T, 8) float32
    agentview: np.ndarray | None = None  # (T, H, W, 3) uint8, upright
    wrist: np.ndarray | None = None  # (T, H, W, 3) uint8, upright
    states: dict[str, np.ndarray] | None = None  # key -> (T+1, ...) privileged state
    success: bool = True
    suite: str | None = None
    task_id: int | None = None
    init_index: int = -1
    seed: int = 0
    source: str = "expert"  # "expert" (this project) or "libero" (official files)
    events: list = field(default_factory=list)  # [step, label, [x, y, z]] from the expert

    def __len__(self) -> int:
        return int(len(self.actions))

    @property
    def layout(self) -> str:
        """"standard" (recorded on one of LIBERO's 50 evaluation states), "sampled" (a fresh
        training layout) or "libero" (an official demonstration: its own scenes)."""
        if self.source == "libero":
            return "libero"
        return "standard" if self.init_index >= 0 else "sampled"


def task_dir(suite: str, task_id: int, root: str | Path | None = None) -> Path:
    """``<root>/<suite>/task_<id>`` with ``root`` defaulting to ``outputs/demos``."""
    return Path(root if root is not None else tgrpo_lib.OUTPUTS_DIR / "demos") / suite / f"task_{int(task_id)}"


# ---------------------------------------------------------------------------- project format
def save_demos(path: str | Path, demos: Sequence[Demo], *, suite: str, task_id: int, instruction: str,
               env_config: dict | None = None, expert_config: dict | None = None, append: bool = False) -> Path:
    """Write demos to one HDF5 file (see the module docstring); ``append`` adds to an existing file."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "a" if append else "w") as f:
        f.attrs.update(format=FORMAT, suite=suite, task_id=int(task_id), instruction=instruction,
                       env_config=json.dumps(env_config or {}), expert_config=json.dumps(expert_config or {}))
        start = len([k for k in f if k.startswith("demo_")])
        for k, demo in enumerate(demos, start=start):
            g = f.create_group(f"demo_{k}")
            g.attrs.update(success=bool(demo.success), init_index=int(demo.init_index), seed=int(demo.seed),
                           num_steps=len(demo), events=json.dumps(demo.events))
            g.create_dataset("actions", data=np.asarray(demo.actions, dtype=np.float32))
            g.create_dataset("proprio", data=np.asarray(demo.proprio, dtype=np.float32))
            for cam in ("agentview", "wrist"):
                img = getattr(demo, cam)
                if img is not None:
                    g.create_dataset(cam, data=np.asarray(img, dtype=np.uint8), compression="gzip",
                                     compression_opts=4, chunks=(1, *np.shape(img)[1:]))
            for key, arr in (demo.states or {}).items():
                g.create_dataset(f"state/{key}", data=np.asarray(arr, dtype=np.float64))
    return path


def _read_project_file(path: Path, with_images: bool, with_states: bool = True) -> list[Demo]:
    import h5py

    demos = []
    with h5py.File(path, "r") as f:
        instruction, suite, task_id = str(f.attrs["instruction"]), str(f.attrs["suite"]), int(f.attrs["task_id"])
        keys = sorted((k for k in f if k.startswith("demo_")), key=lambda k: int(k.split("_")[1]))
        for key in keys:
            g = f[key]
            states: dict[str, np.ndarray] = {}
            if with_states and "state" in g:
                g["state"].visititems(lambda name, obj: states.__setitem__(name, obj[()]) if hasattr(obj, "shape") else None)
            demos.append(Demo(
                instruction=instruction, actions=g["actions"][()], proprio=g["proprio"][()],
                agentview=g["agentview"][()] if with_images and "agentview" in g else None,
                wrist=g["wrist"][()] if with_images and "wrist" in g else None,
                states=states or None, success=bool(g.attrs["success"]), suite=suite, task_id=task_id,
                init_index=int(g.attrs["init_index"]), seed=int(g.attrs["seed"]), source="expert",
                events=json.loads(g.attrs.get("events", "[]")),
            ))
    return demos


# ---------------------------------------------------------------------------- official format
def load_libero_hdf5(path: str | Path, *, flip: bool = True, with_images: bool = True,
                     suite: str | None = None, task_id: int | None = None) -> list[Demo]:
    """Read an official LIBERO demonstration file (robomimic layout) into ``Demo`` objects."""
    import h5py

    path = Path(path)
    demos = []
    with h5py.File(path, "r") as f:
        if "data" not in f:
            raise ValueError(f"{path} has no 'data' group: pass an official LIBERO *_demo.hdf5 file (robomimic layout).")
        data = f["data"]
        info = json.loads(data.attrs.get("problem_info", "{}") or "{}")
        instruction = info.get("language_instruction") or _instruction_from_name(path.name)
        keys = sorted((k for k in data if k.startswith("demo_")), key=lambda k: int(k.split("_")[1]))
        for key in keys:
            g, obs = data[key], data[key]["obs"]
            if "ee_pos" in obs and "ee_ori" in obs:
                ori = obs["ee_ori"][()]
                ori = quat_to_axis_angle(ori) if ori.shape[1] == 4 else ori
                ee = np.concatenate([obs["ee_pos"][()], ori], axis=1)
            elif "ee_states" in obs:
                ee = obs["ee_states"][()][:, :6]
            else:
                raise ValueError(f"{path}:{key} has neither obs/ee_pos+ee_ori nor obs/ee_states; cannot build proprio.")
            proprio = np.concatenate([ee, obs["gripper_states"][()]], axis=1).astype(np.float32)

            def image(name: str) -> np.ndarray | None:
                if not with_images or name not in obs:
                    return None
                img = obs[name][()]
                return np.ascontiguousarray(img[:, ::-1, ::-1]) if flip else img

            demos.append(Demo(
                instruction=instruction, actions=g["actions"][()].astype(np.float32), proprio=proprio,
                agentview=image("agentview_rgb"), wrist=image("eye_in_hand_rgb"), states=None, success=True,
                suite=suite, task_id=task_id, init_index=-1, source="libero",
            ))
    return demos


def _instruction_from_name(name: str) -> str:
    stem = re.sub(r"_demo\.hdf5$|\.hdf5$", "", name)
    stem = re.sub(r"^[A-Z0-9_]+?_SCENE\d+_", "", stem)
    return stem.replace("_", " ")


# ---------------------------------------------------------------------------- one entry point
def load_demos(path_or_suite: str | Path, task_ids: Iterable[int] | None = None, *, root: str | Path | None = None,
               with_images: bool = True, with_states: bool = True, only_success: bool = True) -> list[Demo]:
    """Load demos from a file (either format), a directory of them, or a suite name.

    - ``path/to/demos.h5`` or an official ``*.hdf5`` file: that file.
    - a directory: every ``demos.h5`` below it (filtered by ``task_<id>`` when ``task_ids`` is
      given) and every official ``*.hdf5`` in it.
    - a suite name (``libero_object``, or an alias): ``<root>/<suite>/task_<id>/demos.h5``.

    ``with_images`` / ``with_states``: read the camera frames / the privileged state (the larger
    parts of a file; SFT needs no state, a reward check no images).
    """
    target = Path(path_or_suite)
    wanted = None if task_ids is None else {int(t) for t in task_ids}
    files: list[Path] = []
    if target.is_file():
        files = [target]
    elif target.is_dir():
        files = sorted(target.rglob(DEMO_FILE)) + sorted(p for p in target.glob("*.hdf5"))
    else:
        try:
            suite = canonical_suite(str(path_or_suite))
        except ValueError:
            raise ValueError(f"{path_or_suite!r} is neither a file, a directory nor a suite: pass a demos.h5 path, "
                             f"a folder of them, or one of {SUITES}.") from None
        base = task_dir(suite, 0, root).parent
        ids = sorted(wanted) if wanted is not None else sorted(
            int(p.name.split("_")[1]) for p in base.glob("task_*") if (p / DEMO_FILE).exists())
        files = [base / f"task_{i}" / DEMO_FILE for i in ids]
        missing = [str(p) for p in files if not p.exists()]
        if missing:
            raise ValueError(f"No demos at {missing}: record them with "
                             f"`python -m tgrpo_lib expert --suite {suite} --task ID --record`.")
    demos: list[Demo] = []
    for path in files:
        m = re.search(r"task_(\d+)", str(path))
        if wanted is not None and path.name == DEMO_FILE and m and int(m.group(1)) not in wanted:
            continue
        if _is_project_file(path):
            demos += _read_project_file(path, with_images, with_states)
        else:
            demos += load_libero_hdf5(path, with_images=with_images)
    return [d for d in demos if d.success or not only_success]


def _is_project_file(path: Path) -> bool:
    import h5py

    with h5py.File(path, "r") as f:
        return f.attrs.get("format", "") == FORMAT
