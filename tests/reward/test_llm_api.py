"""The live LLM path with the installed anthropic SDK against a local Messages API on 127.0.0.1.

The server (fake_anthropic.py) is started and stopped by each test, answers at most 12 requests,
and every test is bounded in time. Programs in the answers are HAND-WRITTEN TEST FIXTURES, not
output of Claude. Checked: what was sent (model, prompt, key), what was cached, and that every
failure is one line naming the cause and the fix.
"""
import json
import logging
import time

import pytest
from fake_anthropic import FakeAnthropic, answer, raw, stall, status
from llm_fixtures import BROKEN, FIXTURE, GOOD, HOSTILE

import tgrpo_lib
from tgrpo_lib.reward import RewardConfig, RewardGenerationError, make_reward
from tgrpo_lib.reward.llm import SYSTEM, LLMRewardProgram, source_hash
from tgrpo_lib.reward.synthetic import soup_evidence

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setattr(tgrpo_lib, "OUTPUTS_DIR", tmp_path / "outputs")
    monkeypatch.setattr("tgrpo_lib.reward.llm_api.BACKOFF_BASE_S", 0.05)
    return tmp_path


def config(tmp_path, **kw):
    base = dict(source="llm", cache_dir=str(tmp_path / "rewards"), model="test-model", request_timeout_s=5.0,
                max_retries=1)
    return RewardConfig(**{**base, **kw})


def ask(tmp_path, monkeypatch, script, evidence=None, **cfg):
    """make_reward against a fresh local server: (program or error, requests, seconds)."""
    with FakeAnthropic(script) as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        t0 = time.monotonic()
        try:
            result = make_reward("libero_object", 0, cfg=config(tmp_path, **cfg), evidence=evidence or soup_evidence())
        except RewardGenerationError as e:
            result = e
        return result, api.requests, time.monotonic() - t0


def cached_files(tmp_path):
    return sorted(p.name for p in (tmp_path / "rewards").rglob("*") if p.is_file())


def assert_one_line(err, *fragments):
    assert isinstance(err, RewardGenerationError), err
    text = str(err)
    assert "\n" not in text and len(text) < 600, text
    for f in fragments:
        assert f in text, text


def test_good_answer_is_validated_cached_and_reused(env, monkeypatch):
    prog, reqs, _ = ask(env, monkeypatch, [answer(GOOD)])
    assert isinstance(prog, LLMRewardProgram) and prog.origin == "generated"
    assert len(reqs) == 1
    sent = reqs[0]
    assert sent["path"].endswith("/v1/messages")
    h = sent["headers"]
    assert h.get("x-api-key") == "test-key" or h.get("authorization") == "Bearer test-key"  # the SDK picks the header
    assert h["user-agent"].startswith("Anthropic/Python") and h["x-stainless-retry-count"] == "0"  # our retries, not its
    assert sent["body"]["model"] == "test-model" and sent["body"]["system"] == SYSTEM
    assert sent["body"]["max_tokens"] == 4096 and sent["body"]["stream"] is True and "temperature" not in sent["body"]
    files = cached_files(env)
    key = files[0].split(".")[0]
    assert files == [f"{key}.json", f"{key}.prompt.md", f"{key}.py"]
    d = env / "rewards" / "libero_object" / "task_0"
    assert (d / f"{key}.prompt.md").read_text() == sent["body"]["messages"][0]["content"]  # the prompt sent
    assert (d / f"{key}.py").read_text() == FIXTURE
    rec = json.loads((d / f"{key}.json").read_text())
    assert rec["source_hash"] == prog.source_hash == source_hash(FIXTURE) and rec["n_stages"] == prog.n_stages == 2
    assert rec["model"] == "test-model" and rec["raw_answer"] == GOOD and rec["validation"]["ok"] is True
    assert prog.provenance()["reward_cache_entry"].endswith(f"{key}.json")
    st = soup_evidence().trajectories[0]
    out = prog(st)
    assert out.stage[-1] == 2 and out.reward[-1] == pytest.approx(3.0)
    # source="cache": no server, no request, the same program
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    again = make_reward("libero_object", 0, cfg=config(env, source="cache"), evidence=soup_evidence())
    assert again.source_hash == prog.source_hash and again.origin == "cache"
    assert (again(st).reward == out.reward).all()


