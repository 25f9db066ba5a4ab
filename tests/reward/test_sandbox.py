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


# ---------------------------------------------------------------- the parent side never crashes
HOSTILE_SOURCES = {
    "200k unary minus": "x = " + "-" * 200_000 + "1\n",
    "200k subscripts": "x = a" + "[0]" * 200_000 + "\n",
    "20k unary minus (under the size cap)": HEAD + "    x = " + "-" * 20_000 + "1\n    return 0, 0\n",
    "9k subscripts (under the size cap)": HEAD + "    x = a" + "[0]" * 9_000 + "\n    return 0, 0\n",
    "deep but parseable": HEAD + "    x = " + "-" * 150 + "1\n    return 0, 0\n",
    "nested lists": "X = " + "[" * 90 + "]" * 90 + "\n" + HEAD + "    return 0, 0\n",
    "lone surrogate": HEAD + "    x = '\ud800'\n    return 0, 0\n",
    "null byte": HEAD + "    x = 1\x00\n    return 0, 0\n",
    "4 MB literal": "X = '" + "a" * 4_000_000 + "'\n" + HEAD + "    return 0, 0\n",
    "not text": b"N_STAGES = 1",
}


@pytest.mark.parametrize("name", list(HOSTILE_SOURCES))
def test_any_source_is_one_sandbox_error(name):
    import time

    t0 = time.perf_counter()
    with pytest.raises(SandboxError) as e:
        check_program(HOSTILE_SOURCES[name])
    assert time.perf_counter() - t0 < 3.0
    assert "\n" not in str(e.value) and len(str(e.value)) < 1200


def test_size_cap_and_surrogate_reasons():
    with pytest.raises(SandboxError, match="at most 30000 are accepted"):
        check_program(HOSTILE_SOURCES["4 MB literal"])
    with pytest.raises(SandboxError) as e:
        check_program(HOSTILE_SOURCES["lone surrogate"])
    assert "line 3: the source is not valid text (lone surrogate '\\ud800')" in str(e.value)


def test_error_message_is_capped_but_every_problem_is_kept():
    code = "import os\n" * 2_500 + HEAD + "    return 0, 0\n"
    with pytest.raises(SandboxError) as e:
        check_program(code)
    assert len(e.value.problems) == 2_500
    msg = str(e.value)
    assert "\n" not in msg and msg.count("`Import` is not allowed") == 5 and msg.endswith("(+2495 more)")


@pytest.mark.parametrize("body, reason", [
    ("    return np.asarray(" + ZERO + ", 'U4'), " + ZERO + "\n", "reward has dtype str"),
    ("    return " + ZERO + ", np.asarray(" + ZERO + ", 'U4')\n", "stage has dtype str"),
    ("    return " + ZERO + " + (-1.0) ** 0.5, " + ZERO + "\n", "reward has dtype complex128"),
    ("    return np.asarray(" + ZERO + ", 'complex64'), " + ZERO + "\n", "complex64"),
    ("    return np.asarray(" + ZERO + ", 'object'), " + ZERO + "\n", "dtype object"),
    ("    return '1.0', " + ZERO + "\n", "reward has dtype str"),
])
def test_outputs_must_be_real_numbers(body, reason):
    with pytest.raises(SandboxError) as e:
        run_program(HEAD + body, STATE, timeout_s=10, memory_mb=1024)
    assert any(reason in p for p in e.value.problems), e.value.problems


def test_stage_count_is_returned_from_the_run():
    code = '"""\nN_STAGES = 7\n"""\nN_STAGES = 1_0\n' + GOOD.split("\n", 1)[1].replace("np.where(d < 0.05, 2, 0)", "np.where(d < 0.05, 10, 0)")
    assert run_program(code, STATE)[2] == 10


def test_worker_describes_exceptions_whose_text_fails():
    import importlib.util
    from pathlib import Path

    import tgrpo_lib.reward.sandbox as sb

    spec = importlib.util.spec_from_file_location("_worker", Path(sb.__file__).with_name("_sandbox_worker.py"))
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("repr failed")

    assert worker.describe(Unprintable()) == "(no message)"
    assert worker.describe(ValueError("a\nb")) == "a b"
