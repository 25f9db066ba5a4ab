"""Config validation, the override helper, run names and the config.json schema: one home for a
run's identity, every bad value refused with one line before any work starts."""
import json
import math
import subprocess
import sys

import pytest

from tgrpo_lib import CONFIG_SCHEMA
from tgrpo_lib.algorithm.variants import ALGOS, VARIANTS
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import (SFTConfig, TrainConfig, alpha2_for, config_for, config_from_dict, config_hash,
                                    config_to_dict, override, run_name, sft_default)


@pytest.mark.parametrize("changes, match", [
    ({"alpha1": 0.5, "alpha2": 0.6}, "alpha1 \\+ alpha2 must be 1"),
    ({"alpha1": math.nan, "alpha2": math.nan}, "alpha1=nan: pass a finite number"),
    ({"alpha1": -0.5, "alpha2": 1.5}, "alpha1=-0.5: pass a value >= 0"),
    ({"algo": "ppo"}, "algo='ppo': pass one of"),
    ({"group_size": 1}, "N >= 2"),
    ({"minibatches": 0}, "minibatches=0"),
    ({"epochs": 1.5}, "epochs=1.5: pass an integer"),
    ({"lr": math.inf}, "lr=inf: pass a finite number"),
    ({"lr": 0.0}, "lr=0.0: pass a value > 0"),
    ({"beta": -0.1}, "beta=-0.1"),
    ({"clip_eps": math.nan}, "clip_eps=nan"),
    ({"temperature": 0}, "temperature=0: pass a value > 0"),
    ({"task_id": 10}, "task_id=10: pass a value <= 9"),
    ({"suite": "kitchen"}, "Unknown suite 'kitchen'"),
    ({"final_eval_episodes": 51}, "final_eval_episodes=51"),
    ({"heldout_eval_episodes": 0}, "heldout_eval_episodes=0"),
    ({"train_init_states": "random"}, "train_init_states"),
    ({"train_init_states": "test"}, "train_init_states"),  # the test layouts are never trained on
    ({"skip_groups": "uniform"}, "skip_groups='uniform': pass one of"),
    ({"env_step_budget": 0}, "env_step_budget=0"),
    ({"test_eval_episodes": 101}, "test_eval_episodes=101"),
    ({"run_name": "a/b"}, "not a valid directory name"),
    ({"policy": {"use_wrist": True}, "env": {"cameras": ("agentview",)}}, "wrist camera"),
    ({"env": {"max_steps": 0}}, "EnvConfig.max_steps=0"),
    ({"env": {"camera_size": 8}}, "EnvConfig.camera_size=8"),
    ({"policy": {"lora_dropout": math.nan}}, "PolicyConfig.lora_dropout=nan"),
    ({"policy": {"lora_rank": 0}}, "PolicyConfig.lora_rank=0"),
    ({"reward": {"w_f1": math.inf}}, "w_f1"),
])
def test_bad_values_are_refused_with_the_fix(changes, match):
    with pytest.raises(ValueError, match=match):
        config_for(**changes)


def test_sft_config_is_validated():
    with pytest.raises(ValueError, match="epochs=0"):
        SFTConfig(epochs=0)
    with pytest.raises(ValueError, match="task id=12"):
        SFTConfig(task_ids=(12,))
    with pytest.raises(ValueError, match="lr=nan"):
        SFTConfig(lr=math.nan)


def test_variants_table_drives_the_config():
    assert set(ALGOS) == set(VARIANTS)
    assert TrainConfig(algo="step_only").advantage_weights == (1.0, 0.0)
    assert TrainConfig(algo="traj_only").advantage_weights == (0.0, 1.0)
    assert TrainConfig(algo="grpo_sparse").advantage_weights == (0.0, 1.0)
    assert TrainConfig(algo="tgrpo", alpha1=0.1, alpha2=0.9).advantage_weights == (0.1, 0.9)


def test_override_dotted_nested_and_coupled_fields():
    cfg = override(TrainConfig(), {"env.max_steps": 50, "policy": {"lora_rank": 4}, "alpha1": 0.5, "alpha2": 0.5})
    assert (cfg.env.max_steps, cfg.policy.lora_rank, cfg.policy.feature_grid, cfg.alpha1) == (50, 4, 4, 0.5)
    assert cfg.env.cameras == ("agentview",)  # a nested change keeps the other nested defaults
    wrist = override(cfg, {"env": {"cameras": ["agentview", "wrist"]}, "policy.use_wrist": True})
    assert (wrist.env.cameras, wrist.env.max_steps) == (("agentview", "wrist"), 50)
    with pytest.raises(ValueError, match="has no field 'alhpa1'"):
        override(cfg, alhpa1=0.3)
    with pytest.raises(ValueError, match="EnvConfig has no field 'max_step'"):
        override(cfg, {"env.max_step": 3})
    assert config_for(suite="object").suite == "libero_object"