@pytest.mark.parametrize("script, fragments", [
    ([answer(HOSTILE)], ["rejected and not cached", "static check: line 1: `Import` is not allowed",
                         "name `open` is forbidden"]),
    ([answer(BROKEN)], ["rejected and not cached", "run on 3 init-state start states", "reward has shape"]),
    ([answer("```python\nN_STAGES = 2\ndef reward(st", stop_reason="max_tokens")], ["cut at max_tokens=4096",
                                                                                   "raise RewardConfig.max_tokens"]),
    ([answer("First approach the can, then grasp it, then place it in the basket.")], ["no ```python code block"]),
    ([status(401, "invalid x-api-key", error_type="authentication_error")],
     ["rejected the key (401: invalid x-api-key)", "set a valid ANTHROPIC_API_KEY"]),
    ([status(429, "rate limit", retry_after=0)], ["rate limited (429: rate limit) on all 2 tries", "wait a minute"]),
    ([status(529, "Overloaded", error_type="overloaded_error")], ["overloaded (529) on all 2 tries", "wait"]),
    ([status(500, "internal")], ["server error (HTTP 500) on all 2 tries", "ANTHROPIC_BASE_URL"]),
    ([raw(b"<html><body><h1>502 Bad Gateway</h1></body></html>", 502, "text/html")], ["server error (HTTP 502)"]),
    ([raw(b"{not json")], ["malformed answer from the API", "ANTHROPIC_BASE_URL"]),
    ([raw(b"event: message_start\ndata: {not json\n\n", 200, "text/event-stream")], ["malformed answer"]),
    ([status(404, "model: test-model", error_type="not_found_error")], ["model 'test-model'", "(404", "RewardConfig.model"]),
])
def test_each_failure_is_one_line_and_nothing_is_cached(env, monkeypatch, script, fragments):
    err, reqs, _ = ask(env, monkeypatch, script)
    assert_one_line(err, *fragments)
    assert "<html" not in str(err) and "Traceback" not in str(err)
    assert cached_files(env) == []
    retried = script[0].get("status") in (429, 500, 502, 529)
    assert len(reqs) == (2 if retried else 1)  # max_retries=1; 401/404/bad answers are not retried


