"""What the judge's training measures (lecture A): loss A3, accuracy A11, convergence A12, update size A13.

Written out by hand (no F.cross_entropy) so each line can be read against its equation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A3: L = -(1/N) sum_i sum_c y_ic log y_hat_ic

    logits z (N, C), labels (N,) class indices. y is the one-hot matrix of the
    labels, y_hat = softmax(z) (A2); log y_hat is computed as log_softmax(z),
    which does not overflow. Computed in float32 whatever the logits' dtype.
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


def snapshot(params: Sequence[torch.Tensor], out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Copy the parameters theta_t (into `out` if given, so the buffers are reused every step)."""
    if out is None:
        return [p.detach().clone() for p in params]
    for buf, p in zip(out, params):
        buf.copy_(p.detach())
    return out


def update_size(params: Sequence[torch.Tensor], before: Sequence[torch.Tensor]) -> float:
    """A13: |theta_{t+1} - theta_t|, the L2 norm of the change over all parameters together.

    `before` is a `snapshot` taken just before the optimizer step. The lecture's
    point: with a small learning rate this stays << 1, so the pretrained
    knowledge is barely moved.
    """
    total = torch.zeros((), dtype=torch.float64)
    for p, b in zip(params, before):
        total += (p.detach() - b).float().pow(2).sum().double()  # sum of squares, parameter by parameter
    return total.sqrt().item()


def convergence(losses: Sequence[float], k: int = 3) -> dict[str, float | bool]:
    """A12: L_initial > L_final and dL/dt < 0, read off the loss curve.

    L_initial and L_final are the means of the first and last k losses (the
    ends of a curve smoothed with window k); dL/dt is the least-squares slope
    of loss against step. Returns both, and `converged` = both conditions.
    """
    xs = [float(v) for v in losses]
    n = len(xs)
    if n < 2:
        raise ValueError(f"need at least 2 losses to judge convergence, got {n}")
    m = min(k, n)
    initial, final = sum(xs[:m]) / m, sum(xs[-m:]) / m
    t_mean, l_mean = (n - 1) / 2, sum(xs) / n
    cov = sum((t - t_mean) * (x - l_mean) for t, x in enumerate(xs))
    var = sum((t - t_mean) ** 2 for t in range(n))
    slope = cov / var
    return {"loss_initial": initial, "loss_final": final, "slope": slope,
            "converged": bool(initial > final and slope < 0)}
