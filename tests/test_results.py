"""Tables and figures from synthetic run directories written here (no simulator), checked
against means, ranks, counts, intervals and tests worked out by hand."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from tgrpo_lib import CONFIG_SCHEMA, paper, results, runs
from tgrpo_lib.config import config_for, config_to_dict
from tgrpo_lib.stats import FISHER_TEST, MCNEMAR_TEST, fisher_exact_counts, mcnemar_exact_counts, wilson_interval

SUITE_OFFSET = {"libero_object": 0.2, "libero_goal": 0.0}
BASE = {"tgrpo": 0.6, "tpo": 0.5, "dpo": 0.4, "grpo_sparse": 0.46, "step_only": 0.56, "traj_only": 0.58}


def after_rate(algo, suite, task, seed):
    base = 0.7 if (algo == "grpo_sparse" and suite == "libero_goal") else BASE[algo]
    return base + 0.1 * task + 0.02 * seed + SUITE_OFFSET[suite]


def write_run(root, algo, suite, task, seed, after, before, alpha1=0.3, group_size=4, episodes=10, env_steps=1000,
              torch_version="2.13.0", complete=True, heldout_episodes=None, init_checkpoint=None, flags=None):
    """One run directory; ``flags`` {"before"/"after": [success per init state]} also writes the
    per-episode tables eval/{tag}_standard.csv (state keys s0, s1, ...)."""
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
    for tag, tag_flags in (flags or {}).items():
        (run_dir / "eval").mkdir(exist_ok=True)
        pd.DataFrame({"init_set": "standard", "episode": range(len(tag_flags)), "state_key": [f"s{i}" for i in range(len(tag_flags))],
                      "success": tag_flags, "length": 5}).to_csv(run_dir / "eval" / f"{tag}_standard.csv", index=False)
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


def test_table_one_cells_pool_counts_over_tasks_and_seeds(tree):
    t1 = results.table_one(results.load_runs(tree))
    # TGRPO on Object: 0.80, 0.82 (task 0, seeds 0/1), 0.90, 0.92 (task 1) of 50 each -> 40 + 41 + 45 + 46 = 172 of 200
    assert (t1.at["TGRPO", "LIBERO-Object n"], t1.at["TGRPO", "LIBERO-Object successes"]) == (200, 172)
    assert t1.at["TGRPO", "LIBERO-Object pooled"] == pytest.approx(86.0)
    # Wilson, p = 0.86, z^2/n = 0.0192073: centre = (0.86 + 0.0096036) / 1.0192073 = 0.853216,
    # half = z sqrt(0.86 * 0.14 / 200 + z^2 / 160000) / 1.0192073 = 0.048115 -> [0.805101, 0.901330]
    low, high = wilson_interval(172, 200)
    assert (t1.at["TGRPO", "LIBERO-Object CI low"], t1.at["TGRPO", "LIBERO-Object CI high"]) == pytest.approx(
        (80.5101, 90.1330), abs=1e-4)
    assert t1.at["TGRPO", "LIBERO-Object CI low"] == pytest.approx(100 * low)
    # per seed: seed 0 = (80 + 90) / 2 = 85, seed 1 = 87 -> 86 ± sqrt(2)
    assert t1.at["TGRPO", "LIBERO-Object seed mean"] == pytest.approx(86)
    assert t1.at["TGRPO", "LIBERO-Object seed sd"] == pytest.approx(math.sqrt(2))
    assert t1.at["TGRPO", "LIBERO-Object seeds"] == 2
    # Average pools both suites: Goal 30 + 31 + 35 + 36 = 132 -> 304 of 400
    assert (t1.at["TGRPO", "Average n"], t1.at["TGRPO", "Average successes"]) == (400, 304)
    assert t1.at["TGRPO", "Average CI high"] == pytest.approx(100 * wilson_interval(304, 400)[1])
    # SFT (runs without a checkpoint: one before-evaluation per task and seed): 25 + 25 + 30 + 30 of 200
    assert (t1.at["SFT", "LIBERO-Object n"], t1.at["SFT", "LIBERO-Object successes"]) == (200, 110)
    # no per-episode tables here: unpaired Fisher on the pooled counts, DPO Object 132 / 200 vs 172 / 200
    assert t1.at["DPO", "LIBERO-Object p vs TGRPO"] == pytest.approx(fisher_exact_counts(132, 200, 172, 200)["p_value"])
    assert math.isnan(t1.at["TGRPO", "LIBERO-Object p vs TGRPO"])
    cells = results.table_one_cells(results.load_runs(tree)).set_index(["method", "column"])
    dpo = cells.loc[("DPO", "LIBERO-Object")]
    assert dpo["test"] == FISHER_TEST and dpo["diff"] == pytest.approx(66 - 86) and math.isnan(dpo["b"])
    assert cells.loc[("GRPO-sparse", "LIBERO-Goal"), "p_value"] == pytest.approx(
        fisher_exact_counts(152, 200, 132, 200)["p_value"])  # 0.036


def test_paired_cells_use_mcnemar_on_the_same_init_states(tmp_path):
    # one task, seeds 0 and 1, 10 init states, every run starting from one SFT checkpoint
    sft = [True] * 3 + [False] * 7
    tg = {0: [True] * 7 + [False] * 3, 1: [True] * 6 + [False] * 4}
    dpo = {0: [True] * 2 + [False] * 2 + [True] * 4 + [False] * 2, 1: [False] * 3 + [True] * 5 + [False] * 2}
    for seed in (0, 1):
        for algo, after in (("tgrpo", tg[seed]), ("dpo", dpo[seed])):
            write_run(tmp_path, algo, "libero_goal", 0, seed, after=sum(after) / 10, before=0.3,
                      init_checkpoint="ckpt/libero_goal-0/policy", flags={"before": sft, "after": after})
    cells = results.table_one_cells(results.load_runs(tmp_path)).set_index(["method", "column"])
    # SFT once (one checkpoint, one task): 3 of 10, not 6 of 20; one evaluation, so one "seed"
    sft_cell = cells.loc[("SFT", "LIBERO-Goal")]
    assert (sft_cell["n"], sft_cell["successes"], sft_cell["n_seeds"]) == (10, 3, 1)
    # DPO vs TGRPO, per seed: b = TGRPO success / DPO failure, c = the reverse
    #   seed 0: TGRPO wins states 0..6, DPO 0, 1, 4..7 -> b = 2 (states 2, 3), c = 1 (state 7)
    #   seed 1: TGRPO 0..5, DPO 3..7 -> b = 3 (0, 1, 2), c = 2 (6, 7); pooled b = 5, c = 3
    d = cells.loc[("DPO", "LIBERO-Goal")]
    assert (d["b"], d["c"], d["test"]) == (5, 3, MCNEMAR_TEST)
    assert d["p_value"] == mcnemar_exact_counts(5, 3)["p_value"]  # 2 (1 + 8 + 28 + 56) / 256 = 0.7265625
    assert d["diff"] == pytest.approx(100 * (11 - 13) / 20)
    # SFT vs TGRPO: each TGRPO run against its own before-evaluation (states 0..2 won by both):
    # b = TGRPO success / SFT failure = 4 + 3, c = 0 -> p = 2 * 0.5**7
    s = cells.loc[("SFT", "LIBERO-Goal")]
    assert (s["b"], s["c"], s["p_value"]) == (7, 0, 2 * 0.5**7) and s["diff"] == pytest.approx(30 - 65)
    md = results.cells_markdown(results.table_one_cells(results.load_runs(tmp_path)), results.TABLE_I_METHODS,
                                ["LIBERO-Goal", "Average"], ranked=True)
    assert "exact McNemar, b=5, c=3" in md and "55.0 % [34.2, 74.2] (n=20); 55.0 ± 7.1 (2 seeds) †" in md
    # another order of init states in one DPO run: no pairs, Fisher's exact test on 11 / 20 vs 13 / 20
    other = tmp_path / "train" / "libero_goal-0__dpo__a0.3__N4__s1" / "eval" / "after_standard.csv"
    pd.read_csv(other).iloc[::-1].to_csv(other, index=False)
    d = results.table_one_cells(results.load_runs(tmp_path)).set_index(["method", "column"]).loc[("DPO", "LIBERO-Goal")]
    assert d["test"] == FISHER_TEST and d["p_value"] == pytest.approx(fisher_exact_counts(11, 20, 13, 20)["p_value"])


def test_table_one_heldout_and_paper_kept_apart(tree):
    t1 = results.table_one(results.load_runs(tree), init_set="heldout")
    assert t1.at["TGRPO", "LIBERO-Object SR"] == pytest.approx(43)
    side = results.table_one_side_by_side(t1)
    assert side.at["TGRPO", "ours: LIBERO-Object SR"] == pytest.approx(43)
    assert side.at["TGRPO", "paper: LIBERO-Object SR"] == 92.2
    assert side.at["SFT", "paper: LIBERO-Long SR"] == 51.1
    assert math.isnan(side.at["GRPO-sparse", "paper: LIBERO-Goal SR"])  # the paper has no such row
    assert math.isnan(side.at["Octo", "ours: LIBERO-Goal SR"])


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
    # TGRPO Task0: 0.60, 0.62 of 50 -> 61 of 100, Wilson [51.2, 70.0]; Avg. pools both tasks: 132 of 200
    assert (full.at["TGRPO", "Task0 n"], full.at["TGRPO", "Task0 successes"]) == (100, 61)
    assert (full.at["TGRPO", "Task0 CI low"], full.at["TGRPO", "Task0 CI high"]) == pytest.approx((51.2030, 69.9831), abs=1e-4)
    assert (full.at["TGRPO", "Avg. n"], full.at["TGRPO", "Avg. successes"]) == (200, 132)
    assert full.at["TGRPO", "Task0 seed sd"] == pytest.approx(math.sqrt(2)) and full.at["TGRPO", "Task0 seeds"] == 2
    # w/o step-level adv. (0.58 base): Task0 29 + 30 = 59 of 100 against 61 of 100: not significant (p = 0.89)
    assert full.at["TGRPO w/o step-level adv.", "Task0 p vs TGRPO"] == pytest.approx(
        fisher_exact_counts(59, 100, 61, 100)["p_value"])
    assert full.at["TGRPO w/o step-level adv.", "Task0 p vs TGRPO"] > 0.05


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
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.9, before=0.1, alpha1=0.3, group_size=2)
    write_run(tmp_path, "tgrpo", "libero_object", 0, 0, 0.0, before=0.1, alpha1=0.1)  # other suite: not in Fig. 5
    alpha, n = results.fig5_curves(results.load_runs(tmp_path))
    point = alpha.set_index(["alpha1", "seed"]).loc[(0.1, 1)]
    assert (point["successes"], point["n"]) == (5, 10)
    assert (point["ci_low"], point["ci_high"]) == pytest.approx(tuple(100 * v for v in wilson_interval(5, 10)))
    summ = results.curve_summary(alpha, "alpha1").set_index("alpha1")
    assert summ.loc[0.1, "mean"] == pytest.approx(45) and summ.loc[0.3, "mean"] == pytest.approx(70)
    assert summ.loc[0.1, "std"] == pytest.approx(math.sqrt(50))  # ddof=1 over seeds 40, 50
    assert summ["seeds"].tolist() == [2, 2, 2]
    # alpha1 = 0.1 pools 4 + 5 = 9 of 20 -> Wilson [0.258, 0.658]
    assert (summ.loc[0.1, "successes"], summ.loc[0.1, "n"], summ.loc[0.1, "pooled"]) == (9, 20, 45)
    assert (summ.loc[0.1, "ci_low"], summ.loc[0.1, "ci_high"]) == pytest.approx((25.8198, 65.7915), abs=1e-4)
    # best: 0.3 (14 of 20); 9 / 20 is not significantly below it, 1 / 20 is (Fisher, unpaired)
    assert summ["best"].tolist() == [False, True, False] and math.isnan(summ.loc[0.3, "p_vs_best"])
    assert summ.loc[0.1, "p_vs_best"] == pytest.approx(fisher_exact_counts(9, 20, 14, 20)["p_value"])  # 0.200
    assert summ.loc[0.5, "p_vs_best"] == pytest.approx(fisher_exact_counts(1, 20, 14, 20)["p_value"])  # 3.9e-5
    assert summ["not_sig_vs_best"].tolist() == [True, False, False]
    nsum = results.curve_summary(n, "group_size").set_index("group_size")
    assert nsum.loc[2, "mean"] == pytest.approx(90) and nsum.loc[4, "mean"] == pytest.approx(70)
    assert (nsum.loc[2, "n"], nsum.loc[4, "n"]) == (10, 20)
    assert "45.0 % [25.8, 65.8] (n=20)" in results.curve_markdown(summ.reset_index(), "alpha1")

    fig = results.figure_sweep(alpha, "alpha1")
    ax = fig.axes[0]
    bars = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    segments = bars.lines[2][0].get_segments()  # one vertical segment per point: (x, low) -> (x, high)
    drawn = [(seg[0][0], seg[0][1], seg[1][1]) for seg in segments]
    expected = [(x, 100 * wilson_interval(k, 20)[0], 100 * wilson_interval(k, 20)[1]) for x, k in ((0.1, 9), (0.3, 14), (0.5, 1))]
    assert np.allclose(drawn, expected)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("95 % Wilson" in t for t in legend) and any("not significantly below best" in t for t in legend)
    hollow = next(line for line in ax.lines if line.get_label().startswith("not significantly below best"))
    assert hollow.get_xdata().tolist() == [0.1] and hollow.get_markerfacecolor() == "white"


def test_figure_three_error_bars_are_the_wilson_bounds(tree):
    t1 = results.table_one(results.load_runs(tree))
    fig = results.figure_three(t1)
    ours = fig.axes[0]
    rows = [c for c in ours.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in rows] == list(t1.index)
    tgrpo = rows[-1]
    heights = [p.get_height() for p in tgrpo.patches]
    assert heights == pytest.approx([86, 66, 76])  # Object, Goal, Average (pooled)
    segments = tgrpo.errorbar.lines[2][0].get_segments()
    bounds = [(100 * lo, 100 * hi) for lo, hi in (wilson_interval(172, 200), wilson_interval(132, 200),
                                                  wilson_interval(304, 400))]
    assert np.allclose([(seg[0][1], seg[1][1]) for seg in segments], bounds)
    # hatched exactly where p >= 0.05 vs TGRPO: GRAPE-style on Goal (112 vs 132 of 200, p = 0.051) and
    # GRPO-sparse on average (296 vs 304 of 400)
    hatched = {(c.get_label(), i) for c in rows for i, p in enumerate(c.patches) if p.get_hatch()}
    assert hatched == {("GRAPE-style", 1), ("GRPO-sparse", 2)}
    assert t1.at["GRAPE-style", "LIBERO-Goal p vs TGRPO"] == pytest.approx(fisher_exact_counts(112, 200, 132, 200)["p_value"])
    assert all(c.errorbar is None for c in fig.axes[1].containers if isinstance(c, BarContainer))  # paper: none


def test_write_results_files_and_provenance(tree, tmp_path):
    paths = results.write_results("synthetic", results.load_runs(tree), out_dir=tmp_path / "res")
    for key in ("table1", "table1_paper", "table1_side_by_side", "table2", "table2_paper", "fig3", "fig5", "fig5_md",
                "results_json"):
        assert paths[key].exists() and paths[key].stat().st_size > 100
    t1 = pd.read_csv(paths["table1"], index_col=0)
    assert t1.at["TGRPO", "Average SR"] == pytest.approx(76)
    assert t1.at["TGRPO", "LIBERO-Object n"] == 200 and t1.at["TGRPO", "LIBERO-Object CI low"] == pytest.approx(80.5101, abs=1e-4)
    side = pd.read_csv(paths["table1_side_by_side"], index_col=0)
    assert side.at["TGRPO", "ours: LIBERO-Object n"] == 200 and math.isnan(side.at["TGRPO", "ours: LIBERO-Spatial n"])
    md = paths["table1_md"].read_text()
    assert "## Ours" in md and "## Paper" in md
    # TGRPO on Object: 172 / 200, Wilson [80.5, 90.1], seeds 85 and 87; rank 1
    assert "| TGRPO | 86.0 % [80.5, 90.1] (n=200); 86.0 ± 1.4 (2 seeds) | 1.0 |" in md
    assert "76.0 % [71.6, 79.9] (n=400); 76.0 ± 1.4 (2 seeds) | 76.0 | 1.5 |" in md  # Average pooled, SR, rank
    assert "Fisher exact, unpaired" in md and "Wilson" in md and results.NOT_SIGNIFICANT in md  # the note
    assert "seeds: [0, 1]" in md and "torch 2.13.0" in md and "episodes per task and evaluation: [50]" in md
    md2 = paths["table2_md"].read_text()
    assert "LIBERO-Goal" in md2
    # w/o step-level adv., Task0: 59 of 100 vs TGRPO's 61 of 100 -> marked not significant
    assert "59.0 % [49.2, 68.1] (n=100); 59.0 ± 1.4 (2 seeds) †" in md2
    report = json.loads(paths["results_json"].read_text())
    cell = next(c for c in report["table1"] if c["method"] == "DPO" and c["column"] == "LIBERO-Object")
    assert (cell["n"], cell["successes"], cell["n_seeds"]) == (200, 132, 2)
    assert cell["ci_low"] == pytest.approx(100 * wilson_interval(132, 200)[0])
    assert cell["p_value"] == pytest.approx(fisher_exact_counts(132, 200, 172, 200)["p_value"]) and cell["test"] == FISHER_TEST
    tg = next(c for c in report["table1"] if c["method"] == "TGRPO" and c["column"] == "Average")
    assert tg["p_value"] is None and tg["rank"] == 1.5
    assert report["table2"]["suite"] == "libero_goal" and report["reference"] == "TGRPO"
    assert {p["alpha1"] for p in report["fig5"]["alpha1"]} == {0.3} and report["fig5"]["alpha1"][0]["n"] == 4 * 50
    assert "(n=200)" in paths["fig5_md"].read_text()
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
    assert (cell["n"], cell["successes"], cell["n_seeds"]) == (20, 14, 2)  # 6 + 8 of 10 each; the repeat's 10 of 10 out
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


def test_sweep_before_after_pools_the_runs_of_a_value_and_pairs_their_states(tmp_path):
    T, F = True, False
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.75, 0.25, alpha1=0.1, episodes=4,
              flags={"before": [T, F, F, F], "after": [T, T, T, F]})
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 1, 0.5, 0.5, alpha1=0.1, episodes=4,
              flags={"before": [F, F, T, T], "after": [T, F, T, F]})
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.25, 0.25, alpha1=0.9, episodes=4,
              flags={"before": [T, F, F, F], "after": [F, F, F, T]})
    table = results.sweep_before_after(results.load_runs(tmp_path), "alpha1", init_sets=("standard",))
    assert table["alpha1"].tolist() == [0.1, 0.9] and table["runs"].tolist() == [2, 1]
    low = table.iloc[0]
    # pooled over both seeds: 3 of 8 before, 5 of 8 after; lost 1 (seed 1, state 3), gained 3
    assert (low["n"], low["before"], low["after"], low["change"]) == (8, 37.5, 62.5, 25.0)
    assert (low["b"], low["c"]) == (1, 3) and low["p_value"] == pytest.approx(0.625)  # 2 (1 + 4) / 16
    assert (low["after_low"], low["after_high"]) == pytest.approx([100 * v for v in wilson_interval(5, 8)])
    assert low["text"] == "37.5 % [13.7, 69.4] (n=8) -> 62.5 % [30.6, 86.3] (n=8), +25.0 pts, p = 0.625 (exact McNemar, b=1, c=3)"
    high = table.iloc[1]
    assert (high["b"], high["c"], high["p_value"]) == (1, 1, 1.0)
    assert results.sweep_before_after(results.load_runs(tmp_path / "none"), "alpha1").empty
