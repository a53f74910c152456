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
programs use Clenshaw-Curtis points (`clenshaw_curtis_points`): the same integral, whose error falls much
faster with the number of points on a smooth path, and whose points are nested (the n + 1 points of n
intervals are every other point of 2n, so refining keeps every gradient already computed).

Along this path the judge's logit does not change evenly: it stays nearly flat, then climbs or falls
steeply over a tenth of the path, then flattens again (for MiniLM judges, around alpha = 0.4). Points spread
over the whole path are wasted on the flat parts. Completeness holds on every piece of the path, not only
on the whole of it:

    sum_i (integral from a to b of the summand of token i) = z_a(path at b) - z_a(path at a)

and every point's forward pass gives z there for free. So `complete_attributions` cuts the path into
PIECES equal pieces with Simpson's rule on each (3 points, the ends shared), measures each piece's gap
between its sum and its logit's change, and doubles the points of the piece with the largest gap (nested
Clenshaw-Curtis: its points are kept) until the whole path's gap is within TOLERANCE in every window. The
points end up where the logit moves: 15-31 points for the 256-token passages of a trained judge measured here,
where Clenshaw-Curtis on the whole path needed 33-65 (tested: token by token the attributions are those of 65
Clenshaw-Curtis points over the whole path, which the plain Riemann sum agrees with).

