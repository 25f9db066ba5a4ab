"""The fallback path: OpenVLA's own remote code under transformers 5 with the four shims of
``policy/openvla_remote.py``. The shims are checked on stand-in classes everywhere; loading the shared
fixture through OpenVLA's code needs timm and torchvision, and skips with the reason where they don't import."""
import json

import numpy as np
import pytest
import torch

from tgrpo_lib.policy import PolicyConfig, make_policy
from tgrpo_lib.policy.openvla_remote import apply_shims, missing_remote_requirements


def test_shims_make_openvlas_class_contract_fit_transformers_5():
    class Model:  # the parts of OpenVLA's PrismaticPreTrainedModel the shims touch
        _supports_flash_attn_2 = True

        @property
        def _supports_sdpa(self):
            return self.language_model._supports_sdpa  # fails inside PreTrainedModel.__init__: no language_model yet

        def tie_weights(self):
            return "tied"

    class ImageProcessor:
        pass

    apply_shims(Model, ImageProcessor)
    apply_shims(Model, ImageProcessor)  # idempotent: the tie_weights wrapper is not wrapped twice
    assert Model()._supports_sdpa is True and Model._supports_flash_attn is True
    assert Model().tie_weights(recompute_mapping=False) == "tied"
    from transformers.processing_utils import ImagesKwargs

    assert ImageProcessor.valid_kwargs is ImagesKwargs
    import transformers.tokenization_utils as legacy

    assert all(hasattr(legacy, n) for n in ("PaddingStrategy", "PreTokenizedInput", "TextInput", "TruncationStrategy"))


MISSING = missing_remote_requirements()


def _tiny_timm_towers(openvla_tiny, monkeypatch) -> None:
    """The fixture's README: OpenVLA's code builds its towers from timm ids, so the tiny sizes are added."""
    import timm

    overrides = json.loads((openvla_tiny / "fixture.json").read_text())["timm_overrides"]
    create = timm.create_model

    def tiny_towers(name, *args, **kwargs):
        return create(name, *args, **{**kwargs, **overrides.get(name, {})})

    monkeypatch.setattr(timm, "create_model", tiny_towers)
    torch.set_num_threads(1)


@pytest.mark.skipif(bool(MISSING), reason=f"OpenVLA's remote code needs {MISSING} (policy/openvla_remote.py)")
def test_remote_code_matches_the_golden_outputs_and_the_native_policy(openvla_tiny, monkeypatch):
    _tiny_timm_towers(openvla_tiny, monkeypatch)
    golden = np.load(openvla_tiny / "golden.npz")
    obs, instructions = {"agentview": golden["images"]}, list(golden["instructions"])
    kw = dict(kind="hf_vla", model_path=str(openvla_tiny), unnorm_key="libero_object", dtype="float32")
    remote = make_policy(PolicyConfig(**kw, remote_code=True))
    assert remote.decode_rows == 1 and {p.dtype for p in remote.model.parameters()} == {torch.float32}
    out = remote.act(obs, instructions, greedy=True)
    np.testing.assert_array_equal(out.tokens, golden["greedy_tokens"])
    np.testing.assert_array_equal(out.env_actions, golden["actions"])
    native = make_policy(PolicyConfig(**kw))
    torch.testing.assert_close(remote.log_prob(obs, instructions, out.tokens),
                               native.log_prob(obs, instructions, out.tokens), atol=1e-4, rtol=0)


@pytest.mark.skipif(bool(MISSING), reason=f"OpenVLA's remote code needs {MISSING} (policy/openvla_remote.py)")
def test_golden_files_made_by_openvlas_code_check_the_native_model(openvla_tiny, monkeypatch, tmp_path, capsys):
    from tgrpo_lib.policy.openvla import main

    _tiny_timm_towers(openvla_tiny, monkeypatch)
    shared = str(openvla_tiny / "golden.npz")
    assert main(["golden", "--model", str(openvla_tiny), "--out", str(tmp_path / "same.npz"), "--inputs", shared,
                 "--unnorm-key", "libero_object"]) == 0
    ours, theirs = np.load(tmp_path / "same.npz"), np.load(shared)  # the fixture's inputs: the fixture's outputs
    for key in ("input_ids", "input_ids_len", "pixel_values", "greedy_tokens", "actions", "unnorm_key"):
        np.testing.assert_array_equal(ours[key], theirs[key])
    # 2e-5 under torch 2.14.1 here (the fixture: bit-identical in its own environment, one thread)
    np.testing.assert_allclose(ours["logits_teacher_forced"], theirs["logits_teacher_forced"], atol=1e-4, rtol=0)
    # new inputs: the native model verified against OpenVLA's code on a golden file the fixture does not hold
    assert main(["golden", "--model", str(openvla_tiny), "--out", str(tmp_path / "new.npz")]) == 0
    assert main(["verify", "--model", str(openvla_tiny), "--golden", str(tmp_path / "new.npz")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["tokens_equal"]


@pytest.mark.skipif(not MISSING, reason="timm and torchvision import here: the refusal is for where they don't")
def test_golden_without_timm_stops_in_one_line(openvla_tiny, tmp_path, capsys):
    from tgrpo_lib.policy.openvla import main

    with pytest.raises(SystemExit) as exc:
        main(["golden", "--model", str(openvla_tiny), "--out", str(tmp_path / "g.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and "timm==0.9.16" in err[-1]
