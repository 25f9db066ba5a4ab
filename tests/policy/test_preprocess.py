"""OpenVLA's evaluation preprocessing on hand-worked inputs: JPEG round trip, Lanczos resize,
center crop (tf.image.crop_and_resize + convert_image_dtype), action statistics and their key."""
import json

import numpy as np
import pytest

from tgrpo_lib.policy.preprocess import (center_crop, jpeg_round_trip, lanczos_resize, norm_stats_from_dir,
                                         preprocess_frame, resolve_unnorm_key)


def ramp(h, w, step=10, axis=1):
    """uint8 (h, w, 3) image whose value is step x the column (axis 1) or row (axis 0) index."""
    idx = np.arange(w if axis == 1 else h) * step
    img = np.broadcast_to(idx[None, :] if axis == 1 else idx[:, None], (h, w))
    return np.repeat(img[..., None], 3, axis=2).astype(np.uint8)


# ------------------------------------------------------------------------------ center crop
def test_center_crop_of_a_quarter_samples_the_middle_half():
    # area 0.25: side 0.5, box [0.25, 0.75]; 5 px -> source columns 1, 1.5, 2, 2.5, 3 (x (W-1) = 4)
    out = center_crop(ramp(5, 5), area=0.25)
    assert out[0, :, 0].tolist() == [10, 15, 20, 25, 30]
    assert (out[:, :, 0] == out[0, :, 0]).all() and (out[..., 0] == out[..., 2]).all()
    rows = center_crop(ramp(5, 5, axis=0), area=0.25)
    assert rows[:, 0, 0].tolist() == [10, 15, 20, 25, 30]


