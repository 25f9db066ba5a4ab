"""Every figure of the workbook, in one home (matplotlib; ipywidgets for live / interactive views):
training curves, advantage panels (Eq. 2-4), the reward inspector, Fig. 3 (success per suite),
Fig. 5 (success against alpha1 and N) and the robustness bars.

Every figure is a ``NotebookFigure``: outside pyplot's registry, and shown by IPython as one PNG
wherever it is displayed (the value of a cell, ``display(fig)``, a display update) in JupyterLab,
papermill and nbconvert alike, whatever the matplotlib backend. A bare ``matplotlib.figure.Figure``
shows as the text ``<Figure size 1200x400 with 2 Axes>`` unless ``%matplotlib inline`` has
registered a PNG formatter, and a pyplot figure is drawn a second time by the inline backend at the
end of the cell when it was displayed already.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from tgrpo_lib.algorithm.advantages import fused_advantages, step_advantages, trajectory_advantages
from tgrpo_lib.analysis import cells, paper
from tgrpo_lib.analysis.cells import REFERENCE_METHOD, SIGNIFICANCE
from tgrpo_lib.analysis.curves import curve_summary, seed_points
from tgrpo_lib.analysis.paper import SUITE_LABELS
from tgrpo_lib.analysis.stats import wilson_interval
from tgrpo_lib.analysis.tables import CELL_FIELDS, table_one_paper
from tgrpo_lib.infra.config import alpha2_for


class NotebookFigure(Figure):
    """A matplotlib Figure that IPython displays as a PNG (``_repr_png_``), shown only where the
    notebook displays it: never by a backend at the end of a cell, so never twice."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def training_curves(metrics: pd.DataFrame, keys=("charts/group_success_rate", "charts/return_mean",
                                                  "losses/kl_mean", "losses/clip_fraction"), title: str = ""):
    """One panel per metric key over iterations; evaluation points as markers."""
    m = metrics[metrics["step"] >= 0] if "step" in metrics else metrics
    fig = NotebookFigure(figsize=(3.2 * (len(keys) + 1), 2.8))
    axes = fig.subplots(1, len(keys) + 1)
    for ax, key in zip(axes, keys):
        if key in m:
            ax.plot(m["step"], m[key], lw=1.5)
        ax.set_title(key.split("/")[-1], fontsize=9)
        ax.set_xlabel("iteration")
    ax = axes[-1]
    for which, style, label in (("standard", "o-", "standard"), ("heldout", "s--", "held-out")):
        if f"eval/success_{which}" not in metrics:
            continue
        ev = metrics.dropna(subset=[f"eval/success_{which}"])
        n = ev[f"eval/n_{which}"] if f"eval/n_{which}" in ev else pd.Series(np.nan, index=ev.index)
        low, high = eval_intervals(ev[f"eval/success_{which}"], n)
        rate = ev[f"eval/success_{which}"].to_numpy(dtype=float)
        ax.errorbar(ev["step"], rate, yerr=[rate - low, high - rate], fmt=style, capsize=2, label=label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title("eval success (greedy, 95 % Wilson)", fontsize=9)
    ax.set_ylim(-0.05, 1.05)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def eval_intervals(rates, ns) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson interval of each evaluation point (rate of n episodes); a point without its n
    (runs logged before n was) gets no interval: low = high = rate."""
    rates, ns = np.asarray(rates, dtype=float), np.asarray(ns, dtype=float)
    low, high = rates.copy(), rates.copy()
    for i, (r, n) in enumerate(zip(rates, ns)):
        if n == n and n > 0:
            low[i], high[i] = wilson_interval(int(round(r * n)), int(n))
    return low, high


class LiveCurves:
    """Redraws ``training_curves`` after every iteration inside an ipywidgets Output (JupyterLab);
    outside a live kernel it only collects the rows."""

    def __init__(self, title: str = ""):
        self.rows: list[dict] = []
        self.title = title
        try:
            import ipywidgets as widgets
            from IPython.display import display

            self.out = widgets.Output()
            display(self.out)
        except Exception:  # no widget front-end: static plots only
            self.out = None

    def update(self, it: int, metrics: dict) -> None:
        from IPython.display import display

        self.rows.append({"step": it, **metrics})
        if self.out is None:
            return
        with self.out:
            self.out.clear_output(wait=True)
            display(training_curves(pd.DataFrame(self.rows), title=self.title))


def advantage_panels(rewards: np.ndarray, alpha1: float, ax_row=None):
    """Heatmaps of step-level (Eq. 2), trajectory-level (Eq. 3) and fused (Eq. 4) advantages."""
    r = torch.as_tensor(rewards, dtype=torch.float64)
    a_step = step_advantages(r).numpy()
    a_traj = np.broadcast_to(trajectory_advantages(r).numpy()[:, None], r.shape)
    fused = fused_advantages(r, alpha1, alpha2_for(alpha1)).numpy()
    if ax_row is None:
        fig = NotebookFigure(figsize=(14, 2.6))
        ax_row = fig.subplots(1, 4)
    else:
        fig = ax_row[0].figure
    panels = [(rewards, "step rewards R_{i,t}", "viridis"), (a_step, "A_{i,t} (Eq. 2)", "coolwarm"),
              (a_traj, "A_i (Eq. 3)", "coolwarm"), (fused, f"fused, alpha1={alpha1:.2f} (Eq. 4)", "coolwarm")]
    for ax, (data, title, cmap) in zip(ax_row, panels):
        lim = np.abs(data).max() or 1.0
        kw = {} if cmap == "viridis" else {"vmin": -lim, "vmax": lim}
        im = ax.imshow(data, aspect="auto", cmap=cmap, interpolation="nearest", **kw)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step t")
        ax.set_ylabel("trajectory i")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def advantage_explorer(run_dir: str | Path, alpha1: float = 0.3, iteration: int | None = None):
    """``advantage_panels`` of one recorded group (the last unless ``iteration``) under a slider
    over alpha1. The figure is displayed once, as an image output, and the slider redraws that
    same output in place: in JupyterLab it follows the slider, under papermill the figure for
    ``alpha1`` stays in the cell. Returns the slider (None without ipywidgets: the figure only)."""
    from IPython.display import display

    groups = sorted(Path(run_dir, "groups").glob("iter_*.npz"))
    if not groups:
        raise FileNotFoundError(f"no recorded groups in {run_dir}/groups: run train() first.")
    path = groups[-1] if iteration is None else Path(run_dir, "groups", f"iter_{iteration:06d}.npz")
    rewards = np.load(path)["rewards"]
    try:
        import ipywidgets as widgets
    except ImportError:
        display(advantage_panels(rewards, alpha1))
        return None
    slider = widgets.FloatSlider(value=alpha1, min=0.0, max=1.0, step=0.05, description="alpha1",
                                 continuous_update=False)
    display(slider)
    shown = display(advantage_panels(rewards, alpha1), display_id=True)
    slider.observe(lambda change: shown.update(advantage_panels(rewards, change["new"])), names="value")
    return slider


def reward_inspector(program, states: dict, frames: np.ndarray | None = None, n_frames: int = 6, title: str = ""):
    """Reward, stage and Eq. 1 components along one trajectory, next to frames from it."""
    out = program({k: np.asarray(v)[None] for k, v in states.items()})
    t = np.arange(out.reward.shape[-1])
    rows = 2 if frames is not None else 1
    fig = NotebookFigure(figsize=(13, 3.2 * rows))
    ax = fig.add_subplot(rows, 2, 1)
    ax.plot(t, out.reward[0], label="reward R_t")
    for k in ("f1", "f2"):
        if k in out.components:
            ax.plot(t, out.components[k][0], "--", lw=1, label=k)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    ax.set_title(f"{title} reward (Eq. 1)", fontsize=9)
    ax = fig.add_subplot(rows, 2, 2)
    ax.step(t, out.stage[0], where="post", label="stage (monotone)")
    ax.step(t, out.raw_stage[0], where="post", alpha=0.5, label="raw stage")
    names = list(getattr(program, "stage_names", ()))
    if names:
        ax.set_yticks(range(len(names) + 1))
        ax.set_yticklabels(["start"] + names, fontsize=7)
    ax.legend(fontsize=8)
    ax.set_title("stage", fontsize=9)
    if frames is not None:
        idx = np.linspace(0, len(frames) - 1, n_frames).astype(int)
        for j, k in enumerate(idx):
            a = fig.add_subplot(rows, n_frames, n_frames + j + 1)
            a.imshow(frames[k])
            a.set_title(f"t={k}  stage {out.stage[0, min(k + 1, out.stage.shape[1] - 1)]}", fontsize=8)
            a.axis("off")
    fig.tight_layout()
    return fig, out


def reward_comparison(programs: dict, states: dict, frames: np.ndarray, n_frames: int = 6, title: str = ""):
    """Reward programs (name -> program) along the same trajectory: stage as a fraction of each
    program's own stage count and reward as a fraction of its maximum, over frames of it titled
    with each program's stage; returns (figure, name -> the program's output)."""
    batch = {k: np.asarray(v)[None] for k, v in states.items()}  # (1, T+1, ...)
    outs = {name: program(batch) for name, program in programs.items()}
    fig = NotebookFigure(figsize=(13, 6.4))
    for j, (what, scale) in enumerate((("stage", "n_stages"), ("reward", "max_reward"))):
        ax = fig.add_subplot(2, 2, j + 1)
        for name, out in outs.items():
            ax.step(np.arange(out.stage.shape[1]), getattr(out, what)[0] / getattr(programs[name], scale),
                    where="post", label=f"{name} ({programs[name].n_stages} stages)")
        ax.set_title(f"{title}: {what} / {scale}", fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    for j, k in enumerate(np.linspace(0, len(frames) - 1, n_frames).astype(int)):
        ax = fig.add_subplot(2, n_frames, n_frames + j + 1)
        ax.imshow(frames[k])
        stages = "  ".join(f"{name[:3]} {int(out.stage[0, min(k + 1, out.stage.shape[1] - 1)])}"
                           for name, out in outs.items())
        ax.set_title(f"t={k}  {stages}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig, outs


# ----------------------------------------------------------------------- Fig. 3
def figure_three(ours: pd.DataFrame, ours_label: str = "this workbook", init_set: str = "standard") -> NotebookFigure:
    """Fig. 3: success % per suite, one bar per method; ours and the paper's in separate panels,
    each titled with its scale and init states (``ours_label``: ``ours_scale``).

    Ours (a ``table_one``): bars at each cell's rate over its runs and init states with its 95 %
    Wilson interval as error bars, hatched where a difference from TGRPO is not shown (p >=
    SIGNIFICANCE, or no test). The paper states no intervals, so its bars have none."""
    fig = NotebookFigure(figsize=(12, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    ours_title = (f"Ours ({ours_label}; {init_set} init states)\nbars: success % over runs and init states; 95 % Wilson "
                  f"interval over distinct states;\nhatched: not significantly different from {REFERENCE_METHOD} "
                  f"(p >= {SIGNIFICANCE} or no test)")
    paper_title = f"Paper ({paper.SCALE};\nstandard init states; no intervals published)"
    panels = ((axes[0], ours, ours_title), (axes[1], table_one_paper(), paper_title))
    for ax, table, title in panels:
        labels = [c[:-3] for c in table.columns if c.endswith(" SR")]
        with_ci = all(f"{lab} {CELL_FIELDS[f]}" in table.columns for lab in labels
                      for f in ("rate", "ci_low", "ci_high", "p_value"))
        x = np.arange(len(labels))
        width = 0.8 / max(len(table), 1)
        for i, method in enumerate(table.index):
            field = (lambda f: [table.at[method, f"{lab} {CELL_FIELDS[f]}"] for lab in labels])
            if with_ci:
                heights = np.array(field("rate"), dtype=float)
                yerr = _yerr(heights, field("ci_low"), field("ci_high"))
            else:
                heights, yerr = np.array([table.at[method, f"{lab} SR"] for lab in labels], dtype=float), None
            bars = ax.bar(x + i * width - 0.4 + width / 2, heights, width, yerr=yerr, capsize=2,
                          error_kw={"elinewidth": 0.8}, label=str(method))
            if with_ci and str(method) != REFERENCE_METHOD:
                for patch, p in zip(bars.patches, field("p_value")):
                    if not p < SIGNIFICANCE:
                        patch.set_hatch("///")
        ax.set_xticks(x, labels, rotation=15)
        ax.set_title(title, fontsize=9)
        handles, _ = ax.get_legend_handles_labels()
        if with_ci:
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                                 label=f"p >= {SIGNIFICANCE} vs {REFERENCE_METHOD}, or no test"))
        ax.legend(handles=handles, fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    if not np.isfinite(ours[[c for c in ours.columns if c.endswith(" SR")]].to_numpy(dtype=float)).any():
        axes[0].text(0.5, 0.5, cells.NOT_RUN if len(ours.columns) else "no runs", ha="center", transform=axes[0].transAxes)
    axes[0].set_ylabel("success rate (%)")
    axes[0].set_ylim(0, 100)
    return fig


def _yerr(centre, low, high) -> np.ndarray:
    """matplotlib's asymmetric yerr (2, n): distances from ``centre`` down to ``low`` and up to ``high``."""
    centre, low, high = (np.asarray(v, dtype=float) for v in (centre, low, high))
    return np.nan_to_num(np.clip(np.stack([centre - low, high - centre]), 0, None))


