"""One LIBERO environment: observations the policy reads, the privileged state the rewards and
the expert read, and the standard episode protocol (seed, init state, warm-up no-ops)."""
from __future__ import annotations

import contextlib

import numpy as np

from .config import EnvConfig
from .registry import NOOP_ACTION, TaskSpec, get_task
from .render_quality import prepare_env
from .third_party import libero_envs

_CAMERA_NAMES = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}


def flip_image(img: np.ndarray) -> np.ndarray:
    """OpenGL renders upside down: rotate by 180 degrees (the standard LIBERO preprocessing)."""
    return np.ascontiguousarray(img[::-1, ::-1])


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """(…, 4) xyzw quaternion -> (…, 3) axis-angle, as in LIBERO's proprio state."""
    q = np.asarray(quat_xyzw, dtype=np.float64)
    w = np.clip(q[..., 3], -1.0, 1.0)
    den = np.sqrt(np.maximum(1.0 - w * w, 0.0))
    angle = 2.0 * np.arccos(w)
    scale = np.where(den > 1e-8, angle / np.where(den > 1e-8, den, 1.0), 0.0)
    return q[..., :3] * scale[..., None]


class LiberoEnv:
    """A LIBERO task with the project's observation format (see docs/INTERFACES.md).

    The MuJoCo model is built once and reused across episodes (``EnvConfig.hard_reset``);
    ``reset(init_state)`` restores one of the task's init states and runs the warm-up no-ops
    without rendering frames that nobody reads.
    """

    def __init__(self, task: TaskSpec, cfg: EnvConfig = EnvConfig()):
        self.task, self.cfg = task, cfg
        self.max_steps = cfg.max_steps or task.max_steps
        self._cams = [_CAMERA_NAMES[c] for c in cfg.cameras]
        render = bool(self._cams)
        # Imported here: libero.libero.envs pulls in robosuite + mujoco (~1.5 s), which a process that
        # only reads the task registry or drives worker processes never needs.
        self._env = libero_envs().OffScreenRenderEnv(
            bddl_file_name=task.bddl_path,
            camera_names=self._cams or ["agentview"],
            camera_heights=cfg.camera_size,
            camera_widths=cfg.camera_size,
            has_offscreen_renderer=render,
            use_camera_obs=render,
            hard_reset=cfg.hard_reset,
        )
        self._env.seed(cfg.seed)
        self._env.reset()
        if render:
            prepare_env(self._env, cfg.render_quality)
        inner = self._env.env
        # robosuite samples ~37 observables (joint sines, object-to-eef poses, ...) every control
        # step; observations here come from the cameras and sim data directly (``_make_obs``),
        # so only the camera observables stay on. Physics is untouched (tests/envs/test_core.py).
        for name in inner.observation_names:
            if not any(name == f"{cam}_image" for cam in self._cams):
                inner.modify_observable(name, "enabled", False)
        _skip_repeated_forward(inner)
        self.goal = [list(atom) for atom in inner.parsed_problem["goal_state"]]
        self.objects_of_interest = list(inner.obj_of_interest)
        self._bodies = {**{n: inner.obj_body_id[n] for n in inner.objects_dict}, **{n: inner.obj_body_id[n] for n in inner.fixtures_dict if n in inner.obj_body_id}}
        self._sites = list(inner.object_sites_dict)
        self._joints = {}
        model = inner.sim.model
        for name, obj in {**inner.fixtures_dict, **inner.objects_dict}.items():
            for joint in getattr(obj, "joints", []) or []:
                jid = model.joint_name2id(joint)
                if model.jnt_type[jid] in (2, 3):  # slide / hinge: articulated parts, not free joints
                    self._joints[joint] = model.get_joint_qpos_addr(joint)
        self._free_joints = {
            name: obj.joints[0] for name, obj in inner.objects_dict.items() if getattr(obj, "joints", None)
        }
        robot = inner.robots[0]
        self._gripper_qpos = [model.get_joint_qpos_addr(j) for j in robot.gripper_joints]  # robosuite's own indexes
        self._hand_body = model.body_name2id(robot.robot_model.eef_name)  # robot0_eef_quat's body

    # ----------------------------------------------------------------- episode protocol
    def reset(self, init_state: np.ndarray) -> dict:
        """Restore an init state (flattened MuJoCo state) and run the warm-up no-ops."""
        init_state = np.asarray(init_state, dtype=np.float64)
        self._set_cameras_enabled(False)  # frames of the reset and the warm-up are never read: skip them
        try:
            self._env.reset()
            if not self.cfg.hard_reset:
                self._clear_carried_state()
            self._env.set_init_state(init_state)
            for _ in range(self.cfg.num_warmup_steps):
                self._env.step(NOOP_ACTION)
        finally:
            self._set_cameras_enabled(True)
        # robosuite has no public "observe now": its own reset and LIBERO's set_init_state call
        # these two (a public alternative, regenerate_obs_from_state, runs mj_forward and would
        # change the state the observation reports)
        self._env.env._update_observables(force=True)
        return self._make_obs(self._env.env._get_observations(force_update=True))

    def step(self, action: np.ndarray) -> tuple[dict, bool]:
        """Apply one 7-D delta action; returns (observation, task success)."""
        action = np.asarray(action, dtype=np.float64).reshape(7)
        raw, _reward, _done, _info = self._env.step(action)
        return self._make_obs(raw), bool(self._env.check_success())

    def check_success(self) -> bool:
        return bool(self._env.check_success())

    def sample_layout(self, seed: int | None = None) -> np.ndarray:
        """Draw a new scene layout with LIBERO's placement samplers (they draw from ``np.random``,
        seeded with ``seed`` first when given) and return its flattened MuJoCo state: a new init
        state for ``reset``. The reused model draws exactly what a model rebuild would
        (tests/envs/test_init_states.py); call ``reset`` before stepping."""
        if seed is not None:
            np.random.seed(seed)
        self._env.reset()
        return self.get_sim_state()

    def close(self) -> None:
        if getattr(self, "_env", None) is not None:
            self._env.close()  # EGL prints a traceback at exit otherwise
            self._env = None

    def __del__(self):  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass

    # ----------------------------------------------------------------- state access
    @property
    def sim(self):
        return self._env.env.sim

    @property
    def body_ids(self) -> dict[str, int]:
        """MuJoCo body id of every object and fixture, by scene name."""
        return dict(self._bodies)

    @property
    def site_names(self) -> list[str]:
        """Object sites (goal regions) of the scene."""
        return list(self._sites)

    @property
    def articulated_joints(self) -> list[str]:
        """Slide / hinge joints of articulated fixtures (drawers, doors, knobs)."""
        return list(self._joints)

    def get_sim_state(self) -> np.ndarray:
        return np.asarray(self._env.get_sim_state(), dtype=np.float64).copy()

    def observation_spec(self) -> dict:
        """Shape and dtype of every array of an observation, nested like one:
        ``{"agentview": ((H, W, 3), "uint8"), "proprio": ((8,), "float32"), "state": {key: (shape, "float64")}}``
        (cameras first, in ``reset`` / ``step``'s key order). The group engine sizes its shared
        observation buffers from it."""
        size = self.cfg.camera_size
        spec: dict = {short: ((size, size, 3), "uint8") for short, cam in _CAMERA_NAMES.items() if cam in self._cams}
        spec["proprio"] = ((8,), "float32")
        spec["state"] = {k: (tuple(v.shape), str(v.dtype)) for k, v in self.privileged_state().items()}
        return spec

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Flat dict of world-frame positions/orientations/joint values (docs/INTERFACES.md)."""
        data = self.sim.data
        robot = self._env.env.robots[0]
        eef_site = robot.eef_site_id
        state = {
            "eef_pos": np.array(data.site_xpos[eef_site], dtype=np.float64),
            "eef_quat": _mat_to_quat_xyzw(np.array(data.site_xmat[eef_site]).reshape(3, 3)),
            "gripper_qpos": np.array(data.qpos[self._gripper_qpos], dtype=np.float64),
        }
        for name, bid in self._bodies.items():
            state[f"pos/{name}"] = np.array(data.body_xpos[bid], dtype=np.float64)
            wxyz = np.array(data.body_xquat[bid], dtype=np.float64)
            state[f"quat/{name}"] = wxyz[[1, 2, 3, 0]]
        for name in self._sites:
            state[f"pos/{name}"] = np.array(data.get_site_xpos(name), dtype=np.float64)
        for joint, addr in self._joints.items():
            state[f"joint/{joint}"] = np.array([data.qpos[addr]], dtype=np.float64)
        return state

    def robosuite_observation(self) -> dict[str, np.ndarray]:
        """robosuite's own observation of the current state, every non-camera observable computed
        (e.g. ``robot0_eef_pos``, ``robot0_eef_quat``, ``robot0_gripper_qpos``): the reference
        that tests hold this class's observations against. Reads only; nothing is stepped."""
        inner = self._env.env
        names = [n for n in inner.observation_names if not n.endswith("_image")]
        enabled = inner.enabled_observables
        for name in names:
            inner.modify_observable(name, "enabled", True)
        try:
            raw = inner._get_observations(force_update=True)  # as in reset(): robosuite's "observe now"
            return {k: np.array(v) for k, v in raw.items() if k in names}
        finally:
            for name in names:
                inner.modify_observable(name, "enabled", name in enabled)

    def set_object_pose(self, name: str, pos, quat_xyzw=None) -> None:
        """Teleport a free object (tests and oracles only), then recompute kinematics."""
        if name not in self._free_joints:
            raise ValueError(f"{name!r} is not a free object of this scene: pass one of {sorted(self._free_joints)}.")
        joint = self._free_joints[name]
        qpos = np.array(self.sim.data.get_joint_qpos(joint), dtype=np.float64)
        qpos[:3] = pos
        if quat_xyzw is not None:
            qpos[3:7] = np.asarray(quat_xyzw)[[3, 0, 1, 2]]
        self.sim.data.set_joint_qpos(joint, qpos)
        self.sim.data.set_joint_qvel(joint, np.zeros(6))
        self.sim.forward()

    # ----------------------------------------------------------------- the trimmed step
    @property
    def sampled_observables(self) -> list[str]:
        """The robosuite observables computed every control step (only the cameras' images:
        the rest of an observation is read from the simulator directly)."""
        return sorted(self._env.env.enabled_observables)

    @contextlib.contextmanager
    def robosuite_step(self):
        """Inside the block, ``step`` is robosuite's own: every observable sampled and
        ``mj_forward`` run twice per physics substep, i.e. without this class's two trims. Tests
        check that the trims change no state or frame; benchmarks time one against the other."""
        inner = self._env.env
        sampled = inner.enabled_observables
        for robot in inner.robots:
            del robot.control  # back to the class's own method (see _skip_repeated_forward)
        for name in inner.observation_names:
            inner.modify_observable(name, "enabled", True)
        try:
            yield self
        finally:
            for name in inner.observation_names:
                inner.modify_observable(name, "enabled", name in sampled)
            _skip_repeated_forward(inner)

    # ----------------------------------------------------------------- internals
    def _clear_carried_state(self) -> None:
        """A reused model keeps state that a hard reset would rebuild: the gripper's smoothed
        command (robosuite integrates it across steps) and MuJoCo's solver warm start. Clear
        both so an episode on a reused model is bit-identical to one on a fresh model."""
        for robot in self._env.env.robots:
            gripper = getattr(robot, "gripper", None)
            if gripper is not None and hasattr(gripper, "current_action"):
                gripper.current_action = np.zeros_like(gripper.current_action)
        self.sim.data.qacc_warmstart[:] = 0

    def _hand_quat(self) -> np.ndarray:
        """robosuite's ``robot0_eef_quat``: the hand body's orientation (x, y, z, w), sign as MuJoCo keeps it."""
        return np.array(self.sim.data.body_xquat[self._hand_body], dtype=np.float64)[[1, 2, 3, 0]]

    def _set_cameras_enabled(self, enabled: bool) -> None:
        inner = self._env.env
        names = inner.observation_names
        for cam in self._cams:
            name = f"{cam}_image"
            if name in names:
                inner.modify_observable(name, "enabled", enabled)

    def _make_obs(self, raw: dict) -> dict:
        obs: dict = {}
        for short, cam in _CAMERA_NAMES.items():
            if cam in self._cams:
                obs[short] = flip_image(raw[f"{cam}_image"])
        state = self.privileged_state()
        quat = state["eef_quat"] if self.cfg.proprio == "grip_site" else self._hand_quat()
        obs["proprio"] = np.concatenate(
            [state["eef_pos"], quat_to_axis_angle(quat), state["gripper_qpos"]]
        ).astype(np.float32)
        obs["state"] = state
        return obs


