"""Timing that is fair to both sides: interleaved repeats, warm-up excluded, medians."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


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


def matmul_peak(dtype: torch.dtype, device: str = "cpu", n: int = 1024, repeats: int = 5) -> float:
    """Measured GFLOP/s of an n x n matmul in `dtype` (2 n^3 FLOPs each): the machine's practical peak."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    seconds = interleaved({"mm": lambda: a @ b}, repeats=repeats, warmup=1, device=device)["mm"]
    return 2 * n**3 / seconds / 1e9


def profile_table(fn: Callable[[], object], device: str = "cpu", rows: int = 15) -> str:
    """One run of `fn` under torch.profiler: the `rows` operators with the most self time, as a table."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)