# ----------------------------------------------------------------------- Fig. 5
FIG5_AXES = {"alpha1": (paper.FIG5_ALPHA1, "alpha1 (alpha2 = 1 - alpha1)"), "group_size": (paper.FIG5_GROUP_SIZE, "group size N")}


def _sweep_panels(ax, pax, axis: str, curve: pd.DataFrame, ours_label: str) -> None:
    """Ours on ``ax``: one grey dot per seed, and per axis value the rate over its runs and states
    with its 95 % Wilson interval; a star marks the best point, hollow circles the points not shown
    below it (``curve_summary``); each tick says the env steps per run its runs took (the points
    compare at equal iterations). The paper's stated points on ``pax``."""
    stated, xlabel = FIG5_AXES[axis]
    if len(curve):
        summ = curve_summary(curve, axis)
        x, y = summ[axis].astype(float).to_numpy(), summ["rate"].to_numpy(dtype=float)
        dots = seed_points(curve, axis)
        ax.scatter(dots[axis].astype(float), dots["success"], s=18, alpha=0.5, color="gray",
                   label="one seed (mean over its tasks)")
        ax.errorbar(x, y, yerr=_yerr(y, summ["ci_low"], summ["ci_high"]), fmt="-", color="tab:blue", capsize=4,
                    label="over runs and init states, 95 % Wilson interval")
        marks = ((summ["best"], dict(marker="*", ms=13, color="tab:blue"), "best (highest rate)"),
                 (summ["not_sig_vs_best"], dict(marker="o", mfc="white", color="tab:blue"),
                  f"not shown below best (p >= {SIGNIFICANCE} or no test)"),
                 (~summ["best"] & ~summ["not_sig_vs_best"] & summ["rate"].notna(), dict(marker="o", color="tab:blue"),
                  f"below best (p < {SIGNIFICANCE})"))
        for mask, style, label in marks:
            if mask.any():
                ax.plot(x[mask.to_numpy()], y[mask.to_numpy()], ls="none", label=label, **style)
        steps = ["" if s != s else f"\n{s / 1000:.1f}k steps" for s in summ["env_steps"]]
        ax.set_xticks(x, [f"{v:g}{st}" for v, st in zip(x, steps)], fontsize=7)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no runs", ha="center", transform=ax.transAxes)
    ax.set_title(f"Ours ({ours_label})", fontsize=9)
    ax.set_xlabel(f"{xlabel}; env steps per run below (equal iterations, not equal env steps)", fontsize=8)
    xs = np.array(list(stated), dtype=float)
    ys = np.array(list(stated.values()), dtype=float)
    pax.plot(xs[~np.isnan(ys)], ys[~np.isnan(ys)], "s", color="tab:red", label="stated in the paper's text (no interval)")
    for x in xs[np.isnan(ys)]:
        pax.axvline(x, color="lightgray", ls=":", lw=1)
    pax.set_xticks(xs)
    pax.set_title(f"Paper ({SUITE_LABELS[paper.FIG5_SUITE]}, {paper.TASKS_PER_SUITE} tasks, {paper.MODEL})\n"
                  "dotted: value not stated", fontsize=9)
    pax.legend(fontsize=8)
    pax.set_xlabel(xlabel)
    for a in (ax, pax):
        a.set_ylabel("success rate (%)")


