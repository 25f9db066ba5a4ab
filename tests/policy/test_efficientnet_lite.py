"""EfficientNet-Lite0 encoder: TF-SAME padding, BatchNorm folding, and the oneDNN fast path
against the plain (unfused) module."""
import copy

import pytest
import torch
from torch import nn

import tgrpo_lib  # noqa: F401  (OMP / HF env before torch work)
from tgrpo_lib.policy.efficientnet_lite import (EfficientNetLite0, FastLite0Features, fast_path_available,
                                                fold_batchnorm, folded_conv_params, same_padding)

needs_onednn = pytest.mark.skipif(not fast_path_available(), reason="torch built without oneDNN")


def test_same_padding_hand_checked():
    # TF SAME: out = ceil(n / s); total pad = (out - 1) * s + k - n, the extra pixel goes after
    assert same_padding(64, 3, 2) == (0, 1)  # 31 * 2 + 3 - 64 = 1
    assert same_padding(32, 5, 2) == (1, 2)  # 15 * 2 + 5 - 32 = 3
    assert same_padding(7, 3, 2) == (1, 1)  # 3 * 2 + 3 - 7 = 2
    assert same_padding(64, 3, 1) == (1, 1)
    assert same_padding(8, 5, 1) == (2, 2)
    assert same_padding(4, 1, 1) == (0, 0)


def test_folded_conv_params_hand_checked():
    conv = nn.Conv2d(1, 2, 1, bias=False)
    bn = nn.BatchNorm2d(2, eps=0.0).eval()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, 3.0]).reshape(2, 1, 1, 1))
        bn.weight.copy_(torch.tensor([1.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0]))
        bn.running_mean.copy_(torch.tensor([4.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    w, b = folded_conv_params(conv, bn)
    # scale = gamma / sqrt(var) = (0.5, 0.5); w' = w * scale; b' = beta - mean * scale
    torch.testing.assert_close(w.flatten(), torch.tensor([1.0, 1.5]))
    torch.testing.assert_close(b, torch.tensor([-2.0, 0.0]))
    x = torch.randn(3, 1, 2, 2)
    torch.testing.assert_close(nn.functional.conv2d(x, w, b), bn(conv(x)))


def _random_lite0(seed: int) -> EfficientNetLite0:
    """Random weights with non-trivial BN statistics, so folding really changes the weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EfficientNetLite0(num_classes=10).eval().requires_grad_(False)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model


def _pixels(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


@needs_onednn
@pytest.mark.parametrize("batch,height,width", [(4, 128, 128), (3, 100, 76)])
def test_fast_features_equal_unfused_reference(batch, height, width):
    """The act-time shape, and an odd batch / non-square size (other pre-packed weight layout,
    asymmetric SAME padding on both axes) give the unfused module's numbers to 1e-4."""
    model = _random_lite0(0)
    x = _pixels(batch, 3, height, width)
    with torch.no_grad():
        reference = model.features(x)  # (B, 1280, h, w), BN layers intact
    assert reference.std() > 0.05  # a live network, not all-zero or saturated ReLU6 outputs
    fast_from_folded = FastLite0Features(fold_batchnorm(copy.deepcopy(model)))
    fast_from_unfolded = FastLite0Features(model)  # folds on its own, leaves the module untouched
    for fast in (fast_from_folded, fast_from_unfolded):
        first = fast(x.contiguous(memory_format=torch.channels_last))
        assert first.shape == reference.shape == (batch, 1280, -(-height // 32), -(-width // 32))
        torch.testing.assert_close(first, reference, atol=1e-4, rtol=0)
        # a second call reuses the zero-bordered padding buffers: borders must still be zero
        torch.testing.assert_close(fast(x), first, atol=0, rtol=0)
    assert isinstance(model._bn0, nn.BatchNorm2d)


@needs_onednn
def test_fast_features_buffers_follow_input_shapes(monkeypatch):
    """Alternating shapes (agentview 128 px + wrist 64 px in one act) keep one buffer set each;
    buffers over the size cap are used once and dropped."""
    model = _random_lite0(1)
    fast = FastLite0Features(fold_batchnorm(copy.deepcopy(model)))
    x4, x2, small = _pixels(4, 3, 64, 64), _pixels(2, 3, 64, 64), _pixels(4, 3, 32, 32)
    with torch.no_grad():
        refs = [model.features(x) for x in (x4, x2, small)]
    for _ in range(2):
        for x, ref in zip((x4, x2, small), refs):
            torch.testing.assert_close(fast(x), ref, atol=1e-4, rtol=0)
    # stem + the 4 stride-2 depthwise convs pad asymmetrically, once per input shape
    assert len(fast._pad_buffers) == 5 * 3
    monkeypatch.setattr(FastLite0Features, "KEEP_BUFFER_BYTES", 700_000)
    fast._pad_buffers.clear()
    big = _pixels(8, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fast(big), model.features(big), atol=1e-4, rtol=0)
    kept = [b.numel() * b.element_size() for b in fast._pad_buffers.values()]
    assert 0 < len(kept) < 5 and max(kept) <= 700_000  # 8 x 33 x 33 x 96 floats (3.3 MB) not kept


@needs_onednn
def test_fast_features_pretrained_weights():
    from tgrpo_lib.policy.efficientnet_lite import load_pretrained_lite0

    try:
        model = load_pretrained_lite0()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    uint8 = torch.randint(0, 256, (4, 3, 128, 128), generator=torch.Generator().manual_seed(0))
    pixels = (uint8.float() - 127.0) / 128.0
    with torch.no_grad():
        reference = model.features(pixels)
    torch.testing.assert_close(FastLite0Features(model)(pixels), reference, atol=1e-4, rtol=0)


@pytest.mark.skipif(not fast_path_available(torch.bfloat16), reason="no oneDNN bfloat16 convolutions on this CPU")
def test_bfloat16_fast_features_round_the_float32_ones():
    """bfloat16 fast path: float32 in and out, the module's numbers to bfloat16 rounding (a few %
    of the feature norm), and the same numbers as the module run in bfloat16 through ATen."""
    model = _random_lite0(2)
    x = _pixels(4, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = model.features(x)
        aten_bf16 = fold_batchnorm(copy.deepcopy(model)).to(torch.bfloat16).features(x.to(torch.bfloat16)).float()
    fast = FastLite0Features(model, dtype=torch.bfloat16)
    out = fast(x)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    relative = ((out - reference).norm() / reference.norm()).item()
    assert 1e-4 < relative < 0.1  # rounded, not a float32 run, and not a different network
    assert ((out - aten_bf16).norm() / reference.norm()).item() < 0.1
    torch.testing.assert_close(fast(x), out, atol=0, rtol=0)  # deterministic, buffers reused
    with pytest.raises(ValueError, match="float32 or torch.bfloat16"):
        FastLite0Features(model, dtype=torch.float16)