def test_alpha1_alone_sets_alpha2_in_one_place():
    assert alpha2_for(0.3) == 0.7 and alpha2_for(0.9) == 0.1  # no float residue: 1 - 0.3 = 0.7 exactly
    assert (config_for(alpha1=0.1).alpha1, config_for(alpha1=0.1).alpha2) == (0.1, 0.9)
    assert override(config_for(alpha1=0.1), alpha1=0.7).alpha2 == 0.3
    assert config_for(alpha1=0.3) == TrainConfig()  # the default pair, spelled by alpha1 alone
    with pytest.raises(ValueError, match="alpha1 \\+ alpha2 must be 1"):
        config_for(alpha1=0.5, alpha2=0.6)  # both given: checked, never rewritten


def test_config_round_trips_through_config_json():
    cfg = config_for(iterations=3, env={"max_steps": 11}, policy={"lora_rank": 4})
    d = {"schema": CONFIG_SCHEMA, **config_to_dict(cfg)}
    assert config_from_dict(json.loads(json.dumps(d))) == cfg
    sft = sft_default("goal", 3)
    assert config_from_dict({"schema": CONFIG_SCHEMA, **config_to_dict(sft)}, SFTConfig) == sft


def test_a_config_saved_before_skip_groups_reads_as_the_rule_it_ran():
    from tgrpo_lib.infra.config import config_from_dict, config_to_dict

    old = config_to_dict(config_for())
    del old["skip_groups"], old["env_step_budget"], old["test_eval_episodes"]
    for flag, rule in ((True, "no_outcome_contrast"), (False, "none")):
        cfg = config_from_dict({**old, "skip_uniform_groups": flag, "schema": CONFIG_SCHEMA})
        assert cfg.skip_groups == rule and cfg.test_episodes == 0  # it evaluated no test layouts
    assert config_for().test_episodes == 50 and config_for(final_eval_episodes=2).test_episodes == 2


def test_run_names_come_from_the_config():
    a, b = config_for(seed=1), config_for(seed=1)
    assert run_name(a) == run_name(b) == f"libero_object-0__tgrpo__a0.3__N4__s1__{config_hash(a)}"
    assert run_name(config_for(seed=1, lr=3e-4)) != run_name(a)  # any change -> another run
    assert run_name(config_for(run_name="mine")) == "mine"
    assert run_name(config_for(algo="step_only")).startswith("libero_object-0__step_only__a1__")
    assert run_name(sft_default("object", 0, demos=40, epochs=30)).startswith("libero_object-0__sft__d40_e30__s0__")


def test_a_run_under_another_schema_is_refused_with_one_line(tmp_path):
    cfg = config_for(iterations=1)
    run_dir = runs.create_run_dir("train", "r", cfg, root=tmp_path)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["schema"] == CONFIG_SCHEMA
    assert runs.create_run_dir("train", "r", cfg, root=tmp_path, resume=True) == run_dir
    old = {k: v for k, v in saved.items() if k != "schema"}  # written before schemas existed
    (run_dir / "config.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="written under config schema 1.*rerun under a new run name"):
        runs.create_run_dir("train", "r", cfg, root=tmp_path, resume=True)
    with pytest.raises(ValueError, match="schema 1"):
        config_from_dict(old)


CLI_PROBE = """
import sys
from tgrpo_lib.workflows.main import main
try:
    main({argv!r})
except SystemExit as exc:
    print("exit", exc.code, "torch loaded" if "torch" in sys.modules else "torch not loaded", file=sys.stderr)
"""


@pytest.mark.parametrize("argv, match", [
    (["--group-size", "1"], "group_size=1: a group needs N >= 2"),
    (["--suite", "kitchen"], "Unknown suite 'kitchen'"),
    (["--task", "12"], "task_id=12: pass a value <= 9"),
    (["--eval-episodes", "80"], "final_eval_episodes=80"),
    (["--sft-epochs", "0"], "epochs=0"),
    (["--set", "alhpa1=0.5"], "has no field 'alhpa1'"),
    (["--set", "alpha1=0.5", "alpha2=0.6"], "alpha1 + alpha2 must be 1"),
    (["--set", "alpha1"], "--set 'alpha1': write key=value"),
])
def test_command_line_errors_are_one_line_before_any_work(argv, match):
    res = subprocess.run([sys.executable, "-c", CLI_PROBE.format(argv=argv)], capture_output=True, text=True, timeout=120)
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr
    assert lines[-1] == "exit 2 torch not loaded"  # refused before torch, the simulator or any file
    assert lines[-2].startswith("python -m tgrpo_lib run: error: ") and match in lines[-2]
