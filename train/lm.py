"""Language-model training for the GPT-Neo generators (lecture B1, B2).

Works for any `model.gpt_neo.GPTNeo` (our small pretrained one or gpt-neo-125M) and any token stream:

    lm_loss(logits, input_ids)                  B2, the mean next-token cross-entropy
    lm_step(model, optimizer, batch, ...)       one optimizer step on one batch of windows
    heldout_loss(model, ids, length)            B2 on fixed held-out windows, no gradients

The windows come from data/windows.py (`lm_windows`, `balanced_lm_batch`, `consecutive_windows`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from data.windows import consecutive_windows
from model.half import Precision
from train.optim import apply_update, check_finite_loss

IGNORE = -100  # target id that cross_entropy leaves out of the loss and of the count N


def lm_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """B2: L_gen = -(1/N) sum_i log P(x_i | x_<i)

    logits (B, T, V) from the model on input_ids (B, T); row t predicts token t + 1, so the
    targets are the inputs shifted left by one and the last row has no target: N = B * (T - 1).
    Computed in float32 whatever the logits' dtype.
    """
    B, T, V = logits.shape
    if input_ids.shape != (B, T):
        raise ValueError(f"input_ids {tuple(input_ids.shape)} do not match logits {tuple(logits.shape)}")
    if T < 2:
        raise ValueError("need at least 2 tokens per row: the loss predicts token t+1 from tokens <= t")
    # Shift the targets, not the logits: slicing (B, T, V) logits would copy them, and their
    # gradient too. The last row's target is IGNORE, left out of the mean.
    target = F.pad(input_ids[:, 1:], (0, 1), value=IGNORE)  # (B, T): x_{t+1}, then IGNORE
    return F.cross_entropy(logits.float().reshape(B * T, V), target.reshape(B * T), ignore_index=IGNORE)


def lm_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor, precision: Precision,
            grad_clip: float = 1.0, micro_batch: int = 0, scaler=None) -> tuple[float, float]:
    """One optimizer step on windows (B, T): forward, B2 loss, backward, clip, update.

    Returns (the batch's mean loss, gradient norm). With micro_batch > 0 the batch runs in chunks
    whose losses are weighted by their share of rows, so the gradient equals the whole batch's.
    `model` may be a DistributedDataParallel wrapper: its backward averages the gradients.
    """
    model.train()
    batch = batch.to(precision.device)
    total = 0.0
    for chunk in batch.split(micro_batch or batch.shape[0]):  # each (b, T)
        with precision.autocast():
            logits = model(chunk)  # (b, T, V)
        loss = lm_loss(logits, chunk) * (chunk.shape[0] / batch.shape[0])
        total += check_finite_loss(loss, "the generator's loss")
        (scaler.scale(loss) if scaler is not None else loss).backward()
    norm, _ = apply_update(model, optimizer, grad_clip, scaler)
    return total, norm


@torch.no_grad()
def heldout_loss(model: nn.Module, ids: torch.Tensor, length: int, precision: Precision | None = None,
                 batch_size: int = 16, max_windows: int | None = None) -> float:
    """B2 on held-out text: the mean loss over consecutive, non-overlapping windows of `length` tokens.

    Deterministic (no random starts); the tail shorter than one window is dropped; max_windows
    caps the cost (the first windows are used). Evaluated in eval mode, then the mode is restored.
    """
    windows = consecutive_windows(ids, length, max_windows)  # (n, T)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for chunk in windows.split(batch_size):  # (b, T)
        chunk = chunk.to(device)
        with precision.autocast() if precision is not None else torch.autocast(device.type, enabled=False):
            logits = model(chunk)  # (b, T, V)
        total += lm_loss(logits, chunk).item() * chunk.shape[0]
    model.train(was_training)
    return total / len(windows)
