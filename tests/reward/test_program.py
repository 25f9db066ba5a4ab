"""RewardProgram on scripted (simulator-free) trajectories: shapes, bounds, monotone stages."""
import numpy as np
import pytest

from tgrpo_lib.reward import RewardConfig, make_reward, recorded_key_poses
from tgrpo_lib.reward.program import multi_stage_reward, running_max_stage
from tgrpo_lib.reward.synthetic import ScriptedTrajectory, pick_and_place

OPEN = [0.04, -0.04]
BASKET = "basket_1_contain_region"


def object_start():
    return {"eef_pos": [-0.2, 0.0, 0.3], "gripper_qpos": OPEN, "pos/alphabet_soup_1": [-0.12, -0.24, 0.015],
            "pos/tomato_sauce_1": [0.05, -0.10, 0.035], f"pos/{BASKET}": [0.0, 0.15, 0.072]}


def soup_in_basket():
    tb = ScriptedTrajectory(object_start())
    return pick_and_place(tb, "alphabet_soup_1", [0.0, 0.15, 0.06], grasp_dz=0.01).states()


def test_shapes_on_group_batch():
    prog = make_reward("libero_object", 0)
    st = soup_in_basket()
    st4 = {k: np.stack([v] * 4) for k, v in st.items()}  # (N=4, T, ...)
    out = prog(st4)
    T = st["eef_pos"].shape[0]
    assert out.reward.shape == out.stage.shape == out.raw_stage.shape == (4, T)
    assert out.stage.dtype == np.int64
    assert set(out.components) >= {"f1", "f2", "progress/approach:alphabet_soup_1"}
    assert all(v.shape == (4, T) for v in out.components.values())
    assert len(out.to_frame()) == 4 * T


def test_in_task_stages_monotone_and_success_is_max():
    prog = make_reward("libero_object", 0)
    out = prog(soup_in_basket())
    assert prog.n_stages == 4 and prog.max_reward == 5.0
    assert np.all(np.diff(out.raw_stage) >= 0)  # scripted expert never regresses
    assert out.stage[0] == 0 and out.stage[-1] == 4
    assert set(np.unique(out.stage)) == {0, 1, 2, 3, 4}  # every stage visited in order
    assert np.all((out.reward >= 0) & (out.reward <= prog.max_reward))
    done = out.raw_stage == 4
    np.testing.assert_allclose(out.reward[done], 5.0)  # success: f1 = 4, f2 = 1
    assert out.reward[~done].max() < 5.0


def test_dropped_object_keeps_reported_stage():
    tb = ScriptedTrajectory(object_start())
    p = np.array([-0.12, -0.24, 0.025])
    tb.move_eef(p, 10).close_gripper(5).move_eef(p + [0, 0, 0.2], 10, carry="alphabet_soup_1")
    tb.set(3, pos__alphabet_soup_1=[-0.12, -0.24, 0.015])  # dropped back to the floor
    out = make_reward("libero_object", 0)(tb.states())
    assert out.raw_stage.max() == 2 and out.raw_stage[-1] < 2  # raw regresses...
    assert out.stage[-1] == 2  # ...the reported (running max) stage does not


def drawer_start(q):
    # goal scene: cabinet yawed 180 deg, opening moves the drawer toward +y (catalogue)
    return {"eef_pos": [-0.2, 0.0, 1.17], "gripper_qpos": OPEN, "joint/wooden_cabinet_1_middle_level": [q],
            "pos/wooden_cabinet_1_middle_region": [0.019, -0.259 - q, 1.022],
            "quat/wooden_cabinet_1": [0.0, 0.0, 1.0, 0.0], "pos/wooden_cabinet_1": [0.026, -0.235, 0.905]}


def test_open_drawer_task():
    prog = make_reward("libero_goal", 0)
    handle = np.array([0.019, -0.259 + 0.12, 1.022])  # region centre + 0.12 m toward +y
    tb = ScriptedTrajectory(drawer_start(0.0)).move_eef(handle, 15).close_gripper(3)
    for q in np.linspace(0.0, -0.15, 16)[1:]:
        tb.set(1, eef_pos=handle + [0, -q, 0], joint__wooden_cabinet_1_middle_level=[q],
               pos__wooden_cabinet_1_middle_region=[0.019, -0.259 - q, 1.022])
    out = prog(tb.states())
    assert np.all(np.diff(out.raw_stage) >= 0) and out.stage[-1] == 2
    first_open = np.argmax(out.stage == 2)
    q = tb.states()["joint/wooden_cabinet_1_middle_level"][:, 0]
    assert q[first_open] < -0.14 <= q[first_open - 1]  # Open needs q < -0.14 (strict)
    prog_open = out.components["progress/open:wooden_cabinet_1_middle_region"]
    np.testing.assert_allclose(prog_open[-1], 1.0)
    np.testing.assert_allclose(prog_open[0], 0.01 / 0.15)  # (0.01 - q) / (0.01 + 0.14) at q = 0


