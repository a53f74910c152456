"""How sure is an accuracy measured on a few rows? A binomial 95 % interval (Wilson score), in plain Python.

The co-evolution loop judges 64 rows per evaluation (B7), so an accuracy of
0.5 is really "somewhere between 0.38 and 0.62". The Wilson score interval
(Wilson 1927; recommended by Newcombe 1998 and Agresti & Coull 1998 over the
textbook p +- z sqrt(p(1-p)/n)) stays inside [0, 1] and keeps close to its
nominal 95 % even for small n and p near 0 or 1.

    >>> lo, hi = wilson_interval(32, 64)
    >>> round(lo, 4), round(hi, 4)
    (0.381, 0.619)
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # the 97.5 % quantile of the standard normal: a two-sided 95 % interval


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion p = successes / n:

        (p + z^2/(2n) -+ z sqrt(p(1-p)/n + z^2/(4n^2))) / (1 + z^2/n)

    Returns (low, high), both in [0, 1]. ValueError if n < 1 or successes is not in 0..n.
    """
    if n < 1:
        raise ValueError(f"need at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must lie between 0 and n={n}")
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    half_width = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    low = (centre - half_width) / denom
    high = (centre + half_width) / denom
    return max(0.0, low), min(1.0, high)  # clip round-off at the ends (p = 0 or 1 gives exactly 0 or 1)
