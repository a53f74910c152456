"""The fast twin of a linear layer while writing: each weight packed once for the rows of a batch (issues 21, 22).

While the sampler writes, every step multiplies a few rows (one new token per row) by every weight matrix of
the model: x W^T with x (B, d), B = 32 say. For so few rows a CPU BLAS (MKL) spends much of each product
re-arranging W into the blocks its kernel reads ("packing"), again at every step, though W does not change
while a batch is written. `packed_weights` packs every weight once, when generation starts, and each step
reads the packed copy: the same products and the same sums (the logits and the tokens equal to the last bit,
tests/test_packed.py). Measured on a 2-core Xeon with AMX (SmolLM2-135M, float32, 32 rows, other tenants at load
~1.2): the 211 products of one step 86-95 -> 76-88 ms; 32 rows x 64 tokens (`make bench`'s sampler settings,
4 interleaved rounds) 9.7 -> 8.7 s, the same tokens.

Only where it pays, as the programs choose their precision: MKL's packed products exist (torch.backends.mkl),
the products are float32 (bfloat16 autocast has kernels of its own), no gradient is wanted, and a pass through the model's
products measured faster packed on this machine by more than packing costs over the steps to write (`packing_pays`:
packing SmolLM2's 211 matrices took 0.14-0.34 s on a 2-core AMD EPYC, which a step saves back some milliseconds at a
time). Else nothing changes.

The price is memory: the packed copies live while the batch is written, and MKL's blocks are larger than the
matrices (for SmolLM2's 513 MiB of float32 weights the peak resident size grew by 1.2 GB while writing).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.timing import best_times

PACKING_MARGIN = 1.05  # packed products must be this much faster to be used (the numbers are the same either way)
ROUNDS = 3  # timed rounds of each way, taking turns after one untimed (model/timing.py)


def can_pack(x: torch.Tensor) -> bool:
    """True where MKL's packed products exist for x: a float32 CPU tensor, autocast off, no gradient wanted."""
    return (torch.backends.mkl.is_available() and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and not torch.is_grad_enabled())


def pack(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """MKL's packed copy of W (out, in) for products x W^T with x of `rows` rows."""
    return torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), rows)


def packed_product(x: torch.Tensor, weight: torch.Tensor, packed: torch.Tensor, rows: int,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
    """x W^T + b through the packed copy of W; x with another number of rows goes the plain way inside MKL's op."""
    return torch.ops.mkl._mkl_linear(x, packed, weight, bias, rows)


class PackedLinear(nn.Module):
    """A linear layer whose weight is packed for `rows` rows; the same y = x W^T + b as the layer it stands for."""

    def __init__(self, linear: nn.Linear, rows: int) -> None:
        super().__init__()
        self.linear, self.rows = linear, rows
        self.packed = pack(linear.weight, rows)

    @property
    def weight(self) -> torch.Tensor:  # code that reads the layer's weight while it stands in reads the layer's
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not can_pack(x):  # a product in another precision or with a gradient: the layer's own
            return self.linear(x)
        return packed_product(x, self.linear.weight, self.packed, self.rows, self.linear.bias)


PACKED_HEADS: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}  # id(tied head's weight) -> (it, packed, rows)


def head_product(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    """x W^T through the packed copy of a tied head's W while `packed_weights` holds one for it; else None."""
    entry = PACKED_HEADS.get(id(weight))
    if entry is None or entry[0] is not weight or not can_pack(x):
        return None
    return packed_product(x, weight, entry[1], entry[2])


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if type(m) is nn.Linear]


def tied_head(model: nn.Module) -> list[torch.Tensor]:
    """[the LM head's matrix (the parameter itself: `head_product` finds it by its id)] where the model has one
    (`head_weight`: the decoders), else []."""
    return [model.head_weight()] if hasattr(model, "head_weight") else []


_timed: dict[tuple, dict[str, float]] = {}  # (the layers' shapes, rows, threads) -> the measured seconds


def packing_seconds(model: nn.Module, rows: int) -> dict[str, float]:
    """{"plain", "packed", "pack"}: seconds of one pass of products through every linear layer of the model and its
    tied head (what a sampling step multiplies; more weights than any cache holds, as while writing), plain (F.linear)
    and packed, alternating, the best of ROUNDS each, and of packing them all once. Measured once per process for the
    model's shapes, `rows` and the threads. (One product repeated stays in the cache: on SmolLM2's 1536 x 576 it read
    0.34-0.46 ms packed against 0.42-0.45 ms plain, and the choice flipped.)"""
    weights = [w.detach() for w in [m.weight for m in linear_layers(model)] + tied_head(model)]
    key = (tuple(tuple(w.shape) for w in weights), rows, torch.get_num_threads())
    if key not in _timed:
        rng = torch.Generator().manual_seed(0)
        xs = {w.shape[1]: torch.randn(rows, w.shape[1], generator=rng) for w in weights}
        with torch.no_grad():
            t0 = time.perf_counter()
            packs = [pack(w, rows) for w in weights]
            packing = time.perf_counter() - t0
            ways = {"plain": lambda: [F.linear(xs[w.shape[1]], w) for w in weights],
                    "packed": lambda: [packed_product(xs[w.shape[1]], w, p, rows) for w, p in zip(weights, packs)]}
            _timed[key] = dict(best_times(ways, ROUNDS), pack=packing)
    return _timed[key]


def pays_back(took: dict[str, float], steps: int) -> bool:
    """Packed where its products are PACKING_MARGIN faster and what `steps` steps save is more than packing costs:
    (plain - packed) x steps > pack."""
    return took["plain"] / took["packed"] >= PACKING_MARGIN and (took["plain"] - took["packed"]) * steps > took["pack"]


def packing_pays(model: nn.Module, rows: int, steps: int) -> tuple[bool, str]:
    """(packing pays for `steps` steps of `rows` rows, why), from `packing_seconds`."""
    took = packing_seconds(model, rows)
    pays = pays_back(took, steps)
    n = len(linear_layers(model)) + len(tied_head(model))
    return pays, (f"{'packed' if pays else 'plain'}: the products of {n} matrices for {rows} rows, plain "
                  f"{took['plain'] * 1e3:.1f} ms, packed {took['packed'] * 1e3:.1f} ms a step; packing them "
                  f"{took['pack'] * 1e3:.0f} ms, for {steps} steps")


@contextmanager
def packed_weights(model: nn.Module, rows: int, steps: int):
    """While inside: every nn.Linear of `model` a PackedLinear for `rows` rows, and the tied head's weight
    (`model.head_weight()`, where the model has one) packed for `head_product`; everything as it was on leaving.
    Where packing cannot be used or does not pay for `steps` steps (`packing_pays`), nothing changes.
    Yields how it chose."""
    if not (can_pack(next(model.parameters()).new_empty(0)) and linear_layers(model)):
        yield "plain: no packed float32 products here (no MKL, 16-bit weights or autocast, or gradients)"
        return
    pays, why = packing_pays(model, rows, steps)
    if not pays:
        yield why
        return
    swapped = []  # (parent, name, the layer), to put back
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, PackedLinear(child, rows))
                swapped.append((parent, name, child))
    heads = tied_head(model)  # the parameter itself: `head_product` finds it by its id
    for head in heads:
        PACKED_HEADS[id(head)] = (head, pack(head, rows), rows)
    try:
        yield why
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        for head in heads:
            PACKED_HEADS.pop(id(head), None)
