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


# ------------------------------------------------------------------------------ paper scale (issue 17)
def _hf(model_dir, **kw):
    return make_policy(PolicyConfig(kind="hf_vla", model_path=str(model_dir), lora_rank=4, lora_alpha=8, **kw))


def _group_rollout(policy, n=2, t=6):
    """N trajectories of T steps acted by ``policy`` on synthetic frames, as rollout_group records them."""
    from tgrpo_lib.envs import GroupRollout

    frames = synthetic_obs(batch=n * t, size=64, wrist=False, seed=2)
    agentview, proprio = frames["agentview"].reshape(n, t, 64, 64, 3), frames["proprio"].reshape(n, t, 8)
    outs = [policy.act({"agentview": agentview[:, k], "proprio": proprio[:, k]}, INSTR) for k in range(t)]
    stack = lambda xs: np.stack(xs, axis=1)  # noqa: E731  (N, T, ...)
    return GroupRollout(obs={"agentview": agentview, "proprio": proprio}, states={},
                        actions=stack([o.env_actions for o in outs]), success=np.zeros((n, t), bool),
                        extras={"tokens": stack([o.tokens for o in outs]),
                                "log_prob": stack([o.log_prob for o in outs])},
                        init_state_index=0)


def test_pi_old_is_the_updates_own_pass_so_the_first_ratio_is_one_in_bfloat16(model_dir):
    from tgrpo_lib.algorithm.updates import clipped_update, pass_steps
    from tgrpo_lib.infra.config import config_for

    policy = _hf(model_dir, dtype="bfloat16", micro_batch=4)
    policy.set_mode("rl")
    rollout = _group_rollout(policy)
    cfg = config_for(epochs=1, minibatches=1, lr=1e-3)  # one minibatch: its ratio is the first ratio
    assert pass_steps(cfg, policy, 2) == 2  # 64 steps cut to 4 sequences per pass: 2 steps x N = 2
    rewards = np.tile(np.linspace(0, 1, 6), (2, 1)) * np.array([[2.0], [0.0]])
    start = [p.detach().clone() for p in policy.trainable_parameters()]
    stats = clipped_update(cfg, policy, torch.optim.AdamW(policy.trainable_parameters(), lr=cfg.lr), rollout,
                           rewards, INSTR)
    assert abs(stats["losses/ratio_mean"] - 1) < 1e-6 and stats["losses/approx_kl_old"] < 1e-7
    assert stats["losses/clip_fraction"] == 0 and stats["losses/kl_mean"] == 0  # pi_ref: the same pass, adapter off
    # act's numbers (KV-cached bf16 decode) are another computation: used as pi_old they would not give 1
    assert stats["losses/rollout_logp_gap"] > 0
    assert any((p.detach() - s).abs().max() > 0 for p, s in zip(policy.trainable_parameters(), start))


def test_micro_batches_and_checkpointing_change_no_number(model_dir, obs):
    tokens = _hf(model_dir).act(obs, INSTR, greedy=True).tokens
    results = []
    for kw in (dict(micro_batch=None, gradient_checkpointing=False), dict(micro_batch=1, gradient_checkpointing=True)):
        policy = _hf(model_dir, **kw)
        policy.set_mode("rl")
        with torch.no_grad():  # a non-zero adapter, the same in both (seeded)
            g = torch.Generator().manual_seed(3)
            for name, p in policy.model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        lp = policy.log_prob(obs, INSTR, tokens)
        lp.sum().backward()
        grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
        results.append((lp.detach(), grads))
    assert len(_hf(model_dir).checkpointed) > 0  # HF layers are checkpointed by default
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=0)
    assert results[0][1].keys() == results[1][1].keys() and any("vision" in n for n in results[1][1])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, atol=1e-5, rtol=1e-4)


def test_openvla_preprocessing_feeds_act_and_log_prob_alike(model_dir):
    from tgrpo_lib.policy.preprocess import preprocess_frame

    frames = synthetic_obs(batch=2, size=256, wrist=False, seed=4)
    steps = dict(jpeg_quality=95, image_resize=224, center_crop=0.9)
    policy, plain = _hf(model_dir, **steps), _hf(model_dir)  # same seed: same weights
    out = policy.act(frames, INSTR)
    np.testing.assert_allclose(policy.log_prob(frames, INSTR, out.tokens).detach().numpy(), out.log_prob, atol=1e-4)
    by_hand = {"agentview": np.stack([preprocess_frame(f, 95, 224, 0.9) for f in frames["agentview"]])}
    torch.testing.assert_close(policy.log_prob(frames, INSTR, out.tokens), plain.log_prob(by_hand, INSTR, out.tokens))
    assert not torch.allclose(plain.log_prob(frames, INSTR, out.tokens), plain.log_prob(by_hand, INSTR, out.tokens))


def test_action_statistics_and_key_come_from_the_checkpoint_directory(tmp_path, model_dir):
    import shutil

    ckpt = shutil.copytree(model_dir, tmp_path / "finetuned")
    q01, q99 = [-0.9, -0.8, -0.7, -0.6, -0.5, -0.4, 0.0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 1.0]
    mask = [True] * 6 + [False]
    (ckpt / "dataset_statistics.json").write_text(json.dumps(
        {"libero_goal_no_noops": {"action": {"q01": q01, "q99": q99, "mask": mask}}}))
    policy = _hf(ckpt, unnorm_key="libero_goal")  # the suite name picks {suite}_no_noops, as OpenVLA's script
    assert policy.action_stats.q01 == tuple(q01) and policy.action_stats.q99 == tuple(q99)
    with pytest.raises(ValueError, match="libero_spatial"):
        _hf(ckpt, unnorm_key="libero_spatial")
    with pytest.raises(ValueError, match="no action statistics"):
        _hf(model_dir, unnorm_key="libero_goal")


def test_row_by_row_decoding_equals_the_batch(policy, obs):
    batched = policy.act(obs, INSTR, greedy=True)
    policy.decode_rows = 1  # what OpenVLA's remote code needs (its cached generation asserts batch 1)
    rows = policy.act(obs, INSTR, greedy=True)
    np.testing.assert_array_equal(rows.tokens, batched.tokens)
    np.testing.assert_allclose(rows.log_prob, batched.log_prob, atol=1e-5)
