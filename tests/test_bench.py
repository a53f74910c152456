"""bench/timing.py and scripts/bench.py: a peak that holds, and no row reported above it."""
from __future__ import annotations

import torch

from bench.timing import Peak, matmul_peak
from scripts.bench import against


def test_the_peak_is_the_best_shapes_median_with_its_spread() -> None:
    peak = matmul_peak(torch.float32, "cpu", sizes=(32, 64), repeats=3)
    assert peak.n in (32, 64) and 0 < peak.low <= peak.gflops <= peak.high


def test_the_better_of_two_measurements_stands() -> None:
    slow, fast = Peak(50.0, 40.0, 60.0, 512), Peak(90.0, 80.0, 95.0, 1024)
    assert slow.raised_to(fast) is fast and fast.raised_to(slow) is fast


def test_a_row_above_the_peak_says_so_instead_of_passing_for_a_rate() -> None:
    peaks = {"fp32": Peak(100.0, 90.0, 110.0, 1024), "bf16": Peak(400.0, 300.0, 420.0, 1024)}
    rows = [{"dtype": "fp32", "ours_gflops": 50.0, "hf_gflops": 120.0, "note": ""},
            {"dtype": "bf16", "ours_gflops": 200.0, "note": "batch cut"}]
    against(rows, peaks)
    assert rows[0]["ours_peak"] == 0.5 and rows[0]["hf_peak"] == 1.2
    assert rows[0]["note"] == "hf above the measured peak"
    assert rows[1]["ours_peak"] == 0.5 and rows[1]["note"] == "batch cut"  # a bf16 row against the bf16 peak
