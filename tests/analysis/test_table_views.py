"""Table I and Table II as a reader reads them (``analysis.table_views``): one table each, our cell
(rate, 95 % Wilson interval, n distinct init states, a mark for the test against TGRPO and a
footnote naming it) beside the paper's published number, every column headed by what it rests
on, and no empty or NaN cell. Worked on synthetic run directories (``run_dirs``)."""
import math

import pytest
from run_dirs import write_run

from tgrpo_lib.analysis import paper, runs_table, table_views, tables
from tgrpo_lib.analysis.stats import mcnemar_exact_counts, wilson_interval

OURS_GOAL = "LIBERO-Goal: ours (tiny_vla, cpu, 1 task; standard states)"
PAPER_GOAL = "LIBERO-Goal: paper (OpenVLA-7B + LoRA, 10 tasks; standard states)"

# One task, one seed, 10 init states, every run from one SFT checkpoint. SFT solves states 0-2,
# TGRPO 0-8, DPO 0-4. SFT vs TGRPO: 6 states gained, none lost -> exact McNemar 2 * 0.5**6 = 0.031
# (*); DPO vs TGRPO: TGRPO alone solves 5-8 -> 2 * 0.5**4 = 0.125 (†). Wilson over the 10 states:
# 3/10 -> [10.8, 60.3], 5/10 -> [23.7, 76.3], 9/10 -> [59.6, 98.2].
TABLE_ONE = """\
**Table I.** Greedy success % per suite [95 % Wilson interval] (n = distinct init states) on the standard init \
states, ours beside the paper's published rates (no intervals published).

| Method | LIBERO-Goal: ours (tiny_vla, cpu, 1 task; standard states) | LIBERO-Goal: paper (OpenVLA-7B + LoRA, 10 tasks; \
standard states) |
|---|---|---|
| SFT | 30.0 % [10.8, 60.3] (n=10) *¹ | 79.2 |
| DPO | 50.0 % [23.7, 76.3] (n=10) †¹ | 79.5 |
| GRAPE-style | not run | 83.1 |
| GRPO-sparse | not run | not in the paper |
| TGRPO | 90.0 % [59.6, 98.2] (n=10) | 81.0 |
| Octo | not in this workbook | 82.9 |

- Marks: the difference from TGRPO in the same column has two-sided p < 0.05 (*) or p ≥ 0.05 (†), not corrected \
for multiple comparisons (docs/statistics.md); ‡ no test. n counts distinct init states, never states x seeds.
- ¹ exact McNemar on the init states both sides share (one run on each side: it compares those two runs, not the \
seed-to-seed spread of either method).
- SFT: the RL runs' starting policy, evaluated before training with the same protocol and states (counted once per \
starting checkpoint and task).
- Ours ran on LIBERO-Goal only: no average over suites is shown."""


@pytest.fixture
def one_task(tmp_path):
    sft = [True] * 3 + [False] * 7
    for algo, after in (("tgrpo", [True] * 9 + [False]), ("dpo", [True] * 5 + [False] * 5)):
        write_run(tmp_path, algo, "libero_goal", 0, 0, after=sum(after) / 10, before=0.3,
                  init_checkpoint="ckpt/libero_goal-0/policy", flags={"before": sft, "after": after})
    return runs_table.table_runs(runs_table.load_runs(tmp_path))


def test_table_one_is_one_table_with_the_paper_beside_ours(one_task):
    assert mcnemar_exact_counts(0, 6)["p_value"] == 2 * 0.5**6 < 0.05 < mcnemar_exact_counts(0, 4)["p_value"]
    assert [round(100 * x, 1) for x in wilson_interval(3, 10)] == [10.8, 60.3]
    view = table_views.table_one_view(one_task)
    assert view.markdown() == TABLE_ONE
    assert list(view.frame.columns) == [("LIBERO-Goal", OURS_GOAL.split(": ", 1)[1]),
                                        ("LIBERO-Goal", PAPER_GOAL.split(": ", 1)[1])]
    assert view.marks.at["SFT", view.frame.columns[0]] == table_views.SIGNIFICANT
    assert view.tips.at["SFT", view.frame.columns[0]] == "vs TGRPO: -60.0 pts, p = 0.031 (exact McNemar, b=6, c=0)"
    assert view.tips.at["TGRPO", view.frame.columns[0]] == ""  # the reference row is not tested against itself


