"""Plot a co-evolution run: `python -m eval.coevolve_plot` (the second half of `make coevolve`).

Reads runs/coevolve/latest (or --run RUN): metrics.jsonl and config.json, also
of a run stopped with Ctrl-C. Writes <run>/coevolve.png and prints its path:

    top     the generators' training losses (B2; Alice black, Edgar blue, raw faint,
            mean-smoothed k = 3 bold, A9) with their held-out LM losses as dots, and on
            the right axis the judge's accuracy (B11, y from 0.2 to 1.02, as the course
            plots it) with its Wilson 95 % interval as a band and chance (0.5) dotted;
    bottom  S(t) = P_BERT(Alice | X_t) for each generator's rows (B13) and, on the right
            axis, the judge's loss L_cls (B12).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402

from eval.plots import Curve, draw_curve  # noqa: E402
from train.checkpoint import read_jsonl  # noqa: E402
from train.coevolve import CONFIG_FILE, METRICS_FILE, coevolve_root  # noqa: E402
from train.corpus import AUTHORS  # noqa: E402

PLOT_FILE = "coevolve.png"
COLORS = {"alice": "black", "edgar": "tab:blue"}  # the course's colours
ACC_COLOR = "tab:red"


def find_run(run: str | Path | None = None, runs_dir: str | Path | None = None) -> Path:
    """The run folder `run`, else runs/coevolve/latest; FileNotFoundError saying what to do."""
    path = coevolve_root(runs_dir) / "latest" if run is None else Path(run).expanduser()
    if not (path / METRICS_FILE).is_file():
        raise FileNotFoundError(f"{path / METRICS_FILE} is missing: run `python -m train.coevolve` "
                                "(or `make coevolve`) first, or name a run folder with --run")
    return path.resolve()


def read_run(run_dir: Path) -> tuple[list[dict], list[dict], dict]:
    """(training-step records, evaluation records, config.json) of a run."""
    records = read_jsonl(run_dir / METRICS_FILE)
    config_path = run_dir / CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    if not evals:
        raise ValueError(f"{run_dir / METRICS_FILE} holds no evaluation yet: nothing to plot")
    return train, evals, config


def plot_title(config: dict, evals: list[dict]) -> str:
    """What was run, and the accuracy at both ends, in two lines."""
    c = config.get("config", {})
    first = (f"co-evolution: {Path(config.get('base_folder', '?')).name} x 2, batch {c.get('batch_size')} x "
             f"{c.get('seq_len')}, lr {c.get('lr', 0):g}, judged every {c.get('eval_every')} steps on "
             f"{2 * c.get('rows', 0)} x {c.get('judge_len')} tokens, judge {config.get('judge_half', {}).get('dtype')}")
    a, b = evals[0], evals[-1]
    second = (f"judge accuracy: step {a['step']} {a['acc']:.2f} [{a['acc_low']:.2f}, {a['acc_high']:.2f}]  ->  "
              f"step {b['step']} {b['acc']:.2f} [{b['acc_low']:.2f}, {b['acc_high']:.2f}]")
    return first + "\n" + second


def coevolve_plot(train: list[dict], evals: list[dict], title: str, path: str | Path) -> Path:
    """Draw the two panels described in the module docstring into `path` (PNG); returns the path."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 9), dpi=120, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    steps = [r["step"] for r in evals]

    # top left: LM losses (B2)
    handles = []
    for name in AUTHORS:
        if train:
            curve = Curve(f"{name} generator: training loss (B2)", [r["step"] for r in train],
                          [r[f"loss_{name}"] for r in train], COLORS[name], style="smooth", k=3)
            handles += draw_curve(top, curve)
        (dots,) = top.plot(steps, [r[f"heldout_{name}"] for r in evals], "o", color=COLORS[name], markersize=5,
                           markerfacecolor="white", label=f"{name} generator: held-out loss on {name}")
        handles.append(dots)
    top.set_ylabel("LM loss (nats per token)")
    top.grid(alpha=0.3)

    # top right: judge accuracy (B11) with its 95 % interval
    acc_ax = top.twinx()
    acc_ax.fill_between(steps, [r["acc_low"] for r in evals], [r["acc_high"] for r in evals], color=ACC_COLOR,
                        alpha=0.12, linewidth=0)
    (acc,) = acc_ax.plot(steps, [r["acc"] for r in evals], "s-", color=ACC_COLOR, linewidth=2,
                         label="judge accuracy (B11), band: Wilson 95 %")
    acc_ax.axhline(0.5, color=ACC_COLOR, linestyle=":", linewidth=1)
    acc_ax.set_ylim(0.2, 1.02)
    acc_ax.set_ylabel("judge accuracy")
    handles.append(acc)

    # bottom: S(t) (B13) and L_cls (B12)
    for name in AUTHORS:
        (line,) = bottom.plot(steps, [r[f"S_{name}"] for r in evals], "o-", color=COLORS[name], linewidth=2,
                              label=f"S(t) = P(Alice | X_t), {name} generator (B13)")
        handles.append(line)
    bottom.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_ylabel("S(t)")
    bottom.set_xlabel("fine-tuning step")
    bottom.grid(alpha=0.3)
    loss_ax = bottom.twinx()
    losses = [r["judge_loss"] for r in evals]
    (lcls,) = loss_ax.plot(steps, losses, "d--", color="grey", label="judge loss L_cls (B12)")
    loss_ax.set_ylabel("L_cls (cross-entropy)")
    loss_ax.set_ylim(0.0, max(1.0, 1.15 * max(losses)))
    handles.append(lcls)

    top.set_title(title, fontsize=9.5)
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)  # below the panels
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_run(run: str | Path | None = None, runs_dir: str | Path | None = None) -> Path:
    """Plot a run folder (default: the latest) into <run>/coevolve.png; returns the PNG's path."""
    run_dir = find_run(run, runs_dir)
    train, evals, config = read_run(run_dir)
    return coevolve_plot(train, evals, plot_title(config, evals), run_dir / PLOT_FILE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.coevolve_plot", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="run folder (default: runs/coevolve/latest)")
    p.add_argument("--runs-dir", help="runs folder (default $ALICE_EDGAR_RUNS or <repo>/runs)")
    args = p.parse_args(argv)
    try:
        path = plot_run(args.run, args.runs_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
