"""Timing that is fair to both sides: interleaved repeats, warm-up excluded, medians."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from plumbing.precision import product_seconds


def sync(device: str) -> None:
    """Wait for queued GPU work, so that a timer measures the work and not its launch."""
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved(
    runs: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1, device: str = "cpu"
) -> dict[str, float]:
    """Median seconds of each callable, run alternately (a, b, a, b, ...) after `warmup` untimed rounds.

    Alternating spreads any slow spell of the machine over both sides instead of one.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(warmup + repeats):
        for name, fn in runs.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


@dataclass
class Peak:
    """A dtype's sustained matmul rate (GFLOP/s): the best shape's median over its repeats, with the spread."""

    gflops: float
    low: float  # the slowest and fastest timed reading of that shape: how much the machine moved
    high: float
    n: int  # the shape (n x n @ n x n) that gave it

    def holds(self, rate: float) -> bool:
        """A workload's rate at or below the peak: a rate above it means the peak was measured too low."""
        return rate <= self.gflops * 1.0001

    def raised_to(self, other: "Peak") -> "Peak":
        """The higher of two measurements (before and after the rows): a slow spell can only lower a rate."""
        return other if other.gflops > self.gflops else self


def matmul_peak(dtype: torch.dtype, device: str = "cpu", sizes: tuple[int, ...] = (256, 512, 1024, 2048),
                repeats: int = 5, max_seconds: float = 0.5) -> Peak:
    """The machine's practical matmul peak in `dtype`: n x n products (2 n^3 FLOPs each) over a few n.

    Each n: `repeats` readings of plumbing/precision.py's product_seconds (products repeated for 20 ms),
    whose median is that n's sustained rate; the peak is the best n. Larger n stop once one product
    takes over `max_seconds` (bfloat16 without a fast unit: the larger sizes would add minutes, no rate).
    """
    best: Peak | None = None
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        first = product_seconds(a, b)  # warm-up: kernels chosen, pages touched
        rates = [2 * n**3 / product_seconds(a, b) / 1e9 for _ in range(repeats)]
        sustained = Peak(statistics.median(rates), min(rates), max(rates), n)
        best = sustained if best is None else best.raised_to(sustained)
        if first > max_seconds:
            break
    return best


def profile_table(fn: Callable[[], object], device: str = "cpu", rows: int = 15) -> str:
    """One run of `fn` under torch.profiler: the `rows` operators with the most self time, as a table."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)
