"""Tables and figures from synthetic run directories written here (no simulator), checked
against means, ranks, counts, intervals and tests worked out by hand. The unit of every test is
what is independent (docs/statistics.md): the init state for SFT against runs trained from it,
the run for two methods; every n counts distinct init states."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from tgrpo_lib import CONFIG_SCHEMA
from tgrpo_lib.analysis import cells, paper, results
from tgrpo_lib.analysis.stats import (MCNEMAR_TEST, RUN_PERMUTATION_TEST, SIGN_FLIP_TEST, mcnemar_exact_counts, rate_over_runs,
                                      wilson_interval)
from tgrpo_lib.infra import runs
from tgrpo_lib.infra.config import config_for, config_to_dict

SUITE_OFFSET = {"libero_object": 0.2, "libero_goal": 0.0}
BASE = {"tgrpo": 0.6, "tpo": 0.5, "dpo": 0.4, "grpo_sparse": 0.46, "step_only": 0.56, "traj_only": 0.58}


def after_rate(algo, suite, task, seed):
    base = 0.7 if (algo == "grpo_sparse" and suite == "libero_goal") else BASE[algo]
    return base + 0.1 * task + 0.02 * seed + SUITE_OFFSET[suite]


def write_run(root, algo, suite, task, seed, after, before, alpha1=0.3, group_size=4, episodes=10, env_steps=1000,
              torch_version="2.13.0", complete=True, heldout_episodes=None, init_checkpoint=None, flags=None,
              test_episodes=None, flag_sets=("standard",)):
    """One run directory; ``flags`` {"before"/"after": [success per init state]} also writes the
    per-episode tables eval/{tag}_{set}.csv of each of ``flag_sets`` (state keys s0, s1, ...);
    ``test_episodes`` adds a test evaluation (older runs have none)."""
    cfg = config_for(suite=suite, task_id=task, algo=algo, seed=seed, alpha1=alpha1, alpha2=round(1 - alpha1, 10),
                     group_size=group_size, final_eval_episodes=episodes, init_checkpoint=init_checkpoint,
                     run_name=f"{suite}-{task}__{algo}__a{alpha1}__N{group_size}__s{seed}")
    run_dir = runs.run_dir_path("train", cfg.run_name, root)
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"schema": CONFIG_SCHEMA, **config_to_dict(cfg)}))
    (run_dir / "versions.json").write_text(json.dumps({"python": "3.11.7", "packages": {"torch": torch_version,
                                                       "mujoco": "3.2.0"}, "git_commit": "abc123"}))
    heldout_episodes = heldout_episodes or 2 * episodes  # held-out rates are halved: whole counts still
    summary = {"algo": algo, "seed": seed, "env_steps": env_steps, "before_standard": before, "after_standard": after,
               "before_heldout": before / 2, "after_heldout": after / 2, "after_standard_episodes": episodes,
               "before_standard_episodes": episodes, "after_heldout_episodes": heldout_episodes,
               "before_heldout_episodes": heldout_episodes}
    if test_episodes:
        summary.update(before_test=before, after_test=after, before_test_episodes=test_episodes,
                       after_test_episodes=test_episodes)
    for tag, tag_flags in (flags or {}).items():
        (run_dir / "eval").mkdir(exist_ok=True)
        for which in flag_sets:
            pd.DataFrame({"init_set": which, "episode": range(len(tag_flags)),
                          "state_key": [f"s{i}" for i in range(len(tag_flags))], "success": tag_flags,
                          "length": 5}).to_csv(run_dir / "eval" / f"{tag}_{which}.csv", index=False)
    if complete:
        runs.mark_complete(run_dir, summary)
    return run_dir


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    for suite in SUITE_OFFSET:
        algos = ["tgrpo", "tpo", "dpo", "grpo_sparse"] + (["step_only", "traj_only"] if suite == "libero_goal" else [])
        for algo in algos:
            for task in (0, 1):
                for seed in (0, 1):
                    write_run(root, algo, suite, task, seed, after_rate(algo, suite, task, seed),
                              before=0.3 + 0.1 * task + SUITE_OFFSET[suite], episodes=50)
    # an unfinished run must be ignored
    write_run(root, "tgrpo", "libero_object", 2, 0, after=0.0, before=0.0, complete=False)
    return root


def test_load_runs_reads_only_complete_runs(tree):
    df = results.load_runs(tree)
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
        results.load_runs(tmp_path)


def test_table_one_means_and_ranks(tree):
    t1 = results.plain_rates(results.table_one(results.load_runs(tree)))
    assert list(t1.columns) == ["LIBERO-Object SR", "LIBERO-Object Rank", "LIBERO-Goal SR", "LIBERO-Goal Rank",
                                "Average SR", "Average Rank"]
    assert list(t1.index) == ["SFT", "DPO", "GRAPE-style", "GRPO-sparse", "TGRPO"]
    sr = t1["LIBERO-Object SR"]
    # object: base + mean task (0.05) + mean seed (0.01) + 0.2; SFT = 0.3 + 0.05 + 0.2
    assert sr.to_dict() == pytest.approx({"SFT": 55, "DPO": 66, "GRAPE-style": 76, "GRPO-sparse": 72, "TGRPO": 86})
    assert t1["LIBERO-Goal SR"].to_dict() == pytest.approx(
        {"SFT": 35, "DPO": 46, "GRAPE-style": 56, "GRPO-sparse": 76, "TGRPO": 66})
    assert t1["LIBERO-Object Rank"].tolist() == [5, 4, 2, 3, 1]
    assert t1["LIBERO-Goal Rank"].tolist() == [5, 4, 3, 1, 2]
    assert t1["Average SR"].to_dict() == pytest.approx({"SFT": 45, "DPO": 56, "GRAPE-style": 66, "GRPO-sparse": 74,
                                                         "TGRPO": 76})
    assert t1["Average Rank"].tolist() == pytest.approx([5, 4, 2.5, 2, 1.5])
    assert "LIBERO-Spatial SR" not in t1.columns  # no runs, no column (never filled from the paper)


def test_table_one_cells_count_distinct_states_and_test_runs(tree):
    t1 = results.table_one(results.load_runs(tree))
    # TGRPO on Object: tasks 0, 1 x seeds 0, 1 of 50 states each -> n = 100 distinct states (not 200
    # episodes), 4 runs; rate (40 + 41 + 45 + 46) / 200 = 86 %, interval over the 100 states: Wilson(86, 100)
    assert (t1.at["TGRPO", "LIBERO-Object n"], t1.at["TGRPO", "LIBERO-Object runs"]) == (100, 4)
    assert t1.at["TGRPO", "LIBERO-Object rate"] == pytest.approx(86.0)
    # Wilson, p = 0.86, z^2/n = 0.0384146: centre = (0.86 + 0.0192073) / 1.0384146 = 0.846682,
    # half = z sqrt(0.86 * 0.14 / 100 + z^2 / 40000) / 1.0384146 = 0.068054 -> [0.778628, 0.914737]
    low, high = wilson_interval(86, 100)
    assert (t1.at["TGRPO", "LIBERO-Object CI low"], t1.at["TGRPO", "LIBERO-Object CI high"]) == pytest.approx(
        (77.8628, 91.4737), abs=1e-4)
    assert t1.at["TGRPO", "LIBERO-Object CI low"] == pytest.approx(100 * low)
    # per seed: seed 0 = (80 + 90) / 2 = 85, seed 1 = 87 -> 86 ± sqrt(2)
    assert t1.at["TGRPO", "LIBERO-Object seed mean"] == pytest.approx(86)
    assert t1.at["TGRPO", "LIBERO-Object seed sd"] == pytest.approx(math.sqrt(2))
    assert t1.at["TGRPO", "LIBERO-Object seeds"] == 2
    # Average spans both suites: 4 tasks x 50 states = 200 distinct states, 76 % -> Wilson(152, 200)
    assert (t1.at["TGRPO", "Average n"], t1.at["TGRPO", "Average rate"]) == (200, pytest.approx(76))
    assert t1.at["TGRPO", "Average CI high"] == pytest.approx(100 * wilson_interval(152, 200)[1])
    # SFT (runs without a checkpoint: one before-evaluation per task and seed): 55 % of 100 states
    assert (t1.at["SFT", "LIBERO-Object n"], t1.at["SFT", "LIBERO-Object runs"]) == (100, 4)
    assert t1.at["SFT", "LIBERO-Object rate"] == pytest.approx(55)
    # DPO against TGRPO, unit = run: a seed's runs over both tasks are one row. DPO seeds 65 / 67 %,
    # TGRPO 85 / 87 %: of the 6 ways to split the 4 runs 2 + 2, 2 are as extreme -> p = 1/3, the
    # smallest 2 runs per arm allow. No per-state tables: the p-value (it needs only the runs'
    # rates) comes without an interval; never a test on episodes pooled over seeds.
    assert t1.at["DPO", "LIBERO-Object p vs TGRPO"] == pytest.approx(1 / 3)
    assert math.isnan(t1.at["TGRPO", "LIBERO-Object p vs TGRPO"])
    cells_df = results.table_one_cells(results.load_runs(tree)).set_index(["method", "column"])
    dpo = cells_df.loc[("DPO", "LIBERO-Object")]
    assert dpo["test"] == RUN_PERMUTATION_TEST and dpo["diff"] == pytest.approx(66 - 86) and math.isnan(dpo["diff_low"])
    assert dpo["versus"] == "-20.0 pts, p = 0.333 (permutation over 2 vs 2 runs; no interval: per-state tables missing)"
    assert cells_df.loc[("GRPO-sparse", "LIBERO-Goal"), "p_value"] == pytest.approx(1 / 3)  # pooled Fisher said 0.036
    # SFT against TGRPO is paired on the states: without per-state tables there is no test
    sft = cells_df.loc[("SFT", "LIBERO-Object")]
    assert sft["test"] == cells.TABLES_MISSING and math.isnan(sft["p_value"]) and sft["diff"] == pytest.approx(55 - 86)
    assert sft["versus"] == "-31.0 pts, n/a (per-state tables missing)"


def test_paired_cells_take_the_state_and_the_run_as_units(tmp_path):
    # one task, seeds 0 and 1, 10 init states, every run starting from one SFT checkpoint
    sft = [True] * 3 + [False] * 7
    tg = {0: [True] * 7 + [False] * 3, 1: [True] * 6 + [False] * 4}
    dpo = {0: [True] * 2 + [False] * 2 + [True] * 4 + [False] * 2, 1: [False] * 3 + [True] * 5 + [False] * 2}
    for seed in (0, 1):
        for algo, after in (("tgrpo", tg[seed]), ("dpo", dpo[seed])):
            write_run(tmp_path, algo, "libero_goal", 0, seed, after=sum(after) / 10, before=0.3,
                      init_checkpoint="ckpt/libero_goal-0/policy", flags={"before": sft, "after": after})
    cells_df = results.table_one_cells(results.load_runs(tmp_path)).set_index(["method", "column"])
    # SFT once (one checkpoint, one task): 3 of 10 states, one run
    sft_cell = cells_df.loc[("SFT", "LIBERO-Goal")]
    assert (sft_cell["n"], sft_cell["runs"], sft_cell["rate"], sft_cell["n_seeds"]) == (10, 1, 30, 1)
    # SFT vs TGRPO, unit = init state: per state the change summed over the 2 runs is 2 on states
    # 3, 4, 5 (both seeds gain them), 1 on state 6 (seed 0 only), 0 elsewhere: sum 7; of the 2^4 sign
    # patterns of (2, 2, 2, 1) only the 2 all-equal ones reach |7| -> p = 2/16 = 0.125 (exact McNemar
    # on the 20 pooled (seed, state) pairs, b = 7, c = 0, said 2 * 0.5**7 = 0.016)
    s = cells_df.loc[("SFT", "LIBERO-Goal")]
    assert (s["p_value"], s["test"]) == (0.125, SIGN_FLIP_TEST) and s["diff"] == pytest.approx(30 - 65)
    assert s["diff_low"] <= s["diff"] <= s["diff_high"] < 0
    assert s["versus"].startswith("-35.0 pts [") and "p = 0.125 (sign-flip over 10 states, 2 runs)" in s["versus"]
    # DPO vs TGRPO, unit = run: run rates 0.6, 0.5 against 0.7, 0.6; of the 6 splits of the four
    # runs 2 + 2, 4 are at least as far apart (|0.55 - 0.65| = 0.1) -> p = 4/6
    d = cells_df.loc[("DPO", "LIBERO-Goal")]
    assert d["p_value"] == pytest.approx(2 / 3) and d["test"] == RUN_PERMUTATION_TEST
    assert d["diff"] == pytest.approx(100 * (11 - 13) / 20) and d["diff_low"] <= d["diff"] <= d["diff_high"]
    # DPO: 11 of 20 (run, state) flags -> 55 % of the 10 distinct states: Wilson(5.5, 10) = [27.4, 79.9]
    md = results.cells_markdown(results.table_one_cells(results.load_runs(tmp_path)), results.TABLE_I_METHODS,
                                ["LIBERO-Goal", "Average"], ranked=True)
    assert "55.0 % [27.4, 79.9] (n=10); 55.0 ± 7.1 (2 seeds) †" in md and "permutation over 2 vs 2 runs, 10 states" in md
    # another order of the same init states in one DPO run: paired by state key, the same result
    other = tmp_path / "train" / "libero_goal-0__dpo__a0.3__N4__s1" / "eval" / "after_standard.csv"
    pd.read_csv(other).iloc[::-1].to_csv(other, index=False)
    again = results.table_one_cells(results.load_runs(tmp_path)).set_index(["method", "column"])
    assert again.loc[("DPO", "LIBERO-Goal"), "p_value"] == pytest.approx(2 / 3)
    # other init states in that run: no pairs, no test
    pd.read_csv(other).assign(state_key=lambda d: d["state_key"] + "x").to_csv(other, index=False)
    d = results.table_one_cells(results.load_runs(tmp_path)).set_index(["method", "column"]).loc[("DPO", "LIBERO-Goal")]
    assert d["test"] == "n/a (the runs hold different init states)" and math.isnan(d["p_value"])
    # a TGRPO run without its per-episode tables: the paired SFT test says so, never pools over seeds
    (tmp_path / "train" / "libero_goal-0__tgrpo__a0.3__N4__s1" / "eval" / "before_standard.csv").unlink()
    s = results.table_one_cells(results.load_runs(tmp_path)).set_index(["method", "column"]).loc[("SFT", "LIBERO-Goal")]
    assert s["test"] == "n/a (per-state tables missing)" and math.isnan(s["p_value"])


def test_identical_seeds_give_the_p_value_of_one_run(tmp_path):
    """Greedy evaluation of one start is deterministic: three seeds that end on the same flags carry
    the evidence of one run, and the state-level test says so (a test pooled over the 30 (seed,
    state) pairs would have counted each gained state three times)."""
    sft, tg = [True] * 3 + [False] * 7, [True] * 9 + [False]
    for seed in (0, 1, 2):
        write_run(tmp_path / "three", "tgrpo", "libero_goal", 0, seed, after=0.9, before=0.3,
                  init_checkpoint="ckpt/policy", flags={"before": sft, "after": tg})
    write_run(tmp_path / "one", "tgrpo", "libero_goal", 0, 0, after=0.9, before=0.3, init_checkpoint="ckpt/policy",
              flags={"before": sft, "after": tg})
    p = {k: results.table_one_cells(results.load_runs(tmp_path / k)).set_index(["method", "column"])
         .loc[("SFT", "LIBERO-Goal"), "p_value"] for k in ("three", "one")}
    # 6 states gained, none lost: exact McNemar 2 * 0.5**6 = 0.03125 (pooled over 3 seeds: 2 * 0.5**18)
    assert p["three"] == p["one"] == mcnemar_exact_counts(0, 6)["p_value"] == 2 * 0.5**6
    one = results.table_one_cells(results.load_runs(tmp_path / "one")).set_index(["method", "column"])
    assert one.loc[("SFT", "LIBERO-Goal"), "versus"] == "-60.0 pts, p = 0.031 (exact McNemar, b=6, c=0)"
    # one run on each side of a method comparison: exact McNemar on the states, b = TGRPO succeeds
    # where DPO fails (states 5..8), c the reverse
    write_run(tmp_path / "one", "dpo", "libero_goal", 0, 0, after=0.5, before=0.3, init_checkpoint="ckpt/policy",
              flags={"before": sft, "after": [True] * 5 + [False] * 5})
    d = results.table_one_cells(results.load_runs(tmp_path / "one")).set_index(["method", "column"]).loc[("DPO", "LIBERO-Goal")]
    assert (d["b"], d["c"], d["p_value"], d["test"]) == (4, 0, 2 * 0.5**4, MCNEMAR_TEST)
    assert d["versus"] == "-40.0 pts, p = 0.125 (exact McNemar, b=4, c=0)" and d["diff_low"] <= -40 <= d["diff_high"]
    table = results.sweep_before_after(results.load_runs(tmp_path / "three"), "alpha1", init_sets=("standard",))
    assert table.at[0, "p_value"] == 2 * 0.5**6 and table.at[0, "n"] == 10  # 10 states, not 30
    assert "(n=10 states, 3 runs)" in table.at[0, "text"]


def test_three_runs_per_method_cannot_go_below_p_0_1(tmp_path):
    """Unit = run: with 3 runs per arm there are C(6, 3) = 20 ways to split them, and the observed
    split is one of the 2 most extreme, so p >= 2/20 = 0.1 however far apart the arms are (exact
    McNemar on the 30 pooled (seed, state) pairs, b = 30, c = 0, would give 2 * 0.5**30)."""
    for seed in (0, 1, 2):
        write_run(tmp_path, "tgrpo", "libero_goal", 0, seed, after=1.0, before=0.5, flags={"before": [True] * 5 + [False] * 5,
                                                                                          "after": [True] * 10})
        write_run(tmp_path, "dpo", "libero_goal", 0, seed, after=0.0, before=0.5, flags={"before": [True] * 5 + [False] * 5,
                                                                                        "after": [False] * 10})
    d = results.table_one_cells(results.load_runs(tmp_path)).set_index(["method", "column"]).loc[("DPO", "LIBERO-Goal")]
    assert d["p_value"] == pytest.approx(0.1) and d["diff"] == pytest.approx(-100)
    assert "p = 0.100 (permutation over 3 vs 3 runs, 10 states)" in d["versus"]


def test_a_set_no_run_evaluated_reads_not_run(tree, tmp_path):
    t = results.table_one_cells(results.load_runs(tree), init_set="test")  # the tree's runs predate the test set
    assert (t["runs"] == 0).all() and (t["test"].fillna("") != "").sum() == (t["method"] != "TGRPO").sum()
    md = results.cells_markdown(t, results.TABLE_I_METHODS)
    assert "not run" in md and "nan" not in md.lower()
    assert results.cell_text(t.iloc[0].to_dict()) == "not run"
    # a run evaluated on the test set counts there, with its own n
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, after=0.6, before=0.2, test_episodes=100)
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 1, after=0.7, before=0.2)  # an older run: no test evaluation
    cell = results.table_one_cells(results.load_runs(tmp_path), init_set="test").set_index(["method", "column"])
    assert (cell.loc[("TGRPO", "LIBERO-Goal"), "n"], cell.loc[("TGRPO", "LIBERO-Goal"), "runs"]) == (100, 1)
    prov = results.provenance(results.load_runs(tmp_path), "test")
    assert prov["runs_evaluated_on_set"] == 1 and prov["init_states"] == results.SET_LABELS["test"]
    assert "RL's training states" in results.SET_LABELS["standard"]


def test_table_one_heldout_and_paper_kept_apart(tree):
    runs_df = results.load_runs(tree)
    t1 = results.table_one(runs_df, init_set="heldout")
    assert t1.at["TGRPO", "LIBERO-Object SR"] == pytest.approx(43)
    scale = results.ours_scale(runs_df)
    assert scale == "2 tasks per suite, tiny_vla, cpu"
    side = results.table_one_side_by_side(t1, "heldout", scale)
    ours, theirs = results.side_by_side_heads("heldout", scale)
    # each column says what it rests on: our held-out rates never stand under the paper's standard-state header
    assert ours == "ours (2 tasks per suite, tiny_vla, cpu; heldout init states)"
    assert theirs == f"paper ({paper.SCALE}; standard init states)" and "10 tasks per suite, 40 in Average" in theirs
    assert side.at["TGRPO", f"{ours}: LIBERO-Object SR"] == pytest.approx(43)
    assert side.at["TGRPO", f"{theirs}: LIBERO-Object SR"] == 92.2
    assert side.at["SFT", f"{theirs}: LIBERO-Long SR"] == 51.1
    assert math.isnan(side.at["GRPO-sparse", f"{theirs}: LIBERO-Goal SR"])  # the paper has no such row
    assert math.isnan(side.at["Octo", f"{ours}: LIBERO-Goal SR"])
    assert not any(c.startswith("paper") and "heldout" in c for c in side.columns)


def test_paper_tables_match_the_published_averages():
    t1 = results.table_one_paper()
    suites = [c for c in t1.columns if c.endswith(" SR") and not c.startswith("Average")]
    recomputed = t1[suites].mean(axis=1)
    ok = (recomputed - t1["Average SR"]).abs() < 0.051
    assert ok.drop("OpenVLA-SFT").all()
    assert recomputed["OpenVLA-SFT"] == pytest.approx(75.85)  # the paper's own inconsistency (TABLE_I_NOTE)
    assert t1["Average Rank"].tolist() == pytest.approx(t1[[c for c in t1.columns if c.endswith("Rank")
                                                            and not c.startswith("Average")]].mean(axis=1).tolist())
    t2 = results.table_two_paper()
    recomputed = t2.drop(columns="Avg.").mean(axis=1)
    assert ((recomputed - t2["Avg."]).abs() < 0.051).drop("TGRPO w/o Trajectory-level Adv.").all()
    assert recomputed["TGRPO w/o Trajectory-level Adv."] == pytest.approx(80.0)  # published 80.2 (TABLE_II_NOTE)
    assert paper.FIG5_ALPHA1[0.3] == 81.0 and math.isnan(paper.FIG5_ALPHA1[0.5])
    assert paper.FIG5_GROUP_SIZE == {2: 76.2, 4: 81.0, 6: pytest.approx(math.nan, nan_ok=True),
                                     8: pytest.approx(math.nan, nan_ok=True)}


def test_table_two_per_task(tree):
    full = results.table_two(results.load_runs(tree))
    t2 = results.plain_rates(full)
    assert full.attrs["suite"] == "libero_goal"  # the suite holding the ablation runs
    assert list(t2.columns) == ["Task0", "Task1", "Avg."]
    assert t2.loc["SFT"].tolist() == pytest.approx([30, 40, 35])
    assert t2.loc["TGRPO w/o trajectory-level adv."].tolist() == pytest.approx([57, 67, 62])
    assert t2.loc["TGRPO w/o step-level adv."].tolist() == pytest.approx([59, 69, 64])
    assert t2.loc["TGRPO"].tolist() == pytest.approx([61, 71, 66])
    # TGRPO Task0: 0.60, 0.62 on the same 50 states -> 61 % of n = 50 states (not 100 episodes):
    # Wilson with 30.5 of 50, p = 0.61, z^2/n = 0.0768292: centre = (0.61 + 0.0384146) / 1.0768292 = 0.602152,
    # half = z sqrt(0.61 * 0.39 / 50 + z^2 / 10000) / 1.0768292 = 0.130519 -> [0.471633, 0.732671]
    assert (full.at["TGRPO", "Task0 n"], full.at["TGRPO", "Task0 runs"], full.at["TGRPO", "Task0 rate"]) == (50, 2, 61)
    assert (full.at["TGRPO", "Task0 CI low"], full.at["TGRPO", "Task0 CI high"]) == pytest.approx((47.1633, 73.2671), abs=1e-4)
    assert (full.at["TGRPO", "Avg. n"], full.at["TGRPO", "Avg. rate"]) == (100, 66)  # both tasks' 50 states
    assert full.at["TGRPO", "Task0 seed sd"] == pytest.approx(math.sqrt(2)) and full.at["TGRPO", "Task0 seeds"] == 2
    # w/o step-level adv. (0.58 base): runs 58 / 60 % against TGRPO's 60 / 62 %: 4 of the 6 splits of
    # the four runs are at least 2 pts apart -> p = 2/3
    assert full.at["TGRPO w/o step-level adv.", "Task0 p vs TGRPO"] == pytest.approx(2 / 3)


def test_run_comparison_pairs_before_and_after_on_the_same_states(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "eval").mkdir(parents=True)
    keys = [f"k{i}" for i in range(10)]
    # standard: 2 states lost, 7 gained (b=2, c=7) -> exact McNemar p = 2 * P(X <= 2), X ~ Bin(9, 0.5) = 2 * 46/512
    before = [True, True, True, False, False, False, False, False, False, False]
    after = [False, False, True, True, True, True, True, True, True, True]
    for tag, flags in (("before", before), ("after", after)):
        for which in ("standard", "heldout"):
            pd.DataFrame({"init_set": which, "episode": range(10), "state_key": keys, "success": flags,
                          "length": 5}).to_csv(run_dir / "eval" / f"{tag}_{which}.csv", index=False)
    comp = results.run_comparison(run_dir)
    assert list(comp) == ["standard", "heldout"]  # the sets it evaluated: no test tables, no test row
    std = comp["standard"]
    assert (std["b"], std["c"]) == (2, 7)
    assert std["p_value"] == pytest.approx(2 * 46 / 512)
    assert std["before"]["n"] == 10 and std["before"]["rate"] == pytest.approx(0.3)
    assert std["change"] == pytest.approx(0.5)
    md = results.comparison_markdown(comp, "task")
    assert "n=10" in md and "McNemar" in md
    swapped = run_dir / "eval" / "after_heldout.csv"
    pd.read_csv(swapped).iloc[::-1].to_csv(swapped, index=False)  # other states: no paired test
    with pytest.raises(ValueError, match="different init states"):
        results.run_comparison(run_dir)


def test_fig5_curves_mean_spread_and_intervals(tmp_path):
    for alpha1, seed, after in ((0.1, 0, 0.4), (0.1, 1, 0.5), (0.3, 0, 0.6), (0.3, 1, 0.8), (0.5, 0, 0.0), (0.5, 1, 0.1)):
        write_run(tmp_path, "tgrpo", "libero_goal", 0, seed, after, before=0.1, alpha1=alpha1)
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.9, before=0.1, alpha1=0.3, group_size=2, env_steps=500)
    write_run(tmp_path, "tgrpo", "libero_object", 0, 0, 0.0, before=0.1, alpha1=0.1)  # other suite: not in Fig. 5
    alpha, n = results.fig5_curves(results.load_runs(tmp_path))
    point = alpha.set_index(["alpha1", "seed"]).loc[(0.1, 1)]  # one run per point here
    assert (point["successes"], point["n"]) == (5, 10)
    assert (point["ci_low"], point["ci_high"]) == pytest.approx(tuple(100 * v for v in wilson_interval(5, 10)))
    summ = results.curve_summary(alpha, "alpha1").set_index("alpha1")
    assert summ.loc[0.1, "mean"] == pytest.approx(45) and summ.loc[0.3, "mean"] == pytest.approx(70)
    assert summ.loc[0.1, "std"] == pytest.approx(math.sqrt(50))  # ddof=1 over seeds 40, 50
    assert summ["seeds"].tolist() == [2, 2, 2]
    # alpha1 = 0.1: two runs on the same 10 states -> n = 10 (not 20), 45 %: Wilson with 4.5 of 10,
    # centre = (0.45 + 0.192073) / 1.384146 = 0.463877, half = 0.262454 -> [0.201423, 0.726330]
    assert (summ.loc[0.1, "n"], summ.loc[0.1, "runs"], summ.loc[0.1, "rate"]) == (10, 2, 45)
    assert (summ.loc[0.1, "ci_low"], summ.loc[0.1, "ci_high"]) == pytest.approx((20.1423, 72.6330), abs=1e-4)
    # best: 0.3 (70 %). Against it, unit = run: 0.1's runs 40 / 50 % vs 60 / 80 % are the most extreme
    # 2 of the 6 splits -> p = 1/3, and so are 0.5's: neither is shown below the best (pooled Fisher
    # on 1 / 20 vs 14 / 20 episodes had said p = 3.9e-5)
    assert summ["best"].tolist() == [False, True, False] and math.isnan(summ.loc[0.3, "p_vs_best"])
    assert summ.loc[0.1, "p_vs_best"] == pytest.approx(1 / 3) and summ.loc[0.5, "p_vs_best"] == pytest.approx(1 / 3)
    assert summ["not_sig_vs_best"].tolist() == [True, False, True] and summ.loc[0.3, "vs_best"] == "best"
    nsum = results.curve_summary(n, "group_size").set_index("group_size")
    assert nsum.loc[2, "mean"] == pytest.approx(90) and nsum.loc[4, "mean"] == pytest.approx(70)
    assert (nsum.loc[2, "n"], nsum.loc[4, "n"]) == (10, 10) and (nsum.loc[2, "runs"], nsum.loc[4, "runs"]) == (1, 2)
    assert (nsum.loc[2, "env_steps"], nsum.loc[4, "env_steps"]) == (500, 1000)
    md = results.curve_markdown(summ.reset_index(), "alpha1")
    assert "45.0 % [20.1, 72.6] (n=10 states, 2 runs)" in md and "| 1,000 |" in md

    fig = results.figure_sweep(alpha, "alpha1")
    ax = fig.axes[0]
    bars = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    segments = bars.lines[2][0].get_segments()  # one vertical segment per point: (x, low) -> (x, high)
    drawn = [(seg[0][0], seg[0][1], seg[1][1]) for seg in segments]
    expected = [(x, 100 * r["ci_low"], 100 * r["ci_high"]) for x, r in
                ((x, rate_over_runs([[1] * a + [0] * (10 - a), [1] * b + [0] * (10 - b)]))
                 for x, a, b in ((0.1, 4, 5), (0.3, 6, 8), (0.5, 0, 1)))]
    assert np.allclose(drawn, expected)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("95 % Wilson" in t for t in legend) and any("not shown below best" in t for t in legend)
    hollow = next(line for line in ax.lines if line.get_label().startswith("not shown below best"))
    assert hollow.get_xdata().tolist() == [0.1, 0.5] and hollow.get_markerfacecolor() == "white"
    # the N panel says what each N cost: equal iterations, not equal env steps
    nax = results.figure_sweep(n, "group_size").axes[0]
    assert [t.get_text() for t in nax.get_xticklabels()] == ["2\n0.5k steps", "4\n1.0k steps"]
    assert "equal iterations, not equal env steps" in nax.get_xlabel()


def test_figure_three_error_bars_are_the_wilson_bounds(tree):
    t1 = results.table_one(results.load_runs(tree))
    fig = results.figure_three(t1, "2 tasks per suite, tiny_vla, cpu")
    ours = fig.axes[0]
    rows = [c for c in ours.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in rows] == list(t1.index)
    tgrpo = rows[-1]
    heights = [p.get_height() for p in tgrpo.patches]
    assert heights == pytest.approx([86, 66, 76])  # Object, Goal, Average
    segments = tgrpo.errorbar.lines[2][0].get_segments()
    bounds = [(100 * lo, 100 * hi) for lo, hi in (wilson_interval(86, 100), wilson_interval(66, 100),
                                                  wilson_interval(152, 200))]  # n = distinct states
    assert np.allclose([(seg[0][1], seg[1][1]) for seg in segments], bounds)
    # hatched where no difference from TGRPO is shown: with 2 runs per arm no p reaches below 1/3,
    # and SFT has no test without per-state tables; TGRPO itself never
    hatched = {(c.get_label(), i) for c in rows for i, p in enumerate(c.patches) if p.get_hatch()}
    assert hatched == {(m, i) for m in t1.index if m != "TGRPO" for i in range(3)}
    assert "2 tasks per suite, tiny_vla, cpu; standard init states" in ours.get_title()
    assert "10 tasks per suite" in fig.axes[1].get_title() and "standard init states" in fig.axes[1].get_title()
    assert all(c.errorbar is None for c in fig.axes[1].containers if isinstance(c, BarContainer))  # paper: none


def test_write_results_files_and_provenance(tree, tmp_path):
    paths = results.write_results("synthetic", results.load_runs(tree), out_dir=tmp_path / "res")
    for key in ("table1", "table1_paper", "table1_side_by_side", "table2", "table2_paper", "fig3", "fig5", "fig5_md",
                "results_json"):
        assert paths[key].exists() and paths[key].stat().st_size > 100
    t1 = pd.read_csv(paths["table1"], index_col=0)
    assert t1.at["TGRPO", "Average SR"] == pytest.approx(76)
    assert t1.at["TGRPO", "LIBERO-Object n"] == 100 and t1.at["TGRPO", "LIBERO-Object CI low"] == pytest.approx(77.8628, abs=1e-4)
    side = pd.read_csv(paths["table1_side_by_side"], index_col=0)
    ours, theirs = results.side_by_side_heads("standard", "2 tasks per suite, tiny_vla, cpu")
    assert side.at["TGRPO", f"{ours}: LIBERO-Object n"] == 100 and math.isnan(side.at["TGRPO", f"{ours}: LIBERO-Spatial n"])
    assert side.at["TGRPO", f"{theirs}: LIBERO-Object SR"] == 92.2
    md = paths["table1_md"].read_text()
    assert "## Ours (2 tasks per suite, tiny_vla, cpu), init states: standard" in md
    assert "## Paper (10 tasks per suite, 40 in Average, OpenVLA-7B + LoRA, one NVIDIA A100" in md
    # TGRPO on Object: 86 % of 100 distinct states, Wilson [77.9, 91.5], seeds 85 and 87; rank 1
    assert "| TGRPO | 86.0 % [77.9, 91.5] (n=100); 86.0 ± 1.4 (2 seeds) | 1.0 |" in md
    assert "76.0 % [69.6, 81.4] (n=200); 76.0 ± 1.4 (2 seeds) | 76.0 | 1.5 |" in md  # Average: rate, SR, rank
    assert "permutation over 2 vs 2 runs" in md and "Fisher" not in md and results.NOT_SIGNIFICANT in md
    assert "seeds: [0, 1]" in md and "torch 2.13.0" in md and "episodes per task and evaluation: [50]" in md
    md2 = paths["table2_md"].read_text()
    assert "LIBERO-Goal" in md2 and "## Paper (10 tasks, OpenVLA-7B + LoRA" in md2
    # w/o step-level adv., Task0: 59 % of 50 states vs TGRPO's 61 % -> marked not significant
    assert "59.0 % [45.2, 71.5] (n=50); 59.0 ± 1.4 (2 seeds) †" in md2
    report = json.loads(paths["results_json"].read_text())
    cell = next(c for c in report["table1"] if c["method"] == "DPO" and c["column"] == "LIBERO-Object")
    assert (cell["n"], cell["runs"], cell["n_seeds"]) == (100, 4, 2)
    assert cell["ci_low"] == pytest.approx(100 * wilson_interval(66, 100)[0])
    assert cell["p_value"] == pytest.approx(1 / 3) and cell["test"] == RUN_PERMUTATION_TEST
    tg = next(c for c in report["table1"] if c["method"] == "TGRPO" and c["column"] == "Average")
    assert tg["p_value"] is None and tg["rank"] == 1.5
    assert report["table2"]["suite"] == "libero_goal" and report["reference"] == "TGRPO"
    assert {p["alpha1"] for p in report["fig5"]["alpha1"]} == {0.3} and report["fig5"]["alpha1"][0]["n"] == 100
    fig5 = paths["fig5_md"].read_text()
    assert "(n=100 states, 4 runs)" in fig5 and "equal RL iterations, not at equal env steps" in fig5
    assert "env steps per run" in fig5
    prov = json.loads(paths["provenance"].read_text())
    assert prov["env_steps_total"] == 40 * 1000 and prov["mixed_versions"] == []


def test_mixed_versions_are_flagged(tmp_path):
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.5, 0.1)
    write_run(tmp_path, "tgrpo", "libero_goal", 1, 0, 0.5, 0.1, torch_version="2.5.0")
    prov = results.provenance(results.load_runs(tmp_path))
    assert prov["mixed_versions"] == ["torch"] and prov["versions"]["torch"] == ["2.13.0", "2.5.0"]



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

    runs_df = results.load_runs(tmp_path)
    assert len(runs_df) == 4
    tab = results.table_runs(runs_df)
    assert sorted(tab["run_name"]) == sorted([first.name, other_seed.name, "other-start"])
    assert tab.attrs["repeats_left_out"] == ["reproduce-quick-02_training_run"]
    only_x = tab[tab["run_name"] != "other-start"]
    cell = results.table_one_cells(only_x).set_index(["method", "column"]).loc[("TGRPO", "LIBERO-Goal")]
    assert (cell["n"], cell["runs"], cell["rate"], cell["n_seeds"]) == (10, 2, 70, 2)  # 6 + 8 of 10; the repeat's 10 of 10 out
    lines = results.provenance_lines(results.provenance(tab))
    assert lines[-1] == ("- left out as repeats of a counted run (same task, method, seed and settings): "
                         "reproduce-quick-02_training_run")
    assert results.table_runs(runs_df[runs_df["run_name"] != repeat.name]).attrs["repeats_left_out"] == []
    # GRPO-sparse ignores the configured alpha1: runs differing only there are one experiment
    g1 = write_run(tmp_path / "c", "grpo_sparse", "libero_goal", 0, 0, 0.5, 0.2, alpha1=0.3)
    g2 = write_run(tmp_path / "d", "grpo_sparse", "libero_goal", 0, 0, 0.5, 0.2, alpha1=0.1)
    sparse = pd.concat([results.load_runs(tmp_path / "c"), results.load_runs(tmp_path / "d")], ignore_index=True)
    kept = results.distinct_runs(sparse)  # the first by name stays: ...a0.1... before ...a0.3...
    assert kept["run_name"].tolist() == [g2.name] and kept.attrs["repeats_left_out"] == [g1.name]
    # the SFT row counts one start once, its path spelled relative in one run and absolute in another
    sft = results.method_success(tab, {"SFT": None, "TGRPO": "tgrpo"})
    assert sft[sft["method"] == "SFT"]["n"].tolist() == [10, 10]  # checkpoints x and y, 10 episodes each
    alpha, _ = results.fig5_curves(runs_df[runs_df["run_name"] != "other-start"])  # Fig. 5 counts it once too
    assert alpha["seed"].tolist() == [0, 1] and alpha["n"].sum() == 20

def _robustness_episodes():
    """10 states per condition; SFT solves the first k_sft, TGRPO the first k_rl (worked counts below)."""
    counts = {"standard": (5, 9), "lan": (2, 3), "swap": (6, 2), "object": (0, 10)}
    rows = []
    for condition, (k_sft, k_rl) in counts.items():
        for policy, k in (("SFT", k_sft), ("TGRPO", k_rl)):
            rows += [{"policy": policy, "condition": condition, "suite": "libero_object", "task_id": 0,
                      "state_key": f"{condition}{i}", "success": i < k} for i in range(10)]
    return pd.DataFrame(rows)


def test_robustness_table_pairs_states_and_says_whether_the_gain_holds():
    table = results.robustness_table(_robustness_episodes())
    assert list(table.index) == ["standard", "lan", "swap", "object"]
    std, lan, swap, obj = (table.loc[c] for c in table.index)
    assert (std["SFT %"], std["TGRPO %"], std["change (pts)"], std["b"], std["c"]) == (50, 90, 40, 0, 4)
    assert std["p"] == pytest.approx(0.125) and not std["significant"]  # 2 * 0.5**4
    assert std["verdict"] == "reference"
    assert lan["verdict"] == "shrinks" and lan["change (pts)"] == pytest.approx(10)  # < half of 40
    assert swap["verdict"] == "reverses" and (swap["b"], swap["c"]) == (4, 0)
    assert obj["verdict"] == "holds" and obj["p"] == pytest.approx(2 * 0.5 ** 10) and obj["significant"]
    assert std["SFT CI low"] < 50 < std["SFT CI high"]
    answer = results.robustness_answer(table)
    assert "swap: the gain reverses: 60.0 % -> 20.0 % (n=10), -40.0 pts" in answer
    assert "lan: the gain shrinks" in answer and "not significant" in answer
    png = results.figure_robustness(table)._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_robustness_table_refuses_missing_policies_and_reference():
    with pytest.raises(ValueError, match="no episodes of RL: pass before/after among SFT, TGRPO"):
        results.robustness_table(_robustness_episodes(), after="RL")
    with pytest.raises(ValueError, match="reference='heldout' was not evaluated"):
        results.robustness_table(_robustness_episodes(), reference="heldout")
    assert [results.verdict(c, 20) for c in (-1, 0, 9, 10, 30)] == ["reverses", "shrinks", "shrinks", "holds", "holds"]


def test_sweep_before_after_pairs_each_run_with_its_start_and_counts_states(tmp_path):
    T, F = True, False
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.75, 0.25, alpha1=0.1, episodes=4,
              flags={"before": [T, F, F, F], "after": [T, T, T, F]})
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 1, 0.5, 0.5, alpha1=0.1, episodes=4,
              flags={"before": [F, F, T, T], "after": [T, F, T, F]})
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.25, 0.25, alpha1=0.9, episodes=4,
              flags={"before": [T, F, F, F], "after": [F, F, F, T]})
    table = results.sweep_before_after(results.load_runs(tmp_path), "alpha1", init_sets=("standard", "test"))
    assert table["alpha1"].tolist() == [0.1, 0.1, 0.9, 0.9] and table["runs"].tolist() == [2, 0, 1, 0]
    low = table.iloc[0]
    # two runs on the same 4 states: n = 4 (not 8); before 3 of 8 flags = 37.5 %, after 62.5 %.
    # Per state, the change summed over both runs: +1, +1, +1, -1 (state 3 lost by seed 1);
    # sign-flip over the 4 states: |sum| >= 2 in 10 of the 16 patterns -> p = 0.625
    assert (low["n"], low["before"], low["after"], low["change"]) == (4, 37.5, 62.5, 25.0)
    assert low["p_value"] == pytest.approx(0.625) and low["test"] == SIGN_FLIP_TEST
    # Wilson over 4 states with 1.5 and 2.5 successes: [9.2, 78.1] and [21.9, 90.8]
    assert (low["after_low"], low["after_high"]) == pytest.approx((21.9427, 90.8101), abs=1e-4)
    assert low["text"].startswith("37.5 % [9.2, 78.1] (n=4 states, 2 runs) -> 62.5 % [21.9, 90.8] (n=4 states, 2 runs), "
                                  "+25.0 pts [") and low["text"].endswith("p = 0.625 (sign-flip over 4 states, 2 runs)")
    high = table.iloc[2]  # one run: exact McNemar, b = states lost, c = states gained
    assert (high["b"], high["c"], high["p_value"], high["test"]) == (1, 1, 1.0, MCNEMAR_TEST)
    assert high["text"].endswith("+0.0 pts, p = 1.000 (exact McNemar, b=1, c=1)")
    assert table.iloc[1]["text"] == "not run" and table.iloc[3]["text"] == "not run"  # no test evaluation
    assert results.sweep_before_after(results.load_runs(tmp_path / "none"), "alpha1").empty
