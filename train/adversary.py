"""The adversarial judge (T10 of EXTENSIONS.md): lecture B's "weak form of adversarial learning" (B15) made real.

In lecture B the judge only watches; in `make teach --arm rl` it is a fixed teacher that a generator
learns to please, "Alice" fifty times per 1,000 words included. Here a copy of the trained judge keeps
learning while the generators do. It gets one more class, "generated", and every E steps of the
generators it trains for a few steps (A3, A7) on real windows of every author (their labels) and on
the generators' newest texts (label "generated", with a small replay of older ones):

    T10  R(x) = log P_judge(a | x), the softmax taken over the N authors and "generated"

so a text the judge recognises as generated earns less than a text like the author's, and a habit
that makes text recognisable stops paying once the judge has learnt it. The game is read from the
judge's accuracy on real-versus-generated (`real_vs_generated_accuracy`): it rises while the judge
learns the generators' tells and falls while the generators lose them. scripts/teach.py runs it
(`--arm adversarial`); the lecture's frozen judge and the independent n-gram judge still do the
judging, and neither is ever trained on generated text.
"""

from __future__ import annotations

import torch

from model.bert import BertClassifier

GENERATED = "generated"  # the extra class's name


def with_generated_class(judge: BertClassifier) -> BertClassifier:
    """T10: the N-way judge becomes (N+1)-way: its head W (N, H), b (N,) gets a last row for "generated".

    The new row starts at zero weights and bias: its logit is 0 for every text, so before any training
    the authors' logits, and so their order, are the trained judge's. Changes `judge` in place; returns it.
    """
    old = judge.head
    head = torch.nn.Linear(old.in_features, old.out_features + 1, device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[: old.out_features] = old.weight
        head.bias[: old.out_features] = old.bias
    judge.head, judge.labels = head, [*judge.labels, GENERATED]
    return judge


def adversary_batch(real: tuple[torch.Tensor, torch.Tensor, torch.Tensor], generated: torch.Tensor,
                    n_authors: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """T10's training data: real windows keep their author's label (0 .. N-1), generated rows get label N.

    real: (input_ids, attention_mask, labels) of real windows (B_r, L); generated: (B_g, L) full rows of
    the same length L (a short generated row would be told apart by its padding alone). Returns
    (input_ids, attention_mask, labels) of B_r + B_g rows.
    """
    x, mask, y = real
    if generated.shape[1] != x.shape[1]:
        raise ValueError(f"generated rows have {generated.shape[1]} tokens, real windows {x.shape[1]}: the judge "
                         "would tell them apart by their length")
    return (torch.cat([x, generated]), torch.cat([mask, torch.ones_like(generated)]),
            torch.cat([y, torch.full((len(generated),), n_authors, dtype=y.dtype)]))


def real_vs_generated_accuracy(logits: torch.Tensor, y: torch.Tensor, n_authors: int) -> dict[str, float]:
    """T10: How well the (N+1)-way judge tells generated text from real: its accuracy on real rows (not called
    "generated"), on generated rows (called "generated"), and their mean (balanced: 0.5 is chance, whatever the mix).
    logits (B, N + 1), y (B,) with N for "generated"."""
    said_generated, is_generated = logits.argmax(-1) == n_authors, y == n_authors
    on_real = (~said_generated[~is_generated]).float().mean().item()
    on_generated = said_generated[is_generated].float().mean().item()
    return {"real": on_real, "generated": on_generated, "balanced": (on_real + on_generated) / 2}


def full_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The rows of a judge batch that fill the whole window (no padding): (B', L)."""
    return input_ids[attention_mask.bool().all(-1)]


def replay_rows(older: list[torch.Tensor], count: int, rng: torch.Generator) -> torch.Tensor | None:
    """T10's small replay: `count` rows drawn without replacement from older steps' generated rows (None if none),
    so that the judge does not forget a tell the generators dropped and could take up again."""
    if not older or count == 0:
        return None
    pool = torch.cat(older)
    return pool[torch.randperm(len(pool), generator=rng)[:count]]
