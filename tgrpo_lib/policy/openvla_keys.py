"""OpenVLA's checkpoint layout -> the native model's (``policy/openvla.py``): tower sizes read off the
tensor shapes, and one pure function that maps each checkpoint tensor to the native tensors it becomes.

OpenVLA's ``config.json`` names its vision towers only by timm ids (``timm_model_ids``) and so records no
size: the sizes come from the weights. Widths, depths and MLP widths are tensor shapes; the number of
heads is not, but OpenVLA's towers keep their pretrained head dims (DINOv2 64, SigLIP so400m 72), so
``heads = width // head_dim`` (true for OpenVLA-7B and for the shared tiny fixture alike).

Checkpoint (timm inside OpenVLA)                 native (transformers' own classes)
``vision_backbone.featurizer.*``  DINOv2-reg4  -> ``vision_backbone.featurizer.*``  Dinov2WithRegistersModel
``vision_backbone.fused_featurizer.*`` SigLIP  -> ``vision_backbone.fused_featurizer.*`` SiglipVisionModel
``projector.fc{1,2,3}``, ``language_model.*``  -> the same names (plain Linear layers, LlamaForCausalLM)

OpenVLA reads each tower's *second to last* block, so the native towers are built one block short: the
last block, SigLIP's attention-pool head and nothing else are dropped (``UNUSED``). The final ``norm``
maps to the towers' final LayerNorm, which the native forward, like OpenVLA's, never applies.
"""
from __future__ import annotations

import re

DINO, SIGLIP = "vision_backbone.featurizer.", "vision_backbone.fused_featurizer."
DINO_HEAD_DIM, SIGLIP_HEAD_DIM = 64, 72
"""Head dims of OpenVLA's pretrained towers (DINOv2-L/14: 1024 / 16; SigLIP so400m/14: 1152 / 16)."""

_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")
# timm block -> transformers layer, per tower (qkv is split separately)
_DINO_BLOCK = {"norm1": "norm1", "norm2": "norm2", "attn.proj": "attention.o_proj", "mlp.fc1": "mlp.fc1",
               "mlp.fc2": "mlp.fc2", "ls1.scale_factor": "layer_scale1.lambda1",
               "ls2.scale_factor": "layer_scale2.lambda1"}
_SIGLIP_BLOCK = {"norm1": "layer_norm1", "norm2": "layer_norm2", "attn.proj": "self_attn.out_proj",
                 "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_DINO_TOP = {"cls_token": "embeddings.cls_token", "reg_token": "embeddings.register_tokens",
             "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
             "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
             "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
_SIGLIP_TOP = {"patch_embed.proj.weight": "embeddings.patch_embedding.weight",
               "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
               "norm.weight": "post_layernorm.weight", "norm.bias": "post_layernorm.bias"}


def tower_sizes(shapes: dict[str, tuple[int, ...]]) -> dict:
    """Both towers' sizes from the checkpoint's ``{key: shape}`` (see the module docstring)."""
    out = {}
    for name, prefix, head_dim in (("featurizer", DINO, DINO_HEAD_DIM), ("fused_featurizer", SIGLIP, SIGLIP_HEAD_DIM)):
        if f"{prefix}pos_embed" not in shapes:
            raise ValueError(f"the checkpoint has no {prefix}pos_embed: not an OpenVLA checkpoint with the fused "
                             "DINOv2 + SigLIP backbone ('dinosiglip-vit-so-224px'); pass one that is, or load it "
                             "with PolicyConfig(remote_code=True) (OpenVLA's own code).")
        width = shapes[f"{prefix}pos_embed"][-1]
        if width % head_dim:
            raise ValueError(f"{prefix} width {width} is not a multiple of the pretrained head dim {head_dim}: "
                             "the number of heads cannot be inferred; use PolicyConfig(remote_code=True).")
        blocks = {int(m.group(1)) for k in shapes if k.startswith(prefix) and (m := _BLOCK.match(k[len(prefix):]))}
        patch = shapes[f"{prefix}patch_embed.proj.weight"][-1]
        out[name] = dict(width=width, heads=width // head_dim, depth=len(blocks), patch=patch,
                         mlp=shapes[f"{prefix}blocks.0.mlp.fc1.weight"][0], patches=shapes[f"{prefix}pos_embed"][1],
                         registers=shapes[f"{prefix}reg_token"][1] if f"{prefix}reg_token" in shapes else 0)
    if "cls_token" not in "".join(k for k in shapes if k.startswith(DINO)):
        raise ValueError("the checkpoint's featurizer has no cls_token: not OpenVLA's DINOv2 featurizer.")
    return out


def is_unused(key: str, depth: dict[str, int]) -> bool:
    """Checkpoint tensors OpenVLA's forward never reads: each tower's last block, SigLIP's attention pool."""
    for prefix, name in ((DINO, "featurizer"), (SIGLIP, "fused_featurizer")):
        if key.startswith(prefix):
            rest = key[len(prefix):]
            m = _BLOCK.match(rest)
            return rest.startswith("attn_pool.") or bool(m and int(m.group(1)) == depth[name] - 1)
    return False


def native_tensors(key: str, tensor):
    """One checkpoint tensor -> the list of ``(native key, tensor)`` it becomes ([] when unused is
    decided by the caller). Pure: shapes change only where the layouts differ (fused qkv split in three;
    DINOv2's patch-only position table gains a zero row for the cls token, which timm leaves unpositioned;
    SigLIP's (1, P, D) table becomes an embedding matrix)."""
    import torch

    for prefix, top, block, qkv in ((DINO, _DINO_TOP, _DINO_BLOCK, "attention.{}_proj"),
                                     (SIGLIP, _SIGLIP_TOP, _SIGLIP_BLOCK, "self_attn.{}_proj")):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        layers = "encoder.layer." if prefix == DINO else "encoder.layers."
        if rest == "pos_embed":
            if prefix == DINO:
                zero = torch.zeros_like(tensor[:, :1])
                return [(prefix + "embeddings.position_embeddings", torch.cat([zero, tensor], dim=1))]
            return [(prefix + "embeddings.position_embedding.weight", tensor[0])]
        if rest in top:
            return [(prefix + top[rest], tensor)]
        m = _BLOCK.match(rest)
        if m:
            i, part = m.group(1), m.group(2)
            if part.startswith("attn.qkv."):
                kind = part.rsplit(".", 1)[1]  # weight | bias
                return [(f"{prefix}{layers}{i}.{qkv.format(n)}.{kind}", t)
                        for n, t in zip("qkv", tensor.chunk(3, dim=0))]
            if part in block:  # LayerScale: a bare parameter, no .weight / .bias
                return [(f"{prefix}{layers}{i}.{block[part]}", tensor)]
            stem, kind = part.rsplit(".", 1)
            if stem in block:
                return [(f"{prefix}{layers}{i}.{block[stem]}.{kind}", tensor)]
        raise KeyError(f"unknown OpenVLA vision key {key!r}: is this checkpoint from another OpenVLA version?")
    if key.startswith(("projector.", "language_model.")):
        return [(key, tensor)]
    raise KeyError(f"unknown OpenVLA key {key!r}: is this checkpoint from another OpenVLA version?")


__all__ = ["DINO", "SIGLIP", "is_unused", "native_tensors", "tower_sizes"]
