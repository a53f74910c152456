"""Which attention a Llama generator trains with, measured on this machine (issues 21 and 22).

By default every Llama layer runs PyTorch's fused attention kernel over a whole window. Its backward walks
the keys block by block; the plain line of L3 (model/llama.py:reference_attention) is two batched products
and a softmax, and on a CPU whose matrix units run bfloat16 (AMX) it can be the faster one for the short
windows these programs train on: measured on a 2-core Xeon with AMX, one SmolLM2 layer (projections
included) at 8 x 128 tokens in bfloat16 took 22 ms forward and backward the plain way against 40 ms fused;
at 512 tokens, or in float32 at any length, the fused kernel was faster (README: the table). That is a fact
about the machine, the shape and the precision, so a program measures it, as it measures its precision: one
layer of the model, the run's rows and length, forward and backward both ways, alternating, the best of each;
the plain line is chosen only where it is KERNEL_MARGIN faster.
"""

from __future__ import annotations

import torch

from model.half import Precision
from model.llama import Llama, rope_angles, set_attention_kernel
from model.timing import best_times

KERNEL_MARGIN = 1.1  # the plain line must be at least this much faster to be chosen; else the fused kernel
ROUNDS = 3  # timed rounds of each kernel, taking turns after one untimed (model/timing.py)


def attention_seconds(model: Llama, rows: int, length: int, precision: Precision) -> dict[str, float]:
    """Seconds of one forward and backward of the model's first attention layer on (rows, length) random inputs
    under `precision`'s autocast, with each kernel: {"fused": s, "plain": s}, the best of ROUNDS. The inputs come
    from a generator of their own (the run's random draws stay as they were); the weights get no gradient."""
    layer, cfg = model.layers[0].self_attn, model.config
    rng = torch.Generator(precision.device).manual_seed(0)
    x = torch.randn(rows, length, cfg.hidden_size, device=precision.device, generator=rng, requires_grad=True)
    cos, sin = rope_angles(torch.arange(length, device=precision.device), cfg.head_dim, cfg.rope_theta)
    kernel_was, grads_were = layer.kernel, [p.requires_grad for p in layer.parameters()]

    def forward_and_backward(kernel: str):
        def run():
            layer.kernel = kernel
            with precision.autocast():
                y = layer(x, cos, sin)
            y.float().sum().backward()
        return run

    layer.requires_grad_(False)
    try:
        return best_times({kernel: forward_and_backward(kernel) for kernel in ("fused", "plain")}, ROUNDS)
    finally:
        layer.kernel = kernel_was
        for p, grad in zip(layer.parameters(), grads_were):
            p.requires_grad_(grad)


def choose_attention_kernel(models: list[torch.nn.Module], rows: int, length: int, precision: Precision,
                            earlier: str | None = None, seconds=attention_seconds) -> tuple[str, str]:
    """(kernel, why) for models that train on (rows, length) windows, measured on the first and set on all of them.

    GPT-Neo: "fused", its own attention. earlier: what a resumed run chose when it started, kept. On CUDA the
    fused kernel (flash attention there). Else `seconds(first model, rows, length, precision)` decides.
    """
    if not isinstance(models[0], Llama):
        return "fused", "fused, the model's own attention"
    if earlier is not None:
        kernel, why = earlier, f"{earlier}, as this run chose when it started"
    elif precision.device.type == "cuda":
        kernel, why = "fused", "fused, PyTorch's flash attention on CUDA"
    else:
        took = seconds(models[0], rows, length, precision)
        kernel = "plain" if took["fused"] / took["plain"] >= KERNEL_MARGIN else "fused"
        why = (f"{kernel}, one layer's forward and backward at {rows} x {length} tokens in {precision.name}: "
               f"fused {took['fused'] * 1e3:.1f} ms, plain {took['plain'] * 1e3:.1f} ms")
    for model in models:
        set_attention_kernel(model, kernel)
    return kernel, why
