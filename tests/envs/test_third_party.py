"""The env layer imports LIBERO and robosuite without their chatter: no robosuite 'private macro
file' warning, no LIBERO '[info] Applying task order' line; robosuite's other warnings and LIBERO's
own warnings still show, and the info lines are kept on the ``libero`` logger at DEBUG."""
import logging
import os
import subprocess
import sys

import pytest

import tgrpo_lib
from tgrpo_lib.envs import third_party

NOISE = ("[robosuite WARNING]", "private macro file", "setup_macros.py", "[info] Applying task order",
         "[info] Using default task order")


def run_python(code: str) -> str:
    """stdout + stderr of a fresh interpreter (robosuite warns once per process, on its first import)."""
    env = {**os.environ, "PYTHONPATH": str(tgrpo_lib.PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_importing_the_env_layer_and_libero_prints_no_noise():
    printed = run_python("from tgrpo_lib.envs import get_task, make_env, list_tasks\n"
                         "from tgrpo_lib.envs import third_party\n"
                         "print(len(list_tasks()))\n"
                         "third_party.libero_envs()  # what make_env imports: libero.libero.envs, robosuite, mujoco\n"
                         "import logging; logging.getLogger('robosuite_logs').warning('a real robosuite warning')\n")
    assert [n for n in NOISE if n in printed.replace("[robosuite WARNING] a real robosuite warning", "")] == []
    assert printed.startswith("40\n")  # the four suites were built (each used to print its task order)
    assert "a real robosuite warning" in printed  # only the macro hints are dropped


def test_libero_prints_go_to_its_logger(caplog):
    with caplog.at_level(logging.DEBUG, logger="libero"):
        benchmark = third_party.libero_benchmark()
        benchmark.get_benchmark_dict()["libero_goal"]()
        benchmark.print("[warning] task_order_index 12 is out of range")
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "libero"]
    assert any(level == logging.DEBUG and message.startswith("[info] Applying task order index 0")
               for level, message in records)
    assert (logging.WARNING, "[warning] task_order_index 12 is out of range") in records


def test_robosuite_filter_is_installed_once():
    logger = logging.getLogger(third_party.ROBOSUITE_LOGGER)
    third_party.quiet_robosuite()
    before = list(logger.filters)
    third_party.quiet_robosuite()
    assert logger.filters == before and len(before) >= 1


@pytest.mark.sim
def test_making_an_env_prints_no_noise():
    printed = run_python("from tgrpo_lib.envs import EnvConfig, make_env\n"
                         "env = make_env('libero_object', 0, EnvConfig(cameras=('agentview',), camera_size=64))\n"
                         "print(env.max_steps)\n"
                         "env.close()\n")
    assert [n for n in NOISE if n in printed] == []
    assert printed.split("\n")[0] == "280"


def test_no_deprecation_warning_from_robosuite_import():
    """robosuite logs its hints with the deprecated Logger.warn; pytest (python -W default) showed that too."""
    printed = run_python("import warnings; warnings.simplefilter('default')\n"
                         "from tgrpo_lib.envs import third_party\n"
                         "third_party.libero_envs()\n")
    assert "The 'warn' method is deprecated" not in printed
