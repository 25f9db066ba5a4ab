"""Named presets: the config overrides that make a run follow a published protocol.

``openvla``: OpenVLA-7B on one GPU, evaluated and trained as OpenVLA's LIBERO evaluation runs it:
256 px renders of LIBERO's meshes as shipped, JPEG round trip, Lanczos resize to 224, 0.9-area
center crop, un-normalisation statistics of the suite (``{suite}`` or ``{suite}_no_noops``) read
from the checkpoint directory, robosuite's end-effector proprio, OpenVLA's gripper convention;
plus the paper's LoRA recipe (rank 32, alpha 16, all linear layers, AdamW at 1e-5) and a memory
plan that fits 80 GB (16 sequences per pass, checkpointed layers: ``python -m tgrpo_lib plan``).

    cfg = openvla_config("/models/openvla-7b-finetuned-libero-goal", "goal", task_id=3)
    train(cfg)

The simulator stack (MuJoCo 2.3.7 + robosuite 1.4.1, as published) is an install choice, not a
config field: README "Paper scale" gives the line, and every run records the versions it ran on.
"""
from __future__ import annotations

import copy

from tgrpo_lib.envs.config import EnvConfig
from tgrpo_lib.envs.registry import canonical_suite
from tgrpo_lib.infra.config import TrainConfig, config_for, override
from tgrpo_lib.policy.config import PolicyConfig

OPENVLA = {
    "lr": 1e-5,  # the paper: AdamW at a fixed 1e-5
    "env": {"camera_size": 256, "cameras": ("agentview",), "render_quality": "standard", "proprio": "robosuite"},
    "policy": {"kind": "hf_vla", "gripper_convention": "openvla", "use_wrist": False, "dtype": "bfloat16",
               "device": "cuda", "lora_rank": 32, "lora_alpha": 16, "lora_targets": ("all-linear",),
               "jpeg_quality": 95, "image_resize": 224, "center_crop": 0.9, "micro_batch": 16,
               "gradient_checkpointing": True},
}
PRESETS = {"openvla": OPENVLA}


def preset(name: str) -> dict:
    """A copy of the overrides of preset ``name`` (for ``config.override`` / ``config_for``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: pass one of {sorted(PRESETS)}.")
    return copy.deepcopy(PRESETS[name])


def openvla_config(model_path: str, suite: str, task_id: int = 0, **overrides) -> TrainConfig:
    """The TrainConfig of a TGRPO run of OpenVLA checkpoint ``model_path`` under the ``openvla``
    preset; ``overrides`` (``config_for`` keys, nested dicts merge) come last."""
    suite = canonical_suite(suite)
    changes = preset("openvla")
    changes["policy"].update(model_path=str(model_path), unnorm_key=suite)
    cfg = config_for(**changes, suite=suite, task_id=task_id)
    return override(cfg, overrides) if overrides else cfg


def openvla_env(**overrides) -> EnvConfig:
    """The ``openvla`` preset's EnvConfig."""
    return EnvConfig(**{**preset("openvla")["env"], **overrides})


def openvla_policy(model_path: str, suite: str, **overrides) -> PolicyConfig:
    """The ``openvla`` preset's PolicyConfig for ``model_path``, un-normalising with ``suite``'s statistics."""
    fields = {**preset("openvla")["policy"], "model_path": str(model_path), "unnorm_key": canonical_suite(suite)}
    return PolicyConfig(**{**fields, **overrides})


__all__ = ["OPENVLA", "PRESETS", "openvla_config", "openvla_env", "openvla_policy", "preset"]
