"""Figures (``analysis.figures``): every figure is one PNG wherever IPython shows it and stays out of pyplot's
registry (so no backend draws it a second time); the advantage explorer shows its figure once,
as an image, and its slider redraws that image in place."""
import base64
import types

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from IPython.core.formatters import DisplayFormatter
from matplotlib.container import BarContainer

from tgrpo_lib.analysis import figures, runs_table, tables
from tgrpo_lib.analysis.stats import wilson_interval

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _program(batch):
    """A stand-in reward program: reward, stage and components of one trajectory of 6 steps."""
    t = np.arange(6, dtype=float)[None]
    stage = np.minimum(t // 2, 2).astype(int)
    return types.SimpleNamespace(reward=t / 5, stage=stage, raw_stage=stage, components={"f1": t / 10, "f2": t / 20})


class _Program:
    """A stand-in reward program with the attributes the comparison scales by."""
    n_stages, max_reward = 2, 1.0

    def __call__(self, batch):
        return _program(batch)


def every_figure():
    rewards = np.linspace(-1.0, 1.0, 24).reshape(4, 6)
    metrics = pd.DataFrame({"step": [0, 1, 2], "charts/group_success_rate": [0.0, 0.5, 1.0],
                            "eval/success_standard": [np.nan, np.nan, 0.5]})
    no_runs = pd.DataFrame()
    inspector, _ = figures.reward_inspector(_program, {"eef_pos": np.zeros((6, 3))}, np.zeros((6, 8, 8, 3), np.uint8))
    comparison, outs = figures.reward_comparison({"offline": _Program(), "llm": _Program()}, {"eef_pos": np.zeros((6, 3))},
                                                 np.zeros((5, 8, 8, 3), np.uint8), title="task")
    assert set(outs) == {"offline", "llm"} and len(comparison.axes) == 2 + 6  # stage, reward; six frames
    return {"training_curves": figures.training_curves(metrics), "advantage_panels": figures.advantage_panels(rewards, 0.3),
            "reward_inspector": inspector, "reward_comparison": comparison,
            "figure_three": figures.figure_three(tables.table_one_paper()),
            "figure_sweep": figures.figure_sweep(no_runs, "alpha1"), "figure_five": figures.figure_five(no_runs, no_runs)}


def test_every_figure_displays_as_one_png_outside_pyplot():
    plt.close("all")
    for name, fig in every_figure().items():
        assert isinstance(fig, figures.NotebookFigure), name
        data, _ = DisplayFormatter().format(fig)  # what IPython sends for the value of a cell / display(fig)
        assert data["image/png"].startswith(PNG_MAGIC) and len(data["image/png"]) > 1000, name
    assert plt.get_fignums() == []  # none is pyplot's: the inline backend never draws a second copy


CELLS = ["""import numpy as np, pathlib
from tgrpo_lib.analysis import figures
run = pathlib.Path({run_dir!r})
(run / "groups").mkdir(parents=True)
np.savez(run / "groups" / "iter_000001.npz", rewards=np.linspace(0, 1, 24).reshape(4, 6))""",
         "slider = figures.advantage_explorer(run, alpha1=0.3)",
         "slider.value = 0.9"]


def test_advantage_explorer_shows_one_figure_and_redraws_it_in_place(tmp_path):
    """In a real kernel: the explorer's cell carries the slider and exactly one image; moving the
    slider replaces that image (a display update), it adds none."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.format(run_dir=str(tmp_path / "run")))
                                         for c in CELLS])
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120)

    def images(cell):
        return [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]

    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        client.execute_cell(nb.cells[1], 1)
        before = images(nb.cells[1])
        client.execute_cell(nb.cells[2], 2)
        after = images(nb.cells[1])
    kinds = [next(iter(k for k in o.get("data", {}) if k != "text/plain"), o.output_type) for o in nb.cells[1].outputs]
    assert kinds == ["application/vnd.jupyter.widget-view+json", "image/png"]  # slider, then the one figure
    assert len(before) == len(after) == 1 and after != before  # redrawn for alpha1 = 0.9, in place
    assert base64.b64decode(after[0]).startswith(PNG_MAGIC)
    assert nb.cells[2].outputs == []
    widget_images = [o for state in client.widget_state.values() for o in state.get("outputs", [])
                     if "image/png" in o.get("data", {})]
    assert widget_images == []  # no second copy inside a widget's output area


def test_training_curves_draw_wilson_intervals_on_evaluation_points():
    from matplotlib.container import ErrorbarContainer

    from tgrpo_lib.analysis.stats import wilson_interval

    metrics = pd.DataFrame({"step": [-1, 0, 9, 10], "charts/group_success_rate": [np.nan, 0.5, 0.75, np.nan],
                            "eval/success_standard": [0.74, np.nan, 0.9, 0.92], "eval/n_standard": [50, np.nan, 10, 50],
                            "eval/success_heldout": [0.66, np.nan, np.nan, 1.0], "eval/n_heldout": [50, np.nan, np.nan, 50]})
    ax = figures.training_curves(metrics).axes[-1]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in bars] == ["standard", "held-out"]
    segments = bars[0].lines[2][0].get_segments()  # one vertical segment per point: [(x, low), (x, high)]
    lows, highs = zip(*[(seg[0][1], seg[1][1]) for seg in segments])
    for (k, n), low, high in zip(((37, 50), (9, 10), (46, 50)), lows, highs):
        assert (low, high) == pytest.approx(wilson_interval(k, n))
    held = bars[1].lines[2][0].get_segments()
    assert held[1][0][1] == pytest.approx(wilson_interval(50, 50)[0]) and held[1][1][1] == pytest.approx(1.0)
    # a run logged before n was: the points stand without an interval
    low, high = figures.eval_intervals([0.5, 0.7], [np.nan, 10])
    assert low[0] == high[0] == 0.5 and (low[1], high[1]) == pytest.approx(wilson_interval(7, 10))


def test_figure_three_error_bars_are_the_wilson_bounds(tree):
    t1 = tables.table_one(runs_table.load_runs(tree))
    fig = figures.figure_three(t1, "2 tasks per suite, tiny_vla, cpu")
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
