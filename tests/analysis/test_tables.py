"""Table I / II and one run's before/after (``analysis.tables``, with the cells of
``analysis.cells``) from synthetic run directories (``run_dirs``), checked against means, ranks,
counts, intervals and tests worked out by hand. The unit of every test is what is independent
(docs/statistics.md): the init state for SFT against runs trained from it, the run for two
methods; every n counts distinct init states."""
import math

import pandas as pd
import pytest
from run_dirs import write_run

from tgrpo_lib.analysis import cells, curves, paper, report, runs_table, tables
from tgrpo_lib.analysis.stats import (MCNEMAR_TEST, RUN_PERMUTATION_TEST, SIGN_FLIP_TEST, mcnemar_exact_counts,
                                      wilson_interval)


def test_table_one_means_and_ranks(tree):
    t1 = tables.plain_rates(tables.table_one(runs_table.load_runs(tree)))
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
    t1 = tables.table_one(runs_table.load_runs(tree))
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
    cells_df = tables.table_one_cells(runs_table.load_runs(tree)).set_index(["method", "column"])
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
    cells_df = tables.table_one_cells(runs_table.load_runs(tmp_path)).set_index(["method", "column"])
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
    md = tables.cells_markdown(tables.table_one_cells(runs_table.load_runs(tmp_path)), tables.TABLE_I_METHODS,
                                ["LIBERO-Goal", "Average"], ranked=True)
    assert "55.0 % [27.4, 79.9] (n=10); 55.0 ± 7.1 (2 seeds) †" in md and "permutation over 2 vs 2 runs, 10 states" in md
    # another order of the same init states in one DPO run: paired by state key, the same result
    other = tmp_path / "train" / "libero_goal-0__dpo__a0.3__N4__s1" / "eval" / "after_standard.csv"
    pd.read_csv(other).iloc[::-1].to_csv(other, index=False)
    again = tables.table_one_cells(runs_table.load_runs(tmp_path)).set_index(["method", "column"])
    assert again.loc[("DPO", "LIBERO-Goal"), "p_value"] == pytest.approx(2 / 3)
    # other init states in that run: no pairs, no test
    pd.read_csv(other).assign(state_key=lambda d: d["state_key"] + "x").to_csv(other, index=False)
    d = tables.table_one_cells(runs_table.load_runs(tmp_path)).set_index(["method", "column"]).loc[("DPO", "LIBERO-Goal")]
    assert d["test"] == "n/a (the runs hold different init states)" and math.isnan(d["p_value"])
    # a TGRPO run without its per-episode tables: the paired SFT test says so, never pools over seeds
    (tmp_path / "train" / "libero_goal-0__tgrpo__a0.3__N4__s1" / "eval" / "before_standard.csv").unlink()
    s = tables.table_one_cells(runs_table.load_runs(tmp_path)).set_index(["method", "column"]).loc[("SFT", "LIBERO-Goal")]
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
    p = {k: tables.table_one_cells(runs_table.load_runs(tmp_path / k)).set_index(["method", "column"])
         .loc[("SFT", "LIBERO-Goal"), "p_value"] for k in ("three", "one")}
    # 6 states gained, none lost: exact McNemar 2 * 0.5**6 = 0.03125 (pooled over 3 seeds: 2 * 0.5**18)
    assert p["three"] == p["one"] == mcnemar_exact_counts(0, 6)["p_value"] == 2 * 0.5**6
    one = tables.table_one_cells(runs_table.load_runs(tmp_path / "one")).set_index(["method", "column"])
    assert one.loc[("SFT", "LIBERO-Goal"), "versus"] == "-60.0 pts, p = 0.031 (exact McNemar, b=6, c=0)"
    # one run on each side of a method comparison: exact McNemar on the states, b = TGRPO succeeds
    # where DPO fails (states 5..8), c the reverse
    write_run(tmp_path / "one", "dpo", "libero_goal", 0, 0, after=0.5, before=0.3, init_checkpoint="ckpt/policy",
              flags={"before": sft, "after": [True] * 5 + [False] * 5})
    d = tables.table_one_cells(runs_table.load_runs(tmp_path / "one")).set_index(["method", "column"]).loc[("DPO", "LIBERO-Goal")]
    assert (d["b"], d["c"], d["p_value"], d["test"]) == (4, 0, 2 * 0.5**4, MCNEMAR_TEST)
    assert d["versus"] == "-40.0 pts, p = 0.125 (exact McNemar, b=4, c=0)" and d["diff_low"] <= -40 <= d["diff_high"]
    table = curves.sweep_before_after(runs_table.load_runs(tmp_path / "three"), "alpha1", init_sets=("standard",))
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
    d = tables.table_one_cells(runs_table.load_runs(tmp_path)).set_index(["method", "column"]).loc[("DPO", "LIBERO-Goal")]
    assert d["p_value"] == pytest.approx(0.1) and d["diff"] == pytest.approx(-100)
    assert "p = 0.100 (permutation over 3 vs 3 runs, 10 states)" in d["versus"]


