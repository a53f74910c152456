"""Language-model training for the GPT-Neo generators (lecture B1, B2).

Works for any decoder of model/decoder.py (GPT-Neo, Llama) and any token stream:

    lm_loss(logits, input_ids)                  B2, the mean next-token cross-entropy
    lm_step(model, optimizer, batch, ...)       one optimizer step on one batch of windows
    heldout_loss(model, ids, length)            B2 on fixed held-out windows, no gradients
    nats_per_byte(nats, n_bytes)                L7, the held-out loss in a unit every tokenizer shares

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


def nats_per_byte(nats: float, n_bytes: int) -> float:
    """L7: nats per byte = (sum_t -log P(x_t | x_<t)) / (UTF-8 bytes of the text)

    Per token, a 49k BPE (SmolLM2) and a 4k BPE (neo-small) are not comparable: the larger vocabulary
    writes more text per token. Per byte of the same text they are.
    """
    if n_bytes <= 0:
        raise ValueError("L7 needs text of at least one byte")
    return nats / n_bytes


@torch.no_grad()
def heldout_scores(model: nn.Module, ids: torch.Tensor, length: int, byte_lengths: torch.Tensor | None = None,
                   precision: Precision | None = None, batch_size: int = 16,
                   max_windows: int | None = None) -> dict[str, float]:
    """B2 on held-out text, and L7 when `byte_lengths` (tokenizer_bridge/bpe.py:token_byte_lengths) is given.

    {"per_token": the mean loss over consecutive, non-overlapping windows of `length` tokens, "per_byte": the
    same nats over the UTF-8 bytes of the tokens they predict (each window's tokens 1..T-1)}. Deterministic
    (no random starts); the tail shorter than one window is dropped; max_windows caps the cost (the first
    windows are used). Evaluated in eval mode, then the mode is restored.
    """
    windows = consecutive_windows(ids, length, max_windows)  # (n, T)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    nats = 0.0
    for chunk in windows.split(batch_size):  # (b, T)
        chunk = chunk.to(device)
        with precision.autocast() if precision is not None else torch.autocast(device.type, enabled=False):
            logits = model(chunk)  # (b, T, V)
        nats += lm_loss(logits, chunk).item() * chunk[:, 1:].numel()  # the mean times N = its sum
    model.train(was_training)
    scores = {"per_token": nats / windows[:, 1:].numel()}
    if byte_lengths is not None:
        scores["per_byte"] = nats_per_byte(nats, int(byte_lengths[windows[:, 1:]].sum()))
    return scores


def heldout_loss(model: nn.Module, ids: torch.Tensor, length: int, precision: Precision | None = None,
                 batch_size: int = 16, max_windows: int | None = None) -> float:
    """B2 on held-out text: the mean loss per token over consecutive windows (see `heldout_scores`)."""
    return heldout_scores(model, ids, length, None, precision, batch_size, max_windows)["per_token"]
