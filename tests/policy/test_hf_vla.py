"""The HF (OpenVLA-style) path on a tiny random Llava (SigLIP + Llama) saved to disk and loaded
back through the same from-a-directory code a user with OpenVLA-7B weights runs."""
import json

import numpy as np
import pytest
import torch

import tgrpo_lib  # noqa: F401
from tgrpo_lib.policy import PolicyConfig, load_policy, make_policy
from tgrpo_lib.policy.hf_vla import openvla_prompt
from tgrpo_lib.policy.testing import build_tiny_llava, synthetic_obs

INSTR = "Put the Bowl on the Plate"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture
def policy(model_dir):
    return make_policy(PolicyConfig(kind="hf_vla", model_path=str(model_dir), lora_rank=4, lora_alpha=8))


@pytest.fixture(scope="module")
def obs():
    return synthetic_obs(batch=3, size=64, wrist=False, seed=1)


def test_prompt_is_openvlas():
    assert openvla_prompt(INSTR) == "In: What action should the robot take to put the bowl on the plate?\nOut:"


def test_act_scores_only_action_tokens_and_matches_log_prob(policy, obs):
    out = policy.act(obs, INSTR)
    assert out.tokens.shape == (3, 7) and out.tokens.min() >= 31744 and out.tokens.max() <= 31999
    lp = policy.log_prob(obs, INSTR, out.tokens)
    assert lp.requires_grad
    np.testing.assert_allclose(lp.detach().numpy(), out.log_prob, atol=1e-4)
    assert np.all(out.log_prob > 7 * np.log(1 / 256) - 20)  # masked to 256 ids: no -inf, sane scale
    # a list of instructions (grouped internally by prompt) scores each row with its own prompt
    mixed = policy.log_prob(obs, [INSTR, "open the drawer", INSTR], out.tokens)
    torch.testing.assert_close(mixed[[0, 2]], lp[[0, 2]])


def test_lora_ref_then_update_then_save_load(policy, obs, tmp_path):
    policy.set_mode("rl")
    s = policy.parameter_summary()
    assert 0 < s["trainable"] < s["total"] / 20
    tokens = policy.act(obs, INSTR).tokens
    ref0 = policy.ref_log_prob(obs, INSTR, tokens)
    torch.testing.assert_close(ref0, policy.log_prob(obs, INSTR, tokens).detach())
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-2)
    (-policy.log_prob(obs, INSTR, tokens).mean()).backward()
    opt.step()
    new = policy.log_prob(obs, INSTR, tokens).detach()
    assert (new - ref0).abs().max() > 1e-3
    torch.testing.assert_close(policy.ref_log_prob(obs, INSTR, tokens), ref0)

    path = policy.save(tmp_path / "policy")
    assert (path / "adapter" / "adapter_model.safetensors").is_file() and not (path / "base").exists()
    loaded = load_policy(path)
    assert loaded.mode == "rl"
    assert torch.equal(loaded.log_prob(obs, INSTR, tokens), policy.log_prob(obs, INSTR, tokens))
    assert torch.equal(loaded.ref_log_prob(obs, INSTR, tokens), ref0)


def test_sft_loss_decreases_and_sft_adapter_becomes_the_rl_reference(policy, obs, tmp_path):
    targets = np.random.default_rng(0).uniform(-1, 1, size=(3, 7))
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = policy.sft_loss(obs, INSTR, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1
    tokens = policy.tokenizer.encode(targets)
    after_sft = policy.log_prob(obs, INSTR, tokens).detach()
    policy.set_mode("rl")  # merges the SFT adapter into the base, fresh adapter on top
    assert policy.base_modified
    torch.testing.assert_close(policy.ref_log_prob(obs, INSTR, tokens), after_sft, atol=1e-4, rtol=0)
    loaded = load_policy(policy.save(tmp_path / "p"))  # merged base is written beside the adapter
    torch.testing.assert_close(loaded.log_prob(obs, INSTR, tokens).detach(), after_sft, atol=1e-4, rtol=0)


def test_errors_name_the_fix(tmp_path, model_dir):
    with pytest.raises(ValueError, match="model_path"):
        PolicyConfig(kind="hf_vla")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        make_policy(PolicyConfig(kind="hf_vla", model_path=str(tmp_path / "missing")))
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(FileNotFoundError, match="no weights"):
        make_policy(PolicyConfig(kind="hf_vla", model_path=str(tmp_path / "no_weights")))
    small = build_tiny_llava(tmp_path / "small_vocab", vocab_size=500)
    with pytest.raises(ValueError, match="action vocabulary"):
        make_policy(PolicyConfig(kind="hf_vla", model_path=str(small)))
