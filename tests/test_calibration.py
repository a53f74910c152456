"""eval/calibration.py: N7's expected calibration error by hand, and temperature scaling that finds a known T."""

from __future__ import annotations

import math

import pytest
import torch

from eval.calibration import calibration, expected_calibration_error, fit_temperature, reliability_bins


def test_n7_ece_by_hand():
    """Four windows: two at confidence 0.9 (one right), two at 0.6 (both right).
    Bins [0.9, 1.0): |0.5 - 0.9| = 0.4; [0.6, 0.7): |1.0 - 0.6| = 0.4. ECE = 2/4 * 0.4 + 2/4 * 0.4 = 0.4."""
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    labels = torch.tensor([0, 0, 0, 1])
    bins = reliability_bins(probs, labels)
    assert [(b["low"], b["count"], b["accuracy"]) for b in bins] == [(0.6, 2, 1.0), (0.9, 2, 0.5)]
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    right = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # confidence 1 (the last bin), always right: calibrated
    assert expected_calibration_error(right, torch.tensor([0, 1])) == pytest.approx(0.0)


def test_temperature_scaling_finds_the_temperature_that_made_the_labels():
    """Labels drawn from softmax(z / 2.5): the fitted T is 2.5 (within sampling error), and ECE falls with it."""
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20_000, 4, generator=g)
    labels = torch.multinomial((logits / 2.5).softmax(-1), 1, generator=g).squeeze(1)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    c = calibration(logits[:10_000], labels[:10_000], logits[10_000:], labels[10_000:])
    assert c["after"]["ece"] < 0.02 < c["before"]["ece"] and c["after"]["cross_entropy"] < c["before"]["cross_entropy"]


def test_the_fitted_temperature_minimises_the_cross_entropy():
    g = torch.Generator().manual_seed(1)
    logits = 2 * torch.randn(500, 3, generator=g)
    labels = torch.multinomial((logits / 1.7).softmax(-1), 1, generator=g).squeeze(1)  # an optimum inside (0.05, 20)
    t = fit_temperature(logits, labels)

    def ce(temp):
        return torch.nn.functional.cross_entropy(logits.double() / temp, labels).item()
    assert all(ce(t) <= ce(t * f) + 1e-9 for f in (0.9, 0.99, 1.01, 1.1))
    assert math.isfinite(t) and t > 0


def test_the_mix_is_log_linear_and_each_judge_weighs_one_over_its_own_temperature():
    """log P_mix = alpha log P_bert + lambda log P_ngram + mu log P_probe - log Z, by hand; each weight 1 / T of that
    judge's own N7 fit: a judge whose log P spans 100x more gets a T near 100x larger, and the mix of the calibrated
    judges beats each alone."""
    from eval.authorship import MIX_TEMPERATURES, mix_weights, mixed_log_probs

    a, b, c = (torch.tensor([[-0.1, -2.4]]).double(), torch.tensor([[-50.0, 0.0]]).double(),
               torch.tensor([[-1.0, -0.5]]).double())
    by_hand = torch.tensor([-0.5 * 0.1 - 0.02 * 50 - 2 * 1.0, -0.5 * 2.4 - 2 * 0.5]).double()
    assert torch.allclose(mixed_log_probs([a, b, c], (0.5, 0.02, 2.0)), by_hand - torch.logsumexp(by_hand, 0))
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (3000,), generator=g)
    truth = torch.nn.functional.one_hot(labels, 3).double()
    judges = [torch.log_softmax(s * (1.5 * truth + torch.randn(3000, 3, generator=g).double()), -1) for s in (3, 100, 0.5)]
    weights = mix_weights(judges, labels)
    assert weights == tuple(1 / fit_temperature(j.float(), labels, *MIX_TEMPERATURES) for j in judges)
    assert 20 < weights[0] / weights[1] < 50 and weights[2] > 1 > weights[0]  # 100 / 3 apart; the softest sharpened

    def acc(logp):
        return (logp.argmax(-1) == labels).double().mean().item()
    assert acc(mixed_log_probs(judges, weights)) > max(acc(j) for j in judges)  # three views beat one


