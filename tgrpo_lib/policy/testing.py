"""Builders for tests: a tiny, randomly initialised HF VLA of a real architecture (Llava with a
SigLIP vision tower and a Llama text model) whose 32000-id vocabulary ends with OpenVLA's 256
action ids, saved to a directory so it loads through the same code path as OpenVLA-7B.
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
