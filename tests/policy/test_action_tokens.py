"""OpenVLA action tokens, worked by hand: bins[i] = -1 + 2 i / 255, id = 32000 - digitize(a, bins)."""
import numpy as np
import pytest

from tgrpo_lib.policy.action_tokens import ActionStats, ActionTokenizer, gripper_to_env, to_env_actions


@pytest.fixture
def tok():
    return ActionTokenizer(vocab_size=32000, n_bins=256)


@pytest.mark.parametrize("value, token_id, center", [
    (-1.0, 31999, -1 + 1 / 255),   # digitize(-1) = 1; decode idx 0 -> first center
    (-3.0, 31999, -1 + 1 / 255),   # clipped to -1
    (0.0, 31872, 0.0),             # bins[127] = -1/255 <= 0 < bins[128] = 1/255 -> 128
    (0.5, 31808, -1 + 383 / 255),  # 0.5 -> 191.25 bin widths -> digitize 192; center of bin 191
    (1.0, 31744, 1 - 1 / 255),     # digitize(1) = 256; decode idx 255 clipped to 254
    (2.0, 31744, 1 - 1 / 255),
])
def test_encode_decode_hand_worked(tok, value, token_id, center):
    ids = tok.encode(np.full((1, 7), value))
    assert ids.dtype == np.int64 and ids.shape == (1, 7)
    assert (ids == token_id).all()
    np.testing.assert_allclose(tok.decode(ids), center, atol=1e-12)


def test_bin_index_hand_worked(tok):
    assert tok.first_action_id == 31744
    np.testing.assert_array_equal(tok.actions_to_bin_index(np.array([[1.0, 0.5, 0.0, -1.0, 0, 0, 0]])),
                                  [[0, 64, 128, 255, 128, 128, 128]])
    np.testing.assert_array_equal(tok.bin_index_to_ids([0, 255]), [31744, 31999])
    with pytest.raises(ValueError, match="action vocabulary"):
        tok.ids_to_bin_index([100])


def test_round_trip_error_within_half_bin(tok):
    a = np.random.default_rng(0).uniform(-1, 1, size=(50, 3, 7))
    ids = tok.encode(a)
    assert ids.min() >= 31744 and ids.max() <= 31999
    assert np.abs(tok.decode(ids) - a).max() <= 1 / 255 + 1e-12
    np.testing.assert_array_equal(tok.encode(tok.decode(ids)), ids)  # centers re-encode to their own bin


def test_small_vocab_is_a_clear_error():
    with pytest.raises(ValueError, match="vocab_size"):
        ActionTokenizer(vocab_size=100)


def test_unnormalize_and_stats():
    stats = ActionStats(q01=(-0.5,) * 7, q99=(1.5,) * 7)
    a = np.array([0.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.3])
    # 0.5 (a + 1)(q99 - q01) + q01: 0 -> 0.5, -1 -> -0.5, 1 -> 1.5; gripper untouched
    np.testing.assert_allclose(stats.unnormalize(a), [0.5, -0.5, 1.5, 0.5, 0.5, 0.5, 0.3])
    np.testing.assert_allclose(stats.normalize(stats.unnormalize(a)), a)
    demo = np.tile(np.linspace(-2, 2, 101)[:, None], (1, 7))
    s = ActionStats.from_actions(demo)
    np.testing.assert_allclose(s.q01, -1.96)  # 1% of the way along 100 equal steps of 0.04
    np.testing.assert_allclose(s.q99, 1.96)
    ident = ActionStats.identity()
    np.testing.assert_allclose(ident.unnormalize(a), a)


def test_gripper_conventions():
    np.testing.assert_array_equal(gripper_to_env([-1.0, 1.0], "libero"), [-1.0, 1.0])
    # OpenVLA: g in [0, 1], 1 = open -> LIBERO -1 open, +1 close
    np.testing.assert_array_equal(gripper_to_env([1.0, 0.0, 0.3, 0.9], "openvla"), [-1.0, 1.0, 1.0, -1.0])
    with pytest.raises(ValueError, match="gripper_convention"):
        gripper_to_env([0.0], "franka")
    env = to_env_actions(np.array([[0.0] * 6 + [0.8]]), None, "openvla")
    np.testing.assert_array_equal(env, [[0.0] * 6 + [-1.0]])


def test_stats_json_round_trip(tmp_path):
    s = ActionStats.from_actions(np.random.default_rng(1).normal(size=(30, 7)))
    s.to_json(tmp_path / "s.json")
    assert ActionStats.from_json(tmp_path / "s.json") == s