def figure_sweep(curve: pd.DataFrame, axis: str, ours_label: str = "this workbook") -> NotebookFigure:
    """One Fig. 5 panel pair: success % vs ``axis`` (alpha1 or group_size), ours beside the paper's."""
    if axis not in FIG5_AXES:
        raise ValueError(f"axis={axis!r}: pass one of {list(FIG5_AXES)}.")
    fig = NotebookFigure(figsize=(10, 3.8), layout="constrained")
    ax, pax = fig.subplots(1, 2)
    _sweep_panels(ax, pax, axis, curve, ours_label)
    return fig


def figure_five(alpha_curve: pd.DataFrame, n_curve: pd.DataFrame, ours_label: str = "this workbook") -> NotebookFigure:
    """Fig. 5: success % vs alpha1 and vs group size N. Top: ours (seed points; rate over runs and states with 95 %
    Wilson error bars; best point starred, points not significantly below it hollow); bottom: the
    values the paper's text states (others not stated, so not drawn)."""
    fig = NotebookFigure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2)
    _sweep_panels(axes[0, 0], axes[1, 0], "alpha1", alpha_curve, ours_label)
    _sweep_panels(axes[0, 1], axes[1, 1], "group_size", n_curve, ours_label)
    return fig


# ----------------------------------------------------- robustness (notebook 06)
def figure_robustness(table: pd.DataFrame, before: str = "SFT", after: str = "TGRPO") -> NotebookFigure:
    """Success % of both policies per condition with 95 % Wilson intervals; ``after``'s bar hatched
    where its change from ``before`` is not significant (p >= SIGNIFICANCE); the verdict on top."""
    fig = NotebookFigure(figsize=(max(6.0, 0.8 * len(table) + 2), 4.4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(table))
    for offset, label in ((-0.2, before), (0.2, after)):
        heights = table[f"{label} %"].to_numpy(dtype=float)
        bars = ax.bar(x + offset, heights, 0.4, label=label, capsize=2, error_kw={"elinewidth": 0.8},
                      yerr=_yerr(heights, table[f"{label} CI low"], table[f"{label} CI high"]))
        if label == after:
            for patch, sig in zip(bars.patches, table["significant"]):
                if not sig:
                    patch.set_hatch("///")
    for xi, v in zip(x, table["verdict"]):
        ax.text(xi, 103, v, ha="center", fontsize=7)
    ax.set_xticks(x, list(table.index), rotation=30, ha="right")
    ax.set_ylim(0, 112)
    ax.set_ylabel("greedy success (%)")
    ax.set_title(f"{table['suite'].iloc[0]} task {table['task_id'].iloc[0]}: {before} vs {after} under perturbation\n"
                 f"95 % Wilson intervals; hatched: change not significant (p >= {SIGNIFICANCE})", fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    return fig
