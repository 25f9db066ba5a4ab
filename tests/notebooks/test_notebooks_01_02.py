"""Notebooks 01 and 02 run headless under papermill with smoke parameters; the values they
store in metrics.json are checked, and their figures are images."""
import json
from pathlib import Path

import pytest
from figure_outputs import assert_figures_render
from run_fixtures import CELL_TIMEOUT_S, NOTEBOOKS

from tgrpo_lib.workflows.reproduce import kernel_config

pytestmark = [pytest.mark.notebook, pytest.mark.sim, pytest.mark.slow]


def _run(name: str, tmp_path: Path, monkeypatch, **params) -> dict:
    """Execute ``name`` with its default output_dir, which must land under TGRPO_OUTPUTS."""
    import papermill as pm

    monkeypatch.setenv("TGRPO_OUTPUTS", str(tmp_path / "outputs"))  # the kernel inherits it: runs go to tmp
    pm.execute_notebook(str(NOTEBOOKS / name), str(tmp_path / name), parameters=params,
                        kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False, config=kernel_config(),
                        execution_timeout=CELL_TIMEOUT_S)
    return json.loads((tmp_path / "outputs" / "notebooks" / Path(name).stem / "metrics.json").read_text())


# A HAND-WRITTEN TEST FIXTURE standing in for an LLM answer (not output of Claude) for
# libero_object #0: the soup can inside the basket's box, else near the gripper.
_LLM_FIXTURE = """N_STAGES = 2

def reward(state, step):
    eef = state["eef_pos"]
    can = state["pos/alphabet_soup_1"]
    d = can - state["pos/basket_1_contain_region"]
    inside = (np.abs(d[..., 0]) < 0.06) & (np.abs(d[..., 1]) < 0.06) & (d[..., 2] > -0.08) & (d[..., 2] < 0.07)
    reach = np.linalg.norm(eef - can, axis=-1)
    stage = np.where(inside, 2, np.where(reach < 0.08, 1, 0))
    return stage + np.where(inside, 1.0, np.exp(-reach / 0.1)), stage
"""


def _cache_fixture(cache_dir: Path) -> str:
    """Cache the fixture under the key of the prompt the notebook builds from the same real states
    (start state of init state 0, the first expert success), as `generate` would after validation."""
    from tgrpo_lib.envs import get_task
    from tgrpo_lib.reward import RewardConfig, collect_evidence, llm, task_goal

    ev = collect_evidence("libero_object", 0, n_start=1, n_expert=1, expert_tries=1, n_random=0)
    spec = get_task("libero_object", 0)
    prompt = llm.evidence_prompt("libero_object", 0, spec.instruction, task_goal("libero_object", 0).goal, ev)
    cfg = RewardConfig(cache_dir=str(cache_dir))
    key = llm.cache_key(prompt, cfg.model)
    record = {"key": key, "model": cfg.model, "source_hash": llm.source_hash(_LLM_FIXTURE), "n_stages": 2,
              "raw_answer": "test fixture, not an LLM answer"}
    llm.write_entry(llm.entry_paths(cfg, "libero_object", 0, key), _LLM_FIXTURE, prompt, record)
    return record["source_hash"]


def test_01_reward_generation(tmp_path, monkeypatch):
    """Offline reward checked on expert vs random; the cached LLM program (a fixture here) found,
    validated on the notebook's own states and compared on the same demonstration."""
    fixture_hash = _cache_fixture(tmp_path / "rewards")
    m = _run("01_reward_generation.ipynb", tmp_path, monkeypatch, suite="libero_object", task_id=0,
             n_expert=1, n_random=1, random_steps=20, llm_cache_dir=str(tmp_path / "rewards"))
    assert m["task"] == "libero_object-0" and m["reward_source"] == "offline"
    assert m["expert_success"] == 1.0
    assert m["sanity_ok"] is True, m["reason"]
    assert m["demo_final_stage"] == m["n_stages"]  # the demo reaches the last stage
    assert m["llm_cached"] is True and m["llm_source_hash"] == fixture_hash
    assert m["llm_sanity_ok"] is True and m["llm_demo_final_stage"] == m["llm_n_stages"] == 2
    assert_figures_render(tmp_path / "01_reward_generation.ipynb", "01_reward_generation")


def test_01_says_when_no_llm_program_exists(tmp_path, monkeypatch):
    m = _run("01_reward_generation.ipynb", tmp_path, monkeypatch, suite="libero_object", task_id=0,
             n_expert=1, n_random=1, random_steps=10, llm_cache_dir=str(tmp_path / "empty"))
    assert m["llm_cached"] is False and m["llm_source_hash"] is None and m["sanity_ok"] is True
    cells = json.loads((tmp_path / "01_reward_generation.ipynb").read_text())["cells"]
    printed = "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
    assert "No validated LLM program is cached for libero_object-0" in printed
    assert_figures_render(tmp_path / "01_reward_generation.ipynb", "01_reward_generation")  # offline reward only


def test_02_training_run(tmp_path, monkeypatch):
    m = _run("02_training_run.ipynb", tmp_path, monkeypatch, sft_checkpoint=None, iterations=1, group_size=2,
             max_steps=8, final_eval_episodes=1, eval_interval=0, run_name="nb02-smoke")
    assert m["iterations"] == 1 and m["group_size"] == 2
    for k in ("before_standard", "after_standard", "before_heldout", "after_heldout", "before_test", "after_test"):
        assert 0.0 <= m[k] <= 1.0
    assert list(m["comparison"]) == ["standard", "heldout", "test"]  # each set paired before/after
    assert m["env_steps"] == 16  # one group: 2 trajectories x 8 steps (nobody succeeds in 8 steps)
    assert (tmp_path / "outputs" / "train" / "nb02-smoke" / "COMPLETE").exists()
    assert_figures_render(tmp_path / "02_training_run.ipynb", "02_training_run")  # the advantage figure once
