"""The native OpenVLA (no trust_remote_code, no timm) against golden outputs of OpenVLA's own code on the
shared tiny checkpoint (``../shared/fixtures/openvla-tiny``, its README gives the tolerances), the key map
against the real OpenVLA-7B's keys and shapes, the ``verify`` command, and the policy built on it."""
import json
import shutil

import numpy as np
import pytest
import torch

from tgrpo_lib.policy import PolicyConfig, load_policy, make_policy
from tgrpo_lib.policy.openvla import (ACTION_TOLERANCE, LOGIT_TOLERANCE, OpenVLAProcessor, compare_with_golden,
                                      load_openvla, main, read_config)

UNNORM = "libero_object"  # the suite name: the fixture's statistics key is libero_object_no_noops


@pytest.fixture(scope="module")
def golden(openvla_tiny):
    torch.set_num_threads(1)
    return dict(np.load(openvla_tiny / "golden.npz"))


@pytest.fixture(scope="module")
def model(openvla_tiny):
    return load_openvla(openvla_tiny)


def _policy(path, **kw):
    return make_policy(PolicyConfig(kind="hf_vla", model_path=str(path), unnorm_key=UNNORM,
                                    **{"dtype": "float32", "lora_rank": 4, "lora_alpha": 8, **kw}))


def test_native_model_reproduces_openvlas_golden_outputs(openvla_tiny):
    res = compare_with_golden(openvla_tiny, openvla_tiny / "golden.npz")
    assert res["input_ids_equal"] and res["max_abs_pixel_err"] == 0  # tokenizer and processor: exact
    assert res["max_abs_logit_err"] <= LOGIT_TOLERANCE  # fp32, 7 action positions x 32064 logits x 4 inputs
    assert res["tokens_equal"] and res["max_abs_action_err"] <= ACTION_TOLERANCE


def test_each_stage_matches_so_a_failure_can_be_located(model, golden):
    with torch.no_grad():
        feats = model.image_features(torch.from_numpy(golden["pixel_values"]))  # (4, 256, 128 + 144)
        projected = model.projector(feats)
    np.testing.assert_allclose(feats[..., :128].numpy(), golden["featurizer_patches"], atol=LOGIT_TOLERANCE, rtol=0)
    np.testing.assert_allclose(feats[..., 128:].numpy(), golden["fused_featurizer_patches"], atol=LOGIT_TOLERANCE,
                               rtol=0)
    np.testing.assert_allclose(projected.numpy(), golden["projector_features"], atol=LOGIT_TOLERANCE, rtol=0)


def test_weights_are_the_checkpoints_upcast_exactly_and_nothing_stays_on_meta(openvla_tiny, model):
    from safetensors import safe_open

    with safe_open(str(openvla_tiny / "model.safetensors"), framework="pt") as f:
        qkv = f.get_tensor("vision_backbone.fused_featurizer.blocks.1.attn.qkv.weight")  # bf16 (432, 144)
        pos = f.get_tensor("vision_backbone.featurizer.pos_embed")  # (1, 256, 128)
    layer = model.vision_backbone["fused_featurizer"].encoder.layers[1].self_attn
    assert torch.equal(layer.k_proj.weight, qkv[144:288].float())  # timm's fused qkv, split q | k | v
    table = model.vision_backbone["featurizer"].embeddings.position_embeddings  # (1, 257, 128)
    assert torch.equal(table[:, 1:], pos.float()) and not table[:, 0].any()  # timm gives the cls no position
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    assert all(b.device.type == "cpu" for b in model.buffers())
    bf16 = load_openvla(openvla_tiny, torch.bfloat16)
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert torch.equal(bf16.language_model.lm_head.weight.float(), model.language_model.lm_head.weight)


