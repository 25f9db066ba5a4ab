"""`python -m tgrpo_lib.reward sanity|generate`: old flags, one-line errors with exit status 2, the
generate table. Simulator-free: evidence is scripted (tgrpo_lib.reward.synthetic); programs in the
answers are HAND-WRITTEN TEST FIXTURES."""
import dataclasses
import os
import subprocess
import sys

import pytest
from fake_anthropic import FakeAnthropic, answer, status
from llm_fixtures import GOOD

import tgrpo_lib
from tgrpo_lib.reward import RewardConfig
from tgrpo_lib.reward.__main__ import main, parse_args
from tgrpo_lib.reward.commands import Aborted, generate_rewards, markdown_table
from tgrpo_lib.reward.synthetic import soup_evidence

pytestmark = pytest.mark.timeout(120)


def run_cli(*args, key=None):
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")}
    if key:
        env["ANTHROPIC_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "tgrpo_lib.reward", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=tgrpo_lib.PROJECT_ROOT)


def test_sanity_is_the_default_command_with_the_old_flags():
    a = parse_args(["--suite", "goal", "--tasks", "0", "3", "7", "--expert", "1", "--random", "3", "--random-steps", "20"])
    assert (a.command, a.suite, a.tasks, a.expert, a.random, a.random_steps, a.source) == \
        ("sanity", "goal", [0, 3, 7], 1, 3, 20, "offline")
    assert parse_args([]).command == "sanity"
    g = parse_args(["generate", "--suite", "all", "--timeout", "10", "--retries", "1"])
    assert (g.command, g.suite, g.timeout, g.retries) == ("generate", "all", 10.0, 1)


def test_generate_without_a_key_prints_one_line_and_exits_2():
    p = run_cli("generate", "--suite", "all")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "ANTHROPIC_API_KEY is not set" in lines[0] and "offline stage compiler" in lines[0]


@pytest.mark.parametrize("args, fragment", [(["sanity", "--suite", "libero_90"], "libero_90"),
                                            (["generate", "--tasks", "12"], "task ids are 0..9")])
def test_usage_errors_are_one_line_exit_2(args, fragment):
    p = run_cli(*args, key="x" if args[0] == "generate" else None)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def soup_for(suite, task_id):
    return dataclasses.replace(soup_evidence(), suite=suite, task_id=task_id)


@pytest.fixture
def api_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setattr(tgrpo_lib, "OUTPUTS_DIR", tmp_path / "outputs")
    monkeypatch.setattr("tgrpo_lib.reward.llm_api.BACKOFF_BASE_S", 0.01)
    return tmp_path


def test_generate_table_passed_cached_rejected(api_env, monkeypatch):
    cfg = RewardConfig(source="llm", cache_dir=str(api_env / "rewards"), model="test-model", max_retries=0)
    tasks = [("libero_object", 0), ("libero_object", 1)]
    with FakeAnthropic([answer(GOOD), answer("Approach, grasp, place.")]) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        table = generate_rewards(tasks, cfg, soup_for, progress=False)
        assert list(table["status"]) == ["passed", "rejected"]
        assert "no ```python code block" in table["reason"][1] and table["n_stages"][0] == 2
        again = generate_rewards(tasks[:1], cfg, soup_for, progress=False)
        assert list(again["status"]) == ["cached"] and len(api.requests) == 2
    assert "| task | status |" in markdown_table(table)


def test_generate_stops_on_an_api_failure(api_env, monkeypatch):
    cfg = RewardConfig(source="llm", cache_dir=str(api_env / "rewards"), max_retries=0)
    with FakeAnthropic([status(401, "invalid x-api-key")]) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        with pytest.raises(Aborted) as e:
            generate_rewards([("libero_object", 0), ("libero_object", 1)], cfg, soup_for, progress=False)
        assert len(api.requests) == 1  # the second task was not tried
    assert list(e.value.table["status"]) == ["error"] and "401" in str(e.value)


def test_generate_command_writes_the_table_and_exit_codes(api_env, monkeypatch, capsys):
    monkeypatch.setattr("tgrpo_lib.reward.evidence.collect_evidence", lambda s, t, **kw: soup_for(s, t))
    args = ["generate", "--suite", "object", "--tasks", "0", "--cache-dir", str(api_env / "rewards"), "--retries", "0"]
    with FakeAnthropic([answer(GOOD), status(401, "invalid x-api-key")]) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        assert main(args) == 0
        out = (api_env / "outputs" / "reward_generation" / "libero_object.md").read_text()
        assert "passed" in out and "libero_object-0" in out
        assert main(args[:4] + ["1"] + args[5:]) == 2  # task 1: the 401
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: the API at") and "ANTHROPIC_API_KEY" in err[-1]


def test_sanity_command_writes_its_table(api_env, monkeypatch, capsys):
    monkeypatch.setattr("tgrpo_lib.reward.commands.collect_evidence", lambda s, t, **kw: soup_for(s, t))
    assert main(["--suite", "object", "--tasks", "0"]) == 0
    md = (api_env / "outputs" / "reward_sanity" / "libero_object.md").read_text()
    assert md.startswith("| task |") and "libero_object-0" in md
    assert '"passed": 1' in capsys.readouterr().out
    # a cached LLM reward that does not exist: one line, exit 2
    assert main(["sanity", "--suite", "object", "--tasks", "0", "--source", "cache",
                 "--cache-dir", str(api_env / "empty")]) == 2
    assert "no cached LLM reward" in capsys.readouterr().err
