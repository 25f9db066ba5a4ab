"""``python -m tgrpo_lib <command>``: one entry point dispatching to each command's home, and the
older spellings ``python -m tgrpo_lib.<command>`` still working as shims."""
import runpy
import subprocess
import sys

import pytest

from tgrpo_lib import __main__ as entry

OLD_SPELLINGS = {"main": "run", "sft": "sft", "plan": "plan", "parity": "parity", "diagnose": "diagnose",
                 "reproduce": "reproduce"}


@pytest.mark.parametrize("command", list(entry.COMMANDS))
def test_each_command_is_dispatched_to_its_home(command, capsys):
    with pytest.raises(SystemExit) as done:
        entry.main([command, "--help"])
    assert done.value.code == 0
    assert f"usage: python -m tgrpo_lib {command}" in capsys.readouterr().out


@pytest.mark.parametrize("old, command", OLD_SPELLINGS.items())
def test_the_old_spelling_runs_the_same_command(old, command, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"tgrpo_lib.{old}", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module(f"tgrpo_lib.{old}", run_name="__main__")
    assert done.value.code == 0
    assert f"usage: python -m tgrpo_lib {command}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [([], "name a command"), (["train"], "unknown command 'train'")])
def test_no_or_an_unknown_command_is_refused_naming_the_commands(argv, message, capsys):
    with pytest.raises(SystemExit) as done:
        entry.main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and message in err and "run" in err and "parity" in err


def test_python_dash_m_tgrpo_lib_refuses_a_bad_flag_in_one_line():
    out = subprocess.run([sys.executable, "-m", "tgrpo_lib", "run", "--iterations", "-1"], capture_output=True,
                         text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("python -m tgrpo_lib run: error: iterations=-1")
