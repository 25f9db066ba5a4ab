"""The commands' shared plumbing: one line, never a traceback, for bad input, run faults and interrupts."""
import signal
import subprocess
import sys
import time

import pytest

from tgrpo_lib.envs import EnvWorkerError
from tgrpo_lib.infra.cli import interruptible, run_guarded
from tgrpo_lib.infra.runs import RunError, RunInterrupted


@pytest.mark.parametrize("exc", [RunError("could not write checkpoint /x/iter_000002.pt (No space left on device)"),
                                 EnvWorkerError("environment worker 1 (pid 7, env 1) died (killed by SIGKILL).")])
def test_a_run_fault_is_one_line_and_exit_code_1(capsys, exc):
    def work():
        raise exc
    with pytest.raises(SystemExit) as out:
        run_guarded("prog", work)
    assert out.value.code == 1
    assert capsys.readouterr().err == f"prog: error: {exc}\n"


def test_an_interrupt_says_what_resumes_and_exits_130(capsys):
    def work():
        raise RunInterrupted("interrupted by SIGINT during iteration 3; rerun the same command to resume r from x")
    with pytest.raises(SystemExit) as out:
        run_guarded("prog", work)
    assert out.value.code == 130
    assert capsys.readouterr().err == "prog: interrupted by SIGINT during iteration 3; rerun the same command to resume r from x\n"


def test_other_errors_keep_their_traceback():
    def work():
        raise ZeroDivisionError("a bug")
    with pytest.raises(ZeroDivisionError):
        run_guarded("prog", work)
    assert run_guarded("prog", lambda: 5) == 5


def test_sigterm_unwinds_as_a_keyboard_interrupt_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="interrupted by SIGTERM"):
        with interruptible():
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_ctrl_c_exits_at_once_even_during_a_slow_cleanup():
    script = ("import time\n"
              "from tgrpo_lib.infra.cli import run_guarded\n"
              "def work():\n"
              "    try:\n"
              "        print('working', flush=True); time.sleep(60)\n"
              "    finally:\n"
              "        print('cleaning up', flush=True); time.sleep(60)  # e.g. closing hung workers\n"
              "run_guarded('prog', work)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "working"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline().strip() == "cleaning up"
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 128 + signal.SIGINT and time.perf_counter() - t0 < 5
    assert proc.stderr.read().strip() == "SIGINT again: exiting now"
