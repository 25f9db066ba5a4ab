"""The CPU tiny VLA on synthetic uint8 images: the interface contract trainers rely on."""
from pathlib import Path

import numpy as np
import pytest
import torch

import tgrpo_lib  # noqa: F401  (sets HF_HUB_OFFLINE etc. before transformers loads)
from tgrpo_lib.policy import PolicyConfig, load_policy, make_policy
from tgrpo_lib.policy.testing import synthetic_obs

INSTR = "put the alphabet soup in the basket"


@pytest.fixture(scope="module")
def obs():
    return synthetic_obs(batch=4, size=128, wrist=True, seed=0)


@pytest.fixture
def policy():
    torch.set_num_threads(1)
    return make_policy(PolicyConfig(seed=3))


def test_act_contract(policy, obs):
    out = policy.act(obs, INSTR)
    assert out.env_actions.shape == (4, 7) and out.env_actions.dtype == np.float64
    assert out.tokens.shape == (4, 7) and out.tokens.dtype == np.int64
    assert out.tokens.min() >= 31744 and out.tokens.max() <= 31999
    assert out.log_prob.shape == (4,) and np.all(out.log_prob < 0)
    # identity stats + LIBERO gripper convention: env action = decoded bin centers
    np.testing.assert_allclose(out.env_actions, policy.tokenizer.decode(out.tokens))
    assert out.features.shape == (4, 8, 1280)  # 2 cameras x 2x2 pooled grid


def test_act_log_prob_equals_recomputation(policy, obs):
    out = policy.act(obs, INSTR, temperature=1.0)
    lp = policy.log_prob(obs, INSTR, out.tokens)
    assert lp.requires_grad and lp.shape == (4,)
    np.testing.assert_allclose(lp.detach().numpy(), out.log_prob, atol=1e-5)
    # cached frozen features give the same numbers as re-encoding the images
    lp_cached = policy.log_prob({**obs, "features": out.features}, INSTR, out.tokens)
    np.testing.assert_allclose(lp_cached.detach().numpy(), out.log_prob, atol=1e-5)


def test_temperature_and_greedy(policy, obs):
    g1, g2 = policy.act(obs, INSTR, greedy=True), policy.act(obs, INSTR, greedy=True)
    np.testing.assert_array_equal(g1.tokens, g2.tokens)
    hot = policy.act(obs, INSTR, temperature=2.0)
    # stored log_prob is the T=1 policy's; the sampling distribution's own is kept separately
    np.testing.assert_allclose(policy.log_prob(obs, INSTR, hot.tokens).detach().numpy(), hot.log_prob, atol=1e-5)
    assert not np.allclose(hot.sample_log_prob, hot.log_prob)


def test_instruction_list_changes_outputs(policy, obs):
    tokens = policy.act(obs, INSTR).tokens
    same = policy.log_prob(obs, [INSTR] * 4, tokens)
    mixed = policy.log_prob(obs, [INSTR, "open the drawer", INSTR, "open the drawer"], tokens)
    torch.testing.assert_close(same[[0, 2]], mixed[[0, 2]])
    assert not torch.allclose(same[[1, 3]], mixed[[1, 3]])
    with pytest.raises(ValueError, match="instructions for a batch"):
        policy.log_prob(obs, [INSTR] * 3, tokens)


def test_lora_reference_and_one_step(policy, obs):
    sft_params = policy.parameter_summary()["trainable"]
    assert 500_000 < sft_params < 2_000_000
    policy.set_mode("rl")
    summary = policy.parameter_summary()
    assert 0 < summary["trainable"] < sft_params / 5
    assert all("lora_" in n for n, p in policy.net.named_parameters() if p.requires_grad)
    out = policy.act(obs, INSTR)
    ref0 = policy.ref_log_prob(obs, INSTR, out.tokens)
    torch.testing.assert_close(ref0, policy.log_prob(obs, INSTR, out.tokens).detach())  # B = 0 at init
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-2)
    loss = -policy.log_prob(obs, INSTR, out.tokens).mean()
    loss.backward()
    opt.step()
    new = policy.log_prob(obs, INSTR, out.tokens).detach()
    assert (new > ref0 + 1e-3).all()  # the update raised the taken tokens' log-prob
    torch.testing.assert_close(policy.ref_log_prob(obs, INSTR, out.tokens), ref0)  # reference frozen


def test_save_load_reproduces_outputs(policy, obs, tmp_path):
    policy.set_mode("rl")
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-2)
    tokens = policy.act(obs, INSTR).tokens
    (-policy.log_prob(obs, INSTR, tokens).mean()).backward()
    opt.step()
    path = policy.save(tmp_path / "policy")
    loaded = load_policy(path)
    assert loaded.mode == "rl" and loaded.parameter_summary() == policy.parameter_summary()
    assert torch.equal(loaded.log_prob(obs, INSTR, tokens), policy.log_prob(obs, INSTR, tokens))
    assert torch.equal(loaded.ref_log_prob(obs, INSTR, tokens), policy.ref_log_prob(obs, INSTR, tokens))
    np.testing.assert_array_equal(loaded.act(obs, INSTR, greedy=True).tokens,
                                  policy.act(obs, INSTR, greedy=True).tokens)
    # back to SFT: the adapter is merged, so outputs are unchanged and every weight trains again
    before = policy.log_prob(obs, INSTR, tokens).detach()
    policy.set_mode("sft")
    torch.testing.assert_close(policy.log_prob(obs, INSTR, tokens).detach(), before, atol=1e-4, rtol=0)


