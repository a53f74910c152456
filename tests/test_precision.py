"""plumbing/precision.py: the precision a program trains in is decided by a measurement on the machine that runs."""
from __future__ import annotations

import math

import pytest
import torch

from plumbing import precision as P

CPU = torch.device("cpu")


@pytest.mark.parametrize("ratio, chosen", [(0.008, "fp32"), (1.2, "fp32"), (1.3, "bf16"), (4.5, "bf16")])
def test_auto_takes_bfloat16_only_where_it_is_measured_faster(monkeypatch, ratio, chosen) -> None:
    monkeypatch.setattr(P, "probe_ratio", lambda device, m, k, n: ratio)  # an AVX2-only CPU measures ~0.008
    p = P.choose_precision(CPU, "auto")
    assert (p.name, p.half, p.ratio, p.half_is_fast) == (chosen, torch.bfloat16, ratio, ratio >= P.FAST_RATIO)
    assert f"{ratio:.1f}" in p.reason or f"{ratio:.2f}" in p.reason  # the console and config say why


def test_asked_for_and_resumed_choices_win_over_the_probe(monkeypatch) -> None:
    monkeypatch.setattr(P, "probe_ratio", lambda device, m, k, n: 4.5)
    assert P.choose_precision(CPU, "fp32").name == "fp32"
    assert P.choose_precision(CPU, "auto", earlier="fp32").name == "fp32"  # a resumed run keeps its start's choice
    with pytest.raises(ValueError, match="for CUDA"):
        P.choose_precision(CPU, "fp16")


def test_the_probe_measures_a_real_ratio() -> None:
    ratio = P.probe_ratio(CPU, 64, 64, 64, repeats=1)
    assert math.isfinite(ratio) and ratio > 0  # a time ratio, whatever this machine is


def test_autocast_is_16_bits_only_for_bf16() -> None:
    x = torch.randn(4, 4)
    with P.Precision(CPU, "bf16", torch.bfloat16, None, "").autocast():
        assert (x @ x).dtype == torch.bfloat16
    with P.Precision(CPU, "fp32", torch.bfloat16, None, "").autocast():
        assert (x @ x).dtype == torch.float32


def test_the_probe_alternates_and_stops_after_one_round_where_bfloat16_is_slow(monkeypatch) -> None:
    calls = []

    def fake_seconds(a, b):
        calls.append(a.dtype)
        return 1.0 if a.dtype == torch.bfloat16 else 0.01  # an AVX2-only CPU: bfloat16 100x slower

    monkeypatch.setattr(P, "product_seconds", fake_seconds)
    assert P.probe_ratio(CPU, 8, 8, 8, repeats=5) == 0.01
    assert calls == [torch.float32, torch.bfloat16] * 2  # one untimed round, one timed round, then it stops


def test_the_probe_keeps_each_dtypes_best_round(monkeypatch) -> None:
    readings = {torch.float32: iter([9.0, 4.0, 2.0, 3.0, 5.0, 4.0]),
                torch.bfloat16: iter([9.0, 1.0, 0.5, 2.0, 1.0, 3.0])}
    monkeypatch.setattr(P, "product_seconds", lambda a, b: next(readings[a.dtype]))
    assert P.probe_ratio(CPU, 8, 8, 8, repeats=5) == 2.0 / 0.5  # fast bfloat16: all five rounds, best of each


def test_one_reading_repeats_the_product_until_its_minimum_time(monkeypatch) -> None:
    clock = iter(0.004 * i for i in range(100))  # a clock read once at the start and once per product
    monkeypatch.setattr(P.time, "perf_counter", lambda: next(clock))
    a = torch.randn(16, 16)
    assert P.product_seconds(a, a, min_seconds=0.01) == pytest.approx(0.012 / 3)  # three products fill 10 ms
    assert next(clock) == pytest.approx(0.016)  # and it stopped there


BF16 = P.Precision(CPU, "bf16", torch.bfloat16, 4.5, "measured")


@pytest.mark.parametrize("took, chosen", [({"fp32": 2.0, "bf16": 1.0}, "bf16"), ({"fp32": 1.05, "bf16": 1.0}, "fp32"),
                                          ({"fp32": 1.0, "bf16": 1.3}, "fp32")])
def test_generators_sample_in_16_bits_only_where_measured_faster(took, chosen) -> None:
    """choose_sampling: the program's 16 bits where sampling measured SAMPLING_MARGIN faster, else float32; the
    reason gives both times."""
    asked = []
    s = P.choose_sampling("model", 8, BF16, seconds=lambda model, rows, p: asked.append((model, rows)) or took)
    assert (s.name, asked) == (chosen, [("model", 8)])
    assert f"{took['fp32']:.2f} s" in s.reason and f"{took['bf16']:.2f} s" in s.reason
    assert (s.device, s.half) == (BF16.device, BF16.half)  # the judge's precision is not the sampler's business


def test_sampling_follows_a_float32_program_and_a_resumed_run_without_measuring() -> None:
    def never(*args):
        raise AssertionError("measured")

    fp32 = P.Precision(CPU, "fp32", torch.bfloat16, 1.0, "")
    assert P.choose_sampling("model", 8, fp32, seconds=never).name == "fp32"
    assert P.choose_sampling("model", 8, BF16, earlier="fp32", seconds=never).name == "fp32"
    assert P.choose_sampling("model", 8, BF16, earlier="bf16", seconds=never).name == "bf16"


def test_sampling_is_timed_on_the_generator_itself_both_ways(tiny_llama_base) -> None:
    from model.decoder import load_decoder

    model = load_decoder(tiny_llama_base).train()
    state = torch.random.get_rng_state()
    took = P.sampling_seconds(model, 3, BF16)
    assert set(took) == {"fp32", "bf16"} and all(0 < t < math.inf for t in took.values())
    assert torch.equal(torch.random.get_rng_state(), state)  # its own generator: the run's draws are untouched
    assert model.training  # left as it was found
