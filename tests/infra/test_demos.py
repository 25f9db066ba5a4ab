"""Demo files: the project's HDF5 format round-trips; official LIBERO (robomimic) files load the same way."""
import json

import h5py
import numpy as np
import pytest

from tgrpo_lib.infra.demos import Demo, load_demos, load_libero_hdf5, save_demos


def _demo(T, seed, success=True, images=True):
    rng = np.random.default_rng(seed)
    return Demo(
        instruction="pick up the alphabet soup and place it in the basket",
        actions=rng.uniform(-1, 1, (T, 7)).astype(np.float32),
        proprio=rng.normal(size=(T, 8)).astype(np.float32),
        agentview=rng.integers(0, 255, (T, 16, 16, 3), dtype=np.uint8) if images else None,
        states={"eef_pos": rng.normal(size=(T + 1, 3)), "pos/basket_1": rng.normal(size=(T + 1, 3)),
                "joint/flat_stove_1_button": rng.normal(size=(T + 1, 1))},
        success=success, init_index=seed, seed=100 + seed, events=[[3, "grasp:alphabet_soup_1", [0.1, 0.2, 0.3]]],
    )


def test_project_format_round_trip(tmp_path):
    demos = [_demo(5, 0), _demo(7, 1), _demo(4, 2, success=False)]
    path = tmp_path / "libero_object" / "task_3" / "demos.h5"
    save_demos(path, demos, suite="libero_object", task_id=3, instruction=demos[0].instruction,
               env_config={"cameras": ["agentview"]})
    loaded = load_demos(path, only_success=False)
    assert [len(d) for d in loaded] == [5, 7, 4]
    for a, b in zip(demos, loaded):
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.proprio, b.proprio)
        np.testing.assert_array_equal(a.agentview, b.agentview)
        assert b.wrist is None
        assert set(b.states) == {"eef_pos", "pos/basket_1", "joint/flat_stove_1_button"}  # slashes survive
        np.testing.assert_array_equal(a.states["pos/basket_1"], b.states["pos/basket_1"])
        assert (b.suite, b.task_id, b.init_index, b.seed, b.source) == ("libero_object", 3, a.init_index, a.seed, "expert")
        assert b.events == a.events and b.instruction == a.instruction
    # the default drops failed episodes; a suite name resolves <root>/<suite>/task_<id>/demos.h5
    assert len(load_demos(path)) == 2
    by_suite = load_demos("object", task_ids=[3], root=tmp_path, with_images=False)
    assert len(by_suite) == 2 and by_suite[0].agentview is None
    # append keeps numbering going
    save_demos(path, [_demo(3, 9)], suite="libero_object", task_id=3, instruction="x", append=True)
    assert [len(d) for d in load_demos(path)] == [5, 7, 3]


def test_missing_suite_demos_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="--record"):
        load_demos("libero_goal", task_ids=[0], root=tmp_path)
    with pytest.raises(ValueError, match="neither a file"):
        load_demos("not_a_suite_or_path")


def _write_official(path, n_demos=2, T=6):
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps({"language_instruction": "open the middle drawer of the cabinet"})
        for k in range(n_demos):
            g = data.create_group(f"demo_{k}")
            g.create_dataset("actions", data=np.full((T, 7), 0.1 * k))
            obs = g.create_group("obs")
            img = np.zeros((T, 128, 128, 3), np.uint8)
            img[:, 0, 0] = 200  # a marker in the top-left corner of the raw (upside-down) frame
            obs.create_dataset("agentview_rgb", data=img)
            obs.create_dataset("eye_in_hand_rgb", data=img)
            obs.create_dataset("ee_pos", data=np.tile([0.1, 0.2, 0.3], (T, 1)))
            obs.create_dataset("ee_ori", data=np.tile([3.1, 0.0, 0.1], (T, 1)))
            obs.create_dataset("gripper_states", data=np.tile([0.04, -0.04], (T, 1)))


def test_official_libero_file_loads_into_demos(tmp_path):
    path = tmp_path / "KITCHEN_SCENE1_open_the_middle_drawer_of_the_cabinet_demo.hdf5"
    _write_official(path)
    demos = load_libero_hdf5(path)
    assert len(demos) == 2 and demos[1].source == "libero"
    d = demos[1]
    assert d.instruction == "open the middle drawer of the cabinet"
    assert d.actions.shape == (6, 7) and np.allclose(d.actions, 0.1)
    np.testing.assert_allclose(d.proprio[0], [0.1, 0.2, 0.3, 3.1, 0.0, 0.1, 0.04, -0.04], atol=1e-6)
    assert d.agentview.shape == (6, 128, 128, 3) and d.wrist.shape == (6, 128, 128, 3)
    # flipped by 180 degrees like the env's observations: the marker moves to the bottom-right
    assert d.agentview[0, -1, -1, 0] == 200 and d.agentview[0, 0, 0, 0] == 0
    raw = load_libero_hdf5(path, flip=False)
    assert raw[0].agentview[0, 0, 0, 0] == 200
    # the generic loader recognises the format, from a file or from a folder
    assert len(load_demos(path)) == 2 and len(load_demos(tmp_path)) == 2


def test_official_loader_rejects_other_files(tmp_path):
    path = tmp_path / "x.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("foo", data=[1])
    with pytest.raises(ValueError, match="robomimic"):
        load_libero_hdf5(path)
