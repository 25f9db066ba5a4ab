import numpy as np
import pytest

from tgrpo_lib.envs import EnvConfig, heldout_init_states, init_states_for, make_env, standard_init_states
from tgrpo_lib.envs.init_states import heldout_seeds


@pytest.mark.sim
def test_heldout_states_are_new_valid_layouts_and_cached(tmp_path):
    held = heldout_init_states("object", 0, n=2, cache_dir=tmp_path)
    std = standard_init_states("object", 0)
    assert held.shape == (2, std.shape[1])
    assert not np.allclose(held[0], held[1])
    assert min(np.abs(std - h).max() for h in held) > 1e-3  # not one of the 50 standard states
    assert np.array_equal(heldout_init_states("object", 0, n=2, cache_dir=tmp_path), held)  # from the cache
    assert len(list(tmp_path.rglob("*.npz"))) == 1
    # drawn on a reused model (fast), they equal what a model rebuild per state would draw
    env = make_env("object", 0, EnvConfig(cameras=(), hard_reset=True))
    try:
        for k, seed in enumerate(heldout_seeds(0, 2)):
            assert np.array_equal(env.sample_layout(seed=int(seed)), held[k])
    finally:
        env.close()


def test_unknown_init_state_set():
    with pytest.raises(ValueError, match="standard"):
        init_states_for("object", 0, "training")


@pytest.mark.sim
def test_test_layouts_match_their_recorded_hash_and_are_new(tmp_path):
    from tgrpo_lib.envs.init_states import (N_TEST_STATES, recorded_test_hashes, states_hash, test_init_states,
                                            test_seeds)

    # generated afresh in an empty cache, the 100 layouts hash to what the package recorded
    test = test_init_states("object", 0, cache_dir=tmp_path)
    assert test.shape == (N_TEST_STATES, standard_init_states("object", 0).shape[1])
    assert states_hash(test) == recorded_test_hashes()["libero_object-0"]
    held, std = heldout_init_states("object", 0, n=50, cache_dir=tmp_path), standard_init_states("object", 0)
    for other in (held, std):  # none of them is a standard or held-out state
        assert min(np.abs(other - t).max() for t in test) > 1e-3
    assert not set(test_seeds(0).tolist()) & set(heldout_seeds(0, 1000).tolist())
    # a layout that moved (another simulator, a damaged cache) is refused with the fix
    path = next(tmp_path.rglob("task_0.npz"))
    np.savez_compressed(path, states=test + 1e-4, seeds=test_seeds(0))
    with pytest.raises(ValueError, match="differ from the recorded"):
        test_init_states("object", 0, cache_dir=tmp_path)


def test_every_suite_task_has_a_recorded_test_hash():
    from tgrpo_lib.envs.init_states import recorded_test_hashes

    hashes = recorded_test_hashes()
    suites = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
    assert set(hashes) == {f"{s}-{t}" for s in suites for t in range(10)}
    assert len(set(hashes.values())) == 40  # 40 different sets of layouts


def test_test_set_size_is_checked():
    with pytest.raises(ValueError, match="100 layouts"):
        init_states_for("object", 0, "test", n=101)
