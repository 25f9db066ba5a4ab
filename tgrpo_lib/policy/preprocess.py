"""OpenVLA's LIBERO evaluation preprocessing, step by step, on uint8 (H, W, 3) frames that the env
layer already flipped (``img[::-1, ::-1]``), plus where a checkpoint keeps its action statistics.

OpenVLA's published script (``experiments/robot/libero/``) renders 256 px, then
1. JPEG-encodes and decodes the frame (its RLDS training frames were JPEG): ``jpeg_round_trip``;
2. resizes it to 224 with an antialiased Lanczos-3 filter in float, rounding back to uint8:
   ``lanczos_resize``;
3. for checkpoints trained with random-crop augmentation, keeps the centered 0.9 of the image
   *area* (side sqrt(0.9)) and resizes it back to 224 bilinearly: ``center_crop``;
and hands the result to the model's processor. The script does these with TensorFlow; here they
are numpy + Pillow: the crop follows ``tf.image.crop_and_resize`` and ``convert_image_dtype``
exactly (same sample grid, float32 arithmetic, x 255.5 truncation), the Lanczos filter is the same
kernel with the same support and normalisation (float rounding aside), and the JPEG round trip
encodes like ``tf.image.encode_jpeg`` (libjpeg, quality 95, 4:2:0 chroma, accurate forward DCT) and
decodes like ``tf.io.decode_image``: with libjpeg's *fast integer* inverse DCT (JDCT_IFAST, TF's
default ``dct_method``) and fancy upsampling. Pillow can only decode with the accurate inverse DCT
(JDCT_ISLOW), which changes ~65 % of the values of a 256 px frame at quality 95, by up to 7 levels;
the frames OpenVLA was trained on (RLDS, decoded by TF) and evaluated on went through the fast one,
so the decode is ``simplejpeg.decode_jpeg(..., fastdct=True)`` (libjpeg-turbo's TurboJPEG API).

Action statistics: OpenVLA's loader reads ``dataset_statistics.json`` from the checkpoint
directory when it is there (fine-tuned checkpoints) and otherwise the config's ``norm_stats``;
the un-normalisation key of a LIBERO suite is ``{suite}``, or ``{suite}_no_noops`` when only that
one exists. ``norm_stats_from_dir`` and ``resolve_unnorm_key`` do the same.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

OPENVLA_JPEG_QUALITY = 95  # tf.image.encode_jpeg's default quality
OPENVLA_IMAGE_SIZE = 224
OPENVLA_CROP_AREA = 0.9
OPENVLA_RENDER_SIZE = 256


def _check_frame(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected one uint8 (H, W, 3) frame, got {img.dtype} {img.shape}: pass the env's "
                         "obs['agentview'][i].")
    return img


def jpeg_round_trip(img: np.ndarray, quality: int = OPENVLA_JPEG_QUALITY) -> np.ndarray:
    """(H, W, 3) uint8 -> the same frame after TensorFlow's JPEG encode/decode at ``quality``: 4:2:0
    chroma, accurate forward DCT, fast integer inverse DCT with fancy upsampling (module docstring)."""
    from PIL import Image

    try:
        import simplejpeg
    except ImportError as exc:  # a pinned dependency; a hand-made environment may lack it
        raise ImportError("jpeg_quality needs simplejpeg (decodes with TF's fast integer IDCT): "
                          "pip install simplejpeg==1.9.0") from exc
    buf = io.BytesIO()
    Image.fromarray(_check_frame(img)).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    return simplejpeg.decode_jpeg(buf.getvalue(), colorspace="RGB", fastdct=True, fastupsample=False)


def lanczos_resize(img: np.ndarray, size: int = OPENVLA_IMAGE_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: antialiased Lanczos-3 in float per channel, then
    round half to even and clip (``tf.image.resize(..., "lanczos3", antialias=True)``, ``tf.round``)."""
    from PIL import Image

    img = _check_frame(img)
    if img.shape[:2] == (size, size):
        return img.copy()
    channels = [np.asarray(Image.fromarray(img[..., c].astype(np.float32))
                           .resize((size, size), Image.Resampling.LANCZOS)) for c in range(3)]
    return np.clip(np.round(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def center_crop(img: np.ndarray, area: float = OPENVLA_CROP_AREA, size: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 (size None: H): the centered crop holding ``area`` of
    the image area, resampled bilinearly as ``tf.image.crop_and_resize`` does on the image converted
    to float32 in [0, 1], then clipped and converted back (x 255.5, truncated) like
    ``tf.image.convert_image_dtype(..., saturate=True)``."""
    img = _check_frame(img)
    h, w = img.shape[:2]
    size = size or h
    side = np.float32(np.sqrt(np.float32(area)))
    lo = (np.float32(1) - side) / np.float32(2)
    x = img.astype(np.float32) * np.float32(1 / 255)
    ys = _sample_grid(lo, lo + side, h, size)  # (size,) source row coordinates
    xs = _sample_grid(lo, lo + side, w, size)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.ceil(ys).astype(int), np.ceil(xs).astype(int)
    dy, dx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    left = x[:, x0]
    across = left + (x[:, x1] - left) * dx  # (h, size, 3): TF's top / bottom rows, x-interpolated first
    top = across[y0]
    out = np.clip(top + (across[y1] - top) * dy, 0, 1)
    return np.clip(out * np.float32(255.5), 0, 255).astype(np.uint8)  # the cast truncates


def _sample_grid(start: np.float32, stop: np.float32, n_in: int, n_out: int) -> np.ndarray:
    """Source coordinates of crop_and_resize's output samples along one axis (float32)."""
    span = np.float32(n_in - 1)
    if n_out == 1:
        return np.array([np.float32(0.5) * (start + stop) * span], dtype=np.float32)
    step = (stop - start) * span / np.float32(n_out - 1)
    return (start * span + np.arange(n_out, dtype=np.float32) * step).astype(np.float32)


def preprocess_frame(img: np.ndarray, jpeg_quality: int | None = None, resize: int | None = None,
                     crop_area: float | None = None) -> np.ndarray:
    """The steps that are switched on, in OpenVLA's order: JPEG round trip, Lanczos resize, center crop."""
    img = _check_frame(img)
    if jpeg_quality is not None:
        img = jpeg_round_trip(img, jpeg_quality)
    if resize is not None:
        img = lanczos_resize(img, resize)
    if crop_area is not None:
        img = center_crop(img, crop_area)
    return img


# ------------------------------------------------------------------------------ action statistics
def norm_stats_from_dir(model_dir: str | Path, config_norm_stats: dict | None = None) -> dict:
    """A checkpoint's action statistics: ``dataset_statistics.json`` beside its weights when present
    (OpenVLA's fine-tuned checkpoints), else ``config_norm_stats`` (or config.json's ``norm_stats``)."""
    model_dir = Path(model_dir)
    path = model_dir / "dataset_statistics.json"
    if path.is_file():
        return json.loads(path.read_text())
    if config_norm_stats is None and (model_dir / "config.json").is_file():
        config_norm_stats = json.loads((model_dir / "config.json").read_text()).get("norm_stats")
    return dict(config_norm_stats or {})


def resolve_unnorm_key(norm_stats: dict, key: str | None) -> str:
    """The statistics key to un-normalise with: ``key`` itself, ``{key}_no_noops`` when only that one
    exists (OpenVLA's LIBERO rule for a suite name), or the only key when ``key`` is None."""
    if key is None:
        if len(norm_stats) != 1:
            raise ValueError(f"the checkpoint holds action statistics for {sorted(norm_stats)}; pass "
                             "PolicyConfig(unnorm_key=...) naming one, or the suite (e.g. 'libero_goal').")
        return next(iter(norm_stats))
    if key not in norm_stats and f"{key}_no_noops" in norm_stats:
        return f"{key}_no_noops"
    if key not in norm_stats:
        raise ValueError(f"unnorm_key={key!r} is not among the checkpoint's action statistics "
                         f"{sorted(norm_stats)}: pass one of them (or a suite that has one).")
    return key


__all__ = ["OPENVLA_CROP_AREA", "OPENVLA_IMAGE_SIZE", "OPENVLA_JPEG_QUALITY", "OPENVLA_RENDER_SIZE", "center_crop",
           "jpeg_round_trip", "lanczos_resize", "norm_stats_from_dir", "preprocess_frame", "resolve_unnorm_key"]
