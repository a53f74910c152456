"""Why the judge decides (E1, E2): which words push its logit of an author up, and which push it down.

E1 integrated gradients (Sundararajan et al. 2017): walk the token embeddings e of a window in a
straight line from a baseline e' to the text's own, and add up the gradient of the judge's logit z_a
along the way:

    IG_i = (e_i - e'_i) . (1/m) sum_{k=1..m} dz_a(e' + (k/m)(e - e')) / de_i      (summed over the d dimensions)

Completeness: sum_i IG_i = z_a(e) - z_a(e') as m grows, so the attributions split the logit's change
between the tokens, and nothing is left over. The baseline here is "a window without words": every text
token's embedding replaced by [PAD]'s, with [CLS], [SEP], the positions and the attention mask kept (so
the special tokens get exactly 0).

E2 occlusion, the plain twin: Delta_i = z_a(x) - z_a(x with word i replaced by [MASK]), one forward pass
per word. It needs no gradient and says the same thing in a cruder way; the two agree on the sign of the
words that matter most (tests/test_attribution.py).

The path integral: E1 as written is the right Riemann sum (`riemann_points`, the plain rule). The
programs use Gauss-Legendre points on [0, 1] (`gauss_points`, Captum's default): the same integral,
whose error falls much faster with m on a smooth path like this one. Completeness is also the check:
`explain` starts at m = DEFAULT_STEPS and doubles m until the attributions add up to the logit's change
within TOLERANCE (32 points are enough for most passages of a trained judge; some need 64, where the
Riemann sum needs hundreds; tested).

A text longer than one window is cut into windows as `scripts.classify` cuts it (eval/scoring.py); each
token is attributed for its own window's logit. Tokens are merged back into the tokenizer's words
(`word_spans`: "curiouser" is one word of three WordPiece tokens, whose attributions add up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer

from data.windows import Specials, text_ids, text_tokens_per_window, text_windows
from eval.scoring import check_known_words, passage_log_probs

DEFAULT_STEPS = 32  # Gauss-Legendre points to start with (about 1.7 s for a 256-token window on 2 cores)
MAX_STEPS = 256  # doubling stops here even if completeness is not reached (said in the Explanation)
TOLERANCE = 1e-3  # E1's completeness, per window: |sum_i IG_i - (z_a(e) - z_a(e'))|
ROWS_PER_PASS = 32  # path points (x windows) run through the judge together
METHODS = ("ig", "occlusion")


@dataclass
class Word:
    """One word of the text: its characters [start, end) and its attribution (the sum over its tokens)."""

    text: str
    start: int
    end: int
    score: float


@dataclass
class Explanation:
    """What the judge decided about a text, and why (E1 or E2)."""

    author: str  # the author explained: the judge's pick unless one was asked for
    probs: dict[str, float]  # P(author | text) for every author (eval/scoring.py:passage_log_probs)
    words: list[Word]  # in text order
    method: str  # "ig" or "occlusion"
    window_probs: list[float]  # P(author | window) of each window
    logit_change: float  # sum over windows of z_a(text) - z_a(baseline) (E1; nan for occlusion)
    attribution_sum: float  # sum of every word's attribution (E1: = logit_change up to the integral's error)
    steps: int = 0  # E1's m: the Gauss-Legendre points it took to reach TOLERANCE (0 for occlusion)


# ----------------------------------------------------------------------------- E1


def riemann_points(m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """E1's right Riemann sum: points alpha_k = k/m (k = 1..m) on the path, each with weight 1/m."""
    return torch.arange(1, m + 1, dtype=torch.float64) / m, torch.full((m,), 1.0 / m, dtype=torch.float64)


