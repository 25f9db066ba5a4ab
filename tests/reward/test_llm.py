"""LLM path with a recorded answer: no network, cache written and reused, fallbacks logged.

The answer below is a HAND-WRITTEN TEST FIXTURE, not output of Claude."""
import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from tgrpo_lib.reward import RewardConfig, SandboxError, make_reward
from tgrpo_lib.reward.llm import LLMRewardProgram, extract_code
from tgrpo_lib.reward.synthetic import ScriptedTrajectory, pick_and_place

FIXTURE_ANSWER = '''Hand-written test fixture (not an LLM answer).
```python
N_STAGES = 2

def reward(state, step):
    eef = state["eef_pos"]
    obj = state["pos/alphabet_soup_1"]
    basket = state["pos/basket_1_contain_region"]
    near = np.linalg.norm(eef - obj, axis=-1) < 0.07
    inside = np.all(np.abs(obj - basket) < 0.06, axis=-1)
    stage = np.where(inside, 2, np.where(near, 1, 0))
    f2 = np.exp(-np.linalg.norm(eef - obj, axis=-1) / 0.1)
    return stage + np.where(inside, 1.0, f2), stage
```
'''


class FakeClient:
    def __init__(self, answer):
        self.calls = []
        self.messages = SimpleNamespace(create=self._create)
        self.answer = answer

    def _create(self, **kw):
        self.calls.append(kw)
        return SimpleNamespace(content=[SimpleNamespace(type="text", text=self.answer)])


def states():
    tb = ScriptedTrajectory({"eef_pos": [-0.2, 0.0, 0.3], "gripper_qpos": [0.04, -0.04],
                             "pos/alphabet_soup_1": [-0.12, -0.24, 0.015],
                             "pos/basket_1_contain_region": [0.0, 0.15, 0.072]})
    return pick_and_place(tb, "alphabet_soup_1", [0.0, 0.15, 0.06], grasp_dz=0.01).states()


def test_llm_answer_cached_then_reused_without_client(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    cfg = RewardConfig(source="llm", cache_dir=str(tmp_path), model="test-model")
    st = states()
    client = FakeClient(FIXTURE_ANSWER)
    prog = make_reward("libero_object", 0, cfg=cfg, client=client, example_state=st)
    assert isinstance(prog, LLMRewardProgram) and prog.n_stages == 2
    assert len(client.calls) == 1 and client.calls[0]["model"] == "test-model"
    prompt = client.calls[0]["messages"][0]["content"]
    assert "alphabet_soup_1" in prompt and "def reward(state, step)" in prompt and "-0.120" in prompt
    files = list((tmp_path / "libero_object" / "task_0").glob("*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    assert rec["model"] == "test-model" and rec["raw_answer"] == FIXTURE_ANSWER and rec["prompt"] == prompt
    out1 = prog(st)
    again = make_reward("libero_object", 0, cfg=RewardConfig(source="cache", cache_dir=str(tmp_path),
                                                             model="test-model"), example_state=st)
    out2 = again(st)
    np.testing.assert_array_equal(out1.reward, out2.reward)
    assert out1.stage[-1] == 2 and np.all(np.diff(out1.stage) >= 0)
    np.testing.assert_allclose(out1.reward[-1], 3.0)


def test_missing_key_logs_and_falls_back_to_offline(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    cfg = RewardConfig(source="llm", cache_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="tgrpo_lib.reward"):
        prog = make_reward("libero_object", 0, cfg=cfg)
    assert prog.source == "offline"
    assert any("ANTHROPIC_API_KEY is not set" in r.message for r in caplog.records)


def test_rejected_answer_is_not_cached(tmp_path):
    cfg = RewardConfig(source="llm", cache_dir=str(tmp_path))
    evil = "```python\nimport os\nN_STAGES = 1\ndef reward(state, step):\n    return 0, 0\n```"
    with pytest.raises(SandboxError, match="Import"):
        make_reward("libero_object", 0, cfg=cfg, client=FakeClient(evil))
    assert not list(tmp_path.rglob("*.json"))


def test_extract_code_takes_last_block():
    assert extract_code("a\n```python\nx = 1\n```\nb\n```python\ny = 2\n```") == "y = 2\n"
