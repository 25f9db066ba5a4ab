import numpy as np
import pytest

from tgrpo_lib.envs import EnvConfig, make_env, standard_init_states
from tgrpo_lib.envs.core import flip_image, quat_to_axis_angle


def test_flip_is_a_180_degree_rotation():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = flip_image(img)
    assert out[0, 0].tolist() == img[1, 2].tolist()
    assert out[1, 2].tolist() == img[0, 0].tolist()
    assert np.array_equal(flip_image(out), img)
    assert out.flags["C_CONTIGUOUS"]


def test_axis_angle_of_known_rotations():
    assert np.allclose(quat_to_axis_angle(np.array([0, 0, 0, 1.0])), 0)
    half = np.sqrt(0.5)  # 90 degrees about z
    assert np.allclose(quat_to_axis_angle(np.array([0, 0, half, half])), [0, 0, np.pi / 2])
    assert np.allclose(quat_to_axis_angle(np.array([1.0, 0, 0, 0])), [np.pi, 0, 0])


@pytest.fixture(scope="module")
def object_env():
    env = make_env("object", 0, EnvConfig(render_quality="standard"))
    yield env
    env.close()


@pytest.mark.sim
def test_reset_to_standard_state_and_step(object_env):
    env = object_env
    states = standard_init_states("object", 0)
    obs = env.reset(states[0])
    assert obs["agentview"].shape == (128, 128, 3) and obs["agentview"].dtype == np.uint8
    assert obs["proprio"].shape == (8,) and obs["proprio"].dtype == np.float32
    st = obs["state"]
    for key in ("eef_pos", "eef_quat", "gripper_qpos", "pos/alphabet_soup_1", "pos/basket_1_contain_region"):
        assert key in st and np.isfinite(st[key]).all()
    assert np.allclose(obs["proprio"][:3], st["eef_pos"])
    assert env.goal == [["in", "alphabet_soup_1", "basket_1_contain_region"]]
    # the soup starts where init state 0 puts it (floor scene, z ~ 0.04), not in the basket
    assert abs(st["pos/alphabet_soup_1"][2] - 0.04) < 0.03 and not env.check_success()
    before = st["eef_pos"].copy()
    for _ in range(5):
        obs, success = env.step(np.array([1.0, 0, 0, 0, 0, 0, -1]))
    assert obs["state"]["eef_pos"][0] > before[0] + 0.02  # +x delta moves the hand away from the robot
    assert success is False
    # the image is the flipped render: the floor (bottom rows) is not the sky of the raw frame
    raw = env.sim.render(camera_name="agentview", width=128, height=128)
    assert np.abs(obs["agentview"].astype(int) - raw[::-1, ::-1].astype(int)).mean() < 8


@pytest.mark.sim
def test_reused_model_episodes_are_bit_identical(object_env):
    """The model is reused across episodes; nothing of the previous episode may leak in
    (robosuite's gripper command and MuJoCo's warm start are cleared on reset)."""
    env = object_env
    states = standard_init_states("object", 0)
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 7))

    def episode():
        first = env.reset(states[3])["state"]
        for a in actions:
            env.step(a)
        return first, env.get_sim_state()

    a0, a1 = episode()
    for _ in range(3):  # a different episode in between, ending with the gripper closed
        env.step(np.array([0.5, 0.5, 0, 0, 0, 0, 1]))
    b0, b1 = episode()
    for k in a0:
        assert np.array_equal(a0[k], b0[k]), k
    assert np.array_equal(a1, b1)


@pytest.mark.sim
def test_teleport_forces_success(object_env):
    env = object_env
    env.reset(standard_init_states("object", 0)[0])
    basket = env.privileged_state()["pos/basket_1_contain_region"]
    env.set_object_pose("alphabet_soup_1", basket)
    assert env.check_success()
    with pytest.raises(ValueError, match="not a free object"):
        env.set_object_pose("no_such_object", basket)


@pytest.mark.sim
def test_trimmed_step_is_bit_identical_to_robosuites_own(object_env):
    """LiberoEnv turns off robosuite's unused observables and the repeated mj_forward of each
    substep; undoing both must reproduce the same states and frames bit for bit."""
    env = object_env
    state = standard_init_states("object", 0)[5]
    actions = np.random.default_rng(7).uniform(-1, 1, (25, 7))
    actions[10:, 6] = 1.0  # close the gripper: contacts and the gripper controller take part

    def episode():
        obs = env.reset(state)
        frames, sims = [obs["agentview"]], []
        for a in actions:
            obs, _ = env.step(a)
            frames.append(obs["agentview"])
            sims.append(env.get_sim_state())
        return np.stack(frames), np.stack(sims)

    assert env.sampled_observables == ["agentview_image"]
    trimmed = episode()
    with env.robosuite_step():
        assert len(env.sampled_observables) > 30  # every robosuite observable is computed again
        full = episode()
    assert env.sampled_observables == ["agentview_image"]  # the trims are back
    assert np.array_equal(trimmed[1], full[1])
    assert np.array_equal(trimmed[0], full[0])
    again = episode()
    assert np.array_equal(trimmed[1], again[1]) and np.array_equal(trimmed[0], again[0])


@pytest.mark.sim
def test_observation_spec_describes_every_observation(object_env):
    env = object_env
    spec = env.observation_spec()
    obs = env.reset(standard_init_states("object", 0)[0])
    assert list(spec) == list(obs) == ["agentview", "proprio", "state"]
    for key in ("agentview", "proprio"):
        assert (obs[key].shape, str(obs[key].dtype)) == spec[key]
    assert list(spec["state"]) == list(obs["state"])
    for key, value in obs["state"].items():
        assert (value.shape, str(value.dtype)) == spec["state"][key], key


def test_render_threads_one_core_share_rasterises_in_the_calling_thread(monkeypatch):
    from tgrpo_lib.envs.config import render_threads_env

    monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    assert render_threads_env(2, cores=2) == "0"  # one core each: no helper thread
    assert render_threads_env(4, cores=2) == "0"
    assert render_threads_env(2, cores=16) == "8"
    monkeypatch.setenv("LP_NUM_THREADS", "3")
    assert render_threads_env(2, cores=2) == "3"  # the user's choice wins


_FRAMES = """
import hashlib, numpy as np
from tgrpo_lib.envs import EnvConfig, make_env, standard_init_states
env = make_env("libero_object", 0, EnvConfig())
h = hashlib.sha256(env.reset(standard_init_states("libero_object", 0)[0])["agentview"].tobytes())
for a in np.random.default_rng(0).uniform(-1, 1, (5, 7)):
    h.update(env.step(a)[0]["agentview"].tobytes())
print(h.hexdigest())
"""


@pytest.mark.sim
def test_frames_are_the_same_whatever_the_render_thread_count():
    import os
    import subprocess
    import sys

    def frames(threads: str) -> str:  # llvmpipe reads LP_NUM_THREADS once per process
        env = {**os.environ, "LP_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", _FRAMES], env=env, capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]
    digests = {t: frames(t) for t in ("0", "1", "2")}
    assert len(set(digests.values())) == 1, digests
