"""Plot helpers for the notebooks (matplotlib; ipywidgets for live / interactive views).

Every figure here and in ``tgrpo_lib.analysis.results`` is a ``NotebookFigure``: outside pyplot's registry,
and shown by IPython as one PNG wherever it is displayed (the value of a cell, ``display(fig)``,
a display update) in JupyterLab, papermill and nbconvert alike, whatever the matplotlib backend.
A bare ``matplotlib.figure.Figure`` shows as the text ``<Figure size 1200x400 with 2 Axes>``
unless ``%matplotlib inline`` has registered a PNG formatter, and a pyplot figure is drawn a
second time by the inline backend at the end of the cell when it was displayed already.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from tgrpo_lib.algorithm.advantages import fused_advantages, step_advantages, trajectory_advantages
from tgrpo_lib.analysis.stats import wilson_interval


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
    fused = fused_advantages(r, alpha1, 1.0 - alpha1).numpy()
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
