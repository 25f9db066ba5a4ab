import numpy as np
import pytest

from tgrpo_lib.envs import EnvConfig, GroupEngine, rollout_group, standard_init_states


@pytest.fixture(scope="module")
def engine():
    eng = GroupEngine("object", 0, 3, EnvConfig(max_steps=12, render_quality="standard"))
    yield eng
    eng.close()


def _random_policy(seed=0):
    rng = np.random.default_rng(seed)
    return lambda obs: {"actions": rng.uniform(-0.3, 0.3, (len(obs["proprio"]), 7)), "tag": np.arange(len(obs["proprio"]))}


@pytest.mark.sim
def test_group_trajectories_have_equal_length_and_same_start(engine):
    state = standard_init_states("object", 0)[1]
    ro = rollout_group(engine, _random_policy(), state)
    assert ro.length == 12  # nobody succeeds with small random actions: all run to max_steps
    assert ro.obs["agentview"].shape == (3, 12, 128, 128, 3)
    assert ro.obs["proprio"].shape == (3, 12, 8)
    assert ro.actions.shape == (3, 12, 7) and ro.success.shape == (3, 12)
    assert ro.states["eef_pos"].shape == (3, 13, 3)
    assert ro.extras["tag"].shape == (3, 12)
    # all N environments start from the same init state ...
    assert np.allclose(ro.states["pos/alphabet_soup_1"][:, 0], ro.states["pos/alphabet_soup_1"][0, 0])
    # ... and then diverge under different actions
    assert not np.allclose(ro.states["eef_pos"][0, -1], ro.states["eef_pos"][1, -1])


@pytest.mark.sim
def test_stop_rule_any_success_stops_all(engine):
    state = standard_init_states("object", 0)[0]
    seen = {"env1": 0}

    def policy(obs):
        if 1 in obs["env"]:
            seen["env1"] += 1
            if seen["env1"] == 4:  # before env 1's 4th step, drop the soup into its basket
                basket = engine.call(1, "privileged_state")["pos/basket_1_contain_region"]
                engine.call(1, "set_object_pose", "alphabet_soup_1", basket)
        return {"actions": np.zeros((len(obs["env"]), 7))}

    ro = rollout_group(engine, policy, state)
    assert ro.length == 4
    assert ro.success[:, -1].tolist() == [False, True, False]
    assert not ro.success[:, :-1].any()
    assert ro.episode_success.tolist() == [False, True, False]
    engine.reset(state)  # no step left in flight: the engine is usable again


@pytest.mark.sim
def test_pipelined_rollout_matches_lock_step_stepping(engine):
    """The pipelined rollout records exactly what stepping all environments together gives."""
    state = standard_init_states("object", 0)[2]
    acts = np.random.default_rng(3).uniform(-0.5, 0.5, (12, engine.n, 7))
    count = {}

    def policy(obs):
        t = count.setdefault(tuple(obs["env"]), 0)
        count[tuple(obs["env"])] += 1
        return {"actions": acts[t][obs["env"]], "t": np.full(len(obs["env"]), t)}

    ro = rollout_group(engine, policy, state)
    obs = engine.reset(state)
    eef = [obs["state"]["eef_pos"]]
    for t in range(12):
        obs, _ = engine.step(acts[t])
        eef.append(obs["state"]["eef_pos"])
    assert np.array_equal(ro.states["eef_pos"], np.stack(eef, axis=1))
    assert np.array_equal(ro.actions, acts.transpose(1, 0, 2))
    assert np.array_equal(ro.extras["t"], np.broadcast_to(np.arange(12), (engine.n, 12)))


def test_group_needs_two_trajectories():
    class One:
        n = 1
    with pytest.raises(ValueError, match="N >= 2"):
        rollout_group(One(), lambda o: {"actions": np.zeros((1, 7))}, np.zeros(3))


@pytest.mark.sim
def test_reset_some_resets_only_the_named_environments(engine):
    states = standard_init_states("object", 0)
    engine.reset(states[:3])
    engine.step(np.full((3, 7), 0.2))
    moved = engine.call(2, "privileged_state")["eef_pos"]
    obs = engine.reset_some([0], states[4:5])
    fresh = engine.call(0, "privileged_state")
    kept = engine.call(2, "privileged_state")["eef_pos"]
    # env 0 restarted from init state 4 exactly as a full reset would put it ...
    engine.reset(states[[4, 4, 4]])
    ref = engine.call(1, "privileged_state")
    assert np.array_equal(fresh["pos/alphabet_soup_1"], ref["pos/alphabet_soup_1"])
    assert np.array_equal(fresh["eef_pos"], ref["eef_pos"])
    # ... while env 2 kept the state it had moved to
    assert np.array_equal(kept, moved)
    assert not np.allclose(moved, ref["eef_pos"], atol=1e-3)
    assert obs["proprio"].shape == (3, 8)
