"""The BERT judge of lecture A at work: one training step, its logits, its held-out evaluation.

    classifier_step(model, optimizer, batch, ...)   forward, A3, backward, clip, A7; A11 and A13 measured
    predict_logits(model, x, mask)                  logits of many windows, in batches, no gradients
    evaluate_heldout(model, heldout)                held-out A3, A11, per-author accuracy, N4 confusion

The network is model/bert.py:BertClassifier; a trained one is found and loaded by plumbing/judges.py.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from model.half import Precision
from train.metrics import accuracy, confusion_matrix, cross_entropy, macro_accuracy
from train.optim import apply_update, check_finite_loss


def classifier_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...],
                    precision: Precision, grad_clip: float, before: list[torch.Tensor] | None = None,
                    scaler=None) -> dict[str, float]:
    """One training step of the judge: logits (A2), loss (A3), backward, clip, update (A7).

    Returns loss, batch accuracy (A11), gradient norm and, with `before` buffers, the update size (A13).
    `model` may be a DistributedDataParallel wrapper: its backward averages the gradients over ranks.
    """
    x, mask, y = (t.to(precision.device) for t in batch)  # (B, L), (B, L), (B,)
    model.train()
    with precision.autocast():
        logits = model(x, mask)  # (B, C)
    loss = cross_entropy(logits, y)  # A3, in float32
    value = check_finite_loss(loss, "the judge's loss")
    (scaler.scale(loss) if scaler is not None else loss).backward()
    norm, update = apply_update(model, optimizer, grad_clip, scaler, before)
    return {"loss": value, "acc": accuracy(logits.detach(), y), "grad_norm": norm, "update": update}


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, batch_size: int = 16,
                   precision: Precision | None = None, desc: str | None = None) -> torch.Tensor:
    """Logits (N, C) in float32 on the CPU for windows x (N, L), `batch_size` windows at a time, eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    starts = range(0, len(x), batch_size)
    for s in tqdm(starts, desc=desc, leave=False, disable=desc is None or len(starts) < 2):
        with precision.autocast() if precision is not None else torch.autocast(device.type, enabled=False):
            z = model(x[s : s + batch_size].to(device), mask[s : s + batch_size].to(device))  # (b, C)
        out.append(z.float().cpu())
    model.train(was_training)
    return torch.cat(out)


def evaluate_heldout(model: torch.nn.Module, heldout: tuple[torch.Tensor, ...], labels: list[str],
             precision: Precision | None = None, desc: str | None = "held-out") -> dict:
    """Held-out loss (A3), accuracy (A11), accuracy per author, macro accuracy and confusion matrix (N4)."""
    x, mask, y = heldout
    return heldout_metrics(predict_logits(model, x, mask, precision=precision, desc=desc), y, labels)


def heldout_metrics(logits: torch.Tensor, y: torch.Tensor, labels: list[str]) -> dict:
    """A3, A11, per-author accuracy, macro accuracy and the confusion matrix (N4) of logits (N, C) for labels y."""
    confusion = confusion_matrix(logits.argmax(-1), y, len(labels))
    per_author = {name: row[i] / max(1, sum(row)) for i, (name, row) in enumerate(zip(labels, confusion))}
    return {"heldout_loss": cross_entropy(logits, y).item(), "heldout_acc": accuracy(logits, y),
            "heldout_macro_acc": macro_accuracy(confusion), "heldout_acc_per_author": per_author,
            "confusion": confusion}
