"""Device and precision, chosen by measurement at the start of every program.

Half precision is a property of the machine, not of the code: a CPU with AVX512-BF16 or AMX runs
bfloat16 matrix products 3-5x faster than float32, one with AVX2 only runs them ~100x slower.
So on a CPU `choose_precision` times float32 and bfloat16 products of the program's own sizes
(`probe_ratio`: a second or two) and picks bfloat16 autocast only where it is clearly faster
(>= FAST_RATIO). On CUDA: bfloat16 where the GPU supports it, else float16 with a gradient scaler.

What stays float32 whatever is chosen: the weights and the optimizer state (autocast computes
the matrix products in 16 bits from float32 weights), LayerNorm (model/layers.py) and the losses
(train/metrics.py, train/lm.py). `--precision fp32|bf16|fp16` overrides the choice.

Sampling is another kind of work: a token at a time for a few rows, so every token reads every weight
once and the time goes to memory, not to the matrix units the probe timed. `choose_sampling` measures it
on the generator itself: where a program trains in 16 bits, it samples a few tokens both ways and keeps
the faster (SmolLM2-135M samples faster under bfloat16 autocast here, whose 16-bit copies of the weights
are made once per call and read at half the bytes; the 4.3 M neo-small slower, too small for that to pay).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace

import torch

from model.decoder import Decoder
from model.half import DTYPES, FAST_RATIO, Precision
from model.sampler import Sampling, generate

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise the named device, checked (ValueError if unusable)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: this project runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device: use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    return device


def product_seconds(a: torch.Tensor, b: torch.Tensor, min_seconds: float = 0.02) -> float:
    """Seconds per a @ b, from as many products in a row as fill `min_seconds` (at least one).

    One product of a program's size can take under a millisecond on a fast unit, where one timer
    reading is mostly noise; repeating it until 20 ms have passed makes each reading a rate.
    """
    count, start = 0, time.perf_counter()
    while True:
        a @ b
        if a.device.type == "cuda":
            torch.cuda.synchronize()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / count


def probe_ratio(device: torch.device, m: int, k: int, n: int, repeats: int = 5) -> float:
    """float32 time / bfloat16 time of an (m, k) @ (k, n) product on `device`: > 1 means bfloat16 is faster.

    The program's own sizes (rows of a batch x width x width) are what matter: small products are
    bound by memory and overhead, not by the arithmetic units. One untimed round of each dtype (the
    library picks its kernels then), then `repeats` rounds alternating float32 and bfloat16, so that a
    slow spell of a shared machine falls on both; each dtype's best round counts. Where bfloat16 is
    10x slower (no fast unit) one round says so and the probe stops: it costs a program's start little.
    """
    pairs = {dtype: (torch.randn(m, k, device=device).to(dtype), torch.randn(k, n, device=device).to(dtype))
             for dtype in (torch.float32, torch.bfloat16)}
    for a, b in pairs.values():
        product_seconds(a, b)
    best = {dtype: float("inf") for dtype in pairs}
    for _ in range(repeats):
        for dtype, (a, b) in pairs.items():
            best[dtype] = min(best[dtype], product_seconds(a, b))
        if best[torch.bfloat16] > 10 * best[torch.float32]:
            break
    return best[torch.float32] / best[torch.bfloat16]


def choose_precision(device: torch.device, requested: str = "auto", sizes: tuple[int, int, int] = (2048, 384, 1536),
                     earlier: str | None = None) -> Precision:
    """The precision of a program on `device`: `requested` if not "auto", else measured (see the module docstring).

    sizes: (m, k, n) of the program's typical matrix product. On a CPU the B5 judge is bfloat16
    whatever is chosen (half the memory); `half_is_fast` says whether it is also faster.
    earlier: what a resumed run chose when it started; "auto" keeps it (a run does not change
    precision half-way because the machine was busy during one probe).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested == "auto" and earlier in DTYPES:
        chosen = choose_precision(device, earlier, sizes)
        chosen.reason = f"{earlier}, as this run chose when it started"
        return chosen
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        half = torch.bfloat16 if bf16 else torch.float16
        name = requested if requested != "auto" else ("bf16" if bf16 else "fp16")
        return Precision(device, name, half, None, "CUDA: bfloat16 autocast" if bf16 else "CUDA without bfloat16: float16")
    if requested == "fp16":
        raise ValueError("--precision fp16 is for CUDA; on a CPU float16 matrix products are emulated and slow")
    ratio = probe_ratio(device, *sizes)
    if requested != "auto":
        return Precision(device, requested, torch.bfloat16, ratio, f"asked for {requested}")
    if ratio >= FAST_RATIO:
        return Precision(device, "bf16", torch.bfloat16, ratio,
                         f"bfloat16 products measured {ratio:.1f}x faster than float32 here")
    return Precision(device, "fp32", torch.bfloat16, ratio,
                     f"bfloat16 products measured {ratio:.2f}x the speed of float32 here (no fast bfloat16): "
                     "training stays float32; the B5 judge is still cast to bfloat16 for the memory and will be slower")


