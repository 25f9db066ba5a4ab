"""The fallback: OpenVLA's own remote code (``trust_remote_code``), made to load under the pinned
transformers 5.x. ``PolicyConfig(remote_code=True)`` picks it; the default is the native model
(``openvla.py``), which needs none of this. Pick the fallback for an OpenVLA variant the native model
refuses (another vision backbone, projector or resize strategy), or to cross-check the native one.

It needs what OpenVLA's code imports: timm 0.9.10-0.9.16 (its own version check) and a torchvision that
matches torch. Every shim lives in ``apply_shims`` and touches only OpenVLA's classes, except one
module alias its processor file imports from; each answers one transformers change, named beside it.
Not shims but still needed: the model is cast to the requested dtype after loading (OpenVLA's language
model follows ``text_config.torch_dtype``, bfloat16, whatever dtype is asked for), and decoding runs one
row at a time (``HFVLAPolicy.decode_rows``: its cached forward asserts batch size 1).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .preprocess import norm_stats_from_dir, resolve_unnorm_key

REMOTE_MODEL = "modeling_prismatic.OpenVLAForActionPrediction"
REMOTE_IMAGE_PROCESSOR = "processing_prismatic.PrismaticImageProcessor"
_LEGACY_TOKENIZATION_NAMES = ("PaddingStrategy", "PreTokenizedInput", "TextInput", "TruncationStrategy")


def missing_remote_requirements() -> list[str]:
    """What this environment lacks to import OpenVLA's remote code (empty: nothing)."""
    missing = []
    for name in ("timm", "torchvision"):
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
            else:
                importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - e.g. a CUDA torchvision beside the CPU torch fails on import
            missing.append(f"{name} (import fails: {type(exc).__name__}: {str(exc).splitlines()[0][:80]})")
    return missing


def _check_requirements() -> None:
    missing = missing_remote_requirements()
    if missing:
        raise ImportError(f"PolicyConfig(remote_code=True) runs OpenVLA's own code, which needs {', '.join(missing)}: "
                          "pip install timm==0.9.16 plus the torchvision built for your torch, or use the native "
                          "OpenVLA (remote_code=False, the default), which needs neither.")


def apply_shims(model_cls=None, image_processor_cls=None) -> None:
    """Patch OpenVLA's classes (idempotent) for transformers 5.x; see each shim's comment."""
    # (1) transformers >= 4.41 reads `_supports_sdpa` inside PreTrainedModel.__init__, where OpenVLA's
    # property (it asks `self.language_model`) fails: that attribute does not exist yet. Its language model
    # (Llama-2) supports SDPA, so a plain class attribute says the same thing. transformers 5 also renamed
    # `_supports_flash_attn_2` (which OpenVLA sets) to `_supports_flash_attn`.
    if model_cls is not None:
        model_cls._supports_sdpa = True
        model_cls._supports_flash_attn = getattr(model_cls, "_supports_flash_attn_2", False)
    # (2) transformers 5 calls `tie_weights(recompute_mapping=...)`; OpenVLA's takes no argument.
    if model_cls is not None and not getattr(model_cls.tie_weights, "_tgrpo_shim", False):
        original = model_cls.tie_weights

        def tie_weights(self, *args, **kwargs):
            return original(self)
        tie_weights._tgrpo_shim = True
        model_cls.tie_weights = tie_weights
    # (3) transformers 5 moved PaddingStrategy, PreTokenizedInput, TextInput and TruncationStrategy out of
    # `transformers.tokenization_utils` (now an empty legacy alias), which processing_prismatic.py imports
    # them from at import time: put those four names back (only where missing), before it is imported.
    import transformers.tokenization_utils as legacy
    from transformers import tokenization_utils_base as base

    for name in _LEGACY_TOKENIZATION_NAMES:
        if not hasattr(legacy, name):
            setattr(legacy, name, getattr(base, name))
    # (4) transformers 5's processor machinery reads `valid_kwargs` from every image processor class.
    if image_processor_cls is not None and not hasattr(image_processor_cls, "valid_kwargs"):
        from transformers.processing_utils import ImagesKwargs

        image_processor_cls.valid_kwargs = ImagesKwargs


def load_remote_model(path: Path, dtype, device):
    """OpenVLA's own OpenVLAForActionPrediction from ``path``, in ``dtype`` on ``device``."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    _check_requirements()
    cls = get_class_from_dynamic_module(REMOTE_MODEL, str(path), local_files_only=True)
    apply_shims(cls)
    model = cls.from_pretrained(path, dtype=dtype, trust_remote_code=True, local_files_only=True,
                                attn_implementation="sdpa")
    return model.to(device=device, dtype=dtype)  # its language model came in text_config.torch_dtype


def load_remote_processor(path: Path):
    """OpenVLA's own PrismaticProcessor from ``path`` (shims (3) and (4) applied first)."""
    from transformers import AutoProcessor
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    _check_requirements()
    apply_shims()  # (3) must precede the processor module's import
    apply_shims(image_processor_cls=get_class_from_dynamic_module(REMOTE_IMAGE_PROCESSOR, str(path),
                                                                  local_files_only=True))
    return AutoProcessor.from_pretrained(path, trust_remote_code=True, local_files_only=True)


