"""Environment configuration (kept free of heavy imports: worker processes load it)."""
from __future__ import annotations

from dataclasses import dataclass

from tgrpo_lib.infra.checks import check_number

STOP_RULES = ("group", "each")
"""When a group rollout ends: "group" (the paper's rule, all stop at the first success) or "each"
(every trajectory runs to its own success); see ``group.rollout_group``."""

RENDER_QUALITIES = ("standard", "fast")
CAMERAS = ("agentview", "wrist")
PROPRIO_CONVENTIONS = ("grip_site", "robosuite")


@dataclass(frozen=True)
class EnvConfig:
    """How LIBERO scenes are built, rendered and stepped."""

    camera_size: int = 128
    """Height = width of every rendered camera image (pixels); the policy sees this size."""
    cameras: tuple[str, ...] = ("agentview",)
    """Cameras rendered each step: ``agentview`` (third person) and/or ``wrist`` (eye in hand).
    An empty tuple renders nothing (physics only, ~7x faster: expert demos without images)."""
    render_quality: str = "fast"
    """``standard``: LIBERO's meshes as shipped (parity with published evaluations);
    ``fast``: simplified visual meshes, same physics (see envs/render_quality.py)."""
    num_warmup_steps: int = 10
    """No-op steps after setting an init state, so objects settle (OpenVLA/LeRobot protocol)."""
    max_steps: int | None = None
    """Policy steps per episode; None takes the suite default (220/280/300/520)."""
    hard_reset: bool = False
    """Reload the MuJoCo model at every reset (0.5-2 s). False reuses it (0.02-0.14 s); the
    init state fully overwrites the simulator state either way."""
    seed: int = 0
    """Passed to ``env.seed`` once at construction, as the reference evaluation scripts do."""
    proprio: str = "grip_site"
    """Orientation in ``obs["proprio"]``: ``grip_site``, the gripper site's (w >= 0), or
    ``robosuite``, robosuite's ``robot0_eef_quat`` (the hand body, as robosuite reports it), the
    state OpenVLA's LIBERO data and evaluation use. Position and gripper are the same in both."""

    def __post_init__(self) -> None:
        if self.render_quality not in RENDER_QUALITIES:
            raise ValueError(f"render_quality={self.render_quality!r}: pass one of {RENDER_QUALITIES}.")
        if self.proprio not in PROPRIO_CONVENTIONS:
            raise ValueError(f"proprio={self.proprio!r}: pass one of {PROPRIO_CONVENTIONS}.")
        unknown = [c for c in self.cameras if c not in CAMERAS]
        if unknown:
            raise ValueError(f"Unknown camera(s) {unknown}: pass a tuple drawn from {CAMERAS}.")
        check_number("EnvConfig.camera_size", self.camera_size, 16, integer=True)
        check_number("EnvConfig.num_warmup_steps", self.num_warmup_steps, 0, integer=True)
        check_number("EnvConfig.seed", self.seed, 0, integer=True)
        if self.max_steps is not None:
            check_number("EnvConfig.max_steps", self.max_steps, 1, integer=True)
        if isinstance(self.cameras, list):  # JSON round trips give lists; keep the config hashable
            object.__setattr__(self, "cameras", tuple(self.cameras))


def render_threads_env(processes: int, cores: int | None = None) -> str:
    """``LP_NUM_THREADS`` for one of ``processes`` simulator processes sharing the machine's cores:
    ``$LP_NUM_THREADS`` when set, else the process's share of the cores, and 0 for a share of
    one core: llvmpipe then rasterises in the calling thread instead of handing each frame to a
    helper thread and waiting for it. Frames are the same bit for bit whatever the count
    (tests/envs/test_core.py); one core per process spends ~5 % less CPU per frame with 0
    (benchmarks/step_cost.py, docs/performance.md)."""
    import os

    if os.environ.get("LP_NUM_THREADS"):
        return os.environ["LP_NUM_THREADS"]
    share = max(1, (cores or os.cpu_count() or 1) // max(1, processes))
    return "0" if share == 1 else str(share)
