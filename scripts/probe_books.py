"""Which frozen features name the author of a book they never saw? `python -m scripts.probe_books`.

An experiment for the six-author judge (README, "Six authors"). For each fold, each author of the table has one
book held out; a linear probe (train/probe.py:fit_probe: N1 + A3 with an L2 penalty, on standardised features)
is fitted on frozen features of passages of the author's other books, and reads passages of the held-out one.
Macro accuracy over the authors (chance 1/6), each author's accuracy. The features of a passage:

    minilm          the mean of MiniLM's last hidden states (the judge's own pooling, N1 mean-pooled), not fine-tuned
    smollm2 l       the mean of SmolLM2-135M's residual stream after block l, over the passage's tokens from the
                    SKIP-th on (model/feature_judge.py:passage_vectors: the report's third judge reads block 16)

Fold k holds out the k-th book of (the table's held-out book, then the training books in the table's order):
fold 1 is `--split book`'s own; folds 2 and 3 are the README's estimates of a book never seen. The passages are
PER_BOOK evenly spaced 256-token windows of each whole book (data/windows.py:heldout_passages, the judge's
tokens; the decoder reads the same text). A probe trains on as many passages of each author (evenly taken
from its training books), so no author is favoured by having more books.

With --judge K=RUN (a judge trained with fold K's books held out, such as the README's runs with folder
authors), that judge's log-probabilities on the same held-out passages too, and the judge and the probe
together: log P(a | x) = log P_judge(a | x) + log P_probe(a | x) - log Z(x) (both weights 1: not fitted), for the
probes of the blocks --with-judge names (8 and 16 unless told).

Writes runs/probe_books/<time>/probe_books.json and prints the table. About 5 minutes on 2 cores (SmolLM2's
forward over 1,760 passages up to its last block asked for, in bfloat16 where the machine measures it faster).
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import sys
import time

import torch
from tqdm import tqdm

from data.authors import AUTHORS, BUILT_IN, split_books
from data.corpus import load_book
from data.windows import Specials, heldout_passages
from model.bert import Bert, mean_pool
from model.feature_judge import SKIP, passage_vectors
from plumbing.atomic import atomic_write_json
from plumbing.cli import run_program
from plumbing.judges import FEATURE_BASE, load_bert_judge, load_reader
from plumbing.precision import choose_precision
from plumbing.runs import runs_root
from tokenizer_bridge.load import load_bert_tokenizer
from train.bert_judge import predict_logits
from train.metrics import confusion_matrix, macro_accuracy
from train.probe import fit_standardised_probe
from weights.store import resolve

PER_BOOK = 80  # passages of each book
LENGTH = 256  # tokens of a passage (the judge's), as the judges' table at 256 tokens
LAYERS = (4, 8, 12, 16, 20, 24, 30)  # SmolLM2's blocks whose output is read
BATCH = 16


def fold_books(fold: int) -> dict[str, tuple[list, object]]:
    """author -> (its training books, its held-out book) for fold k (1-based; see the module docstring)."""
    out = {}
    for author in BUILT_IN:
        training, heldout = split_books(author, "book")
        order = [heldout, *training]
        if not 1 <= fold <= len(order):
            raise ValueError(f"fold {fold}: {author} has {len(order)} books, so folds 1 to {len(order)}")
        out[author] = ([b for b in order if b != order[fold - 1]], order[fold - 1])
    return out


def book_passages(bert_tok) -> dict[object, tuple[torch.Tensor, list[str]]]:
    """Every book of the table: (its PER_BOOK passages as judge windows (n, LENGTH), their raw texts)."""
    books = [b for a in BUILT_IN for b in (*AUTHORS[a].books, *AUTHORS[a].more_books)]
    sp = Specials.of(bert_tok)
    return {b: heldout_passages(bert_tok, load_book(b), LENGTH, sp, PER_BOOK) for b in tqdm(books, desc="books")}


@torch.no_grad()
def minilm_features(bert: Bert, windows: torch.Tensor, precision) -> torch.Tensor:
    """(n, d): the mean of MiniLM's last hidden states of each window."""
    out = []
    for s in range(0, len(windows), BATCH):
        x = windows[s:s + BATCH]
        mask = torch.ones_like(x)
        with precision.autocast():
            hidden, _ = bert(x, mask)
        out.append(mean_pool(hidden.float(), mask))
    return torch.cat(out)


