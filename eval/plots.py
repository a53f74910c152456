"""Every plot of the project, one function each, all drawn from a run's metrics records.

    judge_plot        A12: the judge's loss (left) and accuracy (right), raw and A9-smoothed
    confusion_plot    N4: a confusion matrix as a heat map with its counts
    pretrain_plot     the base GPT-Neo's training loss and each author's held-out loss
    coevolve_plot     lecture B: LM losses and the judge's accuracy; S(t) and L_cls (B11-B14)

`twin_axis_plot` is generic: any curves, each on the left or the right axis, drawn
raw-and-smoothed or as markers. Each author has one colour everywhere (AUTHOR_COLORS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402

from eval.smoothing import mean_smooth  # noqa: E402

# The course draws Alice black and Edgar blue; the other authors get one colour each.
AUTHOR_COLORS = {"alice": "black", "edgar": "tab:blue", "austen": "tab:green", "dickens": "tab:purple",
                 "twain": "tab:orange", "doyle": "tab:brown"}
ACC_COLOR = "tab:red"


def color(author: str) -> str:
    """The author's colour (grey for an author the table does not know)."""
    return AUTHOR_COLORS.get(author, "grey")


def save_figure(fig, path: str | Path) -> Path:
    """Write a figure as PNG (folders created), close it, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


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
    return save_figure(fig, path)


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


def confusion_plot(confusion: Sequence[Sequence[int]], labels: Sequence[str], title: str, path: str | Path) -> Path:
    """N4: C_ab (rows: true author a, columns: predicted b) as a heat map of row shares, with the counts."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.1 * n + 2.5, 1.0 * n + 2), dpi=120)
    shares = [[c / max(1, sum(row)) for c in row] for row in confusion]
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for a in range(n):
        for b in range(n):
            ax.text(b, a, str(confusion[a][b]), ha="center", va="center",
                    color="white" if shares[a][b] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(n), labels, rotation=30)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted author")
    ax.set_ylabel("true author")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def reliability_plot(calibration: dict, title: str, path: str | Path) -> Path:
    """N7: accuracy against confidence per bin, before and after temperature scaling; the diagonal is calibrated."""
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="calibrated")
    for name, style in (("before", "o-"), ("after", "s--")):
        bins = calibration[name]["bins"]
        t = 1.0 if name == "before" else calibration["temperature"]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], style,
                label=f"T = {t:.2f}: ECE {calibration[name]['ece']:.3f}")
    ax.set_xlabel("confidence max_a P(a | x) (bin mean)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def pretrain_plot(train: Sequence[dict], evals: Sequence[dict], final: dict[str, float], title: str,
                  path: str | Path) -> Path:
    """The base GPT-Neo: training loss per step (B2), each author's held-out loss per evaluation and at the end."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], color="0.6", lw=0.8, label="train batch loss (B2)")
    for author in final:
        ax.plot([e["step"] for e in evals], [e["heldout"][author] for e in evals], "o-", color=color(author),
                label=f"held-out loss, {author}")
        ax.axhline(final[author], color=color(author), ls=":", lw=1, label=f"final held-out loss, {author} (all windows)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title, fontsize=9.5)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


LECTURE_LOSS = ("loss", "training loss (B2)")  # (metrics key prefix, legend) of lecture B's fine-tuning loss


def coevolve_plot(train: Sequence[dict], evals: Sequence[dict], authors: Sequence[str], title: str,
                  path: str | Path, lm_loss: tuple[str, str] | None = LECTURE_LOSS) -> Path:
    """Lecture B in two panels.

    top: each generator's LM loss in training (B2; raw faint, A9-smoothed bold; `lm_loss` names its key and
         legend, None where a step minimises no LM loss) and held-out loss (dots), and on the right the judge's
         accuracy (B11) with its Wilson 95 % band and chance (1/N) dotted;
    bottom: S(t) of each generator (B13: P(first author | X_t)), and on the right L_cls (B12).
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 9), dpi=120, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    steps, handles = [r["step"] for r in evals], []
    for a in authors:
        if train and lm_loss:
            handles += draw_curve(top, Curve(f"{a} generator: {lm_loss[1]}", [r["step"] for r in train],
                                             [r[f"{lm_loss[0]}_{a}"] for r in train], color(a), style="smooth", k=3))
        handles += top.plot(steps, [r[f"heldout_{a}"] for r in evals], "o", color=color(a), markersize=5,
                            markerfacecolor="white", label=f"{a} generator: held-out loss on {a}")
    top.set_ylabel("LM loss (nats per token)")
    top.grid(alpha=0.3)
    acc_ax = top.twinx()
    acc_ax.fill_between(steps, [r["acc_low"] for r in evals], [r["acc_high"] for r in evals], color=ACC_COLOR,
                        alpha=0.12, linewidth=0)
    handles += acc_ax.plot(steps, [r["acc"] for r in evals], "s-", color=ACC_COLOR, linewidth=2,
                           label="judge accuracy (B11), band: Wilson 95 %")
    acc_ax.axhline(1 / len(authors), color=ACC_COLOR, linestyle=":", linewidth=1)
    acc_ax.set_ylim(0.2 if len(authors) == 2 else 0.0, 1.02)
    acc_ax.set_ylabel("judge accuracy")
    key, what = ("S", f"S(t) = P({authors[0]} | X_t)") if len(authors) == 2 else ("own", "S_a(t) = P(a | X_t of a)")
    for a in authors:
        handles += bottom.plot(steps, [r[f"{key}_{a}"] for r in evals], "o-", color=color(a), linewidth=2,
                               label=f"{what}, {a} generator (B13/N6)")
        if f"nb_{key}_{a}" in evals[0]:
            handles += bottom.plot(steps, [r[f"nb_{key}_{a}"] for r in evals], "x--", color=color(a), linewidth=1,
                                   label="the same, independent n-gram judge (N5)")
    bottom.axhline(0.5 if len(authors) == 2 else 1 / len(authors), color="grey", linestyle=":", linewidth=1)
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_ylabel("S(t)")
    bottom.set_xlabel("fine-tuning step")
    bottom.grid(alpha=0.3)
    loss_ax = bottom.twinx()
    losses = [r["judge_loss"] for r in evals]
    handles += loss_ax.plot(steps, losses, "d--", color="grey", label="judge loss L_cls (B12)")
    loss_ax.set_ylabel("L_cls (cross-entropy)")
    loss_ax.set_ylim(0.0, max(1.0, 1.15 * max(losses)))
    top.set_title(title, fontsize=9.5)
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07 + 0.015 * len(authors), 1, 1))
    return save_figure(fig, path)


