"""Who wrote it? The BERT judge and the n-gram baseline on exactly the same held-out passages (N3, N4, N5).

For each window length (64, 128 and 256 tokens, and 1,024 read as four windows) and each author, the
same evenly spaced passages of the author's held-out text go to both judges: BERT reads their token
ids, the naive Bayes their characters. Under the book split each whole chapter of the held-out book is
one passage too (`chapter_log_probs`): BERT reads every 256-token window of it and gives one answer.
Each judge gets a confusion matrix (N4), accuracy per author with its Wilson 95 % interval, and the
macro accuracy (chance = 1/N).

The judges together, a log-linear mix (a product of calibrated judges):

    log P_mix(a | x) = alpha log P_bert(a | x) + lambda log P_ngram(a | x) [+ mu log P_probe(a | x)] - log Z(x),
    alpha = 1 / T_bert, lambda = 1 / T_ngram, mu = 1 / T_probe,

each T a judge's own N7 temperature, fitted on passages of the validation text of the training books (never the
held-out book); where a judge is right on every one of them the fit says only that it was sure, and its T is set so
that its median validation passage is at odds 99:1 (`mix_temperature`). The naive Bayes sums thousands of n-gram
log-probabilities, so its log P spans hundreds of nats where BERT's spans a few: its T is large, and lambda puts
the two on one scale. The third judge, where the report has it, is the probe on a pretrained decoder's features
(model/feature_judge.py); it reads the passages of every length, not whole chapters (a chapter is thousands of the
decoder's tokens), so the chapters' mix is the first two. Why each judge's own T and not the weights that make the
mix's validation cross-entropy least: on validation text of the training books BERT is right more often than it is
on a new book (it learned those books), so a joint fit gave the other judges almost no weight, and the mix was BERT
(README, "Six authors": the joint fit and this rule on the same passages).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer

from data.corpus import AuthorTexts, chapters, count_tokens
from data.windows import Specials, heldout_passages, text_ids, text_tokens_per_window, text_windows, wrap_window
from eval.pages import CHAPTER, mix_weights_of, mix_weights_text, passages_name, with_interval
from eval.scoring import passage_log_probs
from model.feature_judge import FeatureJudge
from model.half import Precision
from model.ngram import NgramJudge
from eval.calibration import fit_temperature
from train.bert_judge import predict_logits
from train.metrics import confusion_matrix, macro_accuracy, wilson_interval

LENGTHS = (64, 128, 256, 1024)
WINDOW = 256  # a passage longer than this is read by BERT as consecutive windows of it, one answer for all
CHAPTER_WINDOWS = 4  # a piece of a book shorter than four windows (a contents line, a title page) is not a chapter


def judge_side(probs: torch.Tensor, labels: torch.Tensor, authors: list[str]) -> dict:
    """N4 for one judge: confusion, macro accuracy, and each author's accuracy with its Wilson 95 % interval."""
    confusion = confusion_matrix(probs.argmax(-1), labels, len(authors))
    per_author = {a: {"acc": row[i] / sum(row), "ci95": list(wilson_interval(row[i], sum(row))), "n": sum(row)}
                  for i, (a, row) in enumerate(zip(authors, confusion))}
    return {"confusion": confusion, "macro_acc": macro_accuracy(confusion), "per_author": per_author}


def windows_per_passage(length: int) -> int:
    """A passage of up to WINDOW tokens is one window; a longer one (1024) is length // WINDOW windows of WINDOW."""
    return 1 if length <= WINDOW else length // WINDOW


