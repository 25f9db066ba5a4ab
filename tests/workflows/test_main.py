"""``make run``'s config (tgrpo_lib/workflows/main.py): it is the quick reproduction's TGRPO cell, so the
reproduction after ``make run`` reuses that run instead of training it again (no simulator)."""
import dataclasses

from tgrpo_lib.infra.config import run_name
from tgrpo_lib.workflows import reproduce
from tgrpo_lib.workflows.main import parser, train_config
from tgrpo_lib.workflows.sweeps import axis_sweep, expand

CKPT = "/ckpt/libero_object-0/policy"


def make_run_name(argv):
    cfg = dataclasses.replace(train_config(parser().parse_args(argv)), init_checkpoint=CKPT)
    return run_name(cfg)


def test_make_run_is_the_quick_profiles_tgrpo_cell():
    table1, _ = reproduce.tables_sweeps(reproduce.PROFILES["quick"]["tables_sweep"], {"libero_object-0": CKPT})
    tgrpo = [c.run_name for c in expand(table1) if c.config.algo == "tgrpo"]
    assert tgrpo == [make_run_name([])]
    # notebooks 03 / 04 build their cells the same way (their parameters as the quick profile sets them)
    for axis, values in (("alpha1", [0.1, 0.3, 0.9]), ("group_size", [2, 4, 8])):
        sweep = axis_sweep(axis, values, suite="libero_object", task_ids=[0], seeds=[0], sft_checkpoint=CKPT,
                           sft_demos=None, sft_epochs=None, iterations=50, final_eval_episodes=50,
                           eval_interval=0, env={"max_steps": None})
        assert tgrpo[0] in [c.run_name for c in expand(sweep)]
    # every other seed or held-out count is a run of its own
    assert make_run_name(["--seed", "1"]) != tgrpo[0]
    assert make_run_name(["--heldout-episodes", "20"]) != tgrpo[0]


def test_held_out_count_reaches_the_config():
    assert train_config(parser().parse_args([])).heldout_eval_episodes is None  # None: as many as standard
    cfg = train_config(parser().parse_args(["--heldout-episodes", "20"]))
    assert cfg.heldout_eval_episodes == 20 and cfg.final_eval_episodes == 50


def test_set_reaches_any_train_config_field():
    cfg = train_config(parser().parse_args(["--set", "alpha1=0.5", "env.max_steps=100", "lr=3e-4", "algo=step_only"]))
    assert (cfg.alpha1, cfg.alpha2) == (0.5, 0.5)  # alpha2 follows alpha1 (Eq. 4)
    assert cfg.env.max_steps == 100 and cfg.lr == 3e-4 and cfg.algo == "step_only"
    assert make_run_name(["--set", "alpha1=0.3"]) == make_run_name([])  # the default, spelled out: the same run
    assert make_run_name(["--set", "alpha1=0.5"]) != make_run_name([])