SAMPLING_TOKENS = 12  # tokens written each way when measuring (a call also pays autocast's casts once)
SAMPLING_MARGIN = 1.1  # 16-bit sampling must be at least this much faster to be chosen; else float32, the exact one


def sampling_seconds(model: Decoder, rows: int, precision: Precision) -> dict[str, float]:
    """Seconds to write SAMPLING_TOKENS tokens for `rows` rows, in float32 and under `precision`'s autocast:
    {"fp32": s, precision.name: s}. One untimed token each first, then two alternating rounds, the best of each."""
    start = torch.zeros(rows, 1, dtype=torch.long, device=precision.device)
    ways = {"fp32": contextlib.nullcontext, precision.name: precision.autocast}
    best = {name: float("inf") for name in ways}
    was_training = model.training
    model.eval()  # as the programs sample: no dropout, so no draw from the run's random numbers either
    for tokens in (1, SAMPLING_TOKENS, SAMPLING_TOKENS):
        for name, context in ways.items():
            rng = torch.Generator(precision.device).manual_seed(0)  # its own: the run's random draws stay as they were
            t0 = time.perf_counter()
            with context():
                generate(model, start, tokens, Sampling(top_k=50), rng)
            if tokens == SAMPLING_TOKENS:
                best[name] = min(best[name], time.perf_counter() - t0)
    model.train(was_training)
    return best


def choose_sampling(model: Decoder, rows: int, precision: Precision, earlier: str | None = None,
                    seconds=sampling_seconds) -> Precision:
    """The precision a program's generators sample in (see the module docstring): float32 where the program trains in
    float32; on a CPU, its 16 bits only where `seconds(model, rows, precision)` measured them SAMPLING_MARGIN faster.
    earlier: what a resumed run chose when it started, kept. The result's `reason` says why."""
    fp32 = replace(precision, name="fp32")
    if precision.name == "fp32":
        return replace(fp32, reason="float32, as the program trains")
    if earlier in ("fp32", precision.name):
        return replace(fp32 if earlier == "fp32" else precision, reason=f"{earlier}, as this run chose when it started")
    if precision.device.type == "cuda":
        return replace(precision, reason=f"{precision.name} autocast, as the program trains")
    took = seconds(model, rows, precision)
    ratio = took["fp32"] / took[precision.name]
    timing = (f"{rows} rows x {SAMPLING_TOKENS} tokens: float32 {took['fp32']:.2f} s, "
              f"{precision.name} {took[precision.name]:.2f} s")
    if ratio >= SAMPLING_MARGIN:
        return replace(precision, reason=f"{precision.name} autocast, measured {ratio:.2f}x faster ({timing})")
    return replace(fp32, reason=f"float32, {precision.name} autocast measured {ratio:.2f}x its speed ({timing})")


def grad_scaler(precision: Precision) -> torch.amp.GradScaler | None:
    """float16 gradients underflow without loss scaling; bfloat16 and float32 need none."""
    if precision.name == "fp16":
        return torch.amp.GradScaler(precision.device.type)
    return None
