"""A policy's architecture on the meta device (shapes, no weights), for the memory plan
(``tgrpo_lib.paper_scale.plan``): the parameter counts come from the module itself, the activation estimate
from the transformer stacks (``Stack``) it is made of.

- ``openvla_7b()``: OpenVLA-7B's parameter shapes without its remote code or timm: a Llama-2-7B
  language model (transformers' own ``LlamaForCausalLM``, vocabulary 32000 + 64 padding), the fused
  DINOv2-L/14 (4 registers) + SigLIP-so400m/14 vision towers at 224 px (layer scale, SigLIP's
  attention-pooling head), and the 3-layer GELU projector 2176 -> 8704 -> 4096 -> 4096. 256 image
  patches per tower, concatenated on channels. ``native=True`` (the default path, ``policy/openvla.py``)
  plans the native model: the towers are transformers layers (q, k, v apart; recomputed in the
  backward pass like the Llama layers) and only the last positions' logits are computed;
  ``native=False`` plans OpenVLA's remote code (timm towers with a fused qkv that keep their
  activations, every position's logits). Both count the released checkpoint's parameters; the native
  model leaves out the towers' unused last blocks and pool head (43 M, 0.6 %).
- ``from_model_dir(path)``: the architecture a local HF model directory describes (config.json only;
  no weight is read). OpenVLA directories (``model_type == "openvla"``) get the mirror above with
  the directory's own language-model config.

LoRA "all-linear" (peft) wraps every ``nn.Linear`` but the output layer: ``lora_parameters``.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

OPENVLA_TEXT_TOKENS = 40
"""Prompt tokens besides the image: BOS + OpenVLA's prompt around the longest LIBERO instruction
(~30 Llama tokens) + the empty token, rounded up."""
ACTION_TOKENS = 7


@dataclass(frozen=True)
class Stack:
    """One stack of identical transformer layers, as the activation estimate sees it."""

    name: str
    layers: int  # layers the loss depends on (OpenVLA reads its towers' second-to-last layer)
    width: int
    ffn: int
    tokens: int  # tokens per sequence through this stack
    heads: int
    kv_width: int  # width of the k and v projections (grouped-query attention: < width)
    norm: str  # "rms" (Llama: upcasts its input to float32) | "layer"
    mlp: str  # "swiglu" (gate, up, down) | "gelu" (fc1, fc2)
    fused_qkv: bool  # one qkv projection (timm) or three (HF)
    checkpointed: bool  # HF layer, recomputed in the backward pass when checkpointing is on

    @property
    def lora_linears(self) -> int:
        return (1 if self.fused_qkv else 3) + 1 + (3 if self.mlp == "swiglu" else 2)


@dataclass(frozen=True)
class Projector:
    """The MLP between the vision towers and the language model (Linear, GELU, Linear[, GELU, Linear])."""

    dims: tuple[int, ...]  # e.g. (2176, 8704, 4096, 4096)
    tokens: int


@dataclass
class Architecture:
    name: str
    module: nn.Module  # on the meta device
    stacks: list[Stack]
    projector: Projector
    vocab: int  # rows of the output layer
    lm_tokens: int  # sequence length through the language model (image + text + actions)
    output_layer: nn.Module | None = None
    keeps_logits: bool = True  # its forward takes logits_to_keep (else every position's logits are computed)
    notes: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def lora_parameters(self, rank: int) -> int:
        """Parameters LoRA "all-linear" of this rank adds: r (in + out) per nn.Linear but the output layer."""
        skip = self.output_layer
        return sum(rank * (m.in_features + m.out_features) for m in self.module.modules()
                   if isinstance(m, nn.Linear) and m is not skip)


# ------------------------------------------------------------------------------ OpenVLA-7B
class _LayerScale(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(d))


class _Block(nn.Module):
    """A ViT block: pre-norm attention with one qkv projection (timm) or three (transformers), GELU MLP,
    optional layer scale."""

    def __init__(self, d: int, ffn: int, layer_scale: bool, split_qkv: bool = False):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        qkv = {n: nn.Linear(d, d) for n in "qkv"} if split_qkv else {"qkv": nn.Linear(d, 3 * d)}
        self.attn = nn.ModuleDict({**qkv, "proj": nn.Linear(d, d)})
        self.mlp = nn.ModuleDict({"fc1": nn.Linear(d, ffn), "fc2": nn.Linear(ffn, d)})
        if layer_scale:
            self.ls1, self.ls2 = _LayerScale(d), _LayerScale(d)


class _ViT(nn.Module):
    """timm's VisionTransformer parameters at 14 px patches (``num_classes=0``)."""

    def __init__(self, d: int, depth: int, ffn: int, image: int, cls_token: bool, reg_tokens: int,
                 layer_scale: bool, map_head: bool, split_qkv: bool = False):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, d, 14, 14)
        self.cls_token = nn.Parameter(torch.empty(1, 1, d)) if cls_token else None
        self.reg_token = nn.Parameter(torch.empty(1, reg_tokens, d)) if reg_tokens else None
        self.pos_embed = nn.Parameter(torch.empty(1, (image // 14) ** 2, d))  # patches only (no_embed_class / no cls)
        self.blocks = nn.ModuleList(_Block(d, ffn, layer_scale, split_qkv) for _ in range(depth))
        self.norm = nn.LayerNorm(d)
        if map_head:  # SigLIP's attention-pooling head: built, never read by OpenVLA
            self.attn_pool = nn.ModuleDict({"q": nn.Linear(d, d), "kv": nn.Linear(d, 2 * d), "proj": nn.Linear(d, d),
                                            "norm": nn.LayerNorm(d), "fc1": nn.Linear(d, ffn),
                                            "fc2": nn.Linear(ffn, d)})
            self.latent = nn.Parameter(torch.empty(1, 1, d))


class _OpenVLAMirror(nn.Module):
    def __init__(self, text_config, image: int = 224, split_qkv: bool = False):
        from transformers import LlamaForCausalLM

        super().__init__()
        self.vision_backbone = nn.ModuleDict({
            "featurizer": _ViT(1024, 24, 4096, image, cls_token=True, reg_tokens=4, layer_scale=True, map_head=False,
                               split_qkv=split_qkv),
            "fused_featurizer": _ViT(1152, 27, 4304, image, cls_token=False, reg_tokens=0, layer_scale=False,
                                     map_head=True, split_qkv=split_qkv)})
        vision = 1024 + 1152
        d = text_config.hidden_size
        self.projector = nn.ModuleDict({"fc1": nn.Linear(vision, 4 * vision), "fc2": nn.Linear(4 * vision, d),
                                        "fc3": nn.Linear(d, d)})
        self.language_model = LlamaForCausalLM(text_config)


def llama2_7b_config(vocab_size: int = 32064):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048)


def openvla_7b(text_config=None, text_tokens: int = OPENVLA_TEXT_TOKENS, checkpointing: bool = True,
               native: bool = True) -> Architecture:
    """OpenVLA-7B's architecture (see the module docstring) on the meta device."""
    text_config = text_config or llama2_7b_config()
    with torch.device("meta"):
        module = _OpenVLAMirror(text_config, split_qkv=native)
    patches = 256
    d, L = text_config.hidden_size, text_config.num_hidden_layers
    heads = text_config.num_attention_heads
    kv = d * (getattr(text_config, "num_key_value_heads", None) or heads) // heads
    lm_tokens = patches + text_tokens + 1 + ACTION_TOKENS  # + the empty token 29871
    tower = "transformers" if native else "timm"
    stacks = [
        # OpenVLA reads each tower's second-to-last layer: the last one never reaches the loss
        Stack(f"DINOv2-L/14 ({tower})", 23, 1024, 4096, patches + 1 + 4, 16, 1024, "layer", "gelu", not native,
              checkpointing and native),
        Stack(f"SigLIP-so400m/14 ({tower})", 26, 1152, 4304, patches, 16, 1152, "layer", "gelu", not native,
              checkpointing and native),
        Stack("Llama-2-7B", L, d, text_config.intermediate_size, lm_tokens, text_config.num_attention_heads, kv,
              "rms", "swiglu", False, checkpointing),
    ]
    notes = (["native OpenVLA (policy/openvla.py): its vision towers are transformers layers, checkpointed like "
              "the Llama layers"] if native else
             ["OpenVLA's remote code: its vision towers are timm modules, which HF checkpointing does not reach "
              "(they keep their activations)", "OpenVLA's remote forward computes the logits of every position"])
    return Architecture("openvla-7b", module, stacks, Projector((2176, 8704, d, d), patches), text_config.vocab_size,
                        lm_tokens, module.language_model.lm_head, keeps_logits=native, notes=notes)


# ------------------------------------------------------------------------------ from a model directory
def from_model_dir(path: str | Path, text_tokens: int = OPENVLA_TEXT_TOKENS,
                   checkpointing: bool = True) -> Architecture:
    """The architecture of a local HF model directory (its config.json; weights are not read)."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: pass a local HF model directory (e.g. openvla-7b).")
    raw = json.loads((path / "config.json").read_text())
    if raw.get("model_type") == "openvla":
        from transformers import LlamaConfig

        arch = openvla_7b(LlamaConfig(**raw["text_config"]), text_tokens, checkpointing)
        arch.name = f"openvla ({path.name})"
        return arch
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    if not (hasattr(config, "vision_config") and hasattr(config, "text_config")):
        raise ValueError(f"{path}: the plan knows Llava-style models (vision_config + text_config) and OpenVLA; "
                         f"got model_type {raw.get('model_type')!r}.")
    with torch.device("meta"):
        module = AutoModelForImageTextToText.from_config(config)
    v, t = config.vision_config, config.text_config
    layer = getattr(config, "vision_feature_layer", -1)
    vision_layers = v.num_hidden_layers + 1 + layer if isinstance(layer, int) and layer < 0 else v.num_hidden_layers
    patches = (v.image_size // v.patch_size) ** 2
    kv = t.hidden_size * getattr(t, "num_key_value_heads", t.num_attention_heads) // t.num_attention_heads
    lm_tokens = patches + text_tokens + ACTION_TOKENS
    stacks = [Stack(f"{v.model_type} vision", vision_layers, v.hidden_size, v.intermediate_size, patches,
                    v.num_attention_heads, v.hidden_size, "layer", "gelu", False, checkpointing),
              Stack(f"{t.model_type} text", t.num_hidden_layers, t.hidden_size, t.intermediate_size, lm_tokens,
                    t.num_attention_heads, kv, "rms", "swiglu", False, checkpointing)]
    keeps = any(k in inspect.signature(module.forward).parameters for k in ("logits_to_keep", "num_logits_to_keep"))
    head = module.get_output_embeddings()
    return Architecture(f"{raw.get('model_type')} ({path.name})", module, stacks,
                        Projector((v.hidden_size, t.hidden_size, t.hidden_size), patches),
                        head.weight.shape[0], lm_tokens, head, keeps)


__all__ = ["ACTION_TOKENS", "Architecture", "OPENVLA_TEXT_TOKENS", "Projector", "Stack", "from_model_dir",
           "llama2_7b_config", "openvla_7b"]
