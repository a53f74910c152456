"""What a program measures before it chooses a fast path: the best time of each way, the ways taking turns.

Used where the answer is a fact about this machine, this shape and this precision (model/packed.py's packed
weights, plumbing/kernels.py's attention kernel): each way runs once untimed (its first call pays for
allocations and caches), then `rounds` rounds in which every way runs once, in turn, so that a slower moment of
a shared machine falls on both; each way's best time stands for it (the least disturbed run).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best_times(ways: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """{name: the least seconds of its `rounds` timed runs} for each of `ways`, after one untimed run of each."""
    best = {name: float("inf") for name in ways}
    for round_ in range(rounds + 1):
        for name, run in ways.items():
            t0 = time.perf_counter()
            run()
            if round_:  # round 0 is a warm-up
                best[name] = min(best[name], time.perf_counter() - t0)
    return best