def test_rejected_answers_are_kept_out_of_the_cache_for_inspection(env, monkeypatch):
    err, _, _ = ask(env, monkeypatch, [answer(HOSTILE)])
    kept = list((env / "outputs" / "reward_rejected").rglob("*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["raw_answer"] == HOSTILE
    assert str(kept[0].name) in str(err)


def test_429_retry_after_is_honoured(env, monkeypatch):
    prog, reqs, seconds = ask(env, monkeypatch, [status(429, "slow down", retry_after=1), answer(GOOD)])
    assert isinstance(prog, LLMRewardProgram) and len(reqs) == 2
    assert seconds >= 1.0
    assert len(cached_files(env)) == 3


def test_529_backs_off_then_succeeds(env, monkeypatch):
    prog, reqs, _ = ask(env, monkeypatch, [status(529, "Overloaded"), status(529, "Overloaded"), answer(GOOD)],
                        max_retries=2)
    assert isinstance(prog, LLMRewardProgram) and len(reqs) == 3


@pytest.mark.parametrize("mid_answer", [False, True])
def test_a_stalled_server_times_out_in_bounded_time(env, monkeypatch, mid_answer):
    err, reqs, seconds = ask(env, monkeypatch, [stall(mid_answer)], request_timeout_s=1.0, max_retries=1)
    assert_one_line(err, "no answer from http://127.0.0.1:", "within request_timeout_s=1 s on all 2 tries",
                    "raise RewardConfig.request_timeout_s")
    assert len(reqs) == 2 and seconds < 10


def test_runtime_broken_cached_program_is_reported_and_regenerated(env, monkeypatch, caplog):
    prog, _, _ = ask(env, monkeypatch, [answer(GOOD)])
    entry = prog.cache_path
    # an entry whose program passes the static check but breaks at run time (e.g. written by a
    # version that validated less); its record's hash matches, so only validation can catch it
    py = entry.replace(".json", ".py")
    broken = FIXTURE.replace("N_STAGES = 2\n", "")
    open(py, "w").write(broken)
    rec = json.load(open(entry))
    rec["source_hash"] = source_hash(broken)
    json.dump(rec, open(entry, "w"))
    err, reqs, _ = ask(env, monkeypatch, [], source="cache")
    assert_one_line(err, entry.split("/rewards/")[-1], "failed validation", "N_STAGES", "delete it")
    assert reqs == []
    with caplog.at_level(logging.WARNING, logger="tgrpo_lib.reward"):
        again, reqs, _ = ask(env, monkeypatch, [answer(GOOD)])
    assert len(reqs) == 1 and again.origin == "generated" and open(py).read() == FIXTURE
    assert any("failed validation" in r.getMessage() and "not used" in r.getMessage() for r in caplog.records)


def test_an_edited_cached_program_is_not_used(env, monkeypatch):
    prog, _, _ = ask(env, monkeypatch, [answer(GOOD)])
    with open(prog.cache_path.replace(".json", ".py"), "a") as f:
        f.write("# edited\n")
    err, _, _ = ask(env, monkeypatch, [], source="cache")
    assert_one_line(err, "was edited after validation", "delete it")


def test_an_answer_for_another_prompt_is_never_used(env, monkeypatch):
    ask(env, monkeypatch, [answer(GOOD)])
    moved = soup_evidence(seed=1)  # other start positions: another prompt
    err, reqs, _ = ask(env, monkeypatch, [], evidence=moved, source="cache")
    assert_one_line(err, "no cached LLM reward for libero_object #0 with this prompt",
                    "1 entries there are for other prompts", "python -m tgrpo_lib reward generate")
    prog, reqs, _ = ask(env, monkeypatch, [answer(GOOD)], evidence=moved)
    assert len(reqs) == 1 and prog.origin == "generated" and len(cached_files(env)) == 6


def test_no_key_is_one_line_before_any_simulation(env, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")

    def no_sim(*a, **k):
        raise AssertionError("collect_evidence must not run")

    monkeypatch.setattr("tgrpo_lib.reward.collect_evidence", no_sim)
    with pytest.raises(RewardGenerationError) as e:
        make_reward("libero_object", 0, cfg=config(env))
    assert_one_line(e.value, "ANTHROPIC_API_KEY is not set", "export ANTHROPIC_API_KEY", "source='offline'")
    with pytest.raises(RewardGenerationError, match="no cached LLM reward"):
        make_reward("libero_object", 0, cfg=config(env, source="cache"))


def test_fallback_only_when_asked(env, monkeypatch, caplog):
    err, _, _ = ask(env, monkeypatch, [status(401, "bad key")])
    assert isinstance(err, RewardGenerationError)  # default fallback="none": the run stops
    with caplog.at_level(logging.WARNING, logger="tgrpo_lib.reward"):
        prog, _, _ = ask(env, monkeypatch, [status(401, "bad key")], fallback="offline")
    assert prog.source == "offline" and prog.n_stages == 4
    assert any("401" in r.getMessage() and "offline stage compiler" in r.getMessage() for r in caplog.records)


def test_a_long_retry_after_ends_the_call_with_the_wait(env, monkeypatch):
    err, reqs, seconds = ask(env, monkeypatch, [status(429, "slow down", retry_after=3600)])
    assert_one_line(err, "asks to wait 3600 s before a retry (HTTP 429, retry-after): wait and rerun")
    assert len(reqs) == 1 and seconds < 5
