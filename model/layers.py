"""Pieces both networks share: LayerNorm, the two GELUs, the MLP, head splitting."""

from __future__ import annotations

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

