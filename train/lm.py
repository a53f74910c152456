"""Language-model training for the GPT-Neo generators (lecture B1, B2).

Works for any `model.gpt_neo.GPTNeo` (our small pretrained one or gpt-neo-125M)
and any token stream. The pieces, each one small:

    lm_loss(logits, input_ids)         B2, the mean next-token cross-entropy
    sample_windows(ids, B, T, gen)     a (B, T) batch of random windows of a token stream
    lm_train_step(model, opt, batch)   one AdamW step on one batch (with gradient accumulation)
    finetune_steps(model, ids, ...)    the lecture's generator fine-tuning loop (preset below)
    heldout_loss(model, ids, T)        B2 on every full window of a held-out stream, no gradients

The lecture's preset (course code): AdamW, lr 1e-5, 121 steps of 64 windows of 128 tokens.
The co-evolution loop calls `finetune_steps` in chunks (e.g. 10 steps, then
generate and judge) with the same optimizer, so the optimizer state carries over.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm


@dataclass
class FinetuneConfig:
    """Generator fine-tuning settings; the defaults are the lecture's (course code) preset."""

    steps: int = 121
    batch_size: int = 64  # windows per optimizer step (B7: 64 x 128)
    seq_len: int = 128  # tokens per window
    lr: float = 1e-5  # tuned for gpt-neo-125M; neo-small (pretrained at 2e-3) barely moves at 1e-5, ~1e-4 moves it
    weight_decay: float = 0.0  # the course keeps AdamW's behaviour simple; set > 0 to decay
    micro_batch_size: int | None = None  # split a batch into chunks of this many windows (same gradient, less memory)
    grad_clip: float | None = 1.0
    # bfloat16 autocast: fast on GPUs and on CPUs with AVX512-BF16/AMX; on an AVX2-only CPU
    # (this project's 2-core AMD EPYC) a bfloat16 matmul ran at 0.6 GFLOP/s against 25 for float32.
    bf16_autocast: bool = False


LECTURE_PRESET = FinetuneConfig()
IGNORE = -100  # target id that cross_entropy leaves out of the loss and of the count N


def lm_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """B2: L_gen = -(1/N) sum_i log P(x_i | x_<i)

    logits (B, T, V) from the model on input_ids (B, T); row t predicts token t + 1,
    so the targets are the inputs shifted left by one and the last row has no
    target: N = B * (T - 1). Computed in float32 whatever the logits' dtype.
    """
    B, T, V = logits.shape
    if input_ids.shape != (B, T):
        raise ValueError(f"input_ids {tuple(input_ids.shape)} do not match logits {tuple(logits.shape)}")
    if T < 2:
        raise ValueError("need at least 2 tokens per row: the loss predicts token t+1 from tokens <= t")
    # Shift the targets, not the logits: slicing (B, T, V) logits would copy them, and
    # their gradient too. The last row's target is IGNORE, left out of the mean.
    target = F.pad(input_ids[:, 1:], (0, 1), value=IGNORE)  # (B, T): x_{t+1}, then IGNORE
    return F.cross_entropy(logits.float().reshape(B * T, V), target.reshape(B * T), ignore_index=IGNORE)


def sample_windows(
    ids: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A (batch_size, seq_len) batch of windows cut at uniformly random starts of the 1-D token stream `ids`."""
    if ids.dim() != 1:
        raise ValueError(f"expected a 1-D token stream, got shape {tuple(ids.shape)}")
    n_starts = ids.numel() - seq_len + 1
    if n_starts < 1:
        raise ValueError(f"the token stream has {ids.numel()} tokens, fewer than one window of {seq_len}")
    starts = torch.randint(0, n_starts, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(seq_len)  # (T,)
    return ids[starts[:, None] + offsets[None, :]]  # (B, T)


def autocast_for(model: nn.Module, enabled: bool):
    """bfloat16 autocast on the model's device (weights and optimizer state stay float32), or a no-op."""
    device = next(model.parameters()).device.type
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def make_adamw(
    model: nn.Module, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.AdamW:
    """AdamW; with weight decay, only matrices decay (not biases, LayerNorm weights)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if weight_decay == 0.0:
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=0.0)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def lm_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    micro_batch_size: int | None = None,
    grad_clip: float | None = 1.0,
    bf16_autocast: bool = False,
) -> float:
    """One optimizer step on batch (B, T): forward, B2 loss, backward, clip, step. Returns the batch's mean loss.

    With micro_batch_size, the batch is processed in chunks whose losses are
    weighted by their share of rows, so the gradient equals the whole batch's.
    """
    model.train()
    device = next(model.parameters()).device
    batch = batch.to(device)
    optimizer.zero_grad(set_to_none=True)
    B = batch.shape[0]
    total = 0.0
    for chunk in batch.split(micro_batch_size or B):  # each (b, T)
        with autocast_for(model, bf16_autocast):
            logits = model(chunk)  # (b, T, V)
        loss = lm_loss(logits, chunk) * (chunk.shape[0] / B)
        loss.backward()
        total += loss.item()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return total


def finetune_steps(
    model: nn.Module,
    ids: torch.Tensor,
    cfg: FinetuneConfig = LECTURE_PRESET,
    steps: int | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    desc: str = "fine-tune",
) -> tuple[list[float], torch.optim.Optimizer]:
    """Fine-tune `model` on random windows of the token stream `ids` (an author's train split): B2 with AdamW.

    Runs `steps` (default cfg.steps) steps of cfg.batch_size windows of cfg.seq_len
    tokens at constant lr. Pass the returned optimizer back in to continue the
    same run in chunks. Returns (loss of every step, optimizer).
    """
    if optimizer is None:
        optimizer = make_adamw(model, cfg.lr, cfg.weight_decay)
    losses: list[float] = []
    bar = tqdm(range(cfg.steps if steps is None else steps), desc=desc, leave=False)
    for _ in bar:
        batch = sample_windows(ids, cfg.batch_size, cfg.seq_len, generator)  # (B, T)
        loss = lm_train_step(model, optimizer, batch, cfg.micro_batch_size, cfg.grad_clip, cfg.bf16_autocast)
        losses.append(loss)
        bar.set_postfix(loss=f"{loss:.3f}")
    return losses, optimizer


@torch.no_grad()
def heldout_loss(
    model: nn.Module,
    ids: torch.Tensor,
    seq_len: int,
    batch_size: int = 16,
    max_windows: int | None = None,
    bf16_autocast: bool = False,
) -> float:
    """B2 on held-out text: the mean loss over consecutive, non-overlapping windows of `seq_len` tokens.

    Deterministic (no random starts). The tail shorter than one window is
    dropped; max_windows caps the cost (the first windows are used).
    """
    n_windows = ids.numel() // seq_len
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    if n_windows < 1:
        raise ValueError(f"held-out stream of {ids.numel()} tokens is shorter than one window of {seq_len}")
    windows = ids[: n_windows * seq_len].view(n_windows, seq_len)  # (n, T)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for chunk in windows.split(batch_size):  # (b, T)
        chunk = chunk.to(device)
        with autocast_for(model, bf16_autocast):
            logits = model(chunk)  # (b, T, V)
        total += lm_loss(logits, chunk).item() * chunk.shape[0]
    model.train(was_training)
    return total / n_windows
