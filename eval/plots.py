"""Training curves on two y axes (lecture A, equation A12), with A9 smoothing.

`twin_axis_plot` is generic: any curves, each on the left or the right axis,
drawn raw-and-smoothed or as markers. `judge_plot` uses it for the judge (loss
left, accuracy right); the co-evolution plot of lecture B can reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402

from eval.smoothing import mean_smooth  # noqa: E402


@dataclass
class Curve:
    """One curve: x and y values, a legend label, a colour, an axis and a style.

    style "smooth": raw values faint + mean-smoothed (A9, window k) bold;
    "line": one plain line; "markers": points only (e.g. sparse evaluations).
    """

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str
    axis: str = "left"  # "left" or "right"
    style: str = "smooth"
    k: int = 3


def draw_curve(ax, curve: Curve) -> list:
    """Draw one Curve on a matplotlib axis; returns the handles that go in the legend."""
    if curve.style == "smooth":
        ax.plot(curve.x, curve.y, color=curve.color, alpha=0.3, linewidth=1.0)
        (bold,) = ax.plot(curve.x, mean_smooth(curve.y, k=curve.k), color=curve.color, linewidth=2.2,
                          label=curve.label)
        return [bold]
    if curve.style == "markers":
        (pts,) = ax.plot(curve.x, curve.y, color=curve.color, linestyle="none", marker="o", markersize=7,
                         markeredgecolor="black", label=curve.label)
        return [pts]
    if curve.style == "line":
        (line,) = ax.plot(curve.x, curve.y, color=curve.color, linewidth=1.8, label=curve.label)
        return [line]
    raise ValueError(f"unknown curve style {curve.style!r}: use 'smooth', 'markers' or 'line'")


def twin_axis_plot(
    path: str | Path,
    curves: Sequence[Curve],
    title: str,
    left_label: str,
    right_label: str,
    xlabel: str = "step",
    right_ylim: tuple[float, float] | None = None,
    left_ylim: tuple[float, float] | None = None,
) -> Path:
    """A12: a PNG with some curves on the left y axis and some on the right, one shared legend."""
    fig, left = plt.subplots(figsize=(9, 5.2), dpi=120)
    right = left.twinx()
    handles = []
    ks = sorted({c.k for c in curves if c.style == "smooth"})
    for curve in curves:
        if curve.axis not in ("left", "right"):
            raise ValueError(f"curve {curve.label!r}: axis must be 'left' or 'right', got {curve.axis!r}")
        handles += draw_curve(left if curve.axis == "left" else right, curve)
    left.set_xlabel(xlabel)
    left.set_ylabel(left_label)
    right.set_ylabel(right_label)
    if left_ylim:
        left.set_ylim(*left_ylim)
    if right_ylim:
        right.set_ylim(*right_ylim)
    left.grid(alpha=0.3)
    note = f"bold: mean-smoothed (A9, k={', '.join(map(str, ks))}), faint: raw" if ks else None
    left.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(len(handles), 3),
                fontsize=8.5, title=note, title_fontsize=8.5, frameon=False)
    left.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def judge_plot(train: Sequence[dict], evals: Sequence[dict], title: str, path: str | Path, k: int = 3,
               heldout_label: str = "held-out accuracy") -> Path:
    """A12 for the judge: training loss (left), batch and held-out accuracy (right).

    train: metrics.jsonl records with step, loss, acc; evals: records with step, heldout_acc.
    """
    if not train:
        raise ValueError("no training steps to plot (metrics.jsonl has no 'train' records)")
    steps = [r["step"] for r in train]
    curves = [
        Curve("training loss (A3)", steps, [r["loss"] for r in train], "tab:red", "left", "smooth", k),
        Curve("batch accuracy (A11)", steps, [r["acc"] for r in train], "tab:blue", "right", "smooth", k),
    ]
    if evals:
        curves.append(Curve(heldout_label, [r["step"] for r in evals], [r["heldout_acc"] for r in evals],
                            "gold", "right", "markers"))
    return twin_axis_plot(path, curves, title, "cross-entropy loss", "accuracy", right_ylim=(0.0, 1.03),
                          left_ylim=(0.0, None))
