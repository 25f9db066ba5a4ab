"""Scripted expert: control helpers, key-pose extraction, success table, and real episodes per suite."""
import numpy as np
import pandas as pd
import pytest

from tgrpo_lib.expert import (ExpertConfig, ScriptedExpert, SceneGeometry, aggregate_key_poses, expert_success_table,
                              extract_key_events, load_key_poses, save_key_poses)
from tgrpo_lib.expert.core import _R_DOWN, gripper_yaw, rot_to_axis_angle, rot_z, wrap_finger_yaw
from tgrpo_lib.expert.geometry import quat_to_mat


def test_rotation_helpers():
    np.testing.assert_allclose(rot_to_axis_angle(rot_z(0.3)), [0, 0, 0.3], atol=1e-9)
    np.testing.assert_allclose(rot_to_axis_angle(np.eye(3)), [0, 0, 0], atol=1e-12)
    # half turns: the near-pi branch must keep the axis' relative signs, e.g. about (1, -1, 0)/sqrt(2)
    n = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)
    aa = rot_to_axis_angle(2 * np.outer(n, n) - np.eye(3))
    assert np.allclose(aa, np.pi * n, atol=1e-6) or np.allclose(aa, -np.pi * n, atol=1e-6)
    # the Panda home orientation (xyzw -0.707, -0.707, 0, 0) is "pointing down, fingers along y": yaw 0
    np.testing.assert_allclose(quat_to_mat([-0.7071068, -0.7071068, 0, 0]), _R_DOWN, atol=1e-6)
    assert abs(gripper_yaw([-0.7071068, -0.7071068, 0, 0])) < 1e-6
    # the finger axis is symmetric under a half turn: pick the copy nearest the current yaw
    assert wrap_finger_yaw(np.pi - 0.1, 0.0) == pytest.approx(-0.1)
    assert wrap_finger_yaw(0.2, 3.0) == pytest.approx(0.2)  # 0.2 + pi is nearer but beyond the wrist range


def _state(eef, quat=(-0.7071068, -0.7071068, 0, 0)):
    return {"eef_pos": np.asarray(eef, float), "eef_quat": np.asarray(quat, float), "gripper_qpos": np.array([0.04, -0.04])}


def test_servo_is_a_clipped_p_controller():
    ex = ScriptedExpert([["in", "a", "b"]], SceneGeometry(), ExpertConfig(gain=20.0))
    ex.s = _state([0.0, 0.0, 1.0])
    a = ex.servo(np.array([0.01, -0.5, 1.0]), grip=1.0)
    np.testing.assert_allclose(a[:3], [0.2, -1.0, 0.0], atol=1e-9)  # 20 * 0.01; -10 clipped to -1
    np.testing.assert_allclose(a[3:6], 0.0, atol=1e-6)  # already pointing down at yaw 0
    assert a[6] == 1.0
    ex.yaw = 0.2  # a yaw target turns the wrist about +z only
    a = ex.servo(np.array([0.0, 0.0, 1.0]), grip=-1.0)
    assert a[5] > 0 and abs(a[3]) < 1e-6 and abs(a[4]) < 1e-6


def test_expert_act_requires_reset():
    ex = ScriptedExpert([["in", "a", "b"]], SceneGeometry())
    with pytest.raises(ValueError, match="reset"):
        ex.act(_state([0, 0, 1]))


def _trajectory():
    """Hand-built: a failed grasp (t=1..2), a real one at t=4 (object rises), release at t=8,
    and a drawer joint crossing its Open threshold at t=10."""
    T = 12
    actions = np.zeros((T, 7))
    actions[:, 6] = -1
    actions[1:3, 6] = 1
    actions[4:8, 6] = 1
    eef = np.stack([np.array([0.01 * t, 0.0, 1.0]) for t in range(T + 1)])
    obj = np.tile([0.04, 0.0, 0.9], (T + 1, 1))
    obj[5:9, 2] = [0.95, 1.0, 1.0, 0.93]  # lifted while closed, set down at 0.93
    other = np.tile([1.0, 1.0, 0.9], (T + 1, 1))
    q = np.zeros((T + 1, 1))
    q[10:] = -0.15
    states = {"eef_pos": eef, "pos/bowl_1": obj, "quat/bowl_1": np.tile([0, 0, 0, 1.0], (T + 1, 1)),
              "pos/plate_1": other, "quat/plate_1": np.tile([0, 0, 0, 1.0], (T + 1, 1)),
              "joint/wooden_cabinet_1_top_level": q}
    goal = [["on", "bowl_1", "plate_1"], ["open", "wooden_cabinet_1_top_region"]]
    return actions, states, goal


def test_key_events_on_a_hand_built_trajectory():
    actions, states, goal = _trajectory()
    events = extract_key_events(actions, states, goal)
    assert [e["label"] for e in events] == ["grasp:bowl_1", "release:bowl_1", "open:wooden_cabinet_1_top_region"]
    assert [e["step"] for e in events] == [4, 8, 10]
    np.testing.assert_allclose(events[0]["xyz"], [0.04, 0.0, 1.0])
    np.testing.assert_allclose(events[1]["xyz"], [0.08, 0.0, 1.0])


