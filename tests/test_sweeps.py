"""Sweep expansion, deterministic run names and the Ray / local executors (fake cells, no simulator)."""
import json
import sys

import pytest

from tgrpo_lib import runs
from tgrpo_lib.sweeps import Sweep, cell_run_name, expand, run_sweep, sweep_status
from tgrpo_lib.train import config_for


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
    assert runs._NAME_RE.match(a[0])


def test_a_config_field_added_later_keeps_old_cell_names_while_unset():
    import dataclasses
    import hashlib
    import json

    from tgrpo_lib.sweeps import LATER_FIELDS, config_hash

    cfg = config_for(iterations=2)
    before = runs.config_to_dict(dataclasses.replace(cfg, run_name=None))  # what an older version hashed
    for key in LATER_FIELDS:
        del before[key]
    assert config_hash(cfg) == hashlib.sha1(json.dumps(before, sort_keys=True).encode()).hexdigest()[:8]
    assert config_hash(dataclasses.replace(cfg, heldout_eval_episodes=25)) != config_hash(cfg)


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


# config.json of a quick-profile sweep cell run before PolicyConfig.image_encoder_dtype existed
_CELL_BEFORE_ENCODER_DTYPE = json.loads(
    '{"algo": "tgrpo", "alpha1": 0.3, "alpha2": 0.7, "beta": 0.04, "checkpoint_interval": 1, "cli'
    'p_eps": 0.2, "dpo_beta": 0.1, "env": {"camera_size": 128, "cameras": ["agentview"], "hard_re'
    'set": false, "max_steps": null, "num_warmup_steps": 10, "render_quality": "fast", "seed": 0}'
    ', "epochs": 2, "eval_episodes": 10, "eval_interval": 0, "final_eval_episodes": 10, "group_si'
    'ze": 4, "init_checkpoint": "/work/main/outputs/sft/libero_object-0__sft__d40_e30__0/checkpoi'
    'nts/policy", "iterations": 8, "lr": 0.0003, "max_grad_norm": 1.0, "minibatch_steps": 64, "mi'
    'nibatches": 4, "policy": {"d_model": 128, "device": "cpu", "dtype": "auto", "feature_grid": '
    '2, "gripper_convention": "libero", "image_size": 128, "kind": "tiny_vla", "lora_alpha": 16, '
    '"lora_dropout": 0.0, "lora_rank": 8, "lora_targets": null, "model_path": null, "n_bins": 256'
    ', "n_heads": 4, "n_layers": 3, "pretrained_image_encoder": true, "seed": 0, "unnorm_key": nu'
    'll, "use_wrist": false, "vocab_size": 32000, "wrist_image_size": null}, "reward": {"cache_di'
    'r": "rewards", "key_pose_scale": 0.1, "max_tokens": 4096, "model": "claude-sonnet-4-5", "pro'
    'gress_scale": 0.1, "sandbox_memory_mb": 2048, "sandbox_timeout_s": 20.0, "source": "offline"'
    ', "temperature": 0.0, "w_f1": 1.0, "w_f2": 1.0}, "run_name": "libero_object-0__tgrpo__a0.3__'
    'N4__s0__20293f06", "seed": 0, "suite": "libero_object", "task_id": 0, "temperature": 1.0, "t'
    'rain_init_states": "standard", "video_episodes": 1, "weight_decay": 0.0}')


def test_cells_from_before_the_encoder_precision_field_keep_their_names():
    """A float32 cell (what a config without ``image_encoder_dtype`` meant) hashes as before, so
    its finished run is found again; the bfloat16 default is another cell."""
    import dataclasses

    from tgrpo_lib.config import train_config_from_dict

    cfg = train_config_from_dict(_CELL_BEFORE_ENCODER_DTYPE)
    assert cfg.policy.image_encoder_dtype == "float32"
    assert cell_run_name(cfg) == _CELL_BEFORE_ENCODER_DTYPE["run_name"]
    bf16 = dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, image_encoder_dtype="bfloat16"))
    assert cell_run_name(bf16) != cell_run_name(cfg)
