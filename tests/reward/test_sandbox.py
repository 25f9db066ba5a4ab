"""Hostile LLM programs are rejected with line numbers and reasons; good ones run isolated."""
import numpy as np
import pytest

from tgrpo_lib.reward.sandbox import SandboxError, check_program, run_program

STATE = {"eef_pos": np.zeros((2, 3, 3)), "pos/a_1": np.ones((2, 3, 3))}
HEAD = "N_STAGES = 2\ndef reward(state, step):\n"
ZERO = "state['eef_pos'][..., 0] * 0.0"

GOOD = HEAD + """\
    d = np.linalg.norm(state["eef_pos"] - state["pos/a_1"], axis=-1)
    stage = np.where(d < 0.05, 2, 0)
    for i in range(2):
        d = d + 0.0
    return 1.0 - np.clip(d, 0.0, 1.0) + stage, stage
"""

STATIC = {  # program -> a fragment of the expected reason
    "import os\n" + HEAD + "    return 0, 0\n": "line 1: `Import` is not allowed",
    HEAD + "    f = open('/etc/passwd')\n    return 0, 0\n": "line 3: name `open` is forbidden",
    HEAD + "    x = ().__class__.__bases__[0].__subclasses__()\n    return 0, 0\n": "attribute `__class__` is forbidden",
    HEAD + "    while True:\n        pass\n    return 0, 0\n": "line 3: `While` is not allowed",
    HEAD + "    for i in range(10**9):\n        pass\n    return 0, 0\n": "range(<literal <= 64>)",
    HEAD + "    x = np.load('/etc/passwd')\n    return 0, 0\n": "call of `np.load` is not allowed",
    HEAD + "    x = eval('1')\n    return 0, 0\n": "name `eval` is forbidden",
    HEAD + "    x = state['eef_pos'].sum()\n    return 0, 0\n": "attribute access `.sum`",
    HEAD + "    g = lambda: 1\n    return 0, 0\n": "`Lambda` is not allowed",
    "N_STAGES = 1\n": "exactly one function",
}


@pytest.mark.parametrize("code, reason", list(STATIC.items()))
def test_static_rejections_name_line_and_construct(code, reason):
    with pytest.raises(SandboxError) as e:
        check_program(code)
    assert any(reason in p for p in e.value.problems), e.value.problems


def test_good_program_runs_in_worker():
    r, s, n = run_program(GOOD, STATE)
    assert n == 2 and r.shape == s.shape == (2, 3) and s.dtype == np.int64
    np.testing.assert_allclose(r, 0.0)  # distance sqrt(3) clipped to 1 -> 1 - 1 + 0


@pytest.mark.parametrize("body, reason", [
    ("    x = np.ones(10**12)\n    return " + ZERO + ", " + ZERO + "\n", "memory limit"),
    ("    z = " + ZERO + "\n    return z / z, z\n", "non-finite"),
    ("    return state['eef_pos'], " + ZERO + "\n", "expected the batch shape (2, 3)"),
    ("    return " + ZERO + " + 0.5, " + ZERO + " + 7\n", "stage must hold integers in [0, N_STAGES=2]"),
    ("    return state['missing'], 0\n", "line 3: runtime KeyError"),
])
def test_runtime_rejections(body, reason):
    with pytest.raises(SandboxError) as e:
        run_program(HEAD + body, STATE, timeout_s=10, memory_mb=1024)
    assert any(reason in p for p in e.value.problems), e.value.problems


def test_endless_computation_times_out():
    code = HEAD + "    x = 10**10**8\n    return " + ZERO + ", " + ZERO + "\n"  # passes the static check
    with pytest.raises(SandboxError, match="no result within 2 s"):
        run_program(code, STATE, timeout_s=2)
