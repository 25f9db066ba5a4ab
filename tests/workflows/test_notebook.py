"""The glue notebooks 03, 04 and 06 share (``workflows.notebook``), without a simulator: an axis
study run on stand-in cells that write complete run directories, and the two policies of a
robustness comparison resolved from a run's name."""
import json

import pandas as pd
import pytest

from tgrpo_lib import CONFIG_SCHEMA
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import config_to_dict
from tgrpo_lib.workflows.notebook import AxisStudy, robustness_policies

BEFORE = [True] * 2 + [False] * 8


def fake_cell(cfg, root):
    """A complete run as training leaves it: 2 of 10 states before; after, alpha1 x 10 (whole counts)."""
    after = [True] * round(10 * cfg.alpha1) + [False] * (10 - round(10 * cfg.alpha1))
    run_dir = runs.run_dir_path("train", cfg.run_name, root)
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"schema": CONFIG_SCHEMA, **config_to_dict(cfg)}))
    summary = {"env_steps": 100}
    for tag, flags in (("before", BEFORE), ("after", after)):
        pd.DataFrame({"init_set": "standard", "episode": range(10), "state_key": [f"s{i}" for i in range(10)],
                      "success": flags, "length": 5}).to_csv(run_dir / "eval" / f"{tag}_standard.csv", index=False)
        summary.update({f"{tag}_standard": sum(flags) / 10, f"{tag}_standard_episodes": 10})
    if cfg.alpha1 == 0.9:
        raise RuntimeError("this cell fails")
    runs.mark_complete(run_dir, summary)
    return summary


def test_axis_study_runs_the_sweep_and_summarises_it(tmp_path, capsys):
    study = AxisStudy.declare("alpha1", [0.3, 0.5, 0.9], suite="libero_goal", task_ids=[0], seeds=[0],
                              outputs_root=tmp_path, sft_checkpoint=None, max_steps=10, group_size=2, iterations=1)
    assert study.root == tmp_path and study.sweep.base.env.max_steps == 10 and study.sweep.base.group_size == 2
    assert study.status()["status"].tolist() == ["pending"] * 3
    shown = study.run(executor="local", cell_fn=fake_cell)
    assert shown["status"].tolist() == ["complete", "complete", "failed"] and "traceback" not in shown
    assert "FAILED" in capsys.readouterr().out and len(study.failed) == 1
    # 3 and 5 of 10 states; 0.5 is the best, 0.3 against it: exact McNemar b=2, c=0 -> p = 0.5
    assert study.summary["rate"].tolist() == [30.0, 50.0] and study.summary["best"].tolist() == [False, True]
    assert study.summary.at[0, "p_vs_best"] == pytest.approx(0.5)
    m = study.metrics()
    assert (m["cells"], m["complete"], m["failed"], m["skipped"]) == (3, 2, 1, 0)
    assert m["values"] == [0.3, 0.5] and m["success_mean"] == {"0.3": 30.0, "0.5": 50.0} and m["seeds"] == [0]
    assert [(r["alpha1"], r["init_set"]) for r in m["before_after"].to_dict("records")][:1] == [(0.3, "standard")]
    assert len(study.figure().axes) >= 1
    again = AxisStudy.declare("alpha1", [0.3], suite="libero_goal", task_ids=[0], seeds=[0], outputs_root=tmp_path,
                              sft_checkpoint=None, max_steps=10, group_size=2, iterations=1)
    assert again.run(executor="local", cell_fn=fake_cell)["status"].tolist() == ["skipped"]


def test_axis_study_must_run_before_it_reads_runs(tmp_path):
    study = AxisStudy.declare("group_size", [2], suite="libero_goal", task_ids=[0], seeds=[0], outputs_root=tmp_path,
                              sft_checkpoint=None)
    with pytest.raises(RuntimeError, match="study.run"):
        study.summary


def test_robustness_policies_from_a_run_name(tmp_path):
    run_dir = tmp_path / "train" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"suite": "libero_object", "task_id": 3,
                                                     "init_checkpoint": "/sft/policy"}))
    runs.mark_complete(run_dir, {})
    checkpoints, suite, task_id = robustness_policies("r1", root=tmp_path)
    assert checkpoints == {"SFT": "/sft/policy", "TGRPO": str(run_dir / "checkpoints" / "policy")}
    assert (suite, task_id) == ("libero_object", 3)
    # what is given wins over the run's own
    checkpoints, suite, task_id = robustness_policies("r1", after_checkpoint="/other", task_id=0, labels=("a", "b"),
                                                      root=tmp_path)
    assert checkpoints == {"a": "/sft/policy", "b": "/other"} and (suite, task_id) == ("libero_object", 0)
    with pytest.raises(ValueError, match="pass run_name"):
        robustness_policies(before_checkpoint="/x", suite="libero_object", task_id=0)
    with pytest.raises(ValueError, match="not a complete training run"):
        robustness_policies("missing", root=tmp_path)
