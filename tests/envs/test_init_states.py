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
