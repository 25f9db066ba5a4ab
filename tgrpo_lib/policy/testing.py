"""Builders for tests and benchmarks: a tiny, randomly initialised HF VLA of a real architecture (Llava
with a SigLIP vision tower and a Llama text model) whose 32000-id vocabulary ends with OpenVLA's 256
action ids, saved to a directory so it loads through the same code path as OpenVLA-7B; and an OpenVLA
checkpoint directory with random weights drawn at load time (``build_openvla_dir``), 7B or tiny.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_SENTENCES = [
    "In: What action should the robot take to pick up the alphabet soup and place it in the basket?\nOut:",
    "In: What action should the robot take to open the top drawer of the cabinet?\nOut:",
    "In: What action should the robot take to put the bowl on the plate?\nOut:",
    "turn on the stove and put the moka pot on it",
]


def build_tiny_llava(directory: str | Path, vocab_size: int = 32000, image_size: int = 32, seed: int = 0) -> Path:
    """Write a ~6M-parameter Llava (SigLIP 2x32 + Llama 2x64) with processor to ``directory``.

    ``vocab_size`` is the tokenizer's base vocabulary (the action ids are its last 256); the
    ``<image>`` placeholder is added after it, and the embedding matrix is padded to a multiple
    of 64 like OpenVLA's.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor,
                              PreTrainedTokenizerFast, SiglipImageProcessorPil, SiglipVisionConfig)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(_SENTENCES, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"]))
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    n_real = len(vocab)
    if vocab_size > n_real:  # filler entries no merge produces; the top 256 of them are the action ids
        vocab.update({f"<extra_{i}>": i for i in range(n_real, vocab_size)})
    tok = Tokenizer.from_str(json.dumps(spec))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_token_id = fast.convert_tokens_to_ids("<image>")
    padded_vocab = ((len(fast) + 63) // 64) * 64

    patch = 8
    config = LlavaConfig(
        vision_config=SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=image_size, patch_size=patch),
        text_config=LlamaConfig(vocab_size=padded_vocab, hidden_size=64, intermediate_size=128,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                max_position_embeddings=512, bos_token_id=1, eos_token_id=2, pad_token_id=2),
        image_token_index=image_token_id, vision_feature_select_strategy="full", vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(directory)
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=fast, patch_size=patch,
                               vision_feature_select_strategy="full", image_token="<image>")
    processor.save_pretrained(directory)
    return directory


def synthetic_obs(batch: int = 4, size: int = 128, wrist: bool = True, seed: int = 0) -> dict:
    """Random uint8 camera images and proprio in the env layer's observation format."""
    rng = np.random.default_rng(seed)
    obs = {"agentview": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
           "proprio": rng.normal(size=(batch, 8)).astype(np.float32)}
    if wrist:
        obs["wrist"] = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    return obs


OPENVLA_SIZES = {
    # tower sizes as openvla_keys.tower_sizes reads them off a checkpoint; text: config.json's text_config
    "7b": {"towers": {"featurizer": dict(width=1024, heads=16, depth=24, patch=14, mlp=4096, patches=256, registers=4),
                      "fused_featurizer": dict(width=1152, heads=16, depth=27, patch=14, mlp=4304, patches=256,
                                               registers=0)},
           "text": {}},  # OpenVLA-7B's text_config names no size: LlamaConfig's defaults are Llama-2-7B's
    "tiny": {"towers": {"featurizer": dict(width=128, heads=2, depth=3, patch=14, mlp=512, patches=256, registers=4),
                        "fused_featurizer": dict(width=144, heads=2, depth=3, patch=14, mlp=538, patches=256,
                                                 registers=0)},
             "text": dict(hidden_size=64, intermediate_size=172, num_attention_heads=4, num_hidden_layers=2,
                          num_key_value_heads=4)},
}
"""Sizes of ``build_openvla_dir``: OpenVLA-7B's, and the shared openvla-tiny fixture's."""


def build_openvla_dir(directory: str | Path, size: str = "7b", seed: int = 0) -> Path:
    """An OpenVLA checkpoint directory in OpenVLA's format with ``random_weights.json`` in place of weights:
    config.json (4.40-era layout), a synthetic Llama-layout tokenizer (32000 ids, the last 256 the action
    ids, ``<PAD>`` = 32000), preprocessor_config.json and flat action statistics for the four LIBERO suites.
    The native loader draws the weights on the device (``openvla.RANDOM_WEIGHTS``): no download."""
    from tokenizers import Tokenizer, models, processors, trainers
    from tokenizers import normalizers as norm
    from transformers import PreTrainedTokenizerFast

    if size not in OPENVLA_SIZES:
        raise ValueError(f"size must be one of {sorted(OPENVLA_SIZES)}; got {size!r}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = OPENVLA_SIZES[size]
    text = {"model_type": "llama", "pad_token_id": 32000, "torch_dtype": "bfloat16", "vocab_size": 32064,
            **spec["text"]}
    config = {"model_type": "openvla", "arch_specifier": "no-align+fused-gelu-mlp", "use_fused_vision_backbone": True,
              "image_sizes": [224, 224], "image_resize_strategy": "resize-naive", "n_action_bins": 256,
              "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
              "timm_override_act_layers": [None, None], "pad_to_multiple_of": 64, "pad_token_id": 32000,
              "llm_max_length": 2048, "norm_stats": {}, "text_config": text, "torch_dtype": "bfloat16"}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "random_weights.json").write_text(json.dumps({"seed": seed, "towers": spec["towers"]}, indent=2))
    means = [[0.484375, 0.455078125, 0.40625], [0.5] * 3]  # DINOv2's bf16-rounded, as OpenVLA's converter saved
    stds = [[0.228515625, 0.2236328125, 0.224609375], [0.5] * 3]
    (directory / "preprocessor_config.json").write_text(json.dumps({
        "image_resize_strategy": "resize-naive", "tvf_do_letterbox": False,
        "tvf_resize_params": [{"size": [224, 224], "interpolation": 3}] * 2,
        "tvf_crop_params": [{"output_size": [224, 224]}] * 2,
        "tvf_normalize_params": [{"mean": m, "std": sd} for m, sd in zip(means, stds)]}, indent=2))
    flat = {"action": {"q01": [-1.0] * 6 + [0.0], "q99": [1.0] * 6 + [1.0], "mask": [True] * 6 + [False]}}
    suites = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
    (directory / "dataset_statistics.json").write_text(json.dumps({f"{s}_no_noops": flat for s in suites}, indent=2))
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = norm.Sequence([norm.Prepend("▁"), norm.Replace(" ", "▁")])  # Llama-2's layout
    tok.train_from_iterator(_SENTENCES, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"]))
    spec_json = json.loads(tok.to_str())
    vocab = spec_json["model"]["vocab"]
    vocab.update({f"<filler_{i}>": i for i in range(len(vocab), 32000)})  # the top 256 are the action ids
    tok = Tokenizer.from_str(json.dumps(spec_json))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])  # BOS, no EOS
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<PAD>")  # <PAD> is added as id 32000, as OpenVLA's converter does
    fast.save_pretrained(directory)
    return directory