def test_table_one_over_suites_marks_what_has_no_test(tree):
    view = table_views.table_one_view(runs_table.table_runs(runs_table.load_runs(tree)))
    flat = view.flat()
    # two suites: the average over them beside the paper's over its 4 suites and 40 tasks
    assert list(flat.columns) == [
        "LIBERO-Object: ours (tiny_vla, cpu, 2 tasks; standard states)",
        "LIBERO-Object: paper (OpenVLA-7B + LoRA, 10 tasks; standard states)",
        "LIBERO-Goal: ours (tiny_vla, cpu, 2 tasks; standard states)",
        "LIBERO-Goal: paper (OpenVLA-7B + LoRA, 10 tasks; standard states)",
        "Average: ours (tiny_vla, cpu, 4 tasks; standard states)",
        "Average: paper (OpenVLA-7B + LoRA, 40 tasks; standard states)"]
    # TGRPO on Object: 86 % of 100 distinct states over 4 runs, Wilson(86, 100) = [77.9, 91.5]
    assert flat.iat[4, 0] == "86.0 % [77.9, 91.5] (n=100 states, 4 runs)" and flat.iat[4, 1] == "92.2"
    # no per-state tables: SFT's paired test cannot be made (‡, its footnote says why); DPO's run-level
    # permutation test needs only the runs' rates: p = 1/3 (†), the test named in footnote 2
    assert flat.at["SFT", flat.columns[0]] == "55.0 % [45.2, 64.4] (n=100 states, 4 runs) ‡¹"
    assert flat.at["DPO", flat.columns[0]] == "66.0 % [56.3, 74.5] (n=100 states, 4 runs) †²"
    assert view.footnotes[1] == "¹ no test: per-state tables missing."
    assert view.footnotes[2].startswith("² exact permutation over runs (unit = run")
    assert flat.at["Octo", flat.columns[5]] == "73.9" and flat.at["GRPO-sparse", flat.columns[5]] == "not in the paper"
    assert f"Paper: {paper.TABLE_I_NOTE}" in view.footnotes
    text = view.markdown()
    assert "nan" not in text.lower() and not (flat == "").any().any()


def test_held_out_rates_never_stand_under_a_standard_state_header(tree):
    view = table_views.table_one_view(runs_table.table_runs(runs_table.load_runs(tree)), "heldout")
    ours = [side for _, side in view.frame.columns if side.startswith("ours")]
    theirs = [side for _, side in view.frame.columns if side.startswith("paper")]
    assert ours and all(side.endswith("; heldout states)") for side in ours)
    assert theirs and all(side.endswith("; standard states)") for side in theirs)
    assert "ours on the heldout init states" in view.caption and "not the same measurement" in view.caption
    assert view.frame.at["TGRPO", ("LIBERO-Object", ours[0])].startswith("43.0 % ")  # the held-out rate


def test_a_set_no_run_evaluated_says_not_run(tree):
    view = table_views.table_one_view(runs_table.table_runs(runs_table.load_runs(tree)), "test")
    ours = [c for c in view.frame.columns if c[1].startswith("ours")]
    assert (view.frame.loc[["SFT", "DPO", "TGRPO"], ours] == "not run").all().all()
    assert "nan" not in view.markdown().lower()


def test_a_method_without_its_reference_says_why_there_is_no_test(tmp_path):
    write_run(tmp_path, "dpo", "libero_goal", 0, 0, after=0.5, before=0.3)
    view = table_views.table_one_view(runs_table.table_runs(runs_table.load_runs(tmp_path)))
    assert view.frame.iat[1, 0] == "50.0 % [23.7, 76.3] (n=10) ‡¹" and view.frame.iat[4, 0] == "not run"
    assert view.footnotes[1] == "¹ no test: TGRPO has no run in this column."


