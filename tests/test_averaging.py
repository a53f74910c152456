"""train/averaging.py: the running mean of the weights over the steps (stochastic weight averaging)."""

from __future__ import annotations

import torch
import torch.nn as nn

from train.averaging import WeightAverage, running_mean


def test_the_running_mean_is_the_mean_of_the_snapshots() -> None:
    mean, snapshots = torch.zeros(3), [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0]),
                                       torch.tensor([2.0, 8.0, -1.0])]
    for n, w in enumerate(snapshots, start=1):
        if n == 1:
            mean.copy_(w)
        else:
            running_mean(mean, w, n)
    torch.testing.assert_close(mean, torch.stack(snapshots).mean(0))


def test_the_average_starts_at_its_step_is_swapped_in_and_out_and_keeps_integers() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    average = WeightAverage(first=2)
    seen = []
    for step in (1, 2, 3):
        with torch.no_grad():
            model[0].weight.fill_(float(step))
        model[1].num_batches_tracked.fill_(step)
        average.update(model, step)
        seen.append(model[0].weight.clone())
    with average.swapped_in(model):
        torch.testing.assert_close(model[0].weight, (seen[1] + seen[2]) / 2)  # steps 2 and 3, not 1
        assert model[1].num_batches_tracked.item() == 3  # an integer buffer is not averaged
    assert torch.equal(model[0].weight, seen[2])  # its own weights back
    again = WeightAverage(first=2)
    again.load_state_dict(average.state_dict())
    assert again.mean.keys() == average.mean.keys()
    with WeightAverage(first=5).swapped_in(model):  # nothing averaged yet: the model's own weights
        assert torch.equal(model[0].weight, seen[2])
