"""Pieces the networks share: LayerNorm, the two GELUs, the MLP, dropout (its fast twin too), head splitting."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU (BERT's "gelu"): x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))."""
    return F.gelu(x)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """Tanh-approximated GELU (GPT-Neo's "gelu_new"): 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))."""
    return F.gelu(x, approximate="tanh")


class LayerNorm(nn.LayerNorm):
    """LayerNorm that always computes in float32 and returns the input's dtype.

    In float32 this is exactly `nn.LayerNorm`. After `model.half.cast_half` the
    matrices are 16-bit but LayerNorm weights stay float32: the mean and
    variance of a 384- or 768-wide row lose digits in 16 bits, and these
    weights are a tiny share of the memory.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


def plain_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout as written: keep each x_i with probability 1 - p and scale it by 1 / (1 - p), else 0.

    The plain twin of `Dropout` below, which computes the same with cheaper random draws.
    """
    keep = torch.rand_like(x) >= p  # True with probability 1 - p
    return x * keep / (1.0 - p)


DROPOUT_BITS = 15  # dropout draws 15-bit random integers: p is used as round(p * 2**15) / 2**15


def dropout_draws(n: int, device=None) -> torch.Tensor:
    """n random integers r, uniform in [0, 2**15): an int16 tensor (n,).

    Dropout masks are large ((B, nh, T, T) for attention), and PyTorch's CPU generator draws one number at
    a time, so the draws are cheap ones: one 63-bit random integer gives four r (its four 16-bit quarters,
    each keeping its low 15 bits: disjoint bits of a uniform number, so independent and uniform). The
    generator's cost is per call, so this is ~1.7x cheaper than two r from each 31-bit integer, and ~4x
    cheaper than `torch.rand`'s float32 uniforms (measured on a 16 x 12 x 256 x 256 mask: 16 ms, 29 ms, 121 ms).
    """
    r = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()  # uniform in [0, 2**63)
    return r.view(torch.int16)[:n] & (2**DROPOUT_BITS - 1)  # four 15-bit draws from each


def dropout_mask(shape: torch.Size, p: float, device=None) -> torch.Tensor:
    """True where an element is dropped, each independently with probability p. A bool tensor of `shape`.

    A draw r (`dropout_draws`), uniform in [0, 2**15), is below p * 2**15 with probability p (rounded to
    a multiple of 2**-15: 0.1 -> 0.100006).
    """
    return (dropout_draws(math.prod(shape), device) < round(p * 2**DROPOUT_BITS)).view(shape)


BITS_OF_WIDTH = {2: torch.int16, 4: torch.int32, 8: torch.int64}  # an integer as wide as a 16/32/64-bit float


def dropout_keep_bits(shape: torch.Size, p: float, dtype: torch.dtype, device=None) -> torch.Tensor:
    """`dropout_mask`'s draws as a bit mask for elements of `dtype`: every bit set (-1) where an element is kept,
    none (0) where it is dropped; an integer tensor of `shape` as wide as `dtype`.

    Kept means r >= t, t = round(p 2**15), i.e. t - 1 - r < 0: the sign of t - 1 - r, spread over all 16 bits by
    an arithmetic shift, is the mask (two integer passes; the bool compare of `dropout_mask` is slower).
    """
    r = dropout_draws(math.prod(shape), device)
    keep = ((round(p * 2**DROPOUT_BITS) - 1) - r) >> DROPOUT_BITS  # int16: -1 where kept, 0 where dropped
    return keep.to(BITS_OF_WIDTH[dtype.itemsize]).view(shape)  # widening keeps the sign: all ones or none


@torch.library.custom_op("alice_edgar::dropout_keep_bits", mutates_args=(), tags=torch.Tag.nondeterministic_seeded)
def dropout_keep_bits_like(x: torch.Tensor, p: float) -> torch.Tensor:
    """dropout_keep_bits(x.shape, p, x.dtype) as one opaque operation, so that torch.compile (plumbing/compiling.py)
    draws the mask as eager does: from the same generator, with the same cheap draws (TorchInductor's own random
    numbers are 3x slower on a CPU), and never draws it again for the backward (`nondeterministic_seeded`)."""
    return dropout_keep_bits(x.shape, p, x.dtype, x.device)


@dropout_keep_bits_like.register_fake
def _(x: torch.Tensor, p: float) -> torch.Tensor:  # what a compiled graph knows of the mask: its shape and type
    return torch.empty(x.shape, dtype=BITS_OF_WIDTH[x.dtype.itemsize], device=x.device)


def clear_dropped(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x with the bits of every dropped element cleared: x AND keep, read as x's dtype. A cleared float is +0."""
    return (x.view(keep.dtype) & keep).view(x.dtype)


class ZeroDropped(torch.autograd.Function):
    """where(dropped, 0, x) as one integer AND over x's bits (4x faster than `where` on 16-bit weights here:
    a 16 x 12 x 256 x 256 bfloat16 tensor 9.2 -> 2.2 ms); the gradient is the same AND on the incoming one."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(keep)
        return clear_dropped(x, keep)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return clear_dropped(grad, keep), None


def apply_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero each element with probability p, WITHOUT the 1/(1 - p) rescale (the caller applies it).

    The same as torch.where(dropout_mask(x.shape, p), 0.0, x) for the same draws (tests/test_layers.py)."""
    return ZeroDropped.apply(x, dropout_keep_bits_like(x, p))


class Dropout(nn.Dropout):
    """Inverted dropout: x_i -> 0 with probability p, else x_i / (1 - p); the identity in eval mode.

    The fast twin of `plain_dropout`, and the same rule as `nn.Dropout`. On a CPU, nn.Dropout draws a float32 noise tensor with
    `bernoulli_`, scales it and multiplies; here a bit mask of 15-bit draws (`dropout_keep_bits`) and one
    integer AND do the same with less memory traffic, and backward keeps the mask (as wide as an element).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return apply_dropout(x, self.p) / (1.0 - self.p)


class MLP(nn.Module):
    """The position-wise feed-forward block: proj(act(fc(x)))."""

    def __init__(self, width: int, hidden: int, activation, bias: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(width, hidden, bias=bias)
        self.proj = nn.Linear(hidden, width, bias=bias)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.activation(self.fc(x)))


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, nh, T, hs)"""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, nh, T, hs) -> (B, T, C)"""
    B, nh, T, hs = x.shape
    return x.transpose(1, 2).reshape(B, T, nh * hs)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """GPT/BERT initialisation: weights ~ N(0, std), biases 0, LayerNorm (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in model.parameters())

