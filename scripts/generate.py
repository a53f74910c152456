"""Sample from any GPT-Neo folder with the lecture's sampler: `python -m scripts.generate FOLDER`.

    python -m scripts.generate runs/coevolve/latest/generators/alice
    python -m scripts.generate neo-small --prompt "The Queen said" --tokens 64 --rows 3 --seed 1
    python -m scripts.generate runs/coevolve/latest/generators/alice --judge runs/judge/latest/hf

FOLDER is a Hugging Face GPT-Neo folder (ours, the pretrained base, or one from the hub) or a
weights-store name. The defaults are the lecture's: 512 new tokens (4 x 128, B8) after one random
start token from the first half of the vocabulary (B7), the whitespace and end-of-text tokens banned
(B9), repetition penalty 1.3 (B10, in the lecture's form; --penalty-mode hf for the library's rule),
top-k 50, temperature 1. With --judge each text is followed by P(author) for every author of that
judge, computed as `python -m scripts.classify` computes it.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import json
import sys


from eval.scoring import classify
from model.decoder import Decoder, load_decoder
from model.sampler import PENALTY_MODES, Sampling, bad_token_mask
from plumbing.cli import run_program
from plumbing.config import ConfigError
from plumbing.generators import sample_texts
from plumbing.judges import load_bert_judge
from tokenizer_bridge.load import load_neo_tokenizer
from weights.store import resolve


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scripts.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="a GPT-Neo folder or a weights-store name")
    p.add_argument("--prompt", help="text to continue (default: one random start token per row, as the lecture)")
    p.add_argument("--tokens", type=int, default=512, help="new tokens per row (default: 512 = 4 x 128)")
    p.add_argument("--rows", type=int, default=4, help="texts to write (default: 4)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=50, help="0: sample from every token")
    p.add_argument("--repetition-penalty", type=float, default=1.3, help="r of B10, >= 1 (1: no penalty)")
    p.add_argument("--penalty-mode", choices=PENALTY_MODES, default="lecture")
    p.add_argument("--allow-whitespace-tokens", action="store_true", help="do not ban the B9 tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge", help="a judge folder or run folder: print P(author) of each text")
    p.add_argument("--json", action="store_true", help='one JSON line per text: {"text": ..., "probs": {...}}')
    args = p.parse_args(argv)
    if args.rows < 1 or args.tokens < 1:
        raise ConfigError("--rows and --tokens must be at least 1")
    return args


def write(model: Decoder, tok, args: argparse.Namespace) -> list[str]:
    """The rows' texts (without the random start token, which the lecture drops too)."""
    bad = None if args.allow_whitespace_tokens else bad_token_mask(tok, model.config.vocab_size)  # B9
    settings = Sampling(temperature=args.temperature, top_k=args.top_k, repetition_penalty=args.repetition_penalty,
                        penalty_mode=args.penalty_mode, bad_mask=bad)
    show = "generate" if args.tokens * args.rows > 2000 else None
    return sample_texts(model, tok, args.prompt, args.rows, args.tokens, settings, args.seed, desc=show).texts


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    folder = resolve(args.folder)
    model, tok = load_decoder(folder), load_neo_tokenizer(folder)
    judge = load_bert_judge(args.judge) if args.judge else None
    for i, text in enumerate(write(model, tok, args)):
        probs = None
        if judge is not None:
            model_j, tok_j, info = judge
            probs = classify(model_j, tok_j, text, info.get("eval_length", 256), info["labels"])["probs"]
        if args.json:
            print(json.dumps({"text": text, **({"probs": probs} if probs else {})}))
            continue
        scores = "  ".join(f"P({a.capitalize()})={p:.3f}" for a, p in probs.items()) if probs else ""
        print(f"--- text {i + 1} {scores}".rstrip() + f" ---\n{text}\n")


def main(argv: list[str] | None = None) -> int:
    return run_program(run, argv)


if __name__ == "__main__":
    sys.exit(main())