def test_key_map_covers_the_real_openvla_7b_on_the_meta_device(openvla_tiny):
    from accelerate import init_empty_weights

    from tgrpo_lib.policy.openvla_keys import is_unused, native_tensors, tower_sizes
    from tgrpo_lib.policy.openvla_model import OpenVLANative, native_config

    real = json.loads((openvla_tiny / "openvla-7b-keys.json").read_text())
    shapes = {e["key"]: tuple(e["shape"]) for e in real["keys"]}
    sizes = tower_sizes(shapes)  # no config.json names them: read off the weights
    assert (sizes["featurizer"]["width"], sizes["featurizer"]["depth"], sizes["featurizer"]["heads"]) == (1024, 24, 16)
    assert (sizes["fused_featurizer"]["mlp"], sizes["fused_featurizer"]["heads"], sizes["featurizer"]["registers"]) \
        == (4304, 16, 4)
    raw = read_config(openvla_tiny)  # the real text_config names no size: LlamaConfig's defaults are Llama-2-7B's
    raw["text_config"] = {k: raw["text_config"][k] for k in ("model_type", "pad_token_id", "torch_dtype", "vocab_size")}
    config = native_config(raw, sizes)
    assert config.text_config.rms_norm_eps == 1e-6 and config.text_config.num_hidden_layers == 32
    with init_empty_weights(include_buffers=False):
        native = OpenVLANative(config)
    params = {n: tuple(p.shape) for n, p in native.named_parameters()}
    mapped = {n: tuple(t.shape) for k, s in shapes.items() if not is_unused(k, config.tower_depths)
              for n, t in native_tensors(k, torch.empty(s, device="meta"))}
    assert set(params) - set(mapped) == {"vision_backbone.featurizer.embeddings.mask_token"}
    assert mapped == {n: params[n] for n in mapped}
    assert sum(p.numel() for p in native.parameters()) == 7_498_163_104  # 7.54 B less the unused blocks and pool


def test_verify_command_passes_the_fixture_and_fails_a_planted_bug(openvla_tiny, tmp_path, capsys):
    assert main(["verify", "--model", str(openvla_tiny), "--golden", str(openvla_tiny / "golden.npz")]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last) == {"max_abs_logit_err", "tokens_equal", "max_abs_action_err"} and last["tokens_equal"]
    # rms_norm_eps 1e-5 (Llama-2's, not what OpenVLA runs): every greedy token survives, the logits do not
    bad = tmp_path / "eps"
    bad.mkdir()
    for f in openvla_tiny.iterdir():
        (bad / f.name).symlink_to(f)
    (bad / "config.json").unlink()
    raw = json.loads((openvla_tiny / "config.json").read_text())
    raw["text_config"]["rms_norm_eps"] = 1e-5
    (bad / "config.json").write_text(json.dumps(raw))
    assert main(["verify", "--model", str(bad), "--golden", str(openvla_tiny / "golden.npz")]) == 1
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["tokens_equal"] and last["max_abs_logit_err"] > LOGIT_TOLERANCE


