"""Tests for eval/smoothing.py (A9 mean smoothing, A10 edge effect)."""

from __future__ import annotations

import math
import random

import pytest

from eval.smoothing import mean_smooth, window_bounds


def brute_force_smooth(xs: list[float], k: int) -> list[float]:
    """Reference: for every i, average every x_j with |i - j| <= (k-1)/2 that exists."""
    w = (k - 1) // 2
    out = []
    for i in range(len(xs)):
        window = [xs[j] for j in range(len(xs)) if abs(i - j) <= w]
        out.append(sum(window) / len(window))
    return out


@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("n", [1, 2, 5, 8, 50])
def test_matches_brute_force_on_random_data(k: int, n: int) -> None:
    rng = random.Random(1000 * k + n)
    xs = [rng.uniform(-10.0, 10.0) for _ in range(n)]
    got = mean_smooth(xs, k)
    want = brute_force_smooth(xs, k)
    assert len(got) == n
    for g, r in zip(got, want):
        assert math.isclose(g, r, rel_tol=1e-12, abs_tol=1e-12)


def test_k3_by_hand() -> None:
    xs = [1.0, 2.0, 6.0, 3.0]
    # edges (A10): m = 2 points; interior (A9): m = 3 points
    assert mean_smooth(xs, 3) == pytest.approx([3 / 2, 9 / 3, 11 / 3, 9 / 2])


def test_k5_edges_by_hand() -> None:
    xs = [10.0, 0.0, 5.0, 1.0, 4.0, 20.0]
    want = [
        (10 + 0 + 5) / 3,  # i=0: x0..x2, m = 3
        (10 + 0 + 5 + 1) / 4,  # i=1: x0..x3, m = 4
        (10 + 0 + 5 + 1 + 4) / 5,  # i=2: full window, m = k = 5
        (0 + 5 + 1 + 4 + 20) / 5,  # i=3: full window
        (5 + 1 + 4 + 20) / 4,  # i=4: x2..x5, m = 4
        (1 + 4 + 20) / 3,  # i=5: x3..x5, m = 3
    ]
    assert mean_smooth(xs, 5) == pytest.approx(want)


def test_right_neighbour_is_included() -> None:
    """The course code's slice x[i-w:i+w] dropped x_{i+w}; a spike on the right must show."""
    xs = [0.0, 0.0, 0.0, 3.0, 0.0]
    assert mean_smooth(xs, 3)[2] == pytest.approx(1.0)  # (0 + 0 + 3) / 3


def test_constant_curve_is_unchanged() -> None:
    assert mean_smooth([2.5] * 9, 7) == pytest.approx([2.5] * 9)


def test_k1_returns_a_copy() -> None:
    xs = [3.0, -1.0, 2.0]
    out = mean_smooth(xs, 1)
    assert out == xs
    assert out is not xs
    out[0] = 99.0
    assert xs[0] == 3.0


def test_default_k_is_3() -> None:
    xs = [1.0, 2.0, 6.0, 3.0]
    assert mean_smooth(xs) == mean_smooth(xs, 3)


def test_empty_input() -> None:
    assert mean_smooth([], 3) == []
    assert mean_smooth((), 1) == []


def test_accepts_ints_and_tuples() -> None:
    assert mean_smooth((1, 2, 3), 3) == pytest.approx([1.5, 2.0, 2.5])


def test_k_larger_than_data() -> None:
    xs = [1.0, 2.0, 4.0]
    # k = 7, w = 3: every window is cut short to the points that exist
    assert mean_smooth(xs, 7) == pytest.approx([7 / 3] * 3)
    # k = 5, w = 2: i=0 sees x0..x2, i=1 sees x0..x2, i=2 sees x0..x2
    assert mean_smooth(xs, 5) == pytest.approx([7 / 3] * 3)
    assert mean_smooth([5.0], 9) == [5.0]
    xs4 = [1.0, 2.0, 4.0, 8.0]
    # k = 5 on 4 points: i=0 -> x0..x2, i=1 -> x0..x3, i=2 -> x0..x3, i=3 -> x1..x3
    assert mean_smooth(xs4, 5) == pytest.approx([7 / 3, 15 / 4, 15 / 4, 14 / 3])


@pytest.mark.parametrize("k", [0, -1, -3, 2, 4, 10])
def test_bad_k_raises(k: int) -> None:
    with pytest.raises(ValueError, match="odd positive integer"):
        mean_smooth([1.0, 2.0, 3.0], k)


@pytest.mark.parametrize("k", [3.0, "3", True, None])
def test_non_int_k_raises(k: object) -> None:
    with pytest.raises(ValueError, match="odd positive integer"):
        mean_smooth([1.0, 2.0, 3.0], k)  # type: ignore[arg-type]


def test_window_bounds_edges() -> None:
    # n = 6, w = 1 (k = 3): left edge, interior, right edge
    assert window_bounds(0, 6, 1) == (0, 2)
    assert window_bounds(3, 6, 1) == (2, 5)
    assert window_bounds(5, 6, 1) == (4, 6)
    # k larger than the data: whole curve
    assert window_bounds(1, 3, 5) == (0, 3)
