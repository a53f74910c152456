"""A probe first, then fine-tuning (LP-FT: Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution").

The course code puts a random head on BERT and trains everything at once. In the first steps such a head is wrong
about everything, its gradients into the encoder are large, and they reshape the pretrained features towards
whatever separates the *training books* fastest; a judge that must read a book it never saw pays for that. With
--probe n, the head first becomes a linear probe: a logistic regression (N1 + A3, with an L2 penalty) fitted on the
frozen encoder's features of n windows per author from the training books. Fine-tuning then starts from a head that
already separates the authors as well as the pretrained features allow, so the encoder moves less and in a more
useful direction (Kumar et al.: better out of distribution, as good in it). Measured on the six-author book split
(README, the same seeds with and without): at 1,024 tokens 0.904-0.958 -> 0.961-0.966, the weakest author at 256
tokens 0.59-0.80 -> 0.72-0.84, the mean at 256 tokens 0.882 -> 0.890, at 64 tokens from a point lower to three higher.

    probe_features(model, batches, precision)   the frozen features h (n, d) and labels (n,)
    probe_loss(head, h, y, l2)                 -(1/n) sum_i log softmax(W h_i + b)_{y_i} + l2 ||W||^2
    fit_probe(head, h, y)                      the head that minimises it (L-BFGS), in place
    start_with_probe(model, ...)               all three, for scripts/train_bert.py
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from tokenizers import Tokenizer

from data.windows import Specials, balanced_batch
from model.bert import BertClassifier
from model.feature_judge import BLOCK, FeatureJudge, Reader, passage_vectors
from model.half import Precision
from train.metrics import accuracy

PROBE_L2 = 1e-3  # the penalty keeps W finite where the features separate the authors completely (a few windows)
PROBE_SEED_OFFSET = 10_000  # the probe's windows come from a generator of their own: training batches stay the same


@torch.no_grad()
def probe_features(model: BertClassifier, batches, precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    """The vector the head reads (`BertClassifier.features`: the pooled [CLS] or the mean) for each window of `batches`
    ((x, mask, y) each), in eval mode (no dropout): features (n, d) in float32 and labels (n,)."""
    was_training = model.training
    model.eval()
    features, labels = [], []
    for x, mask, y in batches:
        with precision.autocast():
            features.append(model.features(x.to(precision.device), mask.to(precision.device)).float())
        labels.append(y.to(precision.device))
    model.train(was_training)
    return torch.cat(features), torch.cat(labels)


def probe_loss(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, l2: float) -> torch.Tensor:
    """N1 + A3 on frozen features, penalised: L = -(1/n) sum_i log softmax(W h_i + b)_{y_i} + l2 ||W||^2."""
    # A3 is PyTorch's fused cross_entropy here (train/metrics.py:cross_entropy writes it out: the same loss to the last
    # digits, but L-BFGS's 500 steps carry a last-digit difference into the head, and the README's runs used this one)
    return F.cross_entropy(head(features), labels) + l2 * head.weight.pow(2).sum()


def fit_probe(head: nn.Linear, features: torch.Tensor, labels: torch.Tensor, l2: float = PROBE_L2) -> float:
    """N1 + A3, a probe first: W, b = argmin probe_loss, by L-BFGS from the head's own weights (the loss is convex: any
    start gives the same minimum); the head is changed in place. Returns the probe's accuracy (A11) on the windows it
    was fitted on."""
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = probe_loss(head, features, labels, l2)
        loss.backward()
        return loss

    optimizer.step(closure)
    head.zero_grad(set_to_none=True)
    with torch.no_grad():
        return accuracy(head(features), labels)


def start_with_probe(model: BertClassifier, train_ids: dict, per_author: int, windows: int, length: int,
                     specials: Specials, seed: int, precision: Precision) -> dict:
    """N1 + A3, a probe first (LP-FT): the head fitted as a probe on `windows` training windows per author (drawn as the
    training batches are, in batches of `per_author` per author: rounded up to whole batches). Returns what to record:
    the windows in all, the probe's accuracy on them."""
    rng = torch.Generator().manual_seed(seed + PROBE_SEED_OFFSET)
    n_authors = len(train_ids)
    batches = [balanced_batch(train_ids, per_author * n_authors, length, rng, specials)
               for _ in range(math.ceil(windows / per_author))]
    features, labels = probe_features(model, batches, precision)
    return {"windows": len(labels), "accuracy": fit_probe(model.head, features, labels)}


# ----------------------------------------------------------------------------- the same fit for a third judge
# model/feature_judge.py: a probe on a pretrained decoder's frozen features, never fine-tuned.

PASSAGE_TOKENS = 256  # a training passage of the feature judge, in the decoder's tokens
PER_AUTHOR = 96  # its training passages of each author (of 256 tokens: about a minute on 2 cores for six authors)


def training_passages(tok: Tokenizer, books: dict[str, str], count: int) -> list[str]:
    """`count` passages of PASSAGE_TOKENS tokens from an author's books (name -> text), as many from each book
    (the first books get one more where count does not divide), evenly spaced within it."""
    out = []
    for k, text in enumerate(books.values()):
        share = count // len(books) + (k < count % len(books))
        enc = tok.encode(text)
        fits = max(1, len(enc.ids) - PASSAGE_TOKENS)
        for j in range(share):
            start = j * fits // max(1, share)
            end = min(start + PASSAGE_TOKENS, len(enc.ids)) - 1
            out.append(text[enc.offsets[start][0]:enc.offsets[end][1]])
    return out


def train_feature_judge(reader: Reader, books: dict[str, dict[str, str]], per_author: int = PER_AUTHOR,
                        block: int = BLOCK) -> FeatureJudge:
    """N1 on a decoder's features: the probe fitted on `per_author` training passages of each author (books: author ->
    book name -> text)."""
    vectors = [passage_vectors(reader, training_passages(reader.tok, b, per_author), (block,), f"probe, {a}'s books")[:, 0]
               for a, b in books.items()]
    y = torch.cat([torch.full((len(v),), i) for i, v in enumerate(vectors)])
    mean, spread, head = fit_standardised_probe(torch.cat(vectors), y, len(books))
    return FeatureJudge(list(books), mean, spread, head.weight.detach().clone(), head.bias.detach().clone(), block,
                        reader.name, reader=reader)


def fit_standardised_probe(x: torch.Tensor, y: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor, nn.Linear]:
    """(m, s, head): the features' mean and spread, and the probe fitted on (x - m) / s (standardised: one L2 penalty
    then suits every feature, whatever its scale)."""
    mean, spread = x.mean(0), x.std(0) + 1e-6
    head = nn.Linear(x.shape[1], classes)
    fit_probe(head, (x - mean) / spread, y)
    return mean, spread, head
