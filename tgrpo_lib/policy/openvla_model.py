"""The native OpenVLA model: OpenVLA-7B's forward (its ``prismatic/extern/hf/`` code at c8f03f4, read as a
reference) on transformers' own classes, and its config built from a checkpoint's config.json and weights.

- two vision towers on the same image, channel-stacked in ``pixel_values`` (DINOv2 first): DINOv2-L/14
  with 4 registers (``Dinov2WithRegistersModel``) and SigLIP so400m/14 (``SiglipVisionModel``), both with
  exact GELU (SigLIP's config defaults to the tanh approximation) and LayerNorm eps 1e-6; each tower's
  feature is the output of its *second to last* block without the final norm, prefix tokens dropped, so
  the towers are built one block short;
- the fused-GELU projector ``fc3(gelu(fc2(gelu(fc1(cat(dino, siglip))))))``;
- a Llama-2 causal LM whose input embeddings are ``[emb(<s>), patches, emb(rest of the ids)]``;
  ``rms_norm_eps`` is LlamaConfig's default 1e-6, because OpenVLA's ``text_config`` names none.

Loading (meta device, weights straight into the target dtype): ``policy/openvla.py``.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import (Dinov2WithRegistersConfig, Dinov2WithRegistersModel, LlamaConfig, LlamaForCausalLM,
                          PreTrainedConfig, PreTrainedModel, SiglipVisionConfig, SiglipVisionModel)

ATTENTION = "sdpa"
"""What OpenVLA's code picks under transformers 4.40 by itself; eager differs by ~1e-5 in the logits."""


class OpenVLANativeConfig(PreTrainedConfig):
    """The native model's sub-configs (``text_config``, ``featurizer_config``, ``fused_config``) and OpenVLA's
    own fields, built by ``native_config`` from a checkpoint's config.json and weights."""

    model_type = "openvla"


class FusedGELUProjector(nn.Module):
    """OpenVLA's "fused-gelu-mlp" projector: vision width -> 4x -> LLM width -> LLM width, exact GELU."""

    def __init__(self, vision_width: int, llm_width: int):
        super().__init__()
        self.fc1 = nn.Linear(vision_width, 4 * vision_width)
        self.fc2 = nn.Linear(4 * vision_width, llm_width)
        self.fc3 = nn.Linear(llm_width, llm_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gelu = nn.functional.gelu
        return self.fc3(gelu(self.fc2(gelu(self.fc1(x)))))


class OpenVLANative(PreTrainedModel):
    """OpenVLA-7B's forward on transformers' classes. ``forward`` takes text-space ``input_ids`` /
    ``attention_mask`` (the image patches are spliced in after BOS here, and always attended): with
    ``pixel_values`` it encodes the prompt, without them it is a KV-cached decoding step."""

    config_class = OpenVLANativeConfig
    base_model_prefix = "openvla"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: OpenVLANativeConfig):
        super().__init__(config)
        self.vision_backbone = nn.ModuleDict({"featurizer": Dinov2WithRegistersModel(config.featurizer_config),
                                              "fused_featurizer": SiglipVisionModel(config.fused_config)})
        vision_width = config.featurizer_config.hidden_size + config.fused_config.hidden_size
        self.projector = FusedGELUProjector(vision_width, config.text_config.hidden_size)
        self.language_model = LlamaForCausalLM(config.text_config)
        self.n_prefix = 1 + config.featurizer_config.num_register_tokens  # DINOv2's cls + registers
        self.n_patches = (config.fused_config.image_size // config.fused_config.patch_size) ** 2

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.lm_head

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 6, H, W) channel-stacked pixels -> (B, P, dino + siglip width): each tower's second-to-last
        block (the towers hold no last block), no final norm, prefix tokens dropped."""
        dino, siglip = self.vision_backbone["featurizer"], self.vision_backbone["fused_featurizer"]
        dino_px, siglip_px = pixel_values.split(3, dim=1)
        d = dino.encoder(dino.embeddings(dino_px)).last_hidden_state[:, self.n_prefix:]  # (B, P, Wd)
        s = siglip.encoder(inputs_embeds=siglip.embeddings(siglip_px)).last_hidden_state  # (B, P, Ws)
        return torch.cat([d, s], dim=-1)

    def with_patches(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) text mask -> (B, P + T): ones for the patches after the BOS column."""
        ones = attention_mask.new_ones(attention_mask.shape[0], self.n_patches)
        return torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None, cache=None, use_cache: bool | None = None,
                logits_to_keep: int = 0, **kwargs):
        mask = self.with_patches(attention_mask) if attention_mask is not None else None
        if pixel_values is None:  # a decoding step: the patches are already in the cache
            return self.language_model(input_ids=input_ids, attention_mask=mask, cache=cache, use_cache=use_cache,
                                       logits_to_keep=logits_to_keep, **kwargs)
        embed = self.get_input_embeddings()
        text = embed(input_ids)  # (B, T, D)
        patches = self.projector(self.image_features(pixel_values)).to(text.dtype)  # (B, P, D)
        embeds = torch.cat([text[:, :1], patches, text[:, 1:]], dim=1)  # (B, 1 + P + T - 1, D)
        return self.language_model(inputs_embeds=embeds, attention_mask=mask, cache=cache, use_cache=use_cache,
                                   logits_to_keep=logits_to_keep, **kwargs)


