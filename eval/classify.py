"""Classify any text with the trained judge (lecture A, equations A14 and A15).

    python -m eval.classify "Curiouser and curiouser!" "Quoth the Raven, Nevermore."
    python -m eval.classify --file story.txt
    echo "Once upon a midnight dreary" | python -m eval.classify --json
    python -m eval.classify --windows --file story.txt   # A14: one line per window, and their spread

Prints one line per input, `P(Alice)=0.973  P(Edgar)=0.027`. A text longer than
one window is cut into consecutive windows ([CLS] ... [SEP] each, as in
training) and the probabilities are averaged over the windows. The judge is
runs/judge/latest unless --checkpoint names a run folder or a file in one.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from tokenizers import Tokenizer

from train import checkpoint as ckpt
from train.batches import Specials, text_ids, text_windows
from train.judge import predict_logits


def window_probabilities(model: torch.nn.Module, tok: Tokenizer, text: str, length: int) -> torch.Tensor:
    """y_hat = softmax(z) (A2) for each window of `text`: (W, n_classes). ValueError for empty text."""
    ids = text_ids(tok, text)  # (N,)
    if len(ids) == 0:
        raise ValueError("empty text: nothing to classify (give some words)")
    x, mask = text_windows(ids, length, Specials.of(tok))  # (W, L), (W, L)
    return predict_logits(model, x, mask).softmax(dim=-1)  # (W, C)


def judge_score(probs: torch.Tensor, label: int = 0) -> float:
    """A15: S = P(Alice | text) (label 0; label 1 gives P(Edgar | text)), averaged over the text's windows."""
    return probs[:, label].mean().item()


def stability(probs: torch.Tensor, label: int = 0) -> dict[str, float]:
    """A14: are the judge's predictions stable along a text? Spread of P(label) over its windows.

    std and min/max of the per-window probability, and the share of windows
    whose own decision agrees with the decision on the whole text.
    """
    p = probs[:, label]  # (W,)
    decision = judge_score(probs, label) >= 0.5
    return {
        "std": p.std(unbiased=False).item(),
        "min": p.min().item(),
        "max": p.max().item(),
        "agree": ((p >= 0.5) == decision).float().mean().item(),
    }


def classify(model: torch.nn.Module, tok: Tokenizer, text: str, length: int, labels: dict[str, int]) -> dict:
    """P(author | text) for every author, averaged over windows; plus window count and A14 stability."""
    probs = window_probabilities(model, tok, text, length)  # (W, C)
    first = min(labels.values())  # label 0: Alice, the S of A15
    result = {f"p_{name}": judge_score(probs, label) for name, label in labels.items()}
    result["windows"] = len(probs)
    result["per_window"] = probs[:, first].tolist()  # P(Alice | window), window by window
    result["stability"] = stability(probs, first)
    return result


def format_line(result: dict, labels: dict[str, int]) -> str:
    """`P(Alice)=0.973  P(Edgar)=0.027`"""
    return "  ".join(f"P({name.capitalize()})={result[f'p_{name}']:.3f}" for name in labels)


def read_inputs(texts: list[str], file: str | None) -> list[str]:
    """The texts to classify: the arguments, else the file's content, else standard input (one text each)."""
    if texts and file:
        raise ValueError("give texts as arguments or --file, not both")
    if file:
        with open(file, encoding="utf-8") as f:
            return [f.read()]
    if texts:
        return texts
    if sys.stdin.isatty():
        raise ValueError("no text: pass it as an argument, with --file, or on standard input")
    return [sys.stdin.read()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.classify", description=__doc__.split("\n\n")[0])
    p.add_argument("text", nargs="*", help="texts to classify (one result line each)")
    p.add_argument("--file", help="classify the whole content of this file")
    p.add_argument("--checkpoint", help="judge run folder or a file in it (default: runs/judge/latest)")
    p.add_argument("--runs-dir", help=f"runs folder (default ${ckpt.RUNS_ENV} or <repo>/runs)")
    p.add_argument("--length", type=int, help="tokens per window (default: the judge's held-out window length)")
    p.add_argument("--json", action="store_true", help="one JSON object per input instead of the text line")
    p.add_argument("--windows", action="store_true", help="A14: also print P(Alice) per window and its spread")
    args = p.parse_args(argv)
    try:
        texts = read_inputs(args.text, args.file)
        for i, t in enumerate(texts):
            if not t.strip():
                where = f"text {i + 1} of {len(texts)}" if len(texts) > 1 else "the text"
                raise ValueError(f"empty text: {where} is empty or only whitespace, nothing to classify")
        model, tok, meta = ckpt.load_judge(args.checkpoint, args.runs_dir)
        length = args.length or meta["train_config"]["eval_length"]
        labels = meta["labels"]
        for text in texts:
            r = classify(model, tok, text, length, labels)
            if args.json:
                if not args.windows:
                    r = {k: v for k, v in r.items() if k != "per_window"}
                print(json.dumps(r))
                continue
            print(format_line(r, labels))
            if args.windows:
                first = min(labels, key=labels.get)
                per = " ".join(f"{v:.2f}" for v in r["per_window"])
                s = r["stability"]
                print(f"  {r['windows']} windows, P({first.capitalize()}) per window: {per}")
                print(f"  spread: std {s['std']:.3f}, min {s['min']:.3f}, max {s['max']:.3f}, "
                      f"{s['agree']:.0%} of windows agree with the whole text")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
