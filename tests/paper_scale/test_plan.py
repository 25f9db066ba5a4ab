"""The memory plan: OpenVLA-7B's architecture on the meta device fits one 80 GB GPU under the
openvla preset, the naive plan (256 sequences per backward, no checkpointing) does not, and the
estimate matches a pass measured on the tiny Llava on CPU."""
import json

import pytest

from tgrpo_lib.paper_scale import plan
from tgrpo_lib.policy.architecture import openvla_7b


@pytest.fixture(scope="module")
def arch():
    return openvla_7b()


def test_openvla_7b_has_openvlas_parameter_count(arch):
    assert arch.parameters == 7_541_237_184  # the released openvla/openvla-7b checkpoint
    lm = arch.stacks[-1]
    assert (lm.layers, lm.width, lm.ffn, lm.tokens) == (32, 4096, 11008, 256 + 40 + 8)
    # LoRA all-linear, rank 32: ~80M in the Llama layers alone (7 projections x 32 layers)
    assert 0.08e9 < arch.lora_parameters(32) < 0.12e9


def test_the_openvla_preset_plans_under_80_gb_and_the_naive_plan_does_not(arch, capsys):
    result = plan.main(["--preset", "openvla-7b"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == result
    assert result["peak_gb"] < 80 and result["fits"] and result["pass_sequences"] == 16
    assert result["naive_peak_gb"] > 80  # issue 17: 256 full sequences, no checkpointing
    k = plan.Knobs()
    assert k.pass_steps * k.group_size == 16
    no_ckpt = plan.plan(arch, k.changed({"policy.gradient_checkpointing": False}))["peak"]
    assert no_ckpt > plan.plan(arch, k)["peak"]


def test_plan_matches_the_openvla_preset_defaults():
    from tgrpo_lib.paper_scale.presets import openvla_config

    cfg = openvla_config("/models/openvla", "goal")
    k = plan.knobs_for(cfg)
    assert (k.group_size, k.max_steps, k.micro_batch, k.lora_rank, k.dtype_bytes, k.checkpointing) == \
        (4, 300, 16, 32, 2, True)
    assert (k.minibatch_steps, k.minibatches, k.epochs) == (cfg.minibatch_steps, cfg.minibatches, cfg.epochs)
    knobs = ("group_size", "max_steps", "micro_batch", "minibatch_steps", "minibatches", "epochs", "lora_rank",
             "dtype_bytes", "checkpointing")
    assert [getattr(k, n) for n in knobs] == [getattr(plan.Knobs(), n) for n in knobs]  # the default: the preset
    k = plan.knobs_for(cfg, max_steps=60).changed({"group_size": 8, "policy.dtype": "float32"})
    assert (k.max_steps, k.group_size, k.dtype_bytes, k.pass_steps, k.rows) == (60, 8, 4, 2, 16)


def test_estimate_matches_a_measured_pass_of_the_tiny_llava():
    tiny = plan.Knobs().changed({"group_size": 2, "policy.micro_batch": 8})  # bf16, checkpointed, as the 7B plan
    m = plan.measure_tiny(tiny)
    assert 0.8 < m["ratio"] < 1.25, m
    m = plan.measure_tiny(tiny.changed({"policy.gradient_checkpointing": False, "policy.dtype": "float32"}))
    assert 0.8 < m["ratio"] < 1.25, m


def test_bad_input_stops_in_one_line(capsys):
    with pytest.raises(SystemExit):
        plan.main(["--group-size", "1"])
    assert "group_size=1" in capsys.readouterr().err.splitlines()[-1]
    with pytest.raises(SystemExit):
        plan.main(["--model", "/nonexistent/model"])
    assert "config.json" in capsys.readouterr().err.splitlines()[-1]


def test_the_native_openvla_checkpoints_its_towers_and_computes_8_positions_logits():
    native, remote = openvla_7b(), openvla_7b(native=False)  # the default path; OpenVLA's remote code
    assert native.parameters == remote.parameters == 7_541_237_184
    assert all(st.checkpointed for st in native.stacks) and not any(st.checkpointed for st in remote.stacks[:2])
    assert native.keeps_logits and not remote.keeps_logits
    k = plan.Knobs()
    assert round(plan.plan(remote, k)["peak"] / plan.GB, 1) == 28.9  # the remote path's plan, as before
    assert round(plan.plan(native, k)["peak"] / plan.GB, 1) == 19.6