def native_config(raw: dict, sizes: dict, attention: str = ATTENTION) -> OpenVLANativeConfig:
    """The native model's config from config.json (``raw``) and the tower sizes the weights show
    (``openvla_keys.tower_sizes``)."""
    image = raw.get("image_sizes", [224, 224])[0]
    dino, siglip = sizes["featurizer"], sizes["fused_featurizer"]
    for t in (dino, siglip):
        if (image // t["patch"]) ** 2 != t["patches"]:
            raise ValueError(f"image_sizes {image} with {t['patch']} px patches gives {(image // t['patch']) ** 2} "
                             f"patches but the checkpoint's position table has {t['patches']}: a damaged config.json?")
    if dino["mlp"] % dino["width"]:
        raise ValueError(f"DINOv2 MLP width {dino['mlp']} is not a multiple of its width {dino['width']}.")
    text = {k: v for k, v in raw["text_config"].items() if k not in ("model_type", "torch_dtype", "dtype")}
    text_config = LlamaConfig(**text, attn_implementation=attention)
    featurizer = Dinov2WithRegistersConfig(
        hidden_size=dino["width"], num_hidden_layers=dino["depth"] - 1, num_attention_heads=dino["heads"],
        mlp_ratio=dino["mlp"] // dino["width"], image_size=image, patch_size=dino["patch"],
        num_register_tokens=dino["registers"], layer_norm_eps=1e-6, hidden_act="gelu", attn_implementation=attention)
    fused = SiglipVisionConfig(
        hidden_size=siglip["width"], intermediate_size=siglip["mlp"], num_hidden_layers=siglip["depth"] - 1,
        num_attention_heads=siglip["heads"], image_size=image, patch_size=siglip["patch"], hidden_act="gelu",
        layer_norm_eps=1e-6, vision_use_head=False, attn_implementation=attention)
    return OpenVLANativeConfig(
        text_config=text_config, featurizer_config=featurizer, fused_config=fused,
        tower_depths={"featurizer": dino["depth"], "fused_featurizer": siglip["depth"]},
        n_action_bins=raw.get("n_action_bins", 256), pad_to_multiple_of=raw.get("pad_to_multiple_of", 0),
        norm_stats=raw.get("norm_stats") or {}, attn_implementation=attention)


__all__ = ["ATTENTION", "FusedGELUProjector", "OpenVLANative", "OpenVLANativeConfig", "native_config"]