def teach_plot(train: Sequence[dict], evals: Sequence[dict], authors: Sequence[str], title: str,
               path: str | Path, step_loss: str | None = None) -> Path:
    """The judge as teacher in three panels (four with `step_loss`), per generator (one colour each).

    top: reward (T1, per step; judged rows as dots) and, on the right, the KL per token to the start (T3);
    middle: S(t) under the trained judge (solid) and under the independent n-gram judge (dashed, T8);
    bottom: held-out LM loss on real text (B2) and, on the right, distinct-2 of the judged texts (T8);
    last, with `step_loss` (its name, e.g. "RL loss L_PG + beta KL (T6)"): the loss each step minimised.
    """
    fig, axes = plt.subplots(3 + bool(step_loss), 1, figsize=(10, 11 + 3 * bool(step_loss)), dpi=120, sharex=True)
    top, mid, low = axes[:3]
    steps = [r["step"] for r in evals]
    kl_ax, d_ax = top.twinx(), low.twinx()
    for a in authors:
        c = color(a)
        if train and f"reward_{a}" in train[0]:
            top.plot([r["step"] for r in train], mean_smooth([r[f"reward_{a}"] for r in train], 3), color=c,
                     label=f"{a}: reward log P({a}) (T1), A9-smoothed")
        top.plot(steps, [r[f"reward_{a}"] for r in evals], "o", color=c, markerfacecolor="white")
        if f"kl_{a}" in evals[0]:
            kl_ax.plot(steps, [r[f"kl_{a}"] for r in evals], "s--", color=c, alpha=0.6, label=f"{a}: KL per token (T3)")
        mid.plot(steps, [r[f"S_{a}"] for r in evals], "o-", color=c, label=f"{a} generator, trained judge")
        mid.plot(steps, [r[f"nb_S_{a}"] for r in evals], "x--", color=c, label=f"{a} generator, n-gram judge (N5)")
        low.plot(steps, [r[f"heldout_{a}"] for r in evals], "o-", color=c, label=f"{a}: held-out LM loss (B2)")
        d_ax.plot(steps, [r[f"distinct2_{a}"] for r in evals], "d:", color=c, label=f"{a}: distinct-2 (T8)")
        if step_loss and train:
            draw_curve(axes[3], Curve(f"{a} generator: {step_loss}", [r["step"] for r in train],
                                      [r[f"loss_{a}"] for r in train], c, style="smooth", k=3))
    top.set_ylabel("reward")
    kl_ax.set_ylabel("KL per token")
    mid.set_ylabel(f"S(t) = P({authors[0]} | X_t)")
    mid.set_ylim(-0.02, 1.02)
    low.set_ylabel("held-out LM loss (nats per token)")
    d_ax.set_ylabel("distinct-2")
    panels = [(top, kl_ax), (mid, None), (low, d_ax)]
    if step_loss:
        axes[3].set_ylabel("loss of the step")
        panels.append((axes[3], None))
    axes[-1].set_xlabel("step")
    for ax, twin in panels:
        legend(ax, twin, fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    top.set_title(title, fontsize=9.5)
    fig.tight_layout()
    return save_figure(fig, path)


def adversary_plot(train: Sequence[dict], evals: Sequence[dict], authors: Sequence[str], title: str,
                   path: str | Path) -> Path:
    """T10's game in two panels.

    top: the adversarial judge's accuracy on real-versus-generated, measured on each round's rows before it
         learns from them (balanced: 0.5 is chance; raw faint, A9-smoothed bold), and on real and generated alone;
    bottom: at each judgement, the adversarial judge's P(generated) on each generator's rows (solid) and the
         lecture's frozen judge's S_a(t) = P(a | rows of a) (dashed): a generator wins when the first falls and the
         second stays high.
    """
    fig, (top, low) = plt.subplots(2, 1, figsize=(10, 8), dpi=120, sharex=True)
    rounds = [r for r in train if "adv_acc" in r]
    x = [r["step"] for r in rounds]
    draw_curve(top, Curve("real vs generated, balanced", x, [r["adv_acc"] for r in rounds], "black", k=3))
    top.plot(x, [r["adv_acc_real"] for r in rounds], ":", color="tab:green", label="on real windows")
    top.plot(x, [r["adv_acc_generated"] for r in rounds], ":", color="tab:red", label="on generated rows")
    top.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("adversarial judge's accuracy")
    steps = [r["step"] for r in evals]
    for a in authors:
        low.plot(steps, [r[f"adv_p_generated_{a}"] for r in evals], "o-", color=color(a),
                 label=f"{a} generator: P(generated), adversarial judge (T10)")
        low.plot(steps, [r[f"own_{a}"] for r in evals], "x--", color=color(a),
                 label=f"{a} generator: P({a}), the lecture's frozen judge (N6)")
    low.set_ylim(-0.02, 1.02)
    low.set_ylabel("probability")
    low.set_xlabel("step")
    for ax in (top, low):
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    top.set_title(title, fontsize=9.5)
    fig.tight_layout()
    return save_figure(fig, path)


def legend(ax, twin=None, **kwargs) -> None:
    """One legend for a panel and its right-hand twin axis (`ax.twinx()`), if it has one."""
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, **kwargs)
