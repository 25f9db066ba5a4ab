"""Sweep expansion, deterministic run names and the Ray / local executors (fake cells, no simulator)."""
import json
import sys

import pytest

from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import check_name, config_for
from tgrpo_lib.workflows.sweeps import Sweep, axis_sweep, cell_run_name, expand, run_sweep, sweep_status


def test_expand_product_and_derived_alpha2():
    sweep = Sweep(base=config_for(suite="goal", iterations=3), axes={"alpha1": [0.1, 0.3, 0.9], "seed": [0, 1]})
    cells = expand(sweep)
    assert len(cells) == 6
    assert [(c.values["alpha1"], c.values["seed"]) for c in cells[:3]] == [(0.1, 0), (0.1, 1), (0.3, 0)]
    assert [c.config.alpha2 for c in cells[::2]] == [0.9, 0.7, 0.1]  # alpha2 = 1 - alpha1, no float residue
    assert all(c.config.suite == "libero_goal" and c.config.iterations == 3 for c in cells)
    assert cells[2].run_name.startswith("libero_goal-0__tgrpo__a0.3__N4__s0__")


def test_run_names_are_deterministic_and_config_sensitive():
    base = config_for(iterations=2, env={"max_steps": 10})
    a = [c.run_name for c in expand(Sweep(base=base, axes={"group_size": [2, 4]}))]
    b = [c.run_name for c in expand(Sweep(base=base, axes={"group_size": [2, 4]}, name="other"))]
    assert a == b  # same configs -> same runs, whatever the sweep is called
    assert len(set(a)) == 2
    c = expand(Sweep(base=base, axes={"env.max_steps": [11], "group_size": [2]}))[0]
    assert c.config.env.max_steps == 11 and c.run_name != a[0]  # any config change -> another run
    # an alias and the canonical suite name are the same run
    assert cell_run_name(config_for(suite="libero_object")) == expand(Sweep(base=config_for(suite="object")))[0].run_name
    check_name("run name", a[0])  # a valid directory name


def test_tasks_and_algos_as_axes():
    cells = expand(Sweep(base=config_for(suite="spatial"), axes={"task_id": range(3), "algo": ["tgrpo", "step_only"]}))
    assert [(c.config.task_id, c.config.algo) for c in cells] == [(0, "tgrpo"), (0, "step_only"), (1, "tgrpo"),
                                                                 (1, "step_only"), (2, "tgrpo"), (2, "step_only")]
    assert "__step_only__a1__" in cells[1].run_name  # the weights actually used (alpha1 = 1)


def test_bad_axes_raise_clear_errors():
    with pytest.raises(ValueError, match="has no field 'alpah1'"):
        expand(Sweep(axes={"alpah1": [0.1]}))
    with pytest.raises(ValueError, match="no values"):
        expand(Sweep(axes={"seed": []}))
    with pytest.raises(ValueError, match="same config"):
        expand(Sweep(axes={"seed": [0, 0]}))
    with pytest.raises(ValueError, match="executor"):
        run_sweep(Sweep(), executor="dask")


def fake_cell(cfg, root):
    """Writes a complete run dir without simulating; fails for seed 1 after creating its run dir."""
    run_dir = runs.create_run_dir("train", cfg.run_name, cfg, root=root, resume=True)
    if cfg.seed == 1:
        raise RuntimeError(f"cell seed 1 broke in {run_dir.name}")
    runs.mark_complete(run_dir, {"after_standard": cfg.alpha1, "before_standard": 0.1, "env_steps": 7})
    return runs.read_json(run_dir / "metrics.json")


def _check(table, statuses):
    assert table["status"].tolist() == statuses
    failed = table[table["status"] == "failed"]
    assert failed["error"].str.contains("RuntimeError: cell seed 1 broke").all()
    assert failed["traceback"].str.contains("in fake_cell").all()  # where it broke, for Ray cells too
    for run_dir in failed["run_dir"]:  # the failed run is reported where it lives, left unfinished
        assert (runs.find_run("train", run_dir.rsplit("/", 1)[1], root=run_dir.rsplit("/train/", 1)[0]) is not None)
        assert not runs.is_complete(run_dir)


def test_local_executor_reports_failure_and_skips_complete(tmp_path):
    sweep = Sweep(base=config_for(iterations=1), axes={"alpha1": [0.1, 0.5], "seed": [0, 1]})
    table = run_sweep(sweep, executor="local", root=tmp_path, cell_fn=fake_cell, progress=False)
    _check(table, ["complete", "failed", "complete", "failed"])
    assert table["after_standard"].tolist()[::2] == [0.1, 0.5]
    again = run_sweep(sweep, executor="local", root=tmp_path, cell_fn=fake_cell, progress=False)
    _check(again, ["skipped", "failed", "skipped", "failed"])
    status = sweep_status(sweep, tmp_path)
    assert status["status"].tolist() == ["complete", "pending", "complete", "pending"]


@pytest.mark.slow
def test_ray_executor_embedded(tmp_path):
    ray = pytest.importorskip("ray")
    import ray.cloudpickle

    # Ray workers cannot import this test module: ship fake_cell by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    sweep = Sweep(base=config_for(iterations=1), axes={"seed": [0, 1], "alpha1": [0.3]})
    table = run_sweep(sweep, executor="ray", root=tmp_path, cell_fn=fake_cell, num_cpus=2, cpus_per_cell=1,
                      progress=False)
    assert not ray.is_initialized()  # the embedded Ray is shut down again
    _check(table, ["complete", "failed"])
    assert table.loc[0, "after_standard"] == 0.3 and table.loc[0, "env_steps"] == 7
    assert runs.is_complete(table.loc[0, "run_dir"])
    with pytest.raises(ValueError, match="cpus_per_cell=4 exceeds"):
        run_sweep(Sweep(axes={"seed": [5]}), executor="ray", root=tmp_path, cell_fn=fake_cell, num_cpus=2,
                  cpus_per_cell=4, progress=False)
    assert not ray.is_initialized()


def test_per_task_init_checkpoints():
    sweep = Sweep(base=config_for(suite="goal"), axes={"task_id": [0, 1]}, init_checkpoints={"libero_goal-1": "/sft/t1"})
    cells = expand(sweep)
    assert [c.config.init_checkpoint for c in cells] == [None, "/sft/t1"]
    assert cells[1].run_name != expand(Sweep(base=config_for(suite="goal"), axes={"task_id": [1]}))[0].run_name


def test_axis_sweep_is_the_notebooks_single_axis_grid():
    sweep = axis_sweep("group_size", [2, 4], suite="goal", task_ids=[0, 1], seeds=[0], sft_checkpoint=None,
                       alpha1=0.5, iterations=3)
    cells = expand(sweep)
    assert [(c.values["task_id"], c.values["group_size"]) for c in cells] == [(0, 2), (0, 4), (1, 2), (1, 4)]
    assert {(c.config.alpha1, c.config.alpha2, c.config.iterations) for c in cells} == {(0.5, 0.5, 3)}
    assert sweep.init_checkpoints is None and sweep.base.init_checkpoint is None
    with_path = axis_sweep("alpha1", [0.1], suite="goal", task_ids=[0], seeds=[0], sft_checkpoint="/sft/p")
    assert expand(with_path)[0].config.init_checkpoint == "/sft/p"
    with pytest.raises(ValueError, match="iterations=-1"):  # validated before any SFT policy is made
        axis_sweep("alpha1", [0.1], suite="goal", task_ids=[0], seeds=[0], iterations=-1)
