"""Evaluate a trained judge: `python -m scripts.judge_report` (the second step of `make train-bert`).

For the latest judge run (or --run RUN) it
1. evaluates the judge on every balanced held-out window (never trained on) in float32, then cast to
   half precision (B5, model/half.py): accuracy (A11) per author, macro accuracy and the confusion
   matrix (N4), the memory ratio, how often float32 and half agree;
2. measures A14's prompt sensitivity on held-out passages: how P(author) moves when a passage is
   cut, shifted by a few words, or prefixed with a neutral sentence (eval/scoring.py);
3. puts the judge beside the independent n-gram baseline (N5) and a probe on SmolLM2-135M's frozen features
   (model/feature_judge.py; `--probe-base`, or `none` for no probe) on the same held-out passages of 64, 128, 256
   and 1,024 tokens and whole chapters (the probe: passages only), and their log-linear mix, each judge weighted by
   1 / its own temperature fitted on validation text: confusion matrices, macro accuracy, accuracy per author with its Wilson interval (N3, N4;
   eval/authorship.py), BERT and the decoder under bfloat16 autocast where the machine measures it faster
   (`--precision`; on a CPU with AMX half the report's time, the same answers to within a passage or two);
4. measures calibration (N7): the expected calibration error on the held-out windows, before and
   after temperature scaling fitted on the validation text of the training books (eval/calibration.py);
5. writes everything to <run>/report.json; `python -m scripts.report` shows it.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

from data.corpus import author_books
from data.windows import Specials, author_ids, heldout_set, max_balanced_windows, text_tokens_per_window
from eval.authorship import authorship, table_lines
from eval.calibration import calibration
from eval.scoring import prompt_sensitivity
from model.half import cast_half
from plumbing.atomic import atomic_write_json
from plumbing.cli import run_program
from plumbing.judges import (FEATURE_BASE, REPORT_FILE, judge_folder, load_bert_judge, load_feature_judge,
                             load_ngram_judge, save_memo)
from plumbing.precision import choose_precision, pick_device
from train.bert_judge import heldout_metrics, predict_logits

SENSITIVITY_PASSAGES = 8  # held-out passages per author for A14's prompt sensitivity
VALIDATION_WINDOWS = 64  # at most this many validation windows per author fit the temperature (N7)


def timed_logits(model: torch.nn.Module, heldout: tuple, desc: str) -> tuple[torch.Tensor, float]:
    """The logits of every held-out window, and the seconds they took."""
    t0 = time.time()
    logits = predict_logits(model, heldout[0], heldout[1], desc=desc)
    return logits, time.time() - t0


def half_comparison(model: torch.nn.Module, heldout: tuple, labels: list[str], float32: tuple) -> dict:
    """B5: the judge in float32 and cast to 16 bits on the same windows: accuracy, memory, agreement.

    float32: the float32 logits of the held-out windows and the seconds they took (`timed_logits`)."""
    z32, s32 = float32
    half_model = copy.deepcopy(model)
    memory = cast_half(half_model)
    z16, s16 = timed_logits(half_model, heldout, f"held-out {memory['dtype']}")
    p32, p16 = z32.softmax(-1), z16.softmax(-1)
    return {"float32": dict(heldout_metrics(z32, heldout[2], labels), seconds=s32),
            "half": dict(heldout_metrics(z16, heldout[2], labels), seconds=s16, dtype=memory["dtype"]),
            "memory": {k: memory[k] for k in ("bytes_before", "bytes_after", "ratio")},
            "agreement": (p32.argmax(-1) == p16.argmax(-1)).float().mean().item(),
            "max_abs_diff_p": (p32 - p16).abs().max().item()}


def sensitivity(model, tok, authors: dict, length: int) -> dict:
    """A14 over held-out passages of every author: mean |dP| and the share of flipped decisions per change."""
    rows = []
    for a in authors.values():
        n = min(SENSITIVITY_PASSAGES, len(a.heldout) // (length - 2))
        for i in range(n):
            piece = a.heldout[i * (length - 2): (i + 1) * (length - 2)]
            rows.append(prompt_sensitivity(model, tok, tok.decode(piece.tolist()), length))
    out = {"passages": len(rows)}
    for change in ("cut", "shift", "prefix"):
        out[f"mean_abs_dp_{change}"] = sum(abs(r[f"dp_{change}"]) for r in rows) / len(rows)
        out[f"flips_{change}"] = sum(r[f"flip_{change}"] for r in rows) / len(rows)
    return out


def calibrate(model: torch.nn.Module, tok, authors: dict, length: int, heldout: tuple, logits: torch.Tensor) -> dict:
    """N7 on the held-out windows (their float32 logits), T fitted on up to VALIDATION_WINDOWS windows of each
    author's validation text."""
    fits = min(len(a.validation) // text_tokens_per_window(length) for a in authors.values())
    if fits < 1:
        return {"skipped": f"an author's validation text is shorter than one {length}-token window"}
    validation = heldout_set(authors, length, Specials.of(tok), min(VALIDATION_WINDOWS, fits), part="validation")
    return calibration(predict_logits(model, *validation[:2], desc="validation"), validation[2], logits, heldout[2])


def report(run: str | None, runs_dir: str | None, per_author: int | None, device: str, precision: str = "auto",
           probe_base: str | None = FEATURE_BASE) -> dict:
    """The whole evaluation of one judge; writes <run>/report.json and returns it."""
    folder = judge_folder(run, runs_dir)
    model, tok, info = load_bert_judge(folder, device=pick_device(device))
    labels, length = info["labels"], info.get("eval_length", 256)
    split = info.get("split", "tail")
    books = {a: author_books(a, split, tok) for a in labels}  # loaded, cleaned and split once, read by all below
    authors = author_ids(tok, books)
    n = per_author or max_balanced_windows(authors, length)
    heldout = heldout_set(authors, length, Specials.of(tok), n)
    ngram, ngram_folder = load_ngram_judge(labels, split, tok, runs_dir, books)
    table_precision = choose_precision(next(model.parameters()).device, precision)
    print(f"the judges' table: BERT reads its passages in {table_precision.name} ({table_precision.reason})",
          file=sys.stderr)
    probe, probe_folder = load_feature_judge(labels, split, books, table_precision, runs_dir, probe_base) \
        if probe_base else (None, None)
    float32 = timed_logits(model, heldout, "held-out float32")  # read by B5's comparison and by N7
    try:
        result = {"judge": str(folder), "labels": labels, "split": split,
                  "heldout": {"windows": len(heldout[0]), "per_author": n, "length": length},
                  **half_comparison(model, heldout, labels, float32),
                  "prompt_sensitivity": sensitivity(model, tok, authors, length),
                  "calibration": calibrate(model, tok, authors, length, heldout, float32[0]),
                  "authorship": authorship(model, tok, books, split, ngram, precision=table_precision, probe=probe,
                                           **({"per_author": per_author} if per_author else {})),
                  "authorship_precision": table_precision.describe(),
                  "ngram": str(ngram_folder), "feature_judge": str(probe_folder) if probe else None}
    finally:  # what the probe read is kept, after a Ctrl-C too: the next report of this split reads it in seconds
        if probe is not None:
            save_memo(probe, probe_folder)
    atomic_write_json(folder.parent / REPORT_FILE, result)
    return result


def print_summary(r: dict) -> None:
    """The report's numbers, a few lines for a person."""
    h = r["heldout"]
    print(f"held-out ({r['split']} split): {h['windows']} fixed windows of {h['length']} tokens ({h['per_author']} per author)")
    for name, m in (("float32", r["float32"]), (r["half"]["dtype"], r["half"])):
        per = ", ".join(f"{a} {v:.3f}" for a, v in m["heldout_acc_per_author"].items())
        print(f"  {name:9s} accuracy {m['heldout_acc']:.3f} (macro {m['heldout_macro_acc']:.3f})  loss "
              f"{m['heldout_loss']:.3f}  ({per})  {m['seconds']:.1f} s")
    mem = r["memory"]
    print(f"B5 memory: {mem['bytes_before'] / 2**20:.1f} MiB -> {mem['bytes_after'] / 2**20:.1f} MiB (ratio {mem['ratio']:.3f})")
    print(f"agreement float32 vs {r['half']['dtype']}: {r['agreement']:.1%} of predictions (max |dP| {r['max_abs_diff_p']:.4f})")
    s = r["prompt_sensitivity"]
    print(f"A14 prompt sensitivity ({s['passages']} passages): mean |dP| cut {s['mean_abs_dp_cut']:.3f}, "
          f"shift {s['mean_abs_dp_shift']:.3f}, neutral prefix {s['mean_abs_dp_prefix']:.3f}; decisions flipped "
          f"{s['flips_cut']:.0%} / {s['flips_shift']:.0%} / {s['flips_prefix']:.0%}")
    c = r["calibration"]
    if "skipped" in c:
        print(f"N7 calibration skipped: {c['skipped']}")
    else:
            print(f"N7 calibration on the held-out windows: ECE {c['before']['ece']:.3f} -> {c['after']['ece']:.3f} with "
              f"temperature T = {c['temperature']:.2f}{' (at its bound: every validation window was right)' if c.get('at_bound') else ''} "
              f"fitted on {c['validation_windows']} validation windows "
              f"(cross-entropy {c['before']['cross_entropy']:.3f} -> {c['after']['cross_entropy']:.3f})")
    precision = r.get("authorship_precision", {}).get("precision", "fp32")  # a report written before: float32
    print(f"the judges on the same held-out passages (N3-N5; BERT in {precision}):")
    for line in table_lines(r["authorship"], r["labels"]):
        print("  " + line)


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number >= 1, got {text!r}")
    return int(text)


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.judge_report", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="judge run folder or its hf/ folder (default: runs/judge/latest)")
    p.add_argument("--runs-dir", help="runs folder (default $ALICE_EDGAR_RUNS or <repo>/runs)")
    p.add_argument("--per-author", type=positive_int, help="held-out windows per author, and passages per author "
                   "and length of both judges' table (default: as many windows as the shortest held-out split holds, "
                   "non-overlapping; 64 passages)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="what BERT reads the judges' table in (step 3; steps 1, 2 and 4 are float32 whatever this "
                        "says): auto = bfloat16 autocast where this machine measures it faster (plumbing/precision.py)")
    p.add_argument("--probe-base", default=FEATURE_BASE,
                   help=f"the decoder whose frozen features the third judge reads (default {FEATURE_BASE}; a weights "
                        "store name or a folder of a Llama-family decoder), or none: BERT and the n-gram judge only")
    args = p.parse_args(argv)
    probe_base = None if args.probe_base.lower() == "none" else args.probe_base
    r = report(args.run, args.runs_dir, args.per_author, args.device, args.precision, probe_base)
    print_summary(r)
    print(f"report: {Path(r['judge']).parent / REPORT_FILE}")


def main(argv: list[str] | None = None) -> int:
    return run_program(run, argv)


if __name__ == "__main__":
    sys.exit(main())
