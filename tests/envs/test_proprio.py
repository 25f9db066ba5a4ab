"""EnvConfig.proprio: the default keeps the grip-site orientation; "robosuite" reproduces the state
OpenVLA's LIBERO evaluation builds from robosuite's own observation (eef_pos, axis-angle of
robot0_eef_quat, gripper_qpos)."""
import math

import numpy as np
import pytest

from tgrpo_lib.envs import EnvConfig, make_env, standard_init_states
from tgrpo_lib.envs.core import quat_to_axis_angle


def robosuite_axis_angle(quat):
    """robosuite.utils.transform_utils.quat2axisangle, written out (the formula OpenVLA copies)."""
    q = np.array(quat, dtype=np.float64)
    q[3] = min(max(q[3], -1.0), 1.0)
    den = math.sqrt(1.0 - q[3] * q[3])
    return np.zeros(3) if math.isclose(den, 0.0) else q[:3] * 2.0 * math.acos(q[3]) / den


def test_proprio_convention_is_checked():
    with pytest.raises(ValueError, match="proprio"):
        EnvConfig(proprio="eef")


@pytest.mark.sim
def test_robosuite_proprio_matches_robosuites_observation():
    env = make_env("object", 0, EnvConfig(cameras=(), proprio="robosuite"))
    try:
        obs = env.reset(standard_init_states("object", 0)[0])
        rng = np.random.default_rng(0)
        for _ in range(3):
            obs, _ = env.step(np.append(rng.uniform(-0.5, 0.5, 6), 1.0))
        ref = env.robosuite_observation()
        expected = np.concatenate([ref["robot0_eef_pos"], robosuite_axis_angle(ref["robot0_eef_quat"]),
                                   ref["robot0_gripper_qpos"]])
        np.testing.assert_allclose(obs["proprio"], expected, rtol=0, atol=1e-6)
        # the default orientation is the grip site's, which is not robosuite's eef quaternion
        grip = quat_to_axis_angle(obs["state"]["eef_quat"])
        assert np.abs(grip - expected[3:6]).max() > 1e-3
        np.testing.assert_allclose(obs["state"]["eef_pos"], ref["robot0_eef_pos"], atol=1e-12)
    finally:
        env.close()