def test_sft_loss_decreases(policy, obs):
    rng = np.random.default_rng(0)
    targets = rng.uniform(-1, 1, size=(4, 7))
    feats = policy.encode_images(obs)
    batch = {**obs, "features": feats}
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = policy.sft_loss(batch, [INSTR, "b", "c", "d"], targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 5.0  # ~log(256) = 5.55 for an untrained head
    assert losses[-1] < losses[0] - 1.0


def test_missing_wrist_camera_is_a_clear_error(policy):
    obs = synthetic_obs(batch=2, wrist=False)
    with pytest.raises(ValueError, match="use_wrist=False"):
        policy.act(obs, INSTR)
    agent_only = make_policy(PolicyConfig(use_wrist=False))
    assert agent_only.act(obs, INSTR).features.shape == (2, 4, 1280)


def test_load_policy_wrong_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="policy.save"):
        load_policy(tmp_path / "nothing_here")


def test_pretrained_encoder_recognises_an_imagenet_photo():
    """The hand-written EfficientNet-Lite0 + shipped state dict classify a real photo correctly."""
    PIL = pytest.importorskip("PIL.Image")
    mpl = pytest.importorskip("matplotlib")
    photo = Path(mpl.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        pytest.skip("matplotlib sample photo not installed")
    from tgrpo_lib.policy.efficientnet_lite import load_pretrained_lite0, preprocess_uint8

    img = np.array(PIL.open(photo).convert("RGB").resize((224, 224)))
    with torch.no_grad():
        probs = load_pretrained_lite0()(preprocess_uint8(torch.from_numpy(img)[None])).softmax(-1)
    assert probs.argmax().item() == 652  # ImageNet "military uniform"
    assert probs.max().item() > 0.3


def test_smaller_wrist_image_keeps_token_layout(obs):
    policy = make_policy(PolicyConfig(wrist_image_size=64))
    out = policy.act(obs, INSTR)
    assert out.features.shape == (4, 8, 1280)
    np.testing.assert_allclose(policy.log_prob(obs, INSTR, out.tokens).detach().numpy(), out.log_prob, atol=1e-5)


def test_fast_image_path_matches_the_encoder_module(obs):
    """act() runs the oneDNN fast CNN; swapping in the module's own forward changes nothing
    beyond float rounding (the guarantee that lets checkpoints trained on either path reload)."""
    from tgrpo_lib.policy.efficientnet_lite import FastLite0Features, fast_path_available
    from tgrpo_lib.policy.tiny_vla import image_encoder

    policy = make_policy(PolicyConfig(use_wrist=False, seed=1, image_encoder_dtype="float32"))
    if fast_path_available():
        assert isinstance(policy.image_features, FastLite0Features)
    fast = policy.act(obs, INSTR, greedy=True)
    policy.image_features = image_encoder(True).features
    reference = policy.act(obs, INSTR, greedy=True)
    np.testing.assert_allclose(fast.features, reference.features, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(fast.tokens, reference.tokens)
    np.testing.assert_allclose(fast.log_prob, reference.log_prob, atol=1e-4, rtol=0)


def _relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_bfloat16_encoder_is_the_float32_network_rounded(obs, monkeypatch):
    """The default bfloat16 CNN computes the same features as float32 up to bfloat16 rounding,
    on the fast path and on the fallback (ATen) path a CPU without oneDNN bfloat16 would take."""
    from tgrpo_lib.policy import tiny_vla
    from tgrpo_lib.policy.efficientnet_lite import FastLite0Features, fast_path_available

    assert PolicyConfig().image_encoder_dtype == "bfloat16"
    fp32 = make_policy(PolicyConfig(use_wrist=False, image_encoder_dtype="float32")).encode_images(obs)
    policy = make_policy(PolicyConfig(use_wrist=False))
    if fast_path_available(torch.bfloat16):
        assert isinstance(policy.image_features, FastLite0Features) and policy.image_features.dtype == torch.bfloat16
    bf16 = policy.encode_images(obs)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert 1e-4 < _relative_difference(bf16, fp32) < 0.1  # really rounded, but the same network
    monkeypatch.setattr(tiny_vla, "_FAST_IMAGE_FEATURES", {})
    monkeypatch.setattr(tiny_vla, "fast_path_available", lambda dtype=torch.float32: False)
    fallback = make_policy(PolicyConfig(use_wrist=False))
    assert not isinstance(fallback.image_features, FastLite0Features)
    assert _relative_difference(fallback.encode_images(obs), fp32) < 0.1


def test_encoder_precision_is_saved_and_a_checkpoint_of_another_schema_is_refused(tmp_path, obs):
    import json

    policy = make_policy(PolicyConfig(use_wrist=False, image_encoder_dtype="float32", seed=2))
    path = policy.save(tmp_path / "p")
    reloaded = load_policy(path)
    assert reloaded.config.image_encoder_dtype == "float32"
    out = policy.act(obs, INSTR, greedy=True)
    np.testing.assert_allclose(reloaded.log_prob(obs, INSTR, out.tokens).detach().numpy(), out.log_prob, atol=1e-5)
    saved = json.loads((path / "policy_config.json").read_text())
    del saved["schema"], saved["image_encoder_dtype"]  # a checkpoint written before schemas existed
    (path / "policy_config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="saved under config schema 1.*retrain that policy"):
        load_policy(path)
