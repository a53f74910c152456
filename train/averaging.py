"""The judge's weights averaged over its steps (stochastic weight averaging: Izmailov et al. 2018; SWAD: Cha et al.
2021, for a model that must work on a domain it never saw).

A six-author judge trained on two to four books per author learns its authors in the first tens of steps and then,
more and more, its books: its accuracy on the held-out books peaks early and wanders below that peak (0.90 at step
40, 0.77-0.84 after it on 96 windows, in a 300-step run), while the loss on its training books keeps falling. The
weights of the later steps scatter around a region that fits the training books; those papers found their mean in
a flatter part of it, which carries further to data of another kind (here, on the held-out books: 0.852 -> 0.888
at 256 tokens, README). With --average-from s, the held-out
evaluations and the saved judge are the mean of the weights of steps s, s+1, ..., t; the optimiser goes on with the
step's own weights.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn


def running_mean(mean: torch.Tensor, weights: torch.Tensor, n: int) -> None:
    """N3 + A7, averaged: theta_bar_n = theta_bar_{n-1} + (theta_n - theta_bar_{n-1}) / n: the mean of n snapshots, in
    place."""
    mean.add_(weights.detach().to(mean.dtype) - mean, alpha=1.0 / n)


class WeightAverage:
    """The running mean of a model's floating-point weights (parameters and buffers) over the steps from `first` on,
    kept in float32. Step t's weights are the (t - first + 1)-th snapshot, so the count follows from the step."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.mean: dict[str, torch.Tensor] = {}

    def update(self, model: nn.Module, step: int) -> None:
        """Add the weights after `step` to the mean (nothing before `first`)."""
        n = step - self.first + 1
        if n < 1:
            return
        for name, w in model.state_dict().items():
            if not w.is_floating_point():
                continue
            if n == 1:
                self.mean[name] = w.detach().float().clone()
            else:
                running_mean(self.mean[name], w, n)

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module):
        """Inside: the model holds the mean (before `first`: its own weights); after: its own weights again."""
        if not self.mean:
            yield model
            return
        own = {name: w.detach().clone() for name, w in model.state_dict().items() if name in self.mean}
        model.load_state_dict(self.mean, strict=False)
        try:
            yield model
        finally:
            model.load_state_dict(own, strict=False)

    # a checkpoint saves and restores the mean as it does a model's weights (plumbing/checkpoint.py)
    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.mean

    def load_state_dict(self, mean: dict[str, torch.Tensor], strict: bool = False) -> tuple[list, list]:
        self.mean = {name: w.float().clone() for name, w in mean.items()}
        return [], []  # nothing missing, nothing unexpected: an empty mean is a run before `first`
