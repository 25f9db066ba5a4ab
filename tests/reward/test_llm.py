"""LLM reward path without a network: the prompt, answer parsing, validation, cache key, stage count.

Every program below is a HAND-WRITTEN TEST FIXTURE, not output of Claude."""
import numpy as np
import pytest
from llm_fixtures import FIXTURE
from llm_fixtures import RETURN as RET

from tgrpo_lib.envs import get_task
from tgrpo_lib.reward import RewardConfig, task_goal
from tgrpo_lib.reward.llm import (
    VALIDATOR_VERSION,
    Answer,
    LLMRewardProgram,
    RewardGenerationError,
    cache_key,
    code_from_answer,
    evidence_prompt,
    validate_program,
)
from tgrpo_lib.reward.synthetic import soup_evidence

CFG = RewardConfig(sandbox_timeout_s=20)
INSTRUCTION, GOAL = get_task("libero_object", 0).instruction, task_goal("libero_object", 0).goal


def prompt(ev=None):
    return evidence_prompt("libero_object", 0, INSTRUCTION, GOAL, ev or soup_evidence())


def test_prompt_follows_the_paper():
    text = prompt()
    assert INSTRUCTION in text
    assert "`pos/alphabet_soup_1` position at the start (-0.1" in text  # from a real start state
    assert "at the end of a successful demonstration (0.000, 0.150, 0.060)" in text
    assert "grasp:alphabet_soup_1 at step 25: (-0.120, -0.240, 0.025)" in text  # key poses of the demo
    assert "basket_1:" in text  # the body carrying the goal region
    assert "`gripper_qpos`" in text and "def reward(state, step)" in text and "N_STAGES" in text
    assert "Decompose the task into stages yourself" in text
    # nothing of the offline compiler: no f1 + f2 form, no region boxes, no joint thresholds
    for project_detail in ("f1", "f2", "half extents", "open if q", "On-zone", "0.03 m", "approach, grasp"):
        assert project_detail not in text
    assert prompt() == text  # deterministic


def test_cache_key_covers_prompt_model_and_validator(monkeypatch):
    k = cache_key("p", "m")
    assert k != cache_key("p2", "m") and k != cache_key("p", "m2")
    monkeypatch.setattr("tgrpo_lib.reward.llm_cache.VALIDATOR_VERSION", VALIDATOR_VERSION + 1)
    assert cache_key("p", "m") != k


@pytest.mark.parametrize("answer, stop, reason", [
    ("x\n```python\nN_STAGES = 1\n", "max_tokens", "cut at max_tokens=4096"),
    ("I would decompose the task into four stages: approach, grasp, lift and place.", "end_turn", "no ```python code block"),
    ("", "refusal", "refused"),
])
def test_unusable_answers_are_one_line(answer, stop, reason):
    with pytest.raises(RewardGenerationError, match=reason) as e:
        code_from_answer(Answer(answer, stop, "m", {}, 1), RewardConfig())
    assert "\n" not in str(e.value)


def test_code_is_the_last_block_defining_reward():
    text = "plan\n```python\nx = 1\n```\nthen\n```python\n" + FIXTURE + "```\nnote\n```\nN_STAGES = 9\n```"
    assert code_from_answer(Answer(text, "end_turn", "m", {}, 1), CFG) == FIXTURE


def test_stage_count_is_what_the_program_sets_when_it_runs():
    """A docstring line, 1_0 or 0x2 gave a regex one number and the program another."""
    code = FIXTURE.replace("N_STAGES = 2", '"""\nN_STAGES = 1\n"""\nN_STAGES = 0x2')
    check = validate_program(code, soup_evidence(), CFG)
    assert check.ok, check.reason
    assert check.n_stages == 2
    prog = LLMRewardProgram(code, check.n_stages, CFG)
    out = prog(soup_evidence().trajectories[0])
    assert out.stage.max() == 2 == prog.n_stages
    with pytest.raises(Exception, match="validated with 3"):  # a program that disagrees with its validation
        LLMRewardProgram(code, 3, CFG)(soup_evidence().trajectories[0])


@pytest.mark.parametrize("old, new, reason", [
    ("", "import os\n", "static check: line 1: `Import` is not allowed"),
    ("N_STAGES = 2\n", "", "N_STAGES must be a module-level int in 1..64 (it is not set)"),
    ("N_STAGES = 2", "N_STAGES = 1.5", "N_STAGES must be"),
    (RET, "return eef, stage", "output: reward has shape"),
    (RET, "return f2, stage + 1", "stage must hold integers in [0, N_STAGES=2]"),
    (RET, "return np.asarray(f2, 'complex128'), stage", "dtype complex128"),
    (RET, "return np.asarray(f2, 'U8'), stage", "not strings"),
    ("N_STAGES = 2", "N_STAGES = 3", "sanity check: successes end at raw stages [2], not 3"),
    (RET, "return 3.0 - stage - f2, stage", "sanity check: a failure's return beats"),
])
def test_broken_programs_fail_validation_with_the_reason(old, new, reason):
    code = FIXTURE.replace(old, new) if old else new + FIXTURE
    check = validate_program(code, soup_evidence(), CFG)
    assert not check.ok
    assert reason in check.reason, check.reason
    assert "\n" not in check.reason


def test_no_successful_demo_means_not_proven():
    ev = soup_evidence()
    ev.success = [False] * len(ev.success)
    check = validate_program(FIXTURE, ev, CFG)
    assert not check.ok and "no successful expert demonstration" in check.reason


def test_provenance_names_the_program():
    prog = LLMRewardProgram(FIXTURE, 2, CFG, {"model": "m", "key": "k"}, "rewards/x.json")
    p = prog.provenance()
    assert p["reward_source"] == "llm" and p["reward_source_hash"] == prog.source_hash and len(prog.source_hash) == 16
    assert p["reward_n_stages"] == 2 and p["reward_cache_entry"] == "rewards/x.json"
    assert LLMRewardProgram(FIXTURE + "\n# changed\n", 2, CFG).source_hash != prog.source_hash


def test_start_batch_is_length_one_trajectories():
    batch = soup_evidence(n_start=3).start_batch()
    assert batch["eef_pos"].shape == (3, 1, 3) and batch["gripper_qpos"].shape == (3, 1, 2)
    assert np.all(np.isfinite(batch["pos/alphabet_soup_1"]))