def test_a_judge_right_on_every_validation_passage_is_made_as_sure_as_its_median_margin_says():
    """Every validation passage right: the fit runs to its bound, so T = median margin / SURE_NATS (odds 99:1 on the
    median passage), each judge on its own scale; a judge that errs keeps its fitted T."""
    from eval.authorship import MIX_TEMPERATURES, SURE_NATS, margins, mix_weights, mixed_log_probs

    log_p = torch.log_softmax(torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]]).double(), -1)
    assert margins(log_p, torch.tensor([0, 2])).tolist() == pytest.approx([2.0, -2.0])  # ahead of the runner-up

    labels = torch.tensor([0, 1] * 4)
    sign = 1 - 2 * labels.double()  # +1 for author 0, -1 for author 1
    def two_way(margin):  # log P of two authors with the true one `margin` nats ahead
        z = torch.stack([sign * margin / 2, -sign * margin / 2], -1)
        return torch.log_softmax(z, -1)
    counts = two_way(torch.full((8,), 100.0))  # right on every passage, by 100 nats
    words = two_way(torch.tensor([4.0, 5.0, 5.0, 6.0] * 2))  # right on every passage, by about 5 nats
    erring = two_way(torch.tensor([3.0, -1.0] * 4))  # wrong on half
    w = mix_weights([counts, words, erring], labels)
    assert w[0] == pytest.approx(SURE_NATS / 100) and w[1] == pytest.approx(SURE_NATS / 5)
    assert w[2] == pytest.approx(1 / fit_temperature(erring.float(), labels, *MIX_TEMPERATURES))
    # a new passage of author 1: the counts 30 nats the wrong way (weak for them), the words 5 nats the right way
    new = [torch.log_softmax(torch.tensor([[15.0, -15.0]]).double(), -1),
           torch.log_softmax(torch.tensor([[-2.5, 2.5]]).double(), -1)]
    assert mixed_log_probs(new, (1.0, 1.0)).argmax().item() == 0  # a plain sum follows the widest scale
    assert mixed_log_probs(new, w[:2]).argmax().item() == 1  # each on its own scale: the surer judge wins


def test_a_text_is_mixed_with_the_weights_of_the_longest_passages_not_longer_than_it():
    from eval.authorship import mix_weights_for

    report = {"64": {"mix": {}, "mix_weights": [0.4, 0.01]}, "256": {"mix": {}, "mix_weights": [0.7, 0.001]},
              "1024": {}, "chapter": {"mix": {}, "mix_weights": [0.9, 0.0]}}  # 1,024: validation too short, no mix
    assert [mix_weights_for(report, n) for n in (20, 64, 255, 256, 5000)] == [
        (64, (0.4, 0.01)), (64, (0.4, 0.01)), (64, (0.4, 0.01)), (256, (0.7, 0.001)), (256, (0.7, 0.001))]
    assert mix_weights_for({"128": {"mix": {}, "mix_weight": 0.02}}, 500) == (128, (1.0, 0.02))  # a report before alpha
    with pytest.raises(ValueError, match="no mix"):
        mix_weights_for({"64": {}}, 100)


def test_a_validation_set_the_judge_gets_all_right_drives_t_to_its_bound_and_says_so():
    logits = torch.tensor([[3.0, -1.0], [-2.0, 2.0], [4.0, 0.0]])
    c = calibration(logits, torch.tensor([0, 1, 0]), logits, torch.tensor([0, 1, 1]))
    assert c["at_bound"] and c["temperature"] == pytest.approx(0.05, rel=0.01)
    g = torch.Generator().manual_seed(0)
    z = 3 * torch.randn(2000, 3, generator=g)
    y = torch.multinomial((z / 2.0).softmax(-1), 1, generator=g).squeeze(1)
    assert not calibration(z, y, z, y)["at_bound"]
