"""Table I and Table II as a reader reads them: one table each, methods x suites (Table I) or
methods x tasks (Table II), our cell beside the paper's published number.

Each of our cells is the success % over the cell's runs and init states with its 95 % Wilson
interval and n (distinct init states: ``cells.cell_stats``), then a mark: ``*`` the difference
from TGRPO in the same column has two-sided p < 0.05, ``†`` it has not, ``‡`` no test could be
made; and a footnote number naming the test (``stats``: exact McNemar, sign-flip over init states,
permutation over runs) or why there is none. The paper's column beside it is headed by its own
scale (OpenVLA-7B, 10 tasks per suite) and init states, ours by ours (model, device, tasks, init
states), so a held-out or test rate of ours never stands under a header of the paper's
standard-state rates. No cell is empty: one that has no number says why ("not run", "not in the
paper").

    view = table_one_view(tab_df, "standard")    # a TableView: shown as a pandas Styler in a notebook
    print(view.markdown())                      # the same table in Markdown (results.md)
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

from tgrpo_lib.analysis import cells, paper
from tgrpo_lib.analysis.cells import NOT_RUN, NOT_SIGNIFICANT, REFERENCE_METHOD, SIGNIFICANCE
from tgrpo_lib.analysis.paper import SUITE_LABELS
from tgrpo_lib.analysis.runs_table import ours_setup
from tgrpo_lib.analysis.stats import MCNEMAR_TEST, RUN_PERMUTATION_TEST, SIGN_FLIP_TEST
from tgrpo_lib.analysis.tables import TABLE_I_METHODS, TABLE_II_METHODS, table_one_cells, table_two_cells, to_markdown

SIGNIFICANT, NO_TEST = "*", "‡"
"""Marks of our cells (``NOT_SIGNIFICANT``, †, is the third): p < SIGNIFICANCE against the reference
row in the same column; no test possible (its footnote says why)."""
TEST_NOTES = {
    MCNEMAR_TEST: "exact McNemar on the init states both sides share (one run on each side: it compares those "
                  "two runs, not the seed-to-seed spread of either method)",
    SIGN_FLIP_TEST: "exact sign-flip permutation over init states (unit = init state): the starting policy against "
                    f"each {REFERENCE_METHOD} run trained from it, on the same states",
    RUN_PERMUTATION_TEST: "exact permutation over runs (unit = run; 2 runs per arm allow no p below 1/3, 3 none "
                          "below 0.1)",
}
"""Footnote naming each test ``cells.cell_stats`` uses (docs/statistics.md)."""
OURS, PAPER = "ours", "paper"
NOT_IN_PAPER = "not in the paper"
NOT_HERE = "not in this workbook"
PAPER_ONLY = ("Octo",)
"""Table I rows of the paper with no counterpart here."""
SFT_NOTE = ("SFT: the RL runs' starting policy, evaluated before training with the same protocol and states "
            "(counted once per starting checkpoint and task).")


@dataclass
class TableView:
    """One table of strings (index: method; columns: (column label, "ours (...)" | "paper (...)")),
    its one-line caption and its footnotes; ``cells`` the ``cells.cell_stats`` it was built from."""

    title: str
    caption: str
    frame: pd.DataFrame
    marks: pd.DataFrame  # same shape: the significance mark of each of our cells ("" where none)
    tips: pd.DataFrame  # same shape: our cell's difference from the reference, its interval and test (one line)
    footnotes: list[str] = field(default_factory=list)
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)

    def flat(self) -> pd.DataFrame:
        """``frame`` with one header row: ``"<column>: <ours | paper (scale)>"``."""
        out = self.frame.copy()
        out.columns = [f"{col}: {side}" for col, side in self.frame.columns]
        return out

    def markdown(self) -> str:
        """Caption, the table (GitHub Markdown) and its footnotes as a list."""
        return "\n".join([f"**{self.title}.** {self.caption}", "", to_markdown(self.flat()), "",
                          *(f"- {note}" for note in self.footnotes)])

    def styler(self):
        """The table as a pandas Styler: caption on top, the paper's columns greyed, our significant
        cells in bold, and over each of our cells a tooltip with its difference from the reference
        row (pts, 95 % interval, p and test)."""
        bold = self.marks.map(lambda m: "font-weight: bold" if m == SIGNIFICANT else "")
        grey = pd.DataFrame([["color: #555; background-color: #f5f5f5" if side.startswith(PAPER) else ""
                              for _, side in self.frame.columns]] * len(self.frame),
                            index=self.frame.index, columns=self.frame.columns)
        return (self.frame.style
                .set_caption(f"<b>{html.escape(self.title)}.</b> {html.escape(self.caption)}")
                .apply(lambda _: bold, axis=None)
                .set_tooltips(self.tips, props="visibility: hidden; position: absolute; z-index: 1; padding: 0.3em; "
                                               "background-color: #333; color: white; font-size: 0.85em;")
                .apply(lambda _: grey, axis=None)
                .set_table_styles([{"selector": "caption", "props": "caption-side: top; text-align: left;"},
                                   {"selector": "th.col_heading", "props": "text-align: center;"},
                                   {"selector": "th.row_heading", "props": "text-align: left; white-space: nowrap;"},
                                   {"selector": "td", "props": "text-align: left; white-space: nowrap;"}]))

    def _repr_html_(self) -> str:
        notes = "".join(f"<div>{html.escape(n)}</div>" for n in self.footnotes)
        return self.styler().to_html() + f'<div style="font-size: 0.85em; margin-top: 0.4em">{notes}</div>'

    def __repr__(self) -> str:
        return self.markdown()


# ------------------------------------------------------------------ one cell
def ours_text(cell: dict | None) -> str:
    """``86.0 % [77.9, 91.5] (n=100 states, 4 runs)`` for a ``cell_stats`` row (rates in %);
    ``not run`` for no cell or a cell whose runs never evaluated the set."""
    if cell is None or not cell["runs"]:
        return NOT_RUN
    if cell["n"] != cell["n"]:
        return f"{cell['sr']:.1f} % (n unknown)"
    fractions = {k: cell[k] / 100 for k in ("rate", "ci_low", "ci_high")}
    return cells.rate_text({**fractions, "n": cell["n"], "runs": cell["runs"]})


def significance(cell: dict | None, reference: str = REFERENCE_METHOD) -> tuple[str, str | None]:
    """(mark, footnote) of one of our cells against the reference row: ``*`` / ``†`` with the test's
    note, ``‡`` with the reason no test was made; ("", None) for the reference row and empty cells."""
    if cell is None or not cell["runs"] or str(cell["method"]) == reference:
        return "", None
    test = cell["test"] if isinstance(cell["test"], str) else ""
    if cell["p_value"] == cell["p_value"]:  # a p-value: a test was made
        return (SIGNIFICANT if cell["p_value"] < SIGNIFICANCE else NOT_SIGNIFICANT), TEST_NOTES.get(test, test)
    if test in ("", NOT_RUN):
        return NO_TEST, f"no test: {reference} has no run in this column"
    reason = test.removeprefix("n/a (").removesuffix(")")
    return NO_TEST, f"no test: {reason}"


def published(value: float | int) -> str:
    """A number of the paper as it prints it: ``81.0`` (Table I), ``86`` (Table II's per-task rates)."""
    return str(value) if isinstance(value, int) else f"{value:.1f}"


# ------------------------------------------------------------------ the table
def superscript(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _view(cells_df: pd.DataFrame, methods, columns: list[tuple[str, str, str]], paper_of, title: str,
          caption: str, notes: list[str], paper_only=()) -> TableView:
    """``columns``: (column label, our header, the paper's header or "" for none); ``paper_of(method,
    column)``: the paper's number or None; ``paper_only``: rows the paper has and we do not run."""
    lookup = {(str(r["method"]), r["column"]): r for r in cells_df.to_dict("records")}
    index = pd.Index([*map(str, methods), *paper_only], name="Method")
    heads = [(col, side) for col, ours, theirs in columns for side in (ours, theirs) if side]
    frame = pd.DataFrame("", index=index, columns=pd.MultiIndex.from_tuples(heads))
    marks, tips = frame.copy(), frame.copy()
    tests: list[str] = []  # footnotes in order of first use
    for m in index:
        for col, ours, theirs in columns:
            cell = lookup.get((m, col))
            mark, note = significance(cell)
            if note and note not in tests:
                tests.append(note)
            text = NOT_HERE if m in paper_only else ours_text(cell)
            frame.at[m, (col, ours)] = f"{text} {mark}{superscript(tests.index(note) + 1)}" if note else text
            marks.at[m, (col, ours)] = mark
            tips.at[m, (col, ours)] = f"vs {REFERENCE_METHOD}: {cell['versus']}" if mark and cell["versus"] else ""
            if theirs:
                value = paper_of(m, col)
                frame.at[m, (col, theirs)] = NOT_IN_PAPER if value is None or value != value else published(value)
    footnotes = [f"Marks: the difference from {REFERENCE_METHOD} in the same column has two-sided p < {SIGNIFICANCE} "
                 f"({SIGNIFICANT}) or p ≥ {SIGNIFICANCE} ({NOT_SIGNIFICANT}), not corrected for multiple comparisons "
                 f"(docs/statistics.md); {NO_TEST} no test. n counts distinct init states, never states x seeds."]
    footnotes += [f"{superscript(i + 1)} {note}." for i, note in enumerate(tests)]
    return TableView(title, caption, frame, marks, tips, footnotes + notes, cells_df)


def _heads(setup: str, tasks: int, init_set: str, paper_tasks: int | None, paper_what: str = "") -> tuple[str, str]:
    """Our and the paper's column header: what each number rests on."""
    n = f", {tasks} task{'s' * (tasks != 1)}" if tasks else ""
    ours = f"{OURS} ({setup}{n}; {init_set} states)"
    theirs = f"{PAPER} ({paper.MODEL}{paper_what}, {paper_tasks} tasks; standard states)" if paper_tasks else ""
    return ours, theirs


def _measure(init_set: str, per: str) -> str:
    """The caption's account of what a number is."""
    what = f"greedy success % per {per} [95 % Wilson interval] (n = distinct init states)"
    if init_set == "standard":
        return f"{what} on the standard init states, ours beside the paper's published rates (no intervals published)"
    return (f"{what}, ours on the {init_set} init states beside the paper's published rates on its standard ones "
            "(not the same measurement; no intervals published)")


def table_one_view(runs_df: pd.DataFrame, init_set: str = "standard",
                   cells_df: pd.DataFrame | None = None) -> TableView:
    """Table I: per suite (and the average over suites, when ours has more than one) our cell beside
    the paper's rate; rows SFT, our methods, then the paper's Octo. ``runs_df``: the runs the table
    rests on (``runs_table.table_runs``); ``cells_df``: its ``tables.table_one_cells`` when computed
    already."""
    cells_df = table_one_cells(runs_df, init_set) if cells_df is None else cells_df
    ran = [s for s in paper.SUITES if s in set(cells_df["suite"])]
    setup = ours_setup(runs_df)
    per_suite = runs_df.groupby("suite")["task_id"].nunique() if len(runs_df) else pd.Series(dtype=int)
    columns = [(SUITE_LABELS[s], *_heads(setup, int(per_suite.get(s, 0)), init_set, paper.TASKS_PER_SUITE))
               for s in (ran or paper.SUITES)]
    if len(ran) != 1:
        tasks = int(sum(per_suite.get(s, 0) for s in ran))
        columns.append(("Average", *_heads(setup, tasks, init_set, paper.TASKS_PER_SUITE * len(paper.SUITES))))
    by_label = {label: s for s, label in SUITE_LABELS.items()}

    def paper_of(method, column):
        row = paper.TABLE_I.get(paper.METHOD_TO_PAPER.get(method, method) or "")
        return None if row is None else row["average" if column == "Average" else by_label[column]][0]

    notes = [SFT_NOTE] + ([f"Ours ran on {SUITE_LABELS[ran[0]]} only: no average over suites is shown."]
                          if len(ran) == 1 else [f"Paper: {paper.TABLE_I_NOTE}"])
    caption = "G" + _measure(init_set, "suite")[1:] + "."
    return _view(cells_df, TABLE_I_METHODS, columns, paper_of, "Table I", caption, notes, paper_only=PAPER_ONLY)


def table_two_view(runs_df: pd.DataFrame, init_set: str = "standard", cells_df: pd.DataFrame | None = None,
                   suite: str | None = None) -> TableView:
    """Table II: the advantage ablation per task of one suite (``tables.table_two_cells``: None picks
    the suite with the most ablation runs) and over its tasks (Avg.), our cell beside the paper's.
    The paper's per-task numbers sit beside ours only when ours ran its suite (LIBERO-Goal, by its
    caption); otherwise only its Avg., headed by its suite."""
    cells_df = table_two_cells(runs_df, suite, init_set) if cells_df is None else cells_df
    suite = cells_df.attrs["suite"]
    same = suite == paper.TABLE_II_SUITE
    ablation = runs_df[runs_df["suite"] == suite] if len(runs_df) else runs_df
    setup = ours_setup(ablation)
    tasks = sorted(int(t) for t in set(cells_df["task_id"]) if t != "Avg.")
    columns = [(f"Task{t}", *_heads(setup, 0, init_set, None)) for t in tasks]
    if same:
        columns = [(col, ours, f"{PAPER} ({paper.MODEL}; standard states)") for col, ours, _ in columns]
    where = "" if same else f", {SUITE_LABELS[paper.TABLE_II_SUITE]}"
    columns.append(("Avg.", *_heads(setup, len(tasks), init_set, paper.TASKS_PER_SUITE, where)))

    def paper_of(method, column):
        row = paper.TABLE_II.get(paper.TABLE_II_METHOD_TO_PAPER.get(method, ""))
        if row is None:
            return None
        return row[1] if column == "Avg." else row[0][int(column.removeprefix("Task"))]

    label = SUITE_LABELS.get(suite, suite)
    elsewhere = f"; the paper's ran {SUITE_LABELS[paper.TABLE_II_SUITE]}, so only its Avg. is shown"
    caption = f"Advantage ablation on {label}: {_measure(init_set, 'task')}{'' if same else elsewhere}."
    notes = [SFT_NOTE, f"Paper: {paper.TABLE_II_NOTE}."]
    return _view(cells_df, TABLE_II_METHODS, columns, paper_of, "Table II", caption, notes)


__all__ = ["NOT_HERE", "NOT_IN_PAPER", "NO_TEST", "PAPER_ONLY", "SFT_NOTE", "SIGNIFICANT", "TEST_NOTES", "TableView",
           "ours_text", "published", "significance", "superscript", "table_one_view", "table_two_view"]
