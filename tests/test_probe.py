"""LP-FT's first half (train/probe.py): the head fitted to frozen features, the loss it minimises."""

import math

import pytest
import torch
import torch.nn as nn

from train.probe import fit_probe, probe_loss


def test_probe_loss_is_cross_entropy_plus_l2_by_hand() -> None:
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        head.bias.copy_(torch.tensor([0.0, -1.0]))
    h, y = torch.tensor([[1.0, 1.0], [2.0, 0.0]]), torch.tensor([1, 0])
    # z_1 = (1, 1): -log(1/2); z_2 = (2, -1): -log(e^2 / (e^2 + e^-1)); ||W||^2 = 1 + 4
    by_hand = (math.log(2) + math.log(1 + math.exp(-3))) / 2 + 0.1 * 5
    assert probe_loss(head, h, y, 0.1).item() == pytest.approx(by_hand, rel=1e-6)


def test_the_fitted_probe_is_the_minimum_of_its_loss() -> None:
    """Three authors, features that a linear head separates: the fit classifies them all, its gradient is ~0, and
    every small step away from it costs loss."""
    gen = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(3, 8, generator=gen)
    y = torch.arange(3).repeat_interleave(20)
    h = centres[y] + torch.randn(60, 8, generator=gen)
    head = nn.Linear(8, 3)
    start = probe_loss(head, h, y, 1e-3).item()
    assert fit_probe(head, h, y, l2=1e-3) == 1.0
    fitted = probe_loss(head, h, y, 1e-3)
    assert fitted.item() < start / 5
    fitted.backward()
    assert max(p.grad.abs().max().item() for p in head.parameters()) < 1e-4
    with torch.no_grad():
        for p in head.parameters():
            for _ in range(5):
                step = 1e-2 * torch.randn(p.shape, generator=gen)
                p.add_(step)
                assert probe_loss(head, h, y, 1e-3).item() > fitted.item()
                p.sub_(step)