def passages(tok: Tokenizer, heldout: dict[str, str], length: int, per_author: int) -> tuple:
    """(BERT windows (n W, L), their passages' raw texts (n), labels (n,)): up to per_author evenly spaced passages per
    author, each cut into W = windows_per_passage(length) consecutive windows of L tokens ([CLS] ... [SEP] each)."""
    sp, xs, texts, ys = Specials.of(tok), [], [], []
    w = windows_per_passage(length)
    window = length if w == 1 else WINDOW
    text_tokens = w * text_tokens_per_window(window)  # of the whole passage
    for label, text in enumerate(heldout.values()):
        fits = len(tok.encode(text, add_special_tokens=False).ids) // text_tokens
        x, raw = heldout_passages(tok, text, text_tokens + 2, sp, min(per_author, fits))  # (n, text_tokens + 2)
        pieces = x[:, 1:-1].reshape(len(x) * w, text_tokens // w)  # each passage's text in W pieces
        xs.append(torch.stack([wrap_window(piece, sp) for piece in pieces]))  # (n W, window)
        texts += raw
        ys.append(torch.full((len(x),), label, dtype=torch.long))
    return torch.cat(xs), texts, torch.cat(ys)


MIX_TEMPERATURES = (0.05, 1e4)  # the range of each judge's T: the n-gram judge's log P spans hundreds of nats
VALIDATION_PASSAGES = 32  # per author, for the mix: one T per judge needs few, and the probe reads each in 0.1-0.3 s


def mixed_log_probs(judges: list[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """The judges' mix: log P_mix(a | x) = sum_j w_j log P_j(a | x) - log Z(x), from each judge's log P (n, N) and its
    weight w_j (alpha for BERT, lambda for the n-gram judge, mu for the probe)."""
    return torch.log_softmax(sum(w * log_p for w, log_p in zip(weights, judges)), dim=-1)


def margins(log_p: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How far each passage's author is ahead: log P(y | x) - max_{a != y} log P(a | x), (n, N) -> (n,); > 0 where
    the judge is right."""
    own = log_p.gather(1, labels[:, None])[:, 0]
    return own - log_p.scatter(1, labels[:, None], float("-inf")).max(dim=-1).values


SURE_NATS = math.log(99)  # a judge right on every validation passage: its median one at odds 99:1 (`mix_temperature`)


def mix_temperature(log_p: torch.Tensor, labels: torch.Tensor) -> float:
    """T_j of one judge for the mix: its own N7 temperature on validation passages (eval/calibration.py). Where the
    judge is right on every one of them, that fit runs to its bound (any smaller T fits better: it says only that the
    judge was sure, not how sure to make it), and a bound common to all judges weighs them by the scale of their log P,
    where the n-gram judge's spans hundreds of nats and BERT's a few (the mix was the n-gram judge's). There
    T_j = median margin / SURE_NATS instead: the judge's median validation passage at odds 99:1 against its runner-up."""
    t = fit_temperature(log_p.float(), labels, *MIX_TEMPERATURES)
    ahead = margins(log_p.double(), labels)
    if bool((ahead > 0).all()):
        return max(t, ahead.median().item() / SURE_NATS)
    return t


def mix_weights(judges: list[torch.Tensor], labels: torch.Tensor) -> tuple[float, ...]:
    """w_j = 1 / T_j: each judge's own temperature, fitted on validation passages (`mix_temperature`), so each
    judge's log P is as sure as that judge has earned on text it was not trained on, and the mix adds them."""
    return tuple(1 / mix_temperature(log_p, labels) for log_p in judges)


def mix_weights_for(result: dict, tokens: int) -> tuple[int, tuple[float, ...]]:
    """(length, (alpha, lambda[, mu])) of the mix fitted for passages nearest a text of `tokens` tokens, from a report's
    authorship table (`authorship`): the longest length fitted that is not longer than the text, else the shortest.
    ValueError where no length has a mix."""
    fitted = sorted(int(length) for length, r in result.items() if length.isdigit() and "mix" in r)
    if not fitted:
        raise ValueError("the judge's report has no mix of the two judges (its validation text held no passage)")
    length = max([n for n in fitted if n <= tokens], default=fitted[0])
    return length, mix_weights_of(result[str(length)])


def judges_log_probs(judge: torch.nn.Module, tok: Tokenizer, ngram: NgramJudge, texts: dict[str, str], length: int,
                     per_author: int, what: str, precision: Precision | None = None, probe: FeatureJudge | None = None
                     ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """([BERT log P (n, N), n-gram log P (n, N), and the probe's where given], labels (n,)) of the same passages of
    `texts` (author -> text): BERT reads their windows, the other two their raw text."""
    x, raw, y = passages(tok, texts, length, per_author)
    windows = predict_logits(judge, x, torch.ones_like(x), precision=precision,
                             desc=f"judge, {length}-token {what} passages").log_softmax(-1)
    bert = passage_log_probs(windows.view(len(y), windows_per_passage(length), -1))  # one answer per passage
    judges = [bert.double(), torch.from_numpy(ngram.log_probs(raw)).double()]
    if probe is not None:
        judges.append(probe.log_probs(raw, desc=f"probe, {length}-token {what} passages"))
    return judges, y


def chapter_log_probs(judge: torch.nn.Module, tok: Tokenizer, ngram: NgramJudge, heldout: dict[str, str],
                      precision: Precision | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(BERT log P (n, N), n-gram log P (n, N), labels (n,)) of every chapter of each author's held-out text
    (data/corpus.py:chapters) of at least CHAPTER_WINDOWS windows: BERT reads all its consecutive WINDOW-token windows
    and averages their log-probabilities (eval/scoring.py:passage_log_probs), the n-gram judge reads it whole.
    None where an author's held-out text has no such chapter."""
    sp, shortest = Specials.of(tok), CHAPTER_WINDOWS * text_tokens_per_window(WINDOW)
    xs, masks, sizes, raw, ys = [], [], [], [], []
    for label, text in enumerate(heldout.values()):
        for chapter in chapters(text):
            ids = text_ids(tok, chapter)
            if len(ids) >= shortest:
                x, mask = text_windows(ids, WINDOW, sp)  # (W, WINDOW) each: a chapter of 4 windows or more
                xs.append(x)
                masks.append(mask)
                sizes.append(len(x))
                raw.append(chapter)
                ys.append(label)
    if set(ys) != set(range(len(heldout))):
        return None
    windows = predict_logits(judge, torch.cat(xs), torch.cat(masks), precision=precision,
                             desc=f"judge, {len(ys)} whole chapters")
    bert = torch.stack([passage_log_probs(w) for w in windows.log_softmax(-1).split(sizes)])  # one answer a chapter
    return bert.double(), torch.from_numpy(ngram.log_probs(raw)).double(), torch.tensor(ys)


def authorship(judge: torch.nn.Module, tok: Tokenizer, books: dict[str, AuthorTexts], split: str, ngram: NgramJudge,
               lengths=LENGTHS, per_author: int = 64, precision: Precision | None = None,
               probe: FeatureJudge | None = None) -> dict:
    """The judges and their mix on the same held-out passages, for each window length.

    books: author -> its books split by `split` (data/corpus.py:author_books), in label order.
    {length: {"passages", "bert", "ngram", ("probe",) "mix", "mix_weights"}}; the mix's weights (each judge's 1 / T) are
    fitted on passages of the validation text (at most per_author, and VALIDATION_PASSAGES, per author). Under the
    book split, also {"chapter": ...}:
    every whole chapter of the held-out books (`chapter_log_probs`), BERT and the n-gram judge. precision: what BERT
    reads in (None: float32). probe: the third judge (model/feature_judge.py), or None for two."""
    authors, names = list(books), ["bert", "ngram"] + (["probe"] if probe is not None else [])
    heldout, validation = {a: t.heldout for a, t in books.items()}, {a: t.validation for a, t in books.items()}
    shortest = {part: min(count_tokens(t, tok) for t in texts.values()) for part, texts in
                (("held-out", heldout), ("validation", validation))}
    out, chapter_weights = {}, None
    for length in lengths:
        need = windows_per_passage(length) * text_tokens_per_window(min(length, WINDOW))  # text tokens per passage
        if shortest["held-out"] < need:
            continue  # an author's held-out text holds no passage this long
        judges, y = judges_log_probs(judge, tok, ngram, heldout, length, per_author, "held-out", precision, probe)
        out[str(length)] = {"passages": len(y), **{n: judge_side(j.exp(), y, authors) for n, j in zip(names, judges)}}
        if shortest["validation"] < need:
            continue  # an author's validation text holds no passage of this length: no mix
        fitted_on, y_fit = judges_log_probs(judge, tok, ngram, validation, length, min(per_author, VALIDATION_PASSAGES),
                                            "validation", precision, probe)
        weights = mix_weights(fitted_on, y_fit)
        out[str(length)].update(mix_weights=list(weights), mix=judge_side(mixed_log_probs(judges, weights).exp(), y,
                                                                          authors))
        chapter_weights = weights[:2]  # the chapters' mix (BERT and n-gram): their T on the longest validation passages
    chapter = chapter_log_probs(judge, tok, ngram, heldout, precision) if split == "book" else None  # a held-out book is whole
    if chapter is not None:
        out[CHAPTER] = chapter_side(*chapter, authors, chapter_weights)
    return out


def chapter_side(bert: torch.Tensor, nb: torch.Tensor, y: torch.Tensor, authors: list[str],
                 weights: list[float] | None) -> dict:
    """BERT and the n-gram judge on whole chapters, and their mix with their weights of the longest passages (the
    validation text is cut into passages, not chapters, so no weights are fitted on chapters)."""
    side = {"passages": len(y), "bert": judge_side(bert.exp(), y, authors), "ngram": judge_side(nb.exp(), y, authors)}
    if weights is not None:
        side.update(mix_weights=list(weights), mix=judge_side(mixed_log_probs([bert, nb], weights).exp(), y, authors))
    return side


JUDGE_NAMES = {"bert": "BERT", "ngram": "n-gram", "probe": "probe", "mix": "mix"}


def table_lines(result: dict, authors: list[str]) -> list[str]:
    """Per length: macro accuracy of each judge and of the mix, then each author's accuracy [95 % interval]."""
    lines = []
    for length, r in result.items():
        judges = [j for j in JUDGE_NAMES if j in r]
        macro = ", ".join(f"{JUDGE_NAMES[j]} {r[j]['macro_acc']:.3f}" for j in judges)
        weights = f" ({mix_weights_text(r)})" if "mix" in r else ""
        lines.append(f"{passages_name(length)} ({r['passages']}): macro accuracy {macro}{weights} "
                     f"(chance {1 / len(authors):.3f})")
        for a in authors:
            each = "   ".join(f"{JUDGE_NAMES[j]} {with_interval(r[j]['per_author'][a]['acc'], r[j]['per_author'][a]['ci95'])}"
                               for j in judges)
            lines.append(f"    {a:<8} {each}")
    return lines