def test_turnon_task_and_knob_progress():
    prog = make_reward("libero_goal", 7)
    start = {"eef_pos": [-0.2, 0.0, 1.17], "gripper_qpos": OPEN, "joint/flat_stove_1_button": [0.0],
             "pos/flat_stove_1": [-0.4145, 0.2183, 0.905]}
    knob = np.array([-0.4145, 0.2183, 0.945])
    tb = ScriptedTrajectory(start).move_eef(knob, 10).set(10, joint__flat_stove_1_button=[0.8])
    out = prog(tb.states())
    assert np.all(np.diff(out.stage) >= 0) and list(np.unique(out.stage)) == [0, 1, 2]
    q = tb.states()["joint/flat_stove_1_button"][:, 0]
    assert np.all((q >= 0.5) == (out.raw_stage == 2))
    np.testing.assert_allclose(out.reward[-1], 3.0)


def test_two_atom_long_task_chains_atoms():
    prog = make_reward("libero_10", 0)  # soup then tomato sauce into the basket
    assert prog.n_stages == 8
    tb = ScriptedTrajectory(object_start())
    pick_and_place(tb, "alphabet_soup_1", [-0.02, 0.15, 0.06], grasp_dz=0.01)
    t_first = len(tb._rows)
    pick_and_place(tb, "tomato_sauce_1", [0.02, 0.15, 0.06], grasp_dz=0.01)
    out = prog(tb.states())
    assert np.all(np.diff(out.raw_stage) >= 0)
    assert out.stage[t_first - 1] == 4 and out.stage[-1] == 8
    np.testing.assert_allclose(out.reward[-1], 9.0)


def test_second_object_earns_nothing_before_first_is_placed():
    prog = make_reward("libero_10", 0)
    tb = ScriptedTrajectory(object_start())
    pick_and_place(tb, "tomato_sauce_1", [0.02, 0.15, 0.06], grasp_dz=0.01)  # wrong order
    out = prog(tb.states())
    assert out.stage.max() == 0  # the eef never goes near the soup: no stage at all


def test_long8_turnon_already_true_needs_no_touch():
    prog = make_reward("libero_10", 8)
    assert prog.stage_names[0] == "keep:turnon:flat_stove_1"
    start = {"eef_pos": [-0.2, 0.0, 1.17], "gripper_qpos": OPEN, "joint/flat_stove_1_button": [0.52],
             "pos/flat_stove_1": [-0.19, -0.19, 0.905], "pos/flat_stove_1_cook_region": [-0.04, -0.19, 0.905],
             "pos/moka_pot_1": [0.03, 0.0, 0.97], "pos/moka_pot_2": [0.04, 0.05, 0.97]}
    out = prog(ScriptedTrajectory(start).wait(3).states())
    assert np.all(out.raw_stage == 1)  # satisfied at t = 0 without moving
    start["joint/flat_stove_1_button"] = [0.4]  # knob bumped off: the atom fails
    assert prog(ScriptedTrajectory(start).wait(3).states()).raw_stage.max() == 0


def test_implied_open_gates_the_bowl_in_goal3():
    prog = make_reward("libero_goal", 3)
    assert prog.stage_names[:2] == ("reach:wooden_cabinet_1_top_region", "open:wooden_cabinet_1_top_region")
    start = {"eef_pos": [-0.2, 0.0, 1.17], "gripper_qpos": OPEN, "joint/wooden_cabinet_1_top_level": [0.0],
             "pos/wooden_cabinet_1_top_region": [0.02, -0.25, 1.09], "quat/wooden_cabinet_1": [0, 0, 1, 0],
             "pos/akita_black_bowl_1": [-0.1, 0.1, 0.9]}
    tb = ScriptedTrajectory(start)
    pick_and_place(tb, "akita_black_bowl_1", [-0.1, 0.1, 1.1], grasp_dz=0.04)  # bowl moved, drawer shut
    assert prog(tb.states()).stage.max() == 0  # grasping without opening first earns no stage