# ------------------------------------------------------------------------------ golden outputs of OpenVLA's code
INSTRUCTIONS = ("put the bowl on the plate", "pick up the alphabet soup and place it in the basket",
                "open the top drawer and put the bowl inside", "Turn on the stove")


def default_inputs(vocab_size: int = 32000, seed: int = 0) -> dict:
    """Four 224 px frames (7 x 7 grids of random colour blocks, a tint, pixel noise: differing content and
    statistics, as the shared fixture's), LIBERO instructions, and random action tokens to score."""
    import numpy as np

    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 7, 7, 3))
    images = np.repeat(np.repeat(blocks, 32, axis=1), 32, axis=2)  # (4, 224, 224, 3)
    images = images * rng.uniform(0.6, 1.0, (4, 1, 1, 3)) + rng.normal(0, 12, images.shape)
    return {"images": np.clip(images, 0, 255).astype(np.uint8), "instructions": np.array(INSTRUCTIONS),
            "given_actions": rng.integers(vocab_size - 256, vocab_size, (4, 7))}


def _returning(sequence):
    """A stand-in for ``generate`` (which transformers 5 no longer gives OpenVLA's class) returning ``sequence``."""
    return lambda input_ids, max_new_tokens=None, **kwargs: sequence


def make_golden(model_dir: str | Path, out: str | Path, unnorm_key: str | None = None, inputs: dict | None = None,
                device: str = "cpu") -> dict:
    """A golden.npz (the shared fixture's format) computed by OpenVLA's own code in float32, one input at a
    time: the reference ``python -m tgrpo_lib.policy.openvla verify`` checks the native model against on
    any checkpoint. Greedy tokens come from full forward passes (the fixture's ``greedy_tokens_nocache``,
    equal to its cached ones), actions from OpenVLA's own ``predict_action``, given those tokens."""
    import json

    import numpy as np
    import torch
    from PIL import Image

    path = Path(model_dir).expanduser()
    model, processor = load_remote_model(path, torch.float32, device), load_remote_processor(path)
    model.norm_stats = norm_stats_from_dir(path, model.norm_stats)  # as OpenVLA's LIBERO script's get_vla does
    key = resolve_unnorm_key(model.norm_stats, unnorm_key)
    g = dict(inputs) if inputs is not None else default_inputs(model.vocab_size)
    rows = {k: [] for k in ("prompt", "input_ids", "pixel_values", "logits_teacher_forced", "greedy_tokens", "actions")}
    for image, instruction, given in zip(g["images"], g["instructions"], g["given_actions"]):
        prompt = f"In: What action should the robot take to {str(instruction).lower()}?\nOut:"
        enc = processor(prompt, Image.fromarray(image))
        ids, px = enc["input_ids"].to(device), enc["pixel_values"].to(device, torch.float32)
        if int(ids[0, -1]) != 29871:  # predict_action's empty token
            ids = torch.cat([ids, torch.full_like(ids[:, :1], 29871)], dim=1)
        with torch.no_grad():
            forced = torch.cat([ids, torch.as_tensor(given[None], device=device)], dim=1)
            logits = model(input_ids=forced, attention_mask=torch.ones_like(forced), pixel_values=px).logits
            seq = ids
            for _ in range(7):  # full-vocabulary argmax, the whole sequence recomputed each step
                step = model(input_ids=seq, attention_mask=torch.ones_like(seq), pixel_values=px).logits[:, -1]
                seq = torch.cat([seq, step.argmax(-1, keepdim=True)], dim=1)
            model.generate = _returning(seq)  # predict_action decodes these tokens its own way
            actions = model.predict_action(input_ids=ids, unnorm_key=key, do_sample=False)
        values = {"prompt": prompt, "input_ids": ids[0].cpu().numpy(), "pixel_values": px[0].cpu().numpy(),
                  "logits_teacher_forced": logits[0, -8:-1].float().cpu().numpy(),
                  "greedy_tokens": seq[0, -7:].cpu().numpy(), "actions": np.asarray(actions, np.float64)}
        for name, value in values.items():
            rows[name].append(value)
    lengths = np.array([len(x) for x in rows["input_ids"]])
    padded = np.full((len(lengths), lengths.max()), -1, dtype=np.int64)
    for i, x in enumerate(rows["input_ids"]):
        padded[i, :len(x)] = x
    arrays = {**{k: np.stack(v) for k, v in rows.items() if k != "input_ids"}, "input_ids": padded,
              "input_ids_len": lengths, "images": g["images"], "instructions": np.asarray(g["instructions"]),
              "given_actions": np.asarray(g["given_actions"], dtype=np.int64), "unnorm_key": np.array(key),
              "info_json": np.array(json.dumps({"made_by": "tgrpo_lib.policy.openvla_remote.make_golden",
                                                "dtype": "float32", "attn_implementation": "sdpa"}))}
    np.savez_compressed(out, **arrays)
    return arrays


__all__ = ["apply_shims", "default_inputs", "load_remote_model", "load_remote_processor", "make_golden",
           "missing_remote_requirements"]
