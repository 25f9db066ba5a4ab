"""Notebooks 01 and 02 run headless under papermill with smoke parameters; the values they
store in metrics.json are checked."""
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.sim, pytest.mark.slow]
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _run(name: str, tmp_path: Path, monkeypatch, **params) -> dict:
    import papermill as pm

    monkeypatch.setenv("TGRPO_OUTPUTS", str(tmp_path / "outputs"))  # the kernel inherits it: runs go to tmp
    out_dir = tmp_path / "nb"
    pm.execute_notebook(str(NOTEBOOKS / name), str(tmp_path / name), parameters={**params, "output_dir": str(out_dir)},
                        kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
    return json.loads((out_dir / "metrics.json").read_text())


def test_01_reward_generation(tmp_path, monkeypatch):
    m = _run("01_reward_generation.ipynb", tmp_path, monkeypatch, suite="libero_object", task_id=0,
             n_expert=1, n_random=1, random_steps=20)
    assert m["task"] == "libero_object-0" and m["reward_source"] == "offline"
    assert m["expert_success"] == 1.0
    assert m["sanity_ok"] is True, m["reason"]
    assert m["demo_final_stage"] == m["n_stages"]  # the demo reaches the last stage


def test_02_training_run(tmp_path, monkeypatch):
    m = _run("02_training_run.ipynb", tmp_path, monkeypatch, sft_checkpoint=None, iterations=1, group_size=2,
             max_steps=8, final_eval_episodes=1, eval_interval=0, run_name="nb02-smoke")
    assert m["iterations"] == 1 and m["group_size"] == 2
    for k in ("before_standard", "after_standard", "before_heldout", "after_heldout"):
        assert 0.0 <= m[k] <= 1.0
    assert m["env_steps"] == 16  # one group: 2 trajectories x 8 steps (nobody succeeds in 8 steps)
    assert (tmp_path / "outputs" / "train" / "nb02-smoke" / "COMPLETE").exists()
