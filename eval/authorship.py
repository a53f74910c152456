"""Who wrote it? The BERT judge and the n-gram baseline on exactly the same held-out passages (N3, N4, N5).

For each window length (64, 128 and 256 tokens) and each author, the same evenly spaced passages of
the author's held-out text go to both judges: BERT reads their token ids, the naive Bayes their
characters. Each judge gets a confusion matrix (N4), accuracy per author with its Wilson 95 %
interval, and the macro accuracy (chance = 1/N).
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer

from data.corpus import author_texts
from data.windows import Specials, heldout_passages, text_tokens_per_window
from eval.pages import with_interval
from model.ngram import NgramJudge
from train.bert_judge import predict_logits
from train.metrics import confusion_matrix, macro_accuracy, wilson_interval

LENGTHS = (64, 128, 256)


def judge_side(probs: torch.Tensor, labels: torch.Tensor, authors: list[str]) -> dict:
    """N4 for one judge: confusion, macro accuracy, and each author's accuracy with its Wilson 95 % interval."""
    confusion = confusion_matrix(probs.argmax(-1), labels, len(authors))
    per_author = {a: {"acc": row[i] / sum(row), "ci95": list(wilson_interval(row[i], sum(row))), "n": sum(row)}
                  for i, (a, row) in enumerate(zip(authors, confusion))}
    return {"confusion": confusion, "macro_acc": macro_accuracy(confusion), "per_author": per_author}


def passages(tok: Tokenizer, heldout: dict[str, str], length: int, per_author: int) -> tuple:
    """(BERT windows (n, length), their raw texts, labels (n,)): up to per_author evenly spaced ones per author."""
    sp, xs, texts, ys = Specials.of(tok), [], [], []
    for label, text in enumerate(heldout.values()):
        fits = len(tok.encode(text, add_special_tokens=False).ids) // text_tokens_per_window(length)
        x, raw = heldout_passages(tok, text, length, sp, min(per_author, fits))
        xs.append(x)
        texts += raw
        ys.append(torch.full((len(x),), label, dtype=torch.long))
    return torch.cat(xs), texts, torch.cat(ys)


def authorship(judge: torch.nn.Module, tok: Tokenizer, authors: list[str], split: str, ngram: NgramJudge,
               lengths=LENGTHS, per_author: int = 64) -> dict:
    """Both judges on the same held-out passages, for each window length. {length: {"bert": ..., "ngram": ...}}."""
    heldout = {a: author_texts(a, split, tok)[1] for a in authors}
    out = {}
    for length in lengths:
        x, texts, y = passages(tok, heldout, length, per_author)
        bert = predict_logits(judge, x, torch.ones_like(x), desc=f"judge, {length}-token passages").softmax(-1)
        nb = torch.from_numpy(ngram.probabilities(texts))
        out[str(length)] = {"passages": len(y), "bert": judge_side(bert, y, authors), "ngram": judge_side(nb, y, authors)}
    return out


def table_lines(result: dict, authors: list[str]) -> list[str]:
    """Per length: macro accuracy of both judges, then each author's accuracy [95 % interval]."""
    lines = []
    for length, r in result.items():
        b, n = r["bert"], r["ngram"]
        lines.append(f"{length}-token passages ({r['passages']}): macro accuracy BERT {b['macro_acc']:.3f}, "
                     f"n-gram {n['macro_acc']:.3f} (chance {1 / len(authors):.3f})")
        for a in authors:
            pb, pn = b["per_author"][a], n["per_author"][a]
            lines.append(f"    {a:<8} BERT {with_interval(pb['acc'], pb['ci95'])}   "
                         f"n-gram {with_interval(pn['acc'], pn['ci95'])}")
    return lines