def gauss_points(m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fast twin: Gauss-Legendre points and weights for integrals over [0, 1] (exact for polynomials of degree
    2m - 1). numpy gives them on [-1, 1]: alpha = (x + 1) / 2, weight = w / 2."""
    x, w = np.polynomial.legendre.leggauss(m)
    return torch.from_numpy((x + 1) / 2), torch.from_numpy(w / 2)


RULES = {"riemann": riemann_points, "gauss": gauss_points}


def baseline_windows(x: torch.Tensor, sp: Specials) -> torch.Tensor:
    """E1's baseline e': every text token of the windows x (W, L) replaced by [PAD]; [CLS], [SEP], [PAD] kept."""
    special = (x == sp.cls) | (x == sp.sep) | (x == sp.pad)
    return torch.where(special, x, torch.full_like(x, sp.pad))


def integrated_gradients(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, label: int,
                         baseline: torch.Tensor, steps: int = DEFAULT_STEPS, rule: str = "gauss") -> torch.Tensor:
    """E1: IG_i = (e_i - e'_i) . (1/m) sum_{k=1..m} dz_a(e' + (k/m)(e - e'))/de_i, summed over the embedding dimension.

    x, mask, baseline: (W, L) windows, their attention mask and the baseline's ids; label: a. Returns the
    attributions (W, L), float32; `rule` picks the points on the path ("riemann": E1's k/m, "gauss": Gauss-Legendre).
    """
    alphas, weights = RULES[rule](steps)
    emb = model.bert.word_emb
    with torch.no_grad():
        e, e0 = emb(x).double(), emb(baseline).double()  # (W, L, d): the path's two ends
    W = len(x)
    gradient_sum = torch.zeros_like(e)  # (W, L, d): sum_k weight_k dz_a/de at point k
    points = [(k, w) for k in range(steps) for w in range(W)]  # every (path point, window) pair: one row
    for s in range(0, len(points), ROWS_PER_PASS):
        chunk = points[s : s + ROWS_PER_PASS]
        ks, ws = torch.tensor([k for k, _ in chunk]), torch.tensor([w for _, w in chunk])
        a = alphas[ks].view(-1, 1, 1)
        on_path = (e0[ws] + a * (e[ws] - e0[ws])).float().requires_grad_(True)  # (rows, L, d)
        z = model(x[ws], mask[ws], word_vectors=on_path)[:, label]  # (rows,)
        (grad,) = torch.autograd.grad(z.sum(), on_path)  # each row's z depends on its own row only
        gradient_sum.index_add_(0, ws, grad.double() * weights[ks].view(-1, 1, 1))
    return ((e - e0) * gradient_sum).sum(-1).float()  # (W, L)


# ----------------------------------------------------------------------------- E2


def occlusion(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, label: int,
              groups: list[list[tuple[int, int]]], mask_id: int) -> torch.Tensor:
    """E2: Delta_i = z_a(x) - z_a(x with word i replaced by [MASK]), for each group of (window, position) token
    places (a word's tokens; a word cut by a window's edge touches two windows, whose changes add up). -> (n_groups,)"""
    with torch.no_grad():
        z = model(x, mask)[:, label]  # (W,)
        rows, owner = [], []  # one occluded window per (word, window it touches)
        for i, places in enumerate(groups):
            for w in sorted({w for w, _ in places}):
                row = x[w].clone()
                row[[p for ww, p in places if ww == w]] = mask_id
                rows.append((w, row))
                owner.append(i)
        delta = torch.zeros(len(groups), dtype=torch.float64)
        for s in range(0, len(rows), ROWS_PER_PASS):
            ws = torch.tensor([w for w, _ in rows[s : s + ROWS_PER_PASS]])
            occluded = torch.stack([r for _, r in rows[s : s + ROWS_PER_PASS]])
            change = z[ws] - model(occluded, mask[ws])[:, label]  # (rows,)
            delta.index_add_(0, torch.tensor(owner[s : s + ROWS_PER_PASS]), change.double())
    return delta.float()


# ----------------------------------------------------------------------------- tokens -> words


def word_spans(tok: Tokenizer, text: str) -> list[tuple[int, int, list[int]]]:
    """The text's words as (start, end, token indices): consecutive tokens of one pre-tokenized word merged, their
    characters [start, end) read from the tokenizer's offsets (so a normaliser's lower-casing does not matter)."""
    enc = tok.encode(text, add_special_tokens=False)
    spans: list[tuple[int, int, list[int]]] = []
    previous = None
    for i, (word, (start, end)) in enumerate(zip(enc.word_ids, enc.offsets)):
        if spans and word is not None and word == previous:
            s, _, tokens = spans[-1]
            spans[-1] = (s, end, tokens + [i])
        else:
            spans.append((start, end, [i]))
        previous = word
    return spans


def token_places(indices: list[int], per_window: int) -> list[tuple[int, int]]:
    """Where text token n sits in the windows of `text_windows`: window n // per_window, after its [CLS]."""
    return [(n // per_window, 1 + n % per_window) for n in indices]


# ----------------------------------------------------------------------------- one text, explained


def explain(model: torch.nn.Module, tok: Tokenizer, text: str, length: int, labels: list[str],
            author: str | None = None, method: str = "ig", steps: int = DEFAULT_STEPS) -> Explanation:
    """P(author | text) for every author, and each word's push towards `author` (the judge's pick if None)."""
    if method not in METHODS:
        raise ValueError(f"method {method!r}: choose one of {METHODS}")
    if author is not None and author not in labels:
        raise ValueError(f"author {author!r} is not one of this judge's: {', '.join(labels)}")
    ids, spans = text_ids(tok, text), word_spans(tok, text)  # the same encoding: spans index into ids
    if len(ids) == 0:
        raise ValueError("empty text: nothing to explain (give some words)")
    check_known_words(ids, tok)
    sp = Specials.of(tok)
    x, mask = text_windows(ids, length, sp)  # (W, L)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        log_probs = torch.log_softmax(model(x, mask).float(), dim=-1)  # (W, C)
    whole = passage_log_probs(log_probs).exp()
    label = labels.index(author) if author is not None else int(whole.argmax())
    per_window = text_tokens_per_window(length)
    groups = [token_places(tokens, per_window) for _, _, tokens in spans]
    if method == "ig":
        scores, change, steps = complete_attributions(model, x, mask, label, baseline_windows(x, sp), steps)
        word_scores = [sum(float(scores[w, p]) for w, p in places) for places in groups]
    else:
        word_scores = occlusion(model, x, mask, label, groups, tok.token_to_id("[MASK]")).tolist()
        change, steps = float("nan"), 0
    model.train(was_training)
    words = [Word(text[s:e], s, e, score) for (s, e, _), score in zip(spans, word_scores)]
    return Explanation(labels[label], {a: float(whole[i]) for i, a in enumerate(labels)}, words, method,
                       log_probs[:, label].exp().tolist(), change, float(sum(word_scores)), steps)


def complete_attributions(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, label: int,
                          baseline: torch.Tensor, steps: int) -> tuple[torch.Tensor, float, int]:
    """E1 with m doubled from `steps` until every window's attributions add up to its logit's change within
    TOLERANCE (or m reaches MAX_STEPS): (attributions (W, L), total change, m used)."""
    with torch.no_grad():
        change = model(x, mask)[:, label] - model(baseline, mask)[:, label]  # (W,): z_a(e) - z_a(e')
    while True:
        scores = integrated_gradients(model, x, mask, label, baseline, steps)
        gap = (scores.sum(-1) - change).abs().max()
        if gap <= TOLERANCE or steps >= MAX_STEPS:
            return scores, float(change.sum()), steps
        steps *= 2


def strongest(words: list[Word], n: int = 5) -> tuple[list[Word], list[Word]]:
    """The n words that push most towards the author (largest positive scores) and most away (most negative)."""
    ranked = sorted(words, key=lambda w: w.score)
    return [w for w in reversed(ranked[-n:]) if w.score > 0], [w for w in ranked[:n] if w.score < 0]
