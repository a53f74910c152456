"""Mean smoothing of a loss / accuracy curve (lecture A, equations A9 and A10).

Plain Python on purpose: no numpy, no torch, so the arithmetic is visible.

Example::

    >>> mean_smooth([1.0, 2.0, 6.0, 3.0], k=3)
    [1.5, 3.0, 3.6666666666666665, 4.5]

The edges (first and last w points) average only the m < k neighbours that
exist (A10): y_0 = (x_0 + x_1) / 2, not (x_0 + x_1) / 3 and not zero-padded.

Note on the course code: its window is the slice ``x[i - w : i + w]``. A Python
slice excludes its end, so that window is x_{i-w} .. x_{i+w-1}: it drops the
right neighbour x_{i+w} and averages 2w points, not the 2w + 1 = k of A9, which
also shifts the smoothed curve half a step to the left. Here the window is
``x[i - w : i + w + 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence


def window_bounds(i: int, n: int, w: int) -> tuple[int, int]:
    """A10: where i < w or i > n - w the window is cut short: y_i ≈ (1/m) Σ x_j, m < k.

    Returns the half-open index range [lo, hi) of the points x_j, j = i-w..i+w,
    that exist in a curve of n points (0-based indices, so the right edge is
    i > n - 1 - w). m = hi - lo is the number of points averaged: m = k = 2w + 1
    in the interior, m < k near either edge (and everywhere when k > n).
    """
    lo = max(0, i - w)
    hi = min(n, i + w + 1)  # + 1: the right neighbour x_{i+w} is included
    return lo, hi


def mean_smooth(values: Sequence[float], k: int = 3) -> list[float]:
    """A9: y_i = (1/k) * sum_{j=i-w}^{i+w} x_j, w = (k-1)/2

    Centred moving average with an odd window of k points (k = 3 in the
    lecture). At the edges the window holds only the m < k points that exist
    and y_i is their mean (A10, see `window_bounds`). The output has the same
    length as the input; k = 1 returns a copy; an empty input returns [].

    Raises ValueError if k is not a positive odd integer.
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"smoothing window k must be an odd positive integer, got {k!r}")
    if k < 1 or k % 2 == 0:
        raise ValueError(
            f"smoothing window k must be an odd positive integer (1, 3, 5, ...) so that it "
            f"is centred on each point, got k={k}"
        )
    xs = [float(v) for v in values]
    n = len(xs)
    w = (k - 1) // 2
    smoothed = []
    for i in range(n):
        lo, hi = window_bounds(i, n, w)
        smoothed.append(sum(xs[lo:hi]) / (hi - lo))  # m = hi - lo points (A10)
    return smoothed
