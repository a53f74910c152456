"""Solutions to the exercises of notebooks/lecture_a.ipynb. tests/test_notebooks.py runs every `exercise_` function;
each checks its answer, so a change to the library that makes an answer wrong fails the suite."""

from __future__ import annotations

import math

import torch

from data.windows import Specials, balanced_batch, text_ids
from eval.smoothing import mean_smooth
from model.bert import Bert, BertClassifier
from model.half import Precision
from tokenizer_bridge.load import load_bert_tokenizer
from train.bert_judge import classifier_step
from train.metrics import cross_entropy, snapshot
from train.optim import make_optimizer
from weights import resolve


def exercise_1_a9_an_even_window() -> str:
    """An even window has no centre point: i - w .. i + w with w = (k - 1)/2 = 1.5 is not a set of neighbours. A9's
    smoothing refuses it with a message rather than silently shifting the curve by half a step."""
    try:
        mean_smooth([1.0, 2.0, 3.0], k=4)
    except ValueError as err:
        assert "odd" in str(err)
        return str(err)
    raise AssertionError("k = 4 was accepted")


def exercise_2_a10_the_edges() -> list[float]:
    """k = 5, w = 2: y_0 averages x_0..x_2 (m = 3 points exist: (1 + 2 + 6)/3 = 3), y_1 averages x_0..x_3 (m = 4:
    (1 + 2 + 6 + 2)/4 = 2.75); only y_2 has all five."""
    y = mean_smooth([1.0, 2.0, 6.0, 2.0, 1.0], k=5)
    assert y[:3] == [3.0, 2.75, 12.0 / 5]
    return y


def exercise_3_a8_an_uneven_batch() -> str:
    """A8 wants equal shares, B/N windows of each author: 7 windows cannot be split between 2 authors."""
    tok = load_bert_tokenizer(resolve("minilm"))
    stand_ins = {"alice": torch.arange(1000, 2000), "edgar": torch.arange(2000, 3000)}  # any token streams do
    try:
        balanced_batch(stand_ins, 7, 64, torch.Generator().manual_seed(0), Specials.of(tok))
    except ValueError as err:
        assert "multiple of the 2 authors" in str(err)
        return str(err)
    raise AssertionError("an uneven batch was accepted")


def exercise_4_a13_a_larger_learning_rate() -> dict[float, float]:
    """AdamW's first step moves every weight by about the learning rate (its update is lr * m/sqrt(v) = lr * sign(g)),
    so A13's update size |theta_1 - theta_0| grows with lr: 100 times the rate, about 100 times the step. At 1e-2 the
    pretrained weights are pushed far from what pretraining taught them."""
    tok = load_bert_tokenizer(resolve("minilm"))
    authors = {"alice": text_ids(tok, "Alice was beginning to get very tired of sitting by her sister. " * 20),
               "edgar": text_ids(tok, "Once upon a midnight dreary, while I pondered, weak and weary. " * 20)}
    fp32 = Precision(torch.device("cpu"), "fp32", torch.bfloat16, None, "float32")
    sizes = {}
    for lr in (1e-4, 1e-2):
        torch.manual_seed(0)
        judge = BertClassifier(Bert.from_pretrained(resolve("minilm")), ["alice", "edgar"])
        batch = balanced_batch(authors, 4, 32, torch.Generator().manual_seed(0), Specials.of(tok))
        step = classifier_step(judge, make_optimizer(judge, "adamw", lr), batch, fp32, grad_clip=0.0,
                               before=snapshot(list(judge.parameters())))
        sizes[lr] = step["update"]
    assert 30 < sizes[1e-2] / sizes[1e-4] < 300, sizes
    return sizes


def exercise_5_a3_a_coin_flip() -> float:
    """y_hat = (0.5, 0.5) for every row: L = -log 0.5 = log 2 = 0.693, whatever the labels. A trained judge must get
    below it; the loss of the lecture's first step is about this."""
    loss = cross_entropy(torch.zeros(4, 2), torch.tensor([0, 1, 1, 0])).item()
    assert abs(loss - math.log(2)) < 1e-6
    return loss
