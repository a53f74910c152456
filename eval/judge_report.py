"""Report on a trained judge: `python -m eval.judge_report` (the second half of `make train-bert`).

For the latest run (or --run RUN) it

1. draws the A12 plot (loss left, accuracy right, raw faint, smoothed k=3 bold,
   held-out accuracy as markers) into <run>/judge_plot.png and prints its path;
2. checks A12 on the loss curve: L_initial > L_final and dL/dt < 0;
3. evaluates the judge on fixed held-out windows (never trained on) in float32,
   then cast to half precision (B5, model/half.py), and prints both accuracies,
   the memory ratio and how often the two agree;
4. writes all these numbers to <run>/report.json.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

from eval.plots import judge_plot
from model.half import cast_half
from train import checkpoint as ckpt
from train.batches import Specials, heldout_set, load_author_ids, max_balanced_windows
from train.judge import pick_device, predict_logits
from train.metrics import accuracy, convergence, cross_entropy

PLOT_FILE = "judge_plot.png"
REPORT_FILE = "report.json"


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """metrics.jsonl of a run, split into training-step records and held-out evaluation records."""
    path = Path(run_dir) / ckpt.METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: this run logged no metrics")
    records = ckpt.read_jsonl(path)
    return [r for r in records if r["kind"] == "train"], [r for r in records if r["kind"] == "eval"]


def plot_title(meta: dict, evals: list[dict]) -> str:
    """The configuration, in two lines, for the plot's title."""
    c = meta["train_config"]
    first = (f"BERT judge ({Path(meta['base_model']).name}): batch {c['batch_size']} "
             f"({c['batch_size'] // 2} Alice + {c['batch_size'] // 2} Edgar) x {c['length']} tokens, "
             f"AdamW lr {c['lr']:g} ({c.get('schedule', 'constant')}), {meta['step']} steps, seed {c['seed']}")
    second = f"held-out: {2 * c['eval_per_author']} fixed windows of {c['eval_length']} tokens"
    if evals:
        second += f", final accuracy {evals[-1]['heldout_acc']:.3f}"
    return first + "\n" + second


def per_author_accuracy(logits: torch.Tensor, labels: torch.Tensor, names: dict[str, int]) -> dict[str, float]:
    """A11 restricted to each author's windows."""
    return {name: accuracy(logits[labels == label], labels[labels == label]) for name, label in names.items()}


def judge_on(model: torch.nn.Module, heldout: tuple, labels_of: dict[str, int], desc: str) -> tuple[dict, torch.Tensor]:
    """Accuracy, loss, per-author accuracy and seconds of one model on the held-out set; plus its logits."""
    x, mask, y = heldout
    t0 = time.time()
    logits = predict_logits(model, x, mask, desc=desc)  # (N, 2) float32
    return {
        "accuracy": accuracy(logits, y),
        "loss": cross_entropy(logits, y).item(),
        "accuracy_per_author": per_author_accuracy(logits, y, labels_of),
        "seconds": time.time() - t0,
    }, logits


def prediction_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of windows where two sets of logits predict the same class."""
    return (a.argmax(-1) == b.argmax(-1)).float().mean().item()


def report(run: str | Path | None = None, runs_dir: str | Path | None = None, per_author: int | None = None,
           half_dtype: str = "auto", device: str = "auto") -> dict:
    """Plot, convergence check, float32 vs half held-out evaluation; writes <run>/report.json and returns it."""
    run_dir = ckpt.find_run(run, runs_dir)
    meta = ckpt.read_meta(run_dir)
    train, evals = read_metrics(run_dir)
    c = meta["train_config"]
    plot = judge_plot(train, evals, plot_title(meta, evals), run_dir / PLOT_FILE,
                      heldout_label=f"held-out accuracy ({2 * c['eval_per_author']} windows of {c['eval_length']})")
    print(f"plot: {plot}")
    result: dict = {"run_dir": str(run_dir), "step": meta["step"], "plot": str(plot),
                    "convergence": convergence([r["loss"] for r in train]) if len(train) > 1 else None}

    model, tok, _ = ckpt.load_judge(run_dir, device=pick_device(device))
    authors = load_author_ids(tok)
    length = meta["train_config"]["eval_length"]
    n = per_author or max_balanced_windows(authors, length)
    heldout = heldout_set(authors, length, Specials.of(tok), n)
    result["heldout"] = {"windows": len(heldout[0]), "per_author": n, "length": length}

    fp32, logits32 = judge_on(model, heldout, meta["labels"], "held-out float32")
    half_model = copy.deepcopy(model)
    dtype = None if half_dtype == "auto" else getattr(torch, half_dtype)
    memory = cast_half(half_model, dtype)
    half, logits16 = judge_on(half_model, heldout, meta["labels"], f"held-out {memory['dtype']}")
    p32, p16 = logits32.softmax(-1)[:, 0], logits16.softmax(-1)[:, 0]  # P(Alice) per window
    result.update(
        float32=fp32,
        half=dict(half, dtype=memory["dtype"]),
        memory={k: memory[k] for k in ("bytes_before", "bytes_after", "ratio")},
        agreement=prediction_agreement(logits32, logits16),
        max_abs_diff_p_alice=(p32 - p16).abs().max().item(),
    )
    ckpt.atomic_write_json(result, run_dir / REPORT_FILE)
    return result


def print_summary(r: dict) -> None:
    """The report's numbers, a few lines for a person."""
    h = r["heldout"]
    if r["convergence"]:
        c = r["convergence"]
        print(f"A12 convergence: L_initial {c['loss_initial']:.3f} -> L_final {c['loss_final']:.3f}, "
              f"dL/dt {c['slope']:.2e} per step ({'converged' if c['converged'] else 'NOT converged'})")
    print(f"held-out: {h['windows']} fixed windows of {h['length']} tokens ({h['per_author']} per author)")
    for name, m in (("float32", r["float32"]), (r["half"]["dtype"], r["half"])):
        authors = ", ".join(f"{a} {v:.3f}" for a, v in m["accuracy_per_author"].items())
        print(f"  {name:9s} accuracy {m['accuracy']:.3f}  loss {m['loss']:.3f}  ({authors})  {m['seconds']:.1f} s")
    mem = r["memory"]
    print(f"B5 memory: {mem['bytes_before'] / 2**20:.1f} MiB -> {mem['bytes_after'] / 2**20:.1f} MiB "
          f"(ratio {mem['ratio']:.3f})")
    print(f"agreement float32 vs {r['half']['dtype']}: {r['agreement']:.1%} of predictions "
          f"(max |dP(Alice)| {r['max_abs_diff_p_alice']:.4f})")
    print(f"report: {Path(r['run_dir']) / REPORT_FILE}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.judge_report", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="run folder (default: runs/judge/latest)")
    p.add_argument("--runs-dir", help=f"runs folder (default ${ckpt.RUNS_ENV} or <repo>/runs)")
    p.add_argument("--per-author", type=int, help="held-out windows per author (default: as many as the "
                   "shorter held-out split holds, non-overlapping)")
    p.add_argument("--half-dtype", default="auto", choices=["auto", "float16", "bfloat16"],
                   help="auto: float16 on CUDA, bfloat16 on the CPU")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    args = p.parse_args(argv)
    try:
        r = report(args.run, args.runs_dir, args.per_author, args.half_dtype, args.device)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_summary(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
