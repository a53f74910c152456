"""LoRA, written by hand (Hu et al. 2021; P1-P4 of EXTENSIONS.md): a frozen matrix plus a trained low-rank update.

    P1  y = W x + b + (alpha/r) B A x,  A (r x k), B (d x r), B = 0 at the start: the model is unchanged
    P2  only A, B (and a new head) are trained: trainable fraction = sum r (d + k) / |theta|
    P3  merge for export: W <- W + (alpha/r) B A; merged and unmerged models give the same outputs
    P4  adapters off = the model it started from: the reference of RL (T2) costs no second copy

    add_lora(model, rank=8, alpha=16)      wrap the chosen nn.Linear layers (default: attention q, k, v, output)
    set_lora(model, False) / adapters_off  P4
    merge_lora(model)                      P3: back to plain nn.Linear layers, the update inside W
    trainable_parameters(model)            P2

Our BERT and GPT-Neo compute q, k and v with one fused (3C x C) matrix. A per-matrix LoRA (what PEFT puts
on Hugging Face's separate q_proj, k_proj, v_proj) gives each of the three its own A and B; so does
LoRALinear with parts=3: the fused output is three blocks, each with its own low-rank update. The Llama
keeps q_proj, k_proj, v_proj (narrower: grouped-query, L3) and o_proj apart, one LoRALinear each.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch

import torch
import torch.nn as nn

from model.layers import Dropout

# q, k, v and the attention output: BERT and GPT-Neo (fused q/k/v), then the Llama's four (L3)
ATTENTION = ("*attn.qkv", "*attn.proj", "*self_attn.[qkvo]_proj")
MLP = ("*mlp.fc", "*mlp.proj", "*mlp.gate_proj", "*mlp.up_proj", "*mlp.down_proj")
TARGETS = {"attention": ATTENTION, "attention+mlp": ATTENTION + MLP}


class LoRALinear(nn.Module):
    """P1: y = W x + b + (alpha/r) B A x, with W and b frozen; `parts` separate updates of equal output blocks."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0, parts: int = 1) -> None:
        super().__init__()
        if rank < 1 or base.out_features % parts:
            raise ValueError(f"LoRA needs rank >= 1 and {parts} equal output blocks, got rank {rank}, "
                             f"{base.out_features} outputs")
        self.base = base.requires_grad_(False)
        d, k, device = base.out_features // parts, base.in_features, base.weight.device
        # A ~ Gaussian as in the paper (its scale is not given; std 1/r as PEFT's "gaussian" init), B = 0.
        self.lora_A = nn.Parameter(torch.randn(parts, rank, k, device=device) / rank)
        self.lora_B = nn.Parameter(torch.zeros(parts, d, rank, device=device))
        self.scale, self.rank, self.alpha = alpha / rank, rank, alpha
        self.drop = Dropout(dropout)
        self.enabled = True  # P4: False = the frozen layer alone

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """(alpha/r) B A x for every part, concatenated along the outputs: (..., k) -> (..., parts d)."""
        h = self.drop(x)
        return torch.cat([(h @ a.T) @ b.T for a, b in zip(self.lora_A, self.lora_B)], dim=-1) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        return y + self.delta(x) if self.enabled else y

    def delta_weight(self) -> torch.Tensor:
        """P3's (alpha/r) B A as one (parts d, k) matrix, the shape of W."""
        return torch.cat([b @ a for a, b in zip(self.lora_A, self.lora_B)], dim=0) * self.scale


def add_lora(model: nn.Module, rank: int, alpha: float, targets: tuple[str, ...] | str = "attention",
             dropout: float = 0.0) -> list[str]:
    """P1: Freeze `model` and wrap every nn.Linear whose name matches a pattern of `targets` in a LoRALinear.

    targets: "attention" (q, k, v and output projections), "attention+mlp", or fnmatch patterns.
    A fused q/k/v layer (`*.qkv`) gets three separate updates. Returns the wrapped layers' names.
    Parameters that should stay trained (a new head) are the caller's to unfreeze after.
    """
    patterns = TARGETS[targets] if isinstance(targets, str) else tuple(targets)
    model.requires_grad_(False)
    chosen = [(name, m) for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    if not chosen:
        raise ValueError(f"no linear layer of {type(model).__name__} matches {patterns}")
    for name, linear in chosen:
        replace_module(model, name, LoRALinear(linear, rank, alpha, dropout, parts=3 if name.endswith("qkv") else 1))
    return [name for name, _ in chosen]


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put `new` where the submodule called `name` (e.g. "blocks.0.attn.qkv") is."""
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


def set_lora(model: nn.Module, enabled: bool) -> None:
    """P4: turn every adapter on or off (off: the model computes exactly what it did before add_lora)."""
    for _, layer in lora_layers(model):
        layer.enabled = enabled


@contextlib.contextmanager
def adapters_off(model: nn.Module):
    """P4 as a block: `with adapters_off(model): ...` computes pi_ref with the same network."""
    set_lora(model, False)
    try:
        yield model
    finally:
        set_lora(model, True)


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """P3: W <- W + (alpha/r) B A in every adapted layer, which becomes a plain nn.Linear again. In place."""
    for name, layer in lora_layers(model):
        merged = layer.base
        merged.weight += layer.delta_weight().to(merged.weight.dtype)
        replace_module(model, name, merged.requires_grad_(True))
    return model


def trainable_parameters(model: nn.Module) -> dict:
    """P2: trainable fraction = sum r (d + k) / |theta|, and the counts around it.

    `lora` is sum r (d + k) over the adapted matrices (q, k and v each count as one), |theta| the
    parameters of the network without its adapters, and `fraction` their ratio, as P2 writes it (0 without
    LoRA). `trainable` also counts what else trains (the new head), `total` the adapters too.
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    by_formula = sum(layer.lora_A.shape[0] * layer.rank * (layer.lora_B.shape[1] + layer.lora_A.shape[2])
                     for _, layer in lora_layers(model))
    return {"trainable": trainable, "total": total, "lora": by_formula, "fraction": by_formula / (total - by_formula)}


def has_lora(model: nn.Module) -> bool:
    return bool(lora_layers(model))


def merged_copy(model: nn.Module) -> nn.Module:
    """P3 for export: a copy with the updates merged (the model itself keeps its adapters); the model if it has none."""
    return merge_lora(copy.deepcopy(model)) if has_lora(model) else model
