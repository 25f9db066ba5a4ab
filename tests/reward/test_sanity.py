"""Sanity checks flag rewards that do not order success above failure."""
import numpy as np
import pytest

from tgrpo_lib.reward import check_reward, make_reward, sanity_table
from tgrpo_lib.reward.synthetic import ScriptedTrajectory, pick_and_place

START = {"eef_pos": [-0.2, 0.0, 0.3], "gripper_qpos": [0.04, -0.04], "pos/alphabet_soup_1": [-0.12, -0.24, 0.015],
         "pos/basket_1_contain_region": [0.0, 0.15, 0.072]}


def demos():
    ok = pick_and_place(ScriptedTrajectory(START), "alphabet_soup_1", [0.0, 0.15, 0.06], grasp_dz=0.01).states()
    hover = ScriptedTrajectory(START).move_eef([-0.12, -0.24, 0.1], 20).wait(60).states()  # never grasps
    rng = np.random.default_rng(0)
    rand = ScriptedTrajectory(START)
    for _ in range(30):
        rand.move_eef(np.array([-0.2, 0.0, 0.3]) + rng.uniform(-0.1, 0.1, 3), 2)
    return [ok, hover, rand.states()], [True, False, False]


class Inverted:
    """A deliberately broken reward: the offline one, negated into its own range."""
    source = "test"

    def __init__(self, prog):
        self.p, self.n_stages, self.max_reward = prog, prog.n_stages, prog.max_reward

    def __call__(self, st, step=None):
        out = self.p(st)
        out.reward = self.max_reward - out.reward
        return out


def test_good_reward_passes_and_reports_scale():
    prog = make_reward("libero_object", 0)
    trajs, succ = demos()
    rep = check_reward(prog, trajs, succ, task="libero_object/0")
    assert rep.ok, rep.row["reason"]
    assert rep.row["raw_regressions"] == 0 and rep.row["return_margin"] > 0
    assert list(rep.per_stage["stage"]) == [0, 1, 2, 3, 4]
    assert rep.per_stage["max"].max() == pytest.approx(5.0)
    assert len(sanity_table([rep])) == 1


def test_inverted_reward_flagged_and_refused():
    prog = make_reward("libero_object", 0)
    trajs, succ = demos()
    rep = check_reward(Inverted(prog), trajs, succ)
    assert not rep.ok and "beats a success" in rep.row["reason"]
    # a success that never finishes the last stage fails too
    rep = check_reward(prog, [trajs[1]], [True])
    assert not rep.ok and "not 4" in rep.row["reason"]
    with pytest.raises(ValueError, match="failed its sanity check"):
        make_reward("libero_object", 0, require_sanity=True, sanity_trajectories=[trajs[1]], sanity_success=[True])
    with pytest.raises(ValueError, match="require_sanity=True needs"):
        make_reward("libero_object", 0, require_sanity=True)
    assert make_reward("libero_object", 0, require_sanity=True, sanity_trajectories=trajs, sanity_success=succ)
