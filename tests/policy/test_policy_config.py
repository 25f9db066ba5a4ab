import numpy as np
import pytest
import torch

import tgrpo_lib  # noqa: F401
from tgrpo_lib.policy import PolicyConfig, make_policy
from tgrpo_lib.policy.testing import synthetic_obs


def test_config_json_round_trip(tmp_path):
    cfg = PolicyConfig(image_size=96, lora_targets=["qkv", "head"], seed=7)
    assert cfg.lora_targets == ("qkv", "head")  # lists are frozen into tuples
    cfg.to_json(tmp_path / "c.json")
    assert PolicyConfig.from_json(tmp_path / "c.json") == cfg


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="openvla"), "kind"),
    (dict(gripper_convention="franka"), "gripper_convention"),
    (dict(d_model=100, n_heads=3), "divisible"),
    (dict(dtype="fp8"), "dtype"),
    (dict(image_encoder_dtype="float16"), "image_encoder_dtype"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolicyConfig(**kwargs)


def test_same_seed_same_samples_and_global_rng_untouched():
    obs = synthetic_obs(batch=2, wrist=False)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = make_policy(PolicyConfig(use_wrist=False, seed=5)).act(obs, "open the drawer")
    assert torch.equal(torch.rand(1), expected)  # building a policy does not consume the caller's RNG
    b = make_policy(PolicyConfig(use_wrist=False, seed=5)).act(obs, "open the drawer")
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.log_prob, b.log_prob)
