"""The update rule (A7), written out, and the optimizer the course code really uses (AdamW), with its schedules.

A7 as the lecture writes it is plain gradient descent, theta_{t+1} = theta_t - eta grad L_t:
`sgd_step` does exactly that, and every training program can use it (`--optimizer sgd`).
The course code, like almost all fine-tuning code, uses AdamW: the same step direction scaled per
parameter by running moments of the gradient, plus decoupled weight decay. `make_optimizer`
builds either, with one weight-decay rule for the whole project:

    decay:    every matrix and embedding table (parameters with 2 or more dimensions)
    no decay: biases and LayerNorm weights (1-dimensional): shrinking a LayerNorm gain or a bias
              towards 0 is not regularisation, it changes what the layer computes.

(GPT-2, nanoGPT and Hugging Face's examples use the same split.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn as nn

from train.metrics import snapshot, update_size

OPTIMIZERS = ("adamw", "sgd")


class Diverged(RuntimeError):
    """A loss became NaN or infinite: the run stops before that step is taken or saved."""


def check_finite_loss(loss: torch.Tensor, what: str = "the loss") -> float:
    """The loss as a float; Diverged if it is NaN or infinite (checked BEFORE backward and the update)."""
    value = loss.item()
    if not math.isfinite(value):
        raise Diverged(f"{what} became {value}: the run diverged (learning rate too high?). "
                       "This step was not taken and nothing of it was saved.")
    return value
SCHEDULES = ("constant", "linear", "cosine")


@torch.no_grad()
def sgd_step(params: Iterable[torch.Tensor], lr: float) -> None:
    """A7: theta_{t+1} = theta_t - eta grad_theta L_t, for every parameter that has a gradient."""
    for p in params:
        if p.grad is not None:
            p.sub_(lr * p.grad)


class SGD(torch.optim.Optimizer):
    """A7 as an optimizer object (so the loops can swap it for AdamW): each step is `sgd_step`."""

    def __init__(self, params, lr: float) -> None:
        super().__init__(params, {"lr": lr, "weight_decay": 0.0})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch's signature
        for group in self.param_groups:
            sgd_step(group["params"], group["lr"])


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The trainable parameters in two groups: matrices and embeddings decay, biases and LayerNorm do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, kind: str, lr: float, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    """AdamW (the course code's choice; the default) or plain SGD (A7 as written), over the trainable parameters."""
    if kind == "adamw":  # fused: one kernel per step for all tensors, the same update (~5x faster for 135M here)
        return torch.optim.AdamW(decay_groups(model, weight_decay), lr=lr, betas=betas, fused=True)
    if kind == "sgd":
        return SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    """Give every parameter group the learning rate eta_t of this step; returns it."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def lr_at(schedule: str, lr: float, progress: float, warmup: float = 0.0, min_ratio: float = 0.0) -> float:
    """eta_t for `progress` = t / T in [0, 1] (or elapsed / budget for a run with a time budget).

    constant: eta (the course code). linear: from eta down to eta * min_ratio (a short, noisy run
    settles: its last updates are the smallest). cosine: half a cosine from eta to eta * min_ratio.
    warmup: the fraction of the run over which eta first rises linearly from 0.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    p = min(max(progress, 0.0), 1.0)
    ramp = min(1.0, p / warmup) if warmup > 0 else 1.0
    if schedule == "constant":
        return lr * ramp
    fall = 1.0 - p if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))  # 1 -> 0
    return lr * ramp * (min_ratio + (1.0 - min_ratio) * fall)


def clip_gradients(model: nn.Module, max_norm: float) -> float:
    """Scale all gradients together so that their joint L2 norm is at most max_norm (0: no clipping).

    Returns the norm before clipping (a diverging run shows it first).
    """
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    if max_norm <= 0:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])).item()
    return torch.nn.utils.clip_grad_norm_(params, max_norm).item()


def apply_update(model: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float,
                 scaler: torch.amp.GradScaler | None = None, before: list[torch.Tensor] | None = None
                 ) -> tuple[float, float | None]:
    """After backward: clip, take the A7 step theta_t -> theta_{t+1}, clear the gradients.

    Returns (gradient norm before clipping, |theta_{t+1} - theta_t| of A13 if `before` holds reusable
    buffers for the snapshot of theta_t, else None). With a float16 gradient scaler the gradients are
    unscaled before clipping, and a step with infinite gradients is skipped by the scaler.
    """
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = clip_gradients(model, grad_clip)
    params = [p for p in model.parameters() if p.requires_grad]
    if before is not None:
        snapshot(params, before)  # theta_t
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()  # theta_{t+1}
    optimizer.zero_grad(set_to_none=True)
    return norm, (update_size(params, before) if before is not None else None)