def test_key_poses_replace_fallback():
    kp = [{"label": "grasp:alphabet_soup_1", "xyz": [-0.2, 0.0, 0.3]}]  # the start eef position
    prog = make_reward("libero_object", 0, key_poses=kp)
    assert prog.key_pose_source["approach:alphabet_soup_1"] == "expert"
    out = prog(soup_in_basket())
    np.testing.assert_allclose(out.components["f2"][0], 1.0)  # eef exactly at the key pose
    with pytest.raises(ValueError, match="xyz"):
        make_reward("libero_object", 0, key_poses=[{"label": "x", "xyz": [1, 2]}])


def test_eq1_hand_numbers():
    stage = np.array([[0, 1, 2]])
    raw = np.array([[0, 1, 2]])
    prog = np.array([[[0.5, 0.0], [0.2, 0.4], [1.0, 1.0]]])
    dist = np.array([[[0.1, 0.0], [0.0, 0.2], [0.0, 0.0]]])
    r, f1, f2 = multi_stage_reward(stage, raw, prog, dist, w_f1=1.0, w_f2=2.0, key_pose_scale=0.1)
    np.testing.assert_allclose(f1, [[0.5, 1.4, 2.0]])
    np.testing.assert_allclose(f2, [[np.exp(-1), np.exp(-2), 1.0]])
    np.testing.assert_allclose(r, f1 + 2 * f2)
    np.testing.assert_array_equal(running_max_stage(np.array([0, 2, 1, 3, 0])), [0, 2, 2, 3, 3])


def test_missing_time_axis_and_unknown_task_are_clear():
    prog = make_reward("libero_object", 0)
    with pytest.raises(ValueError, match="time axis"):
        prog({"eef_pos": np.zeros(3)})
    with pytest.raises(ValueError, match="unknown task"):
        make_reward("libero_90", 0)
    with pytest.raises(ValueError, match="unknown task 'libero_object_lan' #0: rewards are catalogued for the base "
                                         "suites .* a perturbation suite or libero_90 is evaluated, not trained on"):
        make_reward("libero_object_lan", 0)  # a perturbation suite is refused in one line
    with pytest.raises(ValueError, match="source"):
        RewardConfig(source="gpt")


@pytest.mark.parametrize("field", ["w_f1", "w_f2", "key_pose_scale", "progress_scale", "request_timeout_s",
                                   "sandbox_timeout_s"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "1.0", None])
def test_every_config_number_must_be_finite(field, value):
    with pytest.raises(ValueError, match=f"RewardConfig.{field}"):
        RewardConfig(**{field: value})


def test_config_choices_are_checked():
    for kw, match in ((dict(fallback="llm"), "fallback"), (dict(max_retries=-1), "max_retries"),
                      (dict(max_tokens=0), "max_tokens"), (dict(model=""), "model"),
                      (dict(key_pose_demos=0), "key_pose_demos"), (dict(key_pose_demos=1.5), "key_pose_demos")):
        with pytest.raises(ValueError, match=match):
            RewardConfig(**kw)


def test_key_poses_average_the_sft_recipes_demos():
    from tgrpo_lib.infra.config import SFT_RECIPE

    # the reward's key poses and the start policy come from the same first demos of the task
    assert RewardConfig().key_pose_demos == SFT_RECIPE["max_demos_per_task"]



def test_recorded_key_poses_follow_the_config(tmp_path):
    from tgrpo_lib.expert import aggregate_key_poses, save_key_poses

    per_demo = [[{"label": "grasp:x", "step": 5, "xyz": [x, 0.0, 1.0]}] for x in (0.0, 0.4, 2.0)]
    poses, used = aggregate_key_poses(per_demo)
    save_key_poses(tmp_path / "libero_object" / "task_0" / "key_poses.json", "libero_object", 0, poses, used,
                   per_demo=per_demo)
    two = recorded_key_poses("libero_object", 0, RewardConfig(key_pose_demos=2), root=tmp_path)
    np.testing.assert_allclose(two[0]["xyz"], [0.2, 0.0, 1.0])  # the first two demos, not the third
    assert recorded_key_poses("libero_object", 0, RewardConfig(key_pose_demos=175), root=tmp_path) == poses
    assert recorded_key_poses("libero_object", 1, root=tmp_path) is None  # none recorded: object positions

def test_offline_program_has_a_source_hash():
    a = make_reward("libero_object", 0)
    assert len(a.source_hash) == 16 and a.provenance() == {"reward_source": "offline", "reward_source_hash": a.source_hash,
                                                          "reward_n_stages": 4}
    assert make_reward("libero_object", 0).source_hash == a.source_hash  # deterministic
    assert make_reward("libero_object", 1).source_hash != a.source_hash
    assert make_reward("libero_object", 0, cfg=RewardConfig(w_f2=0.5)).source_hash != a.source_hash