def test_a_set_no_run_evaluated_reads_not_run(tree, tmp_path):
    t = tables.table_one_cells(runs_table.load_runs(tree), init_set="test")  # the tree's runs predate the test set
    assert (t["runs"] == 0).all() and (t["test"].fillna("") != "").sum() == (t["method"] != "TGRPO").sum()
    md = tables.cells_markdown(t, tables.TABLE_I_METHODS)
    assert "not run" in md and "nan" not in md.lower()
    assert tables.cell_text(t.iloc[0].to_dict()) == "not run"
    # a run evaluated on the test set counts there, with its own n
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, after=0.6, before=0.2, test_episodes=100)
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 1, after=0.7, before=0.2)  # an older run: no test evaluation
    cell = tables.table_one_cells(runs_table.load_runs(tmp_path), init_set="test").set_index(["method", "column"])
    assert (cell.loc[("TGRPO", "LIBERO-Goal"), "n"], cell.loc[("TGRPO", "LIBERO-Goal"), "runs"]) == (100, 1)
    prov = report.provenance(runs_table.load_runs(tmp_path), "test")
    assert prov["runs_evaluated_on_set"] == 1 and prov["init_states"] == runs_table.SET_LABELS["test"]
    assert "RL's training states" in runs_table.SET_LABELS["standard"]


def test_table_one_heldout_and_paper_kept_apart(tree):
    runs_df = runs_table.load_runs(tree)
    t1 = tables.table_one(runs_df, init_set="heldout")
    assert t1.at["TGRPO", "LIBERO-Object SR"] == pytest.approx(43)
    scale = runs_table.ours_scale(runs_df)
    assert scale == "2 tasks per suite, tiny_vla, cpu"
    side = tables.table_one_side_by_side(t1, "heldout", scale)
    ours, theirs = tables.side_by_side_heads("heldout", scale)
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
    t1 = tables.table_one_paper()
    suites = [c for c in t1.columns if c.endswith(" SR") and not c.startswith("Average")]
    recomputed = t1[suites].mean(axis=1)
    ok = (recomputed - t1["Average SR"]).abs() < 0.051
    assert ok.drop("OpenVLA-SFT").all()
    assert recomputed["OpenVLA-SFT"] == pytest.approx(75.85)  # the paper's own inconsistency (TABLE_I_NOTE)
    assert t1["Average Rank"].tolist() == pytest.approx(t1[[c for c in t1.columns if c.endswith("Rank")
                                                            and not c.startswith("Average")]].mean(axis=1).tolist())
    t2 = tables.table_two_paper()
    recomputed = t2.drop(columns="Avg.").mean(axis=1)
    assert ((recomputed - t2["Avg."]).abs() < 0.051).drop("TGRPO w/o Trajectory-level Adv.").all()
    assert recomputed["TGRPO w/o Trajectory-level Adv."] == pytest.approx(80.0)  # published 80.2 (TABLE_II_NOTE)
    assert paper.FIG5_ALPHA1[0.3] == 81.0 and math.isnan(paper.FIG5_ALPHA1[0.5])
    assert paper.FIG5_GROUP_SIZE == {2: 76.2, 4: 81.0, 6: pytest.approx(math.nan, nan_ok=True),
                                     8: pytest.approx(math.nan, nan_ok=True)}


def test_table_two_per_task(tree):
    full = tables.table_two(runs_table.load_runs(tree))
    t2 = tables.plain_rates(full)
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
    comp = tables.run_comparison(run_dir)
    assert list(comp) == ["standard", "heldout"]  # the sets it evaluated: no test tables, no test row
    std = comp["standard"]
    assert (std["b"], std["c"]) == (2, 7)
    assert std["p_value"] == pytest.approx(2 * 46 / 512)
    assert std["before"]["n"] == 10 and std["before"]["rate"] == pytest.approx(0.3)
    assert std["change"] == pytest.approx(0.5)
    md = tables.comparison_markdown(comp, "task")
    assert "n=10" in md and "McNemar" in md
    swapped = run_dir / "eval" / "after_heldout.csv"
    pd.read_csv(swapped).iloc[::-1].to_csv(swapped, index=False)  # other states: no paired test
    with pytest.raises(ValueError, match="different init states"):
        tables.run_comparison(run_dir)