A text longer than one window is cut into windows as `scripts.classify` cuts it (eval/scoring.py); each
token is attributed for its own window's logit. Tokens are merged back into the tokenizer's words
(`word_spans`: "curiouser" is one word of three WordPiece tokens, whose attributions add up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from data.windows import Specials, text_ids, text_tokens_per_window, text_windows
from eval.scoring import check_known_words, passage_log_probs

PIECES = 4  # the path starts as 4 equal pieces, Simpson's rule on each: 9 points
MAX_POINTS = 257  # refining stops here even if completeness is not reached (the Explanation gives both sums)
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
    steps: int = 0  # E1's m: the points on the path it took to reach TOLERANCE (0 for occlusion)


# ----------------------------------------------------------------------------- E1


def riemann_points(m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """E1's right Riemann sum: points alpha_k = k/m (k = 1..m) on the path, each with weight 1/m."""
    return torch.arange(1, m + 1, dtype=torch.float64) / m, torch.full((m,), 1.0 / m, dtype=torch.float64)


def clenshaw_curtis_points(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fast twin: the n + 1 Clenshaw-Curtis points alpha_j = (1 - cos(j pi / n)) / 2 on [0, 1] and their weights
    (exact for polynomials of degree n; Waldvogel's sum for each weight). Nested: the points of n are those of 2n at
    even j. n even."""
    if n < 2 or n % 2:
        raise ValueError(f"Clenshaw-Curtis needs an even number of intervals >= 2, got {n}")
    theta = torch.arange(n + 1, dtype=torch.float64) * math.pi / n  # (n + 1,)
    k = torch.arange(1, n // 2 + 1, dtype=torch.float64)  # (n/2,)
    b = torch.where(2 * k == n, 1.0, 2.0)
    s = (b / (4 * k**2 - 1) * torch.cos(2 * k * theta[:, None])).sum(-1)  # (n + 1,)
    c = torch.full((n + 1,), 2.0, dtype=torch.float64)
    c[0] = c[-1] = 1.0
    return (1 - torch.cos(theta)) / 2, c / n * (1 - s) / 2  # the weights of [-1, 1], halved for [0, 1]


RULES = {"riemann": riemann_points, "clenshaw-curtis": clenshaw_curtis_points}


def baseline_windows(x: torch.Tensor, sp: Specials) -> torch.Tensor:
    """E1's baseline e': every text token of the windows x (W, L) replaced by [PAD]; [CLS], [SEP], [PAD] kept."""
    special = (x == sp.cls) | (x == sp.sep) | (x == sp.pad)
    return torch.where(special, x, torch.full_like(x, sp.pad))


def integrated_gradients(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, label: int,
                         baseline: torch.Tensor, steps: int, rule: str = "clenshaw-curtis") -> torch.Tensor:
    """E1: IG_i = (e_i - e'_i) . (1/m) sum_{k=1..m} dz_a(e' + (k/m)(e - e'))/de_i, summed over the embedding dimension.

    x, mask, baseline: (W, L) windows, their attention mask and the baseline's ids; label: a. Returns the
    attributions (W, L), float32; `rule` picks the points on the path ("riemann": E1's k/m with m = steps,
    "clenshaw-curtis": steps intervals, steps + 1 points).
    """
    alphas, weights = RULES[rule](steps)
    terms, _ = path_terms(model, x, mask, label, baseline, alphas)  # (P, W, L)
    return (weights.view(-1, 1, 1) * terms).sum(0).float()


def path_terms(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, label: int, baseline: torch.Tensor,
               alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """E1's summand before its weight, (e_i - e'_i) . dz_a(e' + alpha (e - e'))/de_i, at each point alpha on the path:
    (P, W, L), and the logit z_a there: (P, W), float64. Every (point, window) pair is one row; ROWS_PER_PASS rows go
    through the judge together."""
    emb = model.bert.word_emb
    with torch.no_grad():
        e, e0 = emb(x).double(), emb(baseline).double()  # (W, L, d): the path's two ends
    W = len(x)
    terms = torch.zeros(len(alphas), W, x.shape[1], dtype=torch.float64)
    logits = torch.zeros(len(alphas), W, dtype=torch.float64)
    pairs = [(k, w) for k in range(len(alphas)) for w in range(W)]
    for s in range(0, len(pairs), ROWS_PER_PASS):
        ks, ws = (torch.tensor(t) for t in zip(*pairs[s : s + ROWS_PER_PASS]))
        on_path = (e0[ws] + alphas[ks].view(-1, 1, 1) * (e[ws] - e0[ws])).float().requires_grad_(True)  # (rows, L, d)
        z = model(x[ws], mask[ws], word_vectors=on_path)[:, label]  # (rows,)
        (grad,) = torch.autograd.grad(z.sum(), on_path)  # each row's z depends on its own row only
        terms[ks, ws] = ((e[ws] - e0[ws]) * grad.double()).sum(-1)
        logits[ks, ws] = z.detach().double()
    return terms, logits


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
            author: str | None = None, method: str = "ig") -> Explanation:
    """E1, E2 in words: P(author | text) for every author, and each word's push towards `author` (the judge's pick if
    None)."""
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
        scores, change, steps = complete_attributions(model, x, mask, label, baseline_windows(x, sp))
        word_scores = [sum(float(scores[w, p]) for w, p in places) for places in groups]
    else:
        word_scores = occlusion(model, x, mask, label, groups, tok.token_to_id("[MASK]")).tolist()
        change, steps = float("nan"), 0
    model.train(was_training)
    words = [Word(text[s:e], s, e, score) for (s, e, _), score in zip(spans, word_scores)]
    return Explanation(labels[label], {a: float(whole[i]) for i, a in enumerate(labels)}, words, method,
                       log_probs[:, label].exp().tolist(), change, float(sum(word_scores)), steps)


def complete_attributions(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, label: int,
                          baseline: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """E1 where the logit moves: (attributions (W, L), the total change z_a(e) - z_a(e'), the points used), each
    window's attributions adding up to its change within TOLERANCE (unless MAX_POINTS come first). See
    `refine_pieces`."""
    with torch.no_grad():
        change = (model(x, mask)[:, label] - model(baseline, mask)[:, label]).double()  # (W,): z_a(e) - z_a(e')
    pieces = refine_pieces(lambda alphas: path_terms(model, x, mask, label, baseline, alphas), change)
    return sum(p.attributions() for p in pieces).float(), float(change.sum()), 1 + sum(p.intervals for p in pieces)


@dataclass
class Piece:
    """A piece [a, b] of the path with its Clenshaw-Curtis points: summands (n + 1, W, L) and logits (n + 1, W)."""

    a: float
    b: float
    terms: torch.Tensor
    logits: torch.Tensor

    @property
    def intervals(self) -> int:
        return len(self.terms) - 1

    def attributions(self) -> torch.Tensor:
        """Clenshaw-Curtis on [a, b]: sum_j (b - a) w_j * summand(a + (b - a) alpha_j)."""
        _, weights = clenshaw_curtis_points(self.intervals)
        return ((self.b - self.a) * weights.view(-1, 1, 1) * self.terms).sum(0)  # (W, L)

    def gap(self) -> torch.Tensor:
        """Completeness on this piece: the attributions' sum minus z_a(b) - z_a(a), per window: (W,)."""
        return self.attributions().sum(-1) - (self.logits[-1] - self.logits[0])

    def refined(self, evaluate) -> "Piece":
        """The same piece with twice the intervals: the new points are the odd ones of the finer rule."""
        alphas, _ = clenshaw_curtis_points(2 * self.intervals)
        terms, logits = evaluate(self.a + (self.b - self.a) * alphas[1::2])
        return Piece(self.a, self.b, interleaved(self.terms, terms), interleaved(self.logits, logits))


def interleaved(even: torch.Tensor, odd: torch.Tensor) -> torch.Tensor:
    """(n + 1, ...) values at the points of n intervals and (n, ...) at the new odd points -> (2n + 1, ...) in order."""
    out = torch.empty(len(even) + len(odd), *even.shape[1:], dtype=even.dtype)
    out[0::2], out[1::2] = even, odd
    return out


def refine_pieces(evaluate, change: torch.Tensor, pieces: int = PIECES, tolerance: float = TOLERANCE,
                  max_points: int = MAX_POINTS) -> list[Piece]:
    """The path [0, 1] cut into `pieces` equal pieces, Simpson's rule on each; then, while some window's attributions
    miss its logit's change (W,) by more than `tolerance`, the piece with the largest gap doubles its points.

    evaluate(alphas (P,)) -> (summands (P, W, L), logits (P, W)) at those points of the path (`path_terms`).
    """
    terms, logits = evaluate(torch.linspace(0, 1, 2 * pieces + 1, dtype=torch.float64))
    path = [Piece(k / pieces, (k + 1) / pieces, terms[2 * k : 2 * k + 3], logits[2 * k : 2 * k + 3])
            for k in range(pieces)]
    while True:
        missing = sum(p.attributions() for p in path).sum(-1) - change  # (W,)
        if missing.abs().max() <= tolerance or 1 + sum(p.intervals for p in path) >= max_points:
            return path
        worst = max(range(len(path)), key=lambda k: float(path[k].gap().abs().max()))
        path[worst] = path[worst].refined(evaluate)


def strongest(words: list[Word], n: int = 5) -> tuple[list[Word], list[Word]]:
    """The n words that push most towards the author (largest positive scores) and most away (most negative)."""
    ranked = sorted(words, key=lambda w: w.score)
    return [w for w in reversed(ranked[-n:]) if w.score > 0], [w for w in ranked[:n] if w.score < 0]
