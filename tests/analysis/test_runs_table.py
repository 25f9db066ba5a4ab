"""Run directories as one table (``analysis.runs_table``): complete runs only, counts behind every
rate, a repeated experiment counted once."""
import json

import pandas as pd
import pytest
from run_dirs import write_run

from tgrpo_lib.analysis import curves, report, runs_table, tables


def test_load_runs_reads_only_complete_runs(tree):
    df = runs_table.load_runs(tree)
    assert len(df) == 2 * 4 * 2 * 2 + 2 * 2 * 2  # 4 algos x 2 suites + 2 ablations on goal, 2 tasks x 2 seeds
    assert set(df["ver/torch"]) == {"2.13.0"}
    assert df["alpha1_used"][df["algo"] == "step_only"].eq(1.0).all()
    row = df.set_index("run_name").loc["libero_object-1__tgrpo__a0.3__N4__s1"]
    # after = 0.6 + 0.1 + 0.02 + 0.2 = 0.92 of 50 standard episodes; held-out 0.46 of 100
    assert (row["after_standard_successes"], row["after_standard_episodes"]) == (46, 50)
    assert (row["after_heldout_successes"], row["after_heldout_episodes"], row["before_standard_successes"]) == (46, 100, 30)


def test_load_runs_rejects_a_rate_that_is_no_count(tmp_path):
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, after=0.42, before=0.1, episodes=10)  # 4.2 of 10 episodes
    with pytest.raises(ValueError, match="not a whole number of successes"):
        runs_table.load_runs(tmp_path)


def test_a_repeated_run_counts_once(tmp_path):
    import shutil

    from tgrpo_lib import PROJECT_ROOT

    ckpt = "outputs/sft/x/checkpoints/policy"
    first = write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.6, 0.2, init_checkpoint=ckpt)
    other_seed = write_run(tmp_path, "tgrpo", "libero_goal", 0, 1, 0.8, 0.2, init_checkpoint=str(PROJECT_ROOT / ckpt))
    # the same experiment again under another name (notebook 02's run beside make run's), the checkpoint
    # spelled as an absolute path and a different ending: not a third seed
    repeat = first.with_name("reproduce-quick-02_training_run")
    shutil.copytree(first, repeat)
    cfg = json.loads((repeat / "config.json").read_text())
    cfg.update(run_name=repeat.name, init_checkpoint=str(PROJECT_ROOT / ckpt), eval_interval=10)
    (repeat / "config.json").write_text(json.dumps(cfg))
    summary = json.loads((repeat / "metrics.json").read_text())
    (repeat / "metrics.json").write_text(json.dumps({**summary, "after_standard": 1.0}))
    # a different checkpoint is a different experiment and stays
    elsewhere = write_run(tmp_path / "b", "tgrpo", "libero_goal", 0, 0, 0.3, 0.2, init_checkpoint="outputs/sft/y/policy")
    shutil.copytree(elsewhere, tmp_path / "train" / "other-start")
    cfg = json.loads((tmp_path / "train" / "other-start" / "config.json").read_text())
    (tmp_path / "train" / "other-start" / "config.json").write_text(json.dumps({**cfg, "run_name": "other-start"}))

    runs_df = runs_table.load_runs(tmp_path)
    assert len(runs_df) == 4
    tab = runs_table.table_runs(runs_df)
    assert sorted(tab["run_name"]) == sorted([first.name, other_seed.name, "other-start"])
    assert tab.attrs["repeats_left_out"] == ["reproduce-quick-02_training_run"]
    only_x = tab[tab["run_name"] != "other-start"]
    cell = tables.table_one_cells(only_x).set_index(["method", "column"]).loc[("TGRPO", "LIBERO-Goal")]
    assert (cell["n"], cell["runs"], cell["rate"], cell["n_seeds"]) == (10, 2, 70, 2)  # 6 + 8 of 10; the repeat's 10 of 10 out
    lines = report.provenance_lines(report.provenance(tab))
    assert lines[-1] == ("- left out as repeats of a counted run (same task, method, seed and settings): "
                         "reproduce-quick-02_training_run")
    assert runs_table.table_runs(runs_df[runs_df["run_name"] != repeat.name]).attrs["repeats_left_out"] == []
    # GRPO-sparse ignores the configured alpha1: runs differing only there are one experiment
    g1 = write_run(tmp_path / "c", "grpo_sparse", "libero_goal", 0, 0, 0.5, 0.2, alpha1=0.3)
    g2 = write_run(tmp_path / "d", "grpo_sparse", "libero_goal", 0, 0, 0.5, 0.2, alpha1=0.1)
    sparse = pd.concat([runs_table.load_runs(tmp_path / "c"), runs_table.load_runs(tmp_path / "d")], ignore_index=True)
    kept = runs_table.distinct_runs(sparse)  # the first by name stays: ...a0.1... before ...a0.3...
    assert kept["run_name"].tolist() == [g2.name] and kept.attrs["repeats_left_out"] == [g1.name]
    # the SFT row counts one start once, its path spelled relative in one run and absolute in another
    sft = runs_table.method_success(tab, {"SFT": None, "TGRPO": "tgrpo"})
    assert sft[sft["method"] == "SFT"]["n"].tolist() == [10, 10]  # checkpoints x and y, 10 episodes each
    alpha, _ = curves.fig5_curves(runs_df[runs_df["run_name"] != "other-start"])  # Fig. 5 counts it once too
    assert alpha["seed"].tolist() == [0, 1] and alpha["n"].sum() == 20


def test_select_runs_keeps_one_protocol_seeds_and_suites(tree, tmp_path):
    runs_df = runs_table.load_runs(tree)
    assert runs_table.select_runs(runs_df).equals(runs_df)  # nothing asked, nothing dropped
    picked = runs_table.select_runs(runs_df, final_eval_episodes=50, seeds=[1], suites=["libero_goal"])
    assert len(picked) == 6 * 2 and set(picked["seed"]) == {1} and set(picked["suite"]) == {"libero_goal"}
    assert runs_table.select_runs(runs_df, final_eval_episodes=10).empty
    assert runs_table.ours_setup(runs_df) == "tiny_vla, cpu" and runs_table.ours_setup(runs_df.iloc[:0]) == "no runs"
    assert runs_table.ours_scale(runs_df) == "2 tasks per suite, tiny_vla, cpu"
