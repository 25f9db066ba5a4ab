"""The openvla preset turns on every part of OpenVLA's published protocol, and nothing else changes."""
import pytest

from tgrpo_lib.infra.config import CONFIG_SCHEMA, TrainConfig, config_from_dict, config_to_dict
from tgrpo_lib.paper_scale.presets import openvla_config, openvla_env, openvla_policy, preset


def test_openvla_preset_is_the_published_protocol():
    cfg = openvla_config("/models/openvla-7b-finetuned-libero-goal", "goal", task_id=3, iterations=5)
    env, pol = cfg.env, cfg.policy
    assert (env.camera_size, env.render_quality, env.proprio) == (256, "standard", "robosuite")
    assert env.cameras == ("agentview",)
    assert (pol.jpeg_quality, pol.image_resize, pol.center_crop) == (95, 224, 0.9)
    assert (pol.kind, pol.unnorm_key, pol.gripper_convention) == ("hf_vla", "libero_goal", "openvla")
    assert pol.dtype == "bfloat16" and pol.device == "cuda"
    assert (pol.lora_rank, pol.lora_alpha, pol.lora_targets, pol.micro_batch, pol.gradient_checkpointing) == \
        (32, 16, ("all-linear",), 16, True)
    assert (cfg.suite, cfg.task_id, cfg.lr, cfg.iterations) == ("libero_goal", 3, 1e-5, 5)
    assert config_from_dict({"schema": CONFIG_SCHEMA, **config_to_dict(cfg)}) == cfg  # saved and read back


def test_defaults_stay_the_cpu_world():
    cfg = TrainConfig()
    assert (cfg.env.proprio, cfg.env.render_quality, cfg.env.camera_size) == ("grip_site", "fast", 128)
    p = cfg.policy
    assert (p.jpeg_quality, p.image_resize, p.center_crop, p.micro_batch) == (None, None, None, None)


def test_preset_helpers():
    assert openvla_env().camera_size == 256 and openvla_env(camera_size=224).camera_size == 224
    assert openvla_policy("/m", "long").unnorm_key == "libero_10"
    assert preset("openvla") is not preset("openvla")  # a copy: callers may change it
    with pytest.raises(ValueError, match="openvla"):
        preset("octo")
