"""Half precision for the judge (lecture B, equation B5): M_fp16 ~= 1/2 M_fp32.

`cast_half` is written out by hand instead of calling `model.half()`, because
`.half()` (what the course code does) also casts every LayerNorm, and a
LayerNorm is where 16 bits hurt: it subtracts the row mean and divides by the
standard deviation of a 384- or 768-wide row, and in float16 (10-bit mantissa)
or bfloat16 (7-bit mantissa) those sums lose most of their digits, while the
LayerNorm weights are a negligible share of the memory (~0.05 % for MiniLM).
So LayerNorm weights stay float32; model/layers.LayerNorm computes in float32
and returns its input's dtype, so the 16-bit matrices around it keep working.

Default dtype: float16 on CUDA (fast there), bfloat16 on the CPU (CPUs with
AMX / AVX512-BF16 run it fast; both are "half" in the sense of B5: 2 bytes).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn

FAST_RATIO = 1.3  # bfloat16 must be at least this much faster than float32 to be chosen (plumbing/precision.py)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parameter_bytes(model: nn.Module) -> int:
    """Bytes held by the model's parameters and buffers: M = sum numel x element size."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def default_half_dtype(device: torch.device | str) -> torch.dtype:
    """float16 on CUDA, bfloat16 on the CPU (see the module docstring)."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


def cast_half(model: nn.Module, dtype: torch.dtype | None = None) -> dict:
    """B5: M_fp16 ~= 1/2 M_fp32 -- cast every floating parameter and buffer to 16 bits, except LayerNorm's.

    In place: loops over the modules; a LayerNorm keeps float32 (see the module
    docstring), every other module's own floating tensors become `dtype`
    (default: float16 on CUDA, bfloat16 on the CPU). Returns what it did:
    dtype, bytes_before, bytes_after, ratio = after / before (about 0.5), and the
    names of the tensors kept in float32.
    """
    if dtype is None:
        dtype = default_half_dtype(next(model.parameters()).device)
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"cast_half casts to torch.float16 or torch.bfloat16, not {dtype}")
    before = parameter_bytes(model)
    kept = []
    for module_name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
        for name, tensor in own:
            full_name = f"{module_name}.{name}" if module_name else name
            if not tensor.is_floating_point():
                continue
            if isinstance(module, nn.LayerNorm):
                kept.append(full_name)
                continue
            tensor.data = tensor.data.to(dtype)  # same Parameter object, new 16-bit storage
    after = parameter_bytes(model)
    return {"dtype": str(dtype).removeprefix("torch."), "bytes_before": before, "bytes_after": after,
            "ratio": after / before, "kept_float32": kept}


@dataclass
class Precision:
    """What a program computes in (chosen by measurement in plumbing/precision.py): `name` for training autocast, `half` for the B5 judge, and why."""

    device: torch.device
    name: str  # "fp32", "bf16" or "fp16": the autocast dtype of training steps
    half: torch.dtype  # the 16-bit dtype of the B5 judge (it is always cast: the memory halves)
    ratio: float | None  # measured float32 time / bfloat16 time on this machine (None: not measured)
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    @property
    def half_is_fast(self) -> bool:
        """Is the 16-bit judge faster here, or only smaller?"""
        return self.device.type == "cuda" or (self.ratio is not None and self.ratio >= FAST_RATIO)

    def autocast(self):
        """The context a forward pass runs in: autocast to 16 bits, or nothing for float32."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def describe(self) -> dict:
        """What goes into the run's config.json and the console."""
        return {"precision": self.name, "half_dtype": str(self.half).removeprefix("torch."),
                "bf16_over_fp32_speed": self.ratio, "reason": self.reason}
