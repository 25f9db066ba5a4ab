"""Reproduction profiles: every parameter a profile injects is declared in its notebook, and the
Table I / II sweep covers the paper's protocol (no simulator)."""
import ast
import json
from pathlib import Path

import pytest

import tgrpo_lib
from tgrpo_lib.workflows import reproduce
from tgrpo_lib.workflows.sweeps import expand

NB_DIR = Path(tgrpo_lib.PROJECT_ROOT) / "notebooks"


def declared_parameters(path: Path) -> set[str]:
    """Names assigned in the notebook's `parameters` cell (what an injected value overrides)."""
    cells = json.loads(path.read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}


@pytest.mark.parametrize("profile", sorted(reproduce.PROFILES))
def test_profile_parameters_exist_in_notebooks(profile, tmp_path):
    for step in reproduce.NOTEBOOKS:
        assert step in reproduce.PROFILES[profile], f"{profile} lacks {step}"
        if step == "tables_sweep":
            continue
        declared = declared_parameters(NB_DIR / f"{step}.ipynb")
        params = reproduce.notebook_parameters(profile, step, tmp_path, "ray", None)
        assert set(params) <= declared, f"{step}: {sorted(set(params) - declared)} not in its parameters cell"
        # relative to the outputs root: the kernels' TGRPO_OUTPUTS (01, 02) and outputs_root (03-05) are tmp_path
        assert not Path(params["output_dir"]).is_absolute()
        assert tgrpo_lib.outputs_path(params["output_dir"], tmp_path) == tmp_path / "reproduce" / profile / step
        assert params.get("outputs_root", str(tmp_path)) == str(tmp_path)
    # the training notebook's run has a fixed name, so an interrupted reproduction resumes it
    params = reproduce.notebook_parameters(profile, "02_training_run", tmp_path, "ray", None)
    assert params["run_name"] == f"reproduce-{profile}-02_training_run"


def test_full_profile_is_the_papers_protocol():
    p = reproduce.PROFILES["full"]
    table1, table2 = reproduce.tables_sweeps(p["tables_sweep"])
    cells = expand(table1)
    assert len(cells) == 4 * 10 * 4 * 3  # suites x tasks x (tgrpo, dpo, tpo, grpo_sparse) x seeds
    assert {c.config.final_eval_episodes for c in cells} == {50}
    assert {c.config.test_episodes for c in cells + expand(table2)} == {100}  # the tables: all test layouts
    assert {c.config.suite for c in cells} == set(reproduce.ALL_SUITES)
    abl = expand(table2)
    assert {c.config.algo for c in abl} == {"step_only", "traj_only"} and {c.config.suite for c in abl} == {"libero_goal"}
    assert p["03_alpha_sweep"]["alpha1_values"] == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert p["04_group_size_sweep"]["group_sizes"] == [2, 4, 6, 8]


def test_sft_checkpoints_reach_the_cells():
    table1, _ = reproduce.tables_sweeps({"suites": ["libero_goal"], "task_ids": [0, 1], "seeds": [0],
                                         "ablation_suite": "libero_goal"}, {"libero_goal-1": "/ckpt/t1"})
    ckpts = {(c.config.task_id, c.config.init_checkpoint) for c in expand(table1)}
    assert ckpts == {(0, None), (1, "/ckpt/t1")}


def test_unknown_profile_or_step():
    with pytest.raises(ValueError, match="profile"):
        reproduce.reproduce("huge")
    with pytest.raises(ValueError, match="unknown steps"):
        reproduce.reproduce("smoke", steps=["06_extra"])


def _cells(name: str) -> list[str]:
    return ["".join(c["source"]) for c in json.loads((NB_DIR / f"{name}.ipynb").read_text())["cells"]]


@pytest.mark.parametrize("name", [p.stem for p in sorted(NB_DIR.glob("*.ipynb"))])
def test_notebooks_write_under_the_outputs_root(name):
    """Every notebook's output_dir is relative and written by ``report.write_metrics``, which resolves it
    with tgrpo_lib.outputs_path against the outputs root (TGRPO_OUTPUTS, or outputs_root where the
    notebook has one: then it passes that root), never against the checkout. (That notebooks are
    committed clean, with one parameters cell and a last cell writing metrics.json:
    tests/notebooks/test_notebook_sources.py.)"""
    params = next(src for src in _cells(name) if src.startswith("# Parameters"))
    output_dir = ast.literal_eval(next(node.value for node in ast.parse(params).body if isinstance(node, ast.Assign)
                                       and node.targets[0].id == "output_dir"))
    assert output_dir == f"notebooks/{name}"
    source = "\n".join(_cells(name))
    writes = [node for node in ast.walk(ast.parse(_cells(name)[-1])) if isinstance(node, ast.Call)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "write_metrics"]
    assert len(writes) == 1 and ast.unparse(writes[0].args[0]) == "output_dir"
    root = {k.arg: ast.unparse(k.value) for k in writes[0].keywords}.get("root")
    if "outputs_root" in declared_parameters(NB_DIR / f"{name}.ipynb"):
        assert root in ("root", "study.root"), f"{name}: pass the outputs root on"
        assert "tgrpo_lib.outputs_path(root=outputs_root)" in source or "outputs_root=outputs_root" in source
    else:
        assert root is None  # TGRPO_OUTPUTS
    assert "PROJECT_ROOT" not in source