def test_center_crop_of_the_whole_image_is_the_identity():
    img = np.random.default_rng(0).integers(0, 256, (7, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(center_crop(img, area=1.0), img)  # x/255 x 255.5 truncates back to x


def test_openvla_crop_at_224():
    # side sqrt(0.9) = 0.948683, offset 0.025658: column k samples 5.7218 + 0.948683 k of a 0..223 ramp,
    # then float32 / 255 x 255.5, truncated: k = 0 -> 5.733 -> 5, k = 111 -> 111.24 -> 111, k = 223 -> 217.70 -> 217
    out = center_crop(ramp(224, 224, step=1), area=0.9)
    assert out.shape == (224, 224, 3)
    assert (out[0, 0, 0], out[0, 111, 0], out[0, 223, 0]) == (5, 111, 217)


# ------------------------------------------------------------------------------ Lanczos
def lanczos3(x):
    x = np.abs(x)
    return np.where(x < 3, np.sinc(x) * np.sinc(x / 3), 0.0)


def reference_resize_1d(row: np.ndarray, n_out: int) -> np.ndarray:
    """Antialiased Lanczos-3 at pixel centres, weights normalised over the samples inside the row."""
    n_in = len(row)
    scale = n_in / n_out
    support = 3 * max(scale, 1.0)
    out = []
    for i in range(n_out):
        c = (i + 0.5) * scale
        j = np.arange(max(int(c - support + 0.5), 0), min(int(c + support + 0.5), n_in))
        w = lanczos3((j + 0.5 - c) / max(scale, 1.0))
        out.append((w * row[j]).sum() / w.sum())
    return np.array(out)


def test_lanczos_resize_matches_the_filter_worked_out_per_pixel():
    row = np.array([0, 255, 0, 255, 128, 128, 40, 200, 10, 90, 250, 30, 0, 0, 255, 60], dtype=np.uint8)
    img = np.repeat(np.repeat(row[None, :, None], 16, axis=0), 3, axis=2)  # every row the same
    out = lanczos_resize(img, 8)
    expected = np.clip(np.round(reference_resize_1d(row.astype(float), 8)), 0, 255)  # rows resize to themselves
    np.testing.assert_array_equal(out[3, :, 0], expected)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)


def test_lanczos_rounds_in_float_after_both_passes():
    # Pillow's uint8 path rounds and clips between its horizontal and vertical passes (noise
    # overshoots: up to 14 levels off here); TF, and this, keep floats until the end.
    img = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    rows = np.array([reference_resize_1d(r, 24) for r in img.astype(float)])  # horizontal pass
    full = np.array([reference_resize_1d(c, 24) for c in rows.T]).T  # vertical pass
    out = lanczos_resize(np.repeat(img[..., None], 3, axis=2), 24)
    np.testing.assert_array_equal(out[..., 1], np.clip(np.round(full), 0, 255))


def test_lanczos_keeps_constants_and_the_same_size():
    flat = np.full((256, 256, 3), 77, dtype=np.uint8)
    assert (lanczos_resize(flat, 224) == 77).all()
    img = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    np.testing.assert_array_equal(lanczos_resize(img, 224), img)


# ------------------------------------------------------------------------------ JPEG
def test_jpeg_round_trip_keeps_flat_gray_and_perturbs_detail():
    gray = np.full((16, 16, 3), 100, dtype=np.uint8)  # DC only: -28 x 8 = -224 is a multiple of q95's step 2
    np.testing.assert_array_equal(jpeg_round_trip(gray), gray)
    img = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    q95, q10 = jpeg_round_trip(img), jpeg_round_trip(img, quality=10)
    err95, err10 = (np.abs(x.astype(int) - img).mean() for x in (q95, q10))
    assert q95.shape == img.shape and q95.dtype == np.uint8
    assert 0 < err95 < err10
    np.testing.assert_array_equal(jpeg_round_trip(img), q95)  # deterministic


def worked_frame():
    """A 32 x 32 frame from integer arithmetic alone (ramps, a product pattern, a 4 px checkerboard)."""
    y, x = np.mgrid[0:32, 0:32]
    rgb = [(x * 8 + y * 3) % 256, (x * y * 5 + 40) % 256, ((x // 4 + y // 4) % 2) * 200 + 20]
    return np.stack(rgb, axis=-1).astype(np.uint8)


def test_jpeg_round_trip_is_tensorflows_on_a_worked_frame():
    """``tf.io.decode_image(tf.image.encode_jpeg(frame))`` under TensorFlow 2.21.0 (OpenVLA's evaluation
    step), computed once on this frame: sha256 of its (32, 32, 3) uint8 output and four of its pixels."""
    import hashlib
    import io

    from PIL import Image

    frame = worked_frame()
    out = jpeg_round_trip(frame)
    assert hashlib.sha256(out.tobytes()).hexdigest() == \
        "0242cdcc24575137c3782fc8d452c74bf99fe219bd02cd26cc839fe7f1f816c8"
    assert [out[0, 0].tolist(), out[5, 7].tolist(), out[17, 30].tolist(), out[31, 31].tolist()] == \
        [[0, 33, 2], [92, 200, 89], [0, 66, 162], [138, 198, 66]]
    # Pillow's decoder (accurate inverse DCT) on the same bytes differs in most values: the codec, not the file
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=95, subsampling=2)
    accurate = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert (accurate != out).mean() > 0.5 and np.abs(accurate.astype(int) - out).max() <= 8


def test_pipeline_runs_in_openvlas_order():
    img = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = preprocess_frame(img, jpeg_quality=95, resize=224, crop_area=0.9)
    np.testing.assert_array_equal(out, center_crop(lanczos_resize(jpeg_round_trip(img), 224), 0.9))
    np.testing.assert_array_equal(preprocess_frame(img), img)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frame(img.astype(np.float32))


# ------------------------------------------------------------------------------ action statistics
def test_unnorm_key_follows_openvlas_suite_rule():
    stats = {"libero_goal_no_noops": {}, "libero_10": {}, "bridge_orig": {}}
    assert resolve_unnorm_key(stats, "libero_goal") == "libero_goal_no_noops"
    assert resolve_unnorm_key(stats, "libero_10") == "libero_10"
    assert resolve_unnorm_key({"only": {}}, None) == "only"
    with pytest.raises(ValueError, match="libero_object"):
        resolve_unnorm_key(stats, "libero_object")
    with pytest.raises(ValueError, match="unnorm_key"):
        resolve_unnorm_key(stats, None)


def test_statistics_come_from_the_checkpoint_directory_first(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"norm_stats": {"from_config": {}}}))
    assert norm_stats_from_dir(tmp_path) == {"from_config": {}}
    assert norm_stats_from_dir(tmp_path, {"given": {}}) == {"given": {}}
    (tmp_path / "dataset_statistics.json").write_text(json.dumps({"libero_spatial_no_noops": {"action": {}}}))
    assert norm_stats_from_dir(tmp_path, {"given": {}}) == {"libero_spatial_no_noops": {"action": {}}}
    assert norm_stats_from_dir(tmp_path / "missing") == {}
