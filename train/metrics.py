"""What training and judging measure: loss A3, accuracy A11 (with its Wilson interval), convergence A12,
update size A13, and for N authors the confusion matrix and macro accuracy (N4).

Written out by hand (no F.cross_entropy, no sklearn) so each line can be read against its equation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

Z_95 = 1.959963984540054  # the 97.5 % quantile of the standard normal: a two-sided 95 % interval


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A3: L = -(1/N) sum_i sum_c y_ic log y_hat_ic

    logits z (N, C), labels (N,) class indices. y is the one-hot matrix of the labels,
    y_hat = softmax(z) (A2); log y_hat is computed as log_softmax(z), which does not overflow.
    Computed in float32 whatever the logits' dtype. With C = N authors this is N1's loss too.
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    log_y_hat = F.log_softmax(logits.float(), dim=-1)  # (N, C)
    y = F.one_hot(labels, num_classes=logits.shape[-1]).float()  # (N, C)
    return -(y * log_y_hat).sum(dim=-1).mean()  # sum over classes c, mean over samples i


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """A11: Acc = (1/N) sum_i 1(y_hat_i = y_i), with y_hat_i = argmax_c z_ic."""
    predictions = logits.argmax(dim=-1)  # (N,)
    return (predictions == labels).float().mean().item()


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """B11, N3: How sure is an accuracy measured on n rows? The Wilson score 95 % interval of p = successes / n:

        (p + z^2/(2n) -+ z sqrt(p(1-p)/n + z^2/(4n^2))) / (1 + z^2/n)

    (Wilson 1927; recommended over p +- z sqrt(p(1-p)/n) by Newcombe 1998 and Agresti & Coull 1998:
    it stays inside [0, 1] and near 95 % even for small n.) 32 of 64 right is "0.38 to 0.62".
    """
    if n < 1:
        raise ValueError(f"need at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must lie between 0 and n={n}")
    p, z2 = successes / n, z * z
    centre = p + z2 / (2 * n)
    half_width = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    return max(0.0, (centre - half_width) / denom), min(1.0, (centre + half_width) / denom)


def snapshot(params: Sequence[torch.Tensor], out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Copy the parameters theta_t (into `out` if given, so the buffers are reused every step)."""
    if out is None:
        return [p.detach().clone() for p in params]
    for buf, p in zip(out, params):
        buf.copy_(p.detach())
    return out


def update_size(params: Sequence[torch.Tensor], before: Sequence[torch.Tensor]) -> float:
    """A13: |theta_{t+1} - theta_t|, the L2 norm of the change over all parameters together.

    `before` is a `snapshot` taken just before the optimizer step. The lecture's point: with a
    small learning rate this stays << 1, so the pretrained knowledge is barely moved.
    """
    total = torch.zeros((), dtype=torch.float64)
    for p, b in zip(params, before):
        total += (p.detach() - b).float().pow(2).sum().double()  # sum of squares, parameter by parameter
    return total.sqrt().item()


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope dy/dx of the points (x, y); 0.0 for fewer than two distinct x."""
    n = len(xs)
    if n < 2:
        return 0.0
    x_mean, y_mean = sum(xs) / n, sum(ys) / n
    var = sum((x - x_mean) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys)) / var


def convergence(losses: Sequence[float], k: int = 3) -> dict[str, float | bool]:
    """A12: L_initial > L_final and dL/dt < 0, read off the loss curve; converged when both hold.

    L_initial and L_final are the means of the first and last k losses: the curve smoothed with window
    k (A9) at i = w and at i = n - 1 - w, its first and last full windows (not the edge values of A10).
    dL/dt is the least-squares slope of loss against step.
    """
    xs = [float(v) for v in losses]
    if len(xs) < 2:
        raise ValueError(f"need at least 2 losses to judge convergence, got {len(xs)}")
    m = min(k, len(xs))
    initial, final = sum(xs[:m]) / m, sum(xs[-m:]) / m
    dl_dt = slope(list(range(len(xs))), xs)
    return {"loss_initial": initial, "loss_final": final, "slope": dl_dt,
            "converged": bool(initial > final and dl_dt < 0)}


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, n_classes: int) -> list[list[int]]:
    """N4: C_ab = number of windows of author a (the true label) predicted as b. (N, N) as lists of ints."""
    counts = torch.zeros(n_classes, n_classes, dtype=torch.long)
    counts.index_put_((labels.long(), predicted.long()), torch.ones_like(labels, dtype=torch.long), accumulate=True)
    return counts.tolist()


def macro_accuracy(confusion: Sequence[Sequence[int]]) -> float:
    """N4: macro accuracy = (1/N) sum_a C_aa / sum_b C_ab, each author weighted alike; chance = 1/N.

    Authors with no window (an empty row) are left out of the mean.
    """
    rows = [(row[a], sum(row)) for a, row in enumerate(confusion) if sum(row) > 0]
    if not rows:
        raise ValueError("the confusion matrix is empty")
    return sum(right / total for right, total in rows) / len(rows)


# ----------------------------------------------------------------------------- memory (for LoRA's comparison, P2)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of an optimizer's state tensors (AdamW: two moments per trained parameter)."""
    return sum(v.numel() * v.element_size() for state in optimizer.state.values() for v in state.values()
               if torch.is_tensor(v))


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring the peak from now: CUDA's allocator peak, or on Linux the process's peak resident memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM, the peak resident set size
        except OSError:
            pass


def peak_memory_mib(device: torch.device) -> float | None:
    """The peak since `reset_peak_memory`: CUDA allocated bytes, or the process's peak resident memory (VmHWM)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