def test_no_runs_at_all_still_shows_the_paper_and_says_not_run():
    empty = runs_table.table_runs(runs_table.load_runs("/nonexistent"))
    view = table_views.table_one_view(empty)
    assert [c for c, side in view.frame.columns if side.startswith("ours")] == [
        "LIBERO-Spatial", "LIBERO-Object", "LIBERO-Goal", "LIBERO-Long", "Average"]
    assert view.frame.iat[0, 0] == "not run" and view.frame.iat[0, 1] == "84.7"
    assert "nan" not in view.markdown().lower()


def test_table_two_per_task_beside_the_paper_on_its_suite(tree, one_task):
    view = table_views.table_two_view(runs_table.table_runs(runs_table.load_runs(tree)))
    flat = view.flat()
    assert list(flat.columns) == [
        "Task0: ours (tiny_vla, cpu; standard states)", "Task0: paper (OpenVLA-7B + LoRA; standard states)",
        "Task1: ours (tiny_vla, cpu; standard states)", "Task1: paper (OpenVLA-7B + LoRA; standard states)",
        "Avg.: ours (tiny_vla, cpu, 2 tasks; standard states)",
        "Avg.: paper (OpenVLA-7B + LoRA, 10 tasks; standard states)"]
    # TGRPO Task0: 61 % of 50 states (2 runs), Wilson [47.2, 73.3]; the paper's Task0: 88, Task1: 82, Avg. 92.2
    assert flat.loc["TGRPO"].tolist() == ["61.0 % [47.2, 73.3] (n=50 states, 2 runs)", "88",
                                          "71.0 % [57.3, 81.7] (n=50 states, 2 runs)", "82",
                                          "66.0 % [56.3, 74.5] (n=100 states, 4 runs)", "92.2"]
    assert flat.at["TGRPO w/o step-level adv.", flat.columns[0]] == "59.0 % [45.2, 71.5] (n=50 states, 2 runs) †²"
    assert flat.at["TGRPO w/o trajectory-level adv.", flat.columns[5]] == "80.2"  # as published (TABLE_II_NOTE)
    assert "Paper: " + paper.TABLE_II_NOTE + "." in view.footnotes


def test_table_two_on_another_suite_keeps_only_the_papers_average(tree):
    view = table_views.table_two_view(runs_table.table_runs(runs_table.load_runs(tree)), suite="libero_object")
    sides = [f"{c}: {s}" for c, s in view.frame.columns]
    assert [s for s in sides if "paper" in s] == [
        "Avg.: paper (OpenVLA-7B + LoRA, LIBERO-Goal, 10 tasks; standard states)"]
    assert "the paper's ran LIBERO-Goal, so only its Avg. is shown" in view.caption
    assert view.frame.at["TGRPO w/o step-level adv.", ("Task0", "ours (tiny_vla, cpu; standard states)")] == "not run"


def test_the_notebook_shows_one_styled_table(one_task):
    view = table_views.table_one_view(one_task)
    html = view._repr_html_()
    assert html.count("<table") == 1 and "<b>Table I.</b>" in html and "font-weight: bold" in html
    assert "exact McNemar on the init states" in html  # the footnotes below the table
    assert "vs TGRPO: -60.0 pts, p = 0.031" in html    # a tooltip over the SFT cell
    assert repr(view) == TABLE_ONE


def test_paper_rows_map_to_ours():
    assert set(paper.TABLE_II_METHOD_TO_PAPER) == set(tables.TABLE_II_METHODS)
    assert set(paper.TABLE_II_METHOD_TO_PAPER.values()) == set(paper.TABLE_II)
    assert table_views.published(81.0) == "81.0" and table_views.published(86) == "86"
    assert table_views.superscript(12) == "¹²" and math.isnan(paper.FIG5_ALPHA1[0.5])
