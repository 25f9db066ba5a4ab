"""Tables and figures from synthetic run directories written here (no simulator), checked
against means and ranks worked out by hand."""
import json
import math

import pandas as pd
import pytest

from tgrpo_lib import CONFIG_SCHEMA, paper, results, runs
from tgrpo_lib.config import config_for, config_to_dict

SUITE_OFFSET = {"libero_object": 0.2, "libero_goal": 0.0}
BASE = {"tgrpo": 0.6, "tpo": 0.5, "dpo": 0.4, "grpo_sparse": 0.45, "step_only": 0.55, "traj_only": 0.58}


def after_rate(algo, suite, task, seed):
    base = 0.7 if (algo == "grpo_sparse" and suite == "libero_goal") else BASE[algo]
    return base + 0.1 * task + 0.02 * seed + SUITE_OFFSET[suite]


def write_run(root, algo, suite, task, seed, after, before, alpha1=0.3, group_size=4, episodes=10, env_steps=1000,
              torch_version="2.13.0", complete=True):
    cfg = config_for(suite=suite, task_id=task, algo=algo, seed=seed, alpha1=alpha1, alpha2=round(1 - alpha1, 10),
                     group_size=group_size, final_eval_episodes=episodes,
                     run_name=f"{suite}-{task}__{algo}__a{alpha1}__N{group_size}__s{seed}")
    run_dir = runs.run_dir_path("train", cfg.run_name, root)
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"schema": CONFIG_SCHEMA, **config_to_dict(cfg)}))
    (run_dir / "versions.json").write_text(json.dumps({"python": "3.11.7", "packages": {"torch": torch_version,
                                                       "mujoco": "3.2.0"}, "git_commit": "abc123"}))
    summary = {"algo": algo, "seed": seed, "env_steps": env_steps, "before_standard": before, "after_standard": after,
               "before_heldout": before / 2, "after_heldout": after / 2, "after_standard_episodes": episodes,
               "after_heldout_episodes": episodes}
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
                              before=0.3 + 0.1 * task + SUITE_OFFSET[suite])
    # an unfinished run must be ignored
    write_run(root, "tgrpo", "libero_object", 2, 0, after=0.0, before=0.0, complete=False)
    return root


def test_load_runs_reads_only_complete_runs(tree):
    df = results.load_runs(tree)
    assert len(df) == 2 * 4 * 2 * 2 + 2 * 2 * 2  # 4 algos x 2 suites + 2 ablations on goal, 2 tasks x 2 seeds
    assert set(df["ver/torch"]) == {"2.13.0"}
    assert df["alpha1_used"][df["algo"] == "step_only"].eq(1.0).all()


def test_table_one_means_and_ranks(tree):
    t1 = results.table_one(results.load_runs(tree))
    assert list(t1.index) == ["SFT", "DPO", "GRAPE-style", "GRPO-sparse", "TGRPO"]
    sr = t1["LIBERO-Object SR"]
    # object: base + mean task (0.05) + mean seed (0.01) + 0.2; SFT = 0.3 + 0.05 + 0.2
    assert sr.to_dict() == pytest.approx({"SFT": 55, "DPO": 66, "GRAPE-style": 76, "GRPO-sparse": 71, "TGRPO": 86})
    assert t1["LIBERO-Goal SR"].to_dict() == pytest.approx(
        {"SFT": 35, "DPO": 46, "GRAPE-style": 56, "GRPO-sparse": 76, "TGRPO": 66})
    assert t1["LIBERO-Object Rank"].tolist() == [5, 4, 2, 3, 1]
    assert t1["LIBERO-Goal Rank"].tolist() == [5, 4, 3, 1, 2]
    assert t1["Average SR"].to_dict() == pytest.approx({"SFT": 45, "DPO": 56, "GRAPE-style": 66, "GRPO-sparse": 73.5,
                                                         "TGRPO": 76})
    assert t1["Average Rank"].tolist() == pytest.approx([5, 4, 2.5, 2, 1.5])
    assert "LIBERO-Spatial SR" not in t1.columns  # no runs, no column (never filled from the paper)


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
    t2 = results.table_two(results.load_runs(tree))
    assert t2.attrs["suite"] == "libero_goal"  # the suite holding the ablation runs
    assert list(t2.columns) == ["Task0", "Task1", "Avg."]
    assert t2.loc["SFT"].tolist() == pytest.approx([30, 40, 35])
    assert t2.loc["TGRPO w/o trajectory-level adv."].tolist() == pytest.approx([56, 66, 61])
    assert t2.loc["TGRPO w/o step-level adv."].tolist() == pytest.approx([59, 69, 64])
    assert t2.loc["TGRPO"].tolist() == pytest.approx([61, 71, 66])


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


def test_fig5_curves_mean_and_spread(tmp_path):
    for alpha1, seed, after in ((0.1, 0, 0.2), (0.1, 1, 0.4), (0.3, 0, 0.6), (0.3, 1, 0.8)):
        write_run(tmp_path, "tgrpo", "libero_goal", 0, seed, after, before=0.1, alpha1=alpha1)
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.9, before=0.1, alpha1=0.3, group_size=2)
    write_run(tmp_path, "tgrpo", "libero_object", 0, 0, 0.0, before=0.1, alpha1=0.1)  # other suite: not in Fig. 5
    alpha, n = results.fig5_curves(results.load_runs(tmp_path))
    summ = results.curve_summary(alpha, "alpha1").set_index("alpha1")
    assert summ.loc[0.1, "mean"] == pytest.approx(30) and summ.loc[0.3, "mean"] == pytest.approx(70)
    assert summ.loc[0.1, "std"] == pytest.approx(math.sqrt(200))  # ddof=1 over seeds 20, 40
    assert summ["seeds"].tolist() == [2, 2]
    nsum = results.curve_summary(n, "group_size").set_index("group_size")
    assert nsum.loc[2, "mean"] == pytest.approx(90) and nsum.loc[4, "mean"] == pytest.approx(70)


def test_write_results_files_and_provenance(tree, tmp_path):
    paths = results.write_results("synthetic", results.load_runs(tree), out_dir=tmp_path / "res")
    for key in ("table1", "table1_paper", "table1_side_by_side", "table2", "table2_paper", "fig3", "fig5"):
        assert paths[key].exists() and paths[key].stat().st_size > 100
    t1 = pd.read_csv(paths["table1"], index_col=0)
    assert t1.at["TGRPO", "Average SR"] == pytest.approx(76)
    md = paths["table1_md"].read_text()
    assert "## Ours" in md and "## Paper" in md and "| TGRPO | 86.0 | 1.0 |" in md
    assert "seeds: [0, 1]" in md and "torch 2.13.0" in md and "episodes per task and evaluation: [10]" in md
    prov = json.loads(paths["provenance"].read_text())
    assert prov["env_steps_total"] == 40 * 1000 and prov["mixed_versions"] == []
    assert "LIBERO-Goal" in paths["table2_md"].read_text()


def test_mixed_versions_are_flagged(tmp_path):
    write_run(tmp_path, "tgrpo", "libero_goal", 0, 0, 0.5, 0.1)
    write_run(tmp_path, "tgrpo", "libero_goal", 1, 0, 0.5, 0.1, torch_version="2.5.0")
    prov = results.provenance(results.load_runs(tmp_path))
    assert prov["mixed_versions"] == ["torch"] and prov["versions"]["torch"] == ["2.13.0", "2.5.0"]
