import numpy as np
import pytest

from tgrpo_lib.envs import EnvConfig, evaluate, heldout_init_states, init_states_for, standard_init_states


@pytest.mark.sim
def test_evaluate_returns_a_per_episode_table_and_videos(tmp_path):
    rng = np.random.default_rng(0)
    df = evaluate(lambda obs: rng.uniform(-1, 1, (len(obs["proprio"]), 7)), "object", [0], episodes_per_task=3,
                  cfg=EnvConfig(max_steps=6), video_dir=tmp_path, video_episodes=[1], progress=False)
    assert list(df["episode"]) == [0, 1, 2]
    assert (df["length"] == 6).all() and (~df["success"]).all()
    assert set(df.columns) >= {"suite", "task_id", "init_set", "episode", "success", "length", "video"}
    video = df.loc[df.episode == 1, "video"].item()
    assert video.endswith(".mp4") and (tmp_path / video.split("/")[-1]).stat().st_size > 1000


@pytest.mark.sim
def test_heldout_states_are_new_valid_layouts_and_cached(tmp_path):
    held = heldout_init_states("object", 0, n=2, cache_dir=tmp_path)
    std = standard_init_states("object", 0)
    assert held.shape == (2, std.shape[1])
    assert not np.allclose(held[0], held[1])
    assert min(np.abs(std - h).max() for h in held) > 1e-3  # not one of the 50 standard states
    assert np.array_equal(heldout_init_states("object", 0, n=2, cache_dir=tmp_path), held)  # from the cache
    assert len(list(tmp_path.rglob("*.npz"))) == 1


def test_unknown_init_state_set():
    with pytest.raises(ValueError, match="standard"):
        init_states_for("object", 0, "training")