def balanced_training_set(features: dict, books: dict[str, tuple[list, object]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (n, d), labels (n,)) of the training books of each author: as many passages per author (the fewest
    any author has), evenly taken from its books' passages."""
    per_author = {a: torch.cat([features[b] for b in training]) for a, (training, _) in books.items()}
    n = min(len(f) for f in per_author.values())
    xs = [f[torch.linspace(0, len(f) - 1, n).round().long()] for f in per_author.values()]
    return torch.cat(xs), torch.arange(len(xs)).repeat_interleave(n)


def probe_log_probs(features: dict, books: dict[str, tuple[list, object]]) -> dict[str, torch.Tensor]:
    """author -> log P_probe (n, N) of its held-out book's passages, the probe fitted on the training books."""
    mean, spread, head = fit_standardised_probe(*balanced_training_set(features, books), len(books))
    with torch.no_grad():
        return {a: head((features[heldout] - mean) / spread).log_softmax(-1) for a, (_, heldout) in books.items()}


def accuracies(log_probs: dict[str, torch.Tensor]) -> dict:
    """N4's macro accuracy (chance 1/N) and each author's accuracy, from the confusion matrix of the passages (author
    i's passages are right where argmax = i)."""
    labels = torch.cat([torch.full((len(lp),), i) for i, lp in enumerate(log_probs.values())])
    confusion = confusion_matrix(torch.cat([lp.argmax(-1) for lp in log_probs.values()]), labels, len(log_probs))
    return {"macro": macro_accuracy(confusion),
            "per_author": {a: row[i] / sum(row) for i, (a, row) in enumerate(zip(log_probs, confusion))}}


def judge_log_probs(run: str, passages: dict, books: dict, precision) -> dict[str, torch.Tensor]:
    """author -> log P_judge (n, N) of its held-out book's passages, for a judge of the table's authors in its order."""
    judge, _, info = load_bert_judge(run)
    if len(info["labels"]) != len(books):
        raise ValueError(f"{run}: a judge of {len(info['labels'])} authors ({', '.join(info['labels'])}); this "
                         f"experiment needs one of the table's {len(books)}, in its order ({', '.join(books)})")
    out = {}
    for a, (_, heldout) in books.items():
        x = passages[heldout][0]
        out[a] = predict_logits(judge, x, torch.ones_like(x), precision=precision).log_softmax(-1)
    return out


def parse_judges(items: list[str]) -> dict[int, str]:
    """["2=runs/x", ...] -> {2: "runs/x"}."""
    out = {}
    for item in items:
        fold, _, run = item.partition("=")
        if not fold.isdigit() or not run:
            raise ValueError(f"--judge {item!r}: give FOLD=RUN, e.g. --judge 1=runs/judge/latest")
        out[int(fold)] = run
    return out


def table(results: dict) -> list[str]:
    """One line per fold and features: macro accuracy, then each author's."""
    lines = []
    for fold, rows in results.items():
        for name, r in rows.items():
            each = " ".join(f"{a} {v:.2f}" for a, v in r["per_author"].items())
            lines.append(f"fold {fold}  {name:<22} {r['macro']:.3f}   {each}")
    return lines


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.probe_books", description=__doc__.split("\n\n")[0])
    p.add_argument("--folds", type=int, default=3, help="how many folds (default 3: every author has 3 books or more)")
    p.add_argument("--judge", action="append", default=[], metavar="FOLD=RUN",
                   help="a judge trained with that fold's books held out, read beside the probes (repeatable)")
    p.add_argument("--with-judge", type=int, nargs="+", default=[8, 16], choices=LAYERS, metavar="BLOCK",
                   help="the blocks whose probe is also read together with each judge (default 8 16)")
    p.add_argument("--runs-dir", help="runs folder (default $ALICE_EDGAR_RUNS or <repo>/runs)")
    args = p.parse_args(argv)
    judges = parse_judges(args.judge)
    folds = {k: fold_books(k) for k in range(1, args.folds + 1)}
    started = time.time()
    precision = choose_precision(torch.device("cpu"))
    print(f"features read in {precision.name} ({precision.reason})", file=sys.stderr)
    bert_tok = load_bert_tokenizer(resolve("minilm"))
    passages = book_passages(bert_tok)
    bert = Bert.from_pretrained(resolve("minilm")).eval()
    minilm = {b: minilm_features(bert, x, precision) for b, (x, _) in tqdm(passages.items(), desc="MiniLM")}
    reader = load_reader(FEATURE_BASE, precision)
    smol = {b: passage_vectors(reader, texts, LAYERS) for b, (_, texts) in tqdm(passages.items(), desc="SmolLM2")}
    results = {}
    for k, books in folds.items():
        rows = {"minilm": probe_log_probs(minilm, books)}
        rows |= {f"smollm2 {layer}": probe_log_probs({b: f[:, i] for b, f in smol.items()}, books)
                 for i, layer in enumerate(LAYERS)}
        if k in judges:
            rows["judge"] = judge_log_probs(judges[k], passages, books, precision)
            for layer in args.with_judge:
                probe = rows[f"smollm2 {layer}"]
                rows[f"judge + smollm2 {layer}"] = {a: (rows["judge"][a] + probe[a]).log_softmax(-1) for a in books}
        results[k] = {name: accuracies(lp) for name, lp in rows.items()}
    out = runs_root(args.runs_dir) / "probe_books" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "probe_books.json", {
        "folds": {k: {a: {"train": [str(b) for b in tr], "heldout": str(h)} for a, (tr, h) in books.items()}
                  for k, books in folds.items()},
        "judges": judges, "per_book": PER_BOOK, "length": LENGTH, "skip": SKIP, "precision": precision.describe(),
        "seconds": time.time() - started, "results": results})
    print("\n".join(table(results)))
    print(f"written: {out / 'probe_books.json'} ({time.time() - started:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    return run_program(run, argv)


if __name__ == "__main__":
    sys.exit(main())
