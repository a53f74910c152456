"""Does P(author) mean what it says? Calibration of the judge (N7), and temperature scaling.

    N7: ECE = sum_b (|B_b| / n) |acc(B_b) - conf(B_b)|

over equal-width bins B_b of the confidence conf(x) = max_a P(a | x): among the windows the judge
calls with 90 % confidence, about 90 % should be right. Temperature scaling divides the logits by
one number T > 0 (z <- z / T: the ranking of the authors, so the accuracy, is unchanged) fitted on a
validation set by minimising the cross-entropy; T > 1 softens an over-confident judge. The judge is
a reward in `make teach`, so its probabilities should be calibrated where they are used as numbers.
The validation set is the last 5 % of each training book (data/corpus.py:AuthorTexts): never trained
on, and never the held-out book.
"""

from __future__ import annotations

import math

import torch

BINS = 10
TEMPERATURES = (0.05, 20.0)  # the range T is fitted in


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> list[dict]:
    """N7: per confidence bin [b/bins, (b+1)/bins): how many windows, their mean confidence, their accuracy (empty:
    skipped)."""
    confidence, predicted = probs.max(dim=-1)  # (n,), (n,)
    right = (predicted == labels).float()
    which = torch.clamp((confidence * bins).long(), max=bins - 1)  # confidence 1.0 goes in the last bin
    out = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            out.append({"low": b / bins, "high": (b + 1) / bins, "count": int(inside.sum()),
                        "confidence": confidence[inside].mean().item(), "accuracy": right[inside].mean().item()})
    return out


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """N7: ECE = sum_b (|B_b| / n) |acc(B_b) - conf(B_b)|, equal-width bins of conf = max_a P(a | x)."""
    n = len(labels)
    return sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability_bins(probs, labels, bins))


def scaled_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """A3 of the scaled logits: -(1/n) sum_i log softmax(z_i / T)_{y_i}."""
    return torch.nn.functional.cross_entropy(logits.double() / temperature, labels).item()


def golden_section(f, low: float, high: float, rounds: int = 80) -> float:
    """The minimum of a convex f on [low, high]: each round keeps the part of the interval where it must lie (0.618)."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(rounds):
        if f(c) < f(d):
            b, d = d, c
            c = b - ratio * (b - a)
        else:
            a, c = c, d
            d = a + ratio * (b - a)
    return (a + b) / 2


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, low: float = TEMPERATURES[0],
                    high: float = TEMPERATURES[1]) -> float:
    """N7: T = argmin_T -(1/n) sum_i log softmax(z_i / T)_{y_i}, over [low, high].

    The cross-entropy is convex in 1/T (a log-sum-exp of linear functions minus a linear one), so a
    golden-section search over beta = 1/T finds the minimum.
    """
    return 1 / golden_section(lambda beta: scaled_cross_entropy(logits, labels, 1 / beta), 1 / high, 1 / low)


def calibration(val_logits: torch.Tensor, val_labels: torch.Tensor, logits: torch.Tensor,
                labels: torch.Tensor) -> dict:
    """T fitted on the validation windows; ECE, cross-entropy and bins on the held-out windows before and after it."""
    t = fit_temperature(val_logits, val_labels)
    # Where every validation window is right, the cross-entropy falls all the way to T -> 0: the fit stops at the
    # bound and says nothing about the held-out windows, so the report says so.
    at_bound = min(abs(t - TEMPERATURES[0]) / TEMPERATURES[0], abs(t - TEMPERATURES[1]) / TEMPERATURES[1]) < 0.01
    out = {"temperature": t, "at_bound": at_bound, "validation_windows": len(val_labels), "heldout_windows": len(labels)}
    for name, temperature in (("before", 1.0), ("after", t)):
        probs = (logits.double() / temperature).softmax(-1)
        out[name] = {"ece": expected_calibration_error(probs, labels), "cross_entropy":
                     scaled_cross_entropy(logits, labels, temperature), "bins": reliability_bins(probs, labels)}
    return out