@pytest.mark.notebook
def test_papermill_kernels_are_encrypted_and_do_not_warn(tmp_path, capfd):
    """reproduce.kernel_config() asks jupyter_client for CurveZMQ keys, so ipykernel no longer warns
    "running over TCP without encryption" on every run (the plain default still does: the warning
    is caught here at all)."""
    import nbformat
    import papermill as pm

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    warned = {}
    for name, config in (("plain", {}), ("encrypted", {"config": reproduce.kernel_config()})):
        pm.execute_notebook(tmp_path / "in.ipynb", tmp_path / f"{name}.ipynb", kernel_name="python3",
                            progress_bar=False, **config)
        assert nbformat.read(tmp_path / f"{name}.ipynb", 4).cells[0].outputs[0]["text"] == "42\n"
        warned[name] = "without encryption" in capfd.readouterr().err
    assert warned == {"plain": True, "encrypted": False}


# ----------------------------------------------------------------------------- step timing
def test_step_entry_adds_cut_off_sittings():
    assert reproduce.step_entry(None, 12.34, "done") == {"status": "done", "seconds": 12.3, "sittings": 1}
    cut = {"status": "running", "seconds": 600.0, "sittings": 1}
    assert reproduce.step_entry(cut, 90.0, "done") == {"status": "done", "seconds": 690.0, "sittings": 2}
    failed = {"status": "failed", "seconds": 30.0, "sittings": 2, "error": "X"}
    assert reproduce.step_entry(failed, 5.0, "running") == {"status": "running", "seconds": 35.0, "sittings": 3}
    # a finished step run again is a new record that keeps the finished one's timing; records of the
    # old format (no status) count as finished
    again = reproduce.step_entry({"status": "done", "seconds": 600.0, "sittings": 2, "cells": {}}, 4.0, "running")
    assert again == {"status": "running", "seconds": 4.0, "sittings": 1,
                     "previous": {"status": "done", "seconds": 600.0, "sittings": 2}}
    assert reproduce.step_entry(again, 3.0, "done")["previous"] == again["previous"]  # kept through the beats
    old = reproduce.step_entry({"seconds": 600.0, "cells": {}}, 4.0, "done")
    assert old["sittings"] == 1 and old["previous"] == {"seconds": 600.0}


def test_step_clock_keeps_other_steps_and_beats(tmp_path):
    path = tmp_path / "reproduce.json"
    path.write_text(json.dumps({"01_reward_generation": {"status": "done", "seconds": 20.0, "sittings": 1},
                                "tables_sweep": {"status": "running", "seconds": 100.0, "sittings": 1}}))
    with reproduce.StepClock(path, "tables_sweep", heartbeat=0.05) as clock:
        first = json.loads(path.read_text())["tables_sweep"]
        assert first["status"] == "running" and first["sittings"] == 2 and first["seconds"] >= 100.0
        import time
        time.sleep(0.3)  # several heartbeats: the file stays current while the step runs
        beat = json.loads(path.read_text())["tables_sweep"]
        assert beat["status"] == "running" and beat["seconds"] >= 100.2
        entry = clock.done({"cells": {"complete": 3}, "seconds": -1})
    saved = json.loads(path.read_text())
    assert saved["tables_sweep"] == entry and entry["status"] == "done" and entry["sittings"] == 2
    assert entry["cells"] == {"complete": 3} and entry["seconds"] >= 100.3  # the step's own keys do not override timing
    assert saved["01_reward_generation"] == {"status": "done", "seconds": 20.0, "sittings": 1}
    assert not (tmp_path / "reproduce.json.tmp").exists()


def test_step_clock_records_a_failed_step(tmp_path):
    path = tmp_path / "reproduce.json"
    with pytest.raises(RuntimeError, match="cell broke"):
        with reproduce.StepClock(path, "03_alpha_sweep", heartbeat=10):
            raise RuntimeError("cell broke")
    entry = json.loads(path.read_text())["03_alpha_sweep"]
    assert entry["status"] == "failed" and entry["error"] == "RuntimeError: cell broke" and entry["sittings"] == 1
    with reproduce.StepClock(path, "03_alpha_sweep", heartbeat=10) as clock:  # the rerun adds to it
        pass
    assert clock.done({})["sittings"] == 2