def test_success_while_holding_adds_the_release_at_the_last_step():
    actions, states, goal = _trajectory()
    actions = actions[:7]  # success came while still closed
    states = {k: v[:8] for k, v in states.items()}
    events = extract_key_events(actions, states, goal[:1], success=True)
    assert [(e["label"], e["step"]) for e in events] == [("grasp:bowl_1", 4), ("release:bowl_1", 6)]


def test_aggregate_takes_the_modal_sequence_and_averages(tmp_path):
    a = [{"label": "grasp:x", "xyz": [0.0, 0.0, 1.0]}, {"label": "release:x", "xyz": [1.0, 0.0, 1.0]}]
    b = [{"label": "grasp:x", "xyz": [0.2, 0.0, 1.0]}, {"label": "release:x", "xyz": [1.0, 0.4, 1.0]}]
    odd = [{"label": "grasp:y", "xyz": [9.0, 9.0, 9.0]}]
    poses, used = aggregate_key_poses([a, b, odd, []])
    assert used == 2 and [p["label"] for p in poses] == ["grasp:x", "release:x"]
    np.testing.assert_allclose(poses[0]["xyz"], [0.1, 0.0, 1.0])
    np.testing.assert_allclose(poses[1]["xyz"], [1.0, 0.2, 1.0])
    save_key_poses(tmp_path / "libero_goal" / "task_2" / "key_poses.json", "libero_goal", 2, poses, used)
    assert load_key_poses("goal", 2, root=tmp_path) == poses
    assert load_key_poses("goal", 3, root=tmp_path) is None


def test_success_table_from_episode_rows(tmp_path):
    rows = pd.DataFrame({"suite": ["libero_object"] * 3 + ["libero_goal"] * 2, "task_id": [0, 0, 0, 7, 7],
                         "success": [True, False, True, True, True], "steps": [100, 280, 120, 90, 110]})
    table = expert_success_table(rows, save_to=tmp_path)
    row = table.set_index(["suite", "task_id"]).loc[("libero_object", 0)]
    assert row["episodes"] == 3 and row["successes"] == 2 and row["success_rate"] == pytest.approx(0.667)
    assert row["mean_steps"] == pytest.approx(166.7)
    assert (tmp_path / "success_table.csv").exists()


# one quick task per suite, from init state 0, physics only
SIM_CASES = [("libero_object", 0), ("libero_spatial", 0), ("libero_goal", 7), ("libero_10", 0)]


@pytest.mark.sim
@pytest.mark.parametrize("suite,task_id", SIM_CASES)
def test_expert_solves_one_task_per_suite(suite, task_id, tmp_path):
    from tgrpo_lib.expert import run_task

    run = run_task(suite, task_id, episodes=1, out=tmp_path, progress=False)
    assert run.results["success"].tolist() == [True]
    assert run.results["steps"].iloc[0] < {"libero_object": 280, "libero_spatial": 220, "libero_goal": 300,
                                           "libero_10": 520}[suite]
    poses = load_key_poses(suite, task_id, root=tmp_path)
    assert poses and poses[0]["label"].startswith(("grasp:", "turnon:"))


def test_axis_rot_leans_the_down_pointing_fingers_into_a_push():
    from tgrpo_lib.expert.articulated import _axis_rot

    # about +x by 0.6 rad, straight down (0, 0, -1) turns toward +y: (0, sin 0.6, -cos 0.6) = (0, 0.5646, -0.8253)
    np.testing.assert_allclose(_axis_rot(np.array([2.0, 0, 0]), 0.6) @ [0, 0, -1.0], [0, 0.5646, -0.8253], atol=1e-4)
    rot = _axis_rot(np.array([1.0, 1.0, 0.0]), 0.3)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rot_to_axis_angle(rot), 0.3 * np.array([1, 1, 0]) / np.sqrt(2), atol=1e-9)


# drawer tasks: goal 3 must move the bowl out from under the drawer it opens; libero_10 task 3 must
# lower the bowl clear of the cabinet front and push the drawer home past q = 0
@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("suite,task_id", [("libero_goal", 3), ("libero_10", 3)])
def test_expert_solves_the_drawer_tasks(suite, task_id):
    from tgrpo_lib.expert import run_task

    run = run_task(suite, task_id, episodes=1, progress=False)
    assert run.results["success"].tolist() == [True]


@pytest.mark.sim
def test_expert_episodes_do_not_depend_on_the_number_of_workers():
    from tgrpo_lib.expert import run_task

    one = run_task("libero_object", 0, episodes=2, seed=1, progress=False, workers=1).results
    two = run_task("libero_object", 0, episodes=2, seed=1, progress=False, workers=2).results
    cols = ["init_index", "seed", "success", "steps"]
    assert one[cols].to_dict("records") == two[cols].to_dict("records")
    assert two["init_index"].tolist() == [0, 1]