def _skip_repeated_forward(inner) -> None:
    """Drop the second ``mj_forward`` of every physics substep.

    robosuite's step loop runs ``sim.forward()`` and then the arm controller's update runs it
    again on the same state (ctrl is written only afterwards), ~50 us x 25 substeps per control
    step. ``mj_forward`` is a pure function of the state and does not touch the solver's warm
    start, so the second call recomputes exactly what is already there. The controller still
    runs its own forward when called outside the step loop (resets, goal updates).
    """
    sim = inner.sim
    for robot in inner.robots:
        control = robot.control

        def control_after_forward(action, policy_step=False, _control=control):
            sim.forward = _no_forward  # the step loop called sim.forward() just before this
            try:
                return _control(action, policy_step)
            finally:
                del sim.forward  # back to the class method
        robot.control = control_after_forward


def _no_forward() -> None:
    pass


def _mat_to_quat_xyzw(m: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w), w >= 0."""
    tr = np.trace(m)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.asarray(q, dtype=np.float64)
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def make_env(suite: str, task_id: int, cfg: EnvConfig = EnvConfig()) -> LiberoEnv:
    """Build one environment for ``suite`` / ``task_id`` (aliases spatial|object|goal|long)."""
    return LiberoEnv(get_task(suite, task_id), cfg)