@pytest.mark.parametrize("make, match", [
    (lambda tiny, tmp: ["--model", str(tmp), "--golden", str(tiny / "golden.npz")], "no config.json"),
    (lambda tiny, tmp: ["--model", str(tiny), "--golden", str(tmp / "none.npz")], "not a file"),
    (lambda tiny, tmp: ["--model", str(tiny), "--golden", str(tiny / "config.json")], "not a readable .npz"),
])
def test_verify_refuses_bad_input_in_one_line(openvla_tiny, tmp_path, capsys, make, match):
    with pytest.raises(SystemExit) as exc:
        main(["verify", *make(openvla_tiny, tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert match in err[-1] and "error:" in err[-1]


def test_checkpoints_the_native_model_cannot_run_name_the_fallback(openvla_tiny, tmp_path):
    ckpt = shutil.copytree(openvla_tiny, tmp_path / "variant")
    raw = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**raw, "arch_specifier": "no-align+gelu-mlp"}))
    with pytest.raises(ValueError, match="remote_code=True"):
        load_openvla(ckpt)
    (ckpt / "config.json").write_text(json.dumps(raw))
    (ckpt / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        OpenVLAProcessor.from_dir(ckpt)
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_openvla(ckpt)


# ------------------------------------------------------------------------------ the policy on it
@pytest.fixture(scope="module")
def policy(openvla_tiny):
    return _policy(openvla_tiny)


def test_policy_acts_like_openvla_and_decodes_a_group_in_one_batch(policy, golden):
    assert policy.decode_rows is None  # native: every row of a group in one KV-cached pass
    obs = {"agentview": golden["images"]}
    out = policy.act(obs, list(golden["instructions"]), greedy=True)
    np.testing.assert_array_equal(out.tokens, golden["greedy_tokens"])
    np.testing.assert_array_equal(out.env_actions, golden["actions"])  # un-normalised; "libero" gripper untouched
    np.testing.assert_allclose(policy.log_prob(obs, list(golden["instructions"]), out.tokens).detach().numpy(),
                               out.log_prob, atol=1e-4)
    batched = policy.act(obs, "put the bowl on the plate", greedy=True)
    rows = [policy.act({"agentview": golden["images"][i:i + 1]}, "put the bowl on the plate", greedy=True)
            for i in range(4)]
    np.testing.assert_array_equal(batched.tokens, np.concatenate([r.tokens for r in rows]))
    np.testing.assert_allclose(batched.log_prob, np.concatenate([r.log_prob for r in rows]), atol=1e-5)


def test_bfloat16_policy_runs_and_mostly_agrees(openvla_tiny, golden):
    policy = _policy(openvla_tiny, dtype="bfloat16")
    out = policy.act({"agentview": golden["images"]}, list(golden["instructions"]), greedy=True)
    # the fixture's README: bf16 weights and pixels change 9 of the 28 greedy tokens under OpenVLA's own code
    assert (out.tokens == golden["greedy_tokens"]).sum() >= 14 and np.isfinite(out.log_prob).all()


def test_sft_then_rl_checkpoint_round_trips_and_lora_reaches_the_towers(openvla_tiny, golden, tmp_path):
    policy = _policy(openvla_tiny)
    obs, instruction = {"agentview": golden["images"][:2]}, "put the bowl on the plate"
    targets = np.random.default_rng(0).uniform(-0.5, 0.5, size=(2, 7))
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=3e-3)
    for _ in range(3):
        opt.zero_grad()
        policy.sft_loss(obs, instruction, targets).backward()
        opt.step()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in policy.model.named_parameters() if "lora_" in n and "vision_backbone" in n)
    tokens = policy.tokenizer.encode(targets)
    after_sft = policy.log_prob(obs, instruction, tokens).detach()
    policy.set_mode("rl")  # the SFT adapter is merged into the base: the RL reference
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=3e-3)
    (-policy.log_prob(obs, instruction, tokens).mean()).backward()
    opt.step()
    path = policy.save(tmp_path / "rl")
    assert (path / "merged_adapters" / "0" / "adapter_model.safetensors").is_file() and not (path / "base").exists()
    loaded = load_policy(path)
    assert loaded.mode == "rl" and loaded.base_modified
    assert torch.equal(loaded.log_prob(obs, instruction, tokens), policy.log_prob(obs, instruction, tokens))
    assert torch.equal(loaded.ref_log_prob(obs, instruction, tokens), policy.ref_log_prob(obs, instruction, tokens))
    # the merge's float round-off: ~1e-5 on log-probs near -75
    torch.testing.assert_close(loaded.ref_log_prob(obs, instruction, tokens), after_sft, atol=1e-4, rtol=0)
    # the base is rebuilt from model_path: another checkpoint there is refused, naming the fix
    other = shutil.copytree(openvla_tiny, tmp_path / "other")
    raw = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**raw, "n_action_bins": 256, "note": "retrained"}))
    cfg = json.loads((path / "policy_config.json").read_text())
    (path / "policy_config.json").write_text(json.dumps({**cfg, "model_path": str(other)}))
    with pytest.raises(ValueError, match="model_path"):
        load_policy(path)
