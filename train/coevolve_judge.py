"""One judgement of the co-evolution loop: Generate -> Classify, and what it measures (B4, B7, B11-B13, B16).

    start tokens (R, 1), the same for both generators
      -> each generator writes k L GPT-Neo tokens per row      (B1, B8, B9, B10)
      -> GPT-Neo ids -> text -> L BERT tokens per row           (B6, B8; tokenizer_bridge/bridge.py)
      -> the half-precision judge reads the 2R rows             (B4, B5, B7)
      -> accuracy (B11), judge loss L_cls (B12), S(t) (B13), mismatch ratio (B16)

The two generators draw their samples from two different random streams. At
step 0 they are the same network, so with one shared stream they would write
the very same text, the judge would give both halves the same answer and the
accuracy would be exactly 0.5 by construction, which shows nothing. With two
streams the step-0 accuracy is a real measurement whose expected value is 0.5.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from model.gpt_neo import GPTNeo
from tokenizer_bridge.bridge import JudgeBatch, generate_for_judge
from train.corpus import LABELS
from train.judge import predict_logits
from train.metrics import accuracy, cross_entropy
from train.stats import wilson_interval

ALICE = LABELS["alice"]  # 0: the judge's class "Alice" (A4)


# ----------------------------------------------------------------------------- the equations


def judge_labels(rows_per_generator: int, n_generators: int = 2) -> torch.Tensor:
    """B7: y = (0 x32, 1 x32) -- the rows of generator g (in label order) all carry label g. (N,) long."""
    return torch.arange(n_generators).repeat_interleave(rows_per_generator)  # (G * R,)


def judge_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """B11: Acc = (1/N) sum_i 1(y_hat_i = y_i), as A11 (train/metrics.py:accuracy); ~0.5 before fine-tuning."""
    return accuracy(logits, labels)


def judge_loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """B12: L_cls = -(1/N) sum_i sum_c y_ic log y_hat_ic (B3 = A3) on the judged rows; expect L_cls^(t+1) < L_cls^(t).

    The judge is frozen: L_cls falls only because the generators' texts become easier to tell apart.
    """
    return cross_entropy(logits, labels).item()


def coevolution_score(p_alice: torch.Tensor) -> float:
    """B13: S(t) = P_BERT(Alice | X_t), averaged over the rows X_t one generator wrote at step t.

    p_alice (R,): the judge's probability of "Alice" for each row. S(t) rising for the Alice
    generator means it writes more like Carroll; for the Edgar generator it should fall.
    """
    if p_alice.numel() == 0:
        raise ValueError("no rows to score")
    return p_alice.float().mean().item()


def mean_mismatch_ratio(ratios: list[float]) -> float:
    """B16: mean over rows of |T_neo(x)| / |T_bert(x)|, the two tokenizers' lengths for the same text x."""
    if not ratios:
        raise ValueError("no ratios to average")
    return sum(ratios) / len(ratios)


# ----------------------------------------------------------------------------- generate -> classify


def start_tokens(rows: int, bad_mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(rows, 1) random start ids, uniform over the first half of the vocabulary minus the banned ids (B9).

    As the course does: one random token per row, shared by both generators, dropped before decoding.
    """
    half = bad_mask.numel() // 2
    allowed = torch.nonzero(~bad_mask[:half].cpu()).flatten()  # (n_allowed,)
    if allowed.numel() == 0:
        raise ValueError("every id in the first half of the vocabulary is banned: no start token to draw")
    pick = torch.randint(0, allowed.numel(), (rows,), generator=generator)  # (rows,)
    return allowed[pick].unsqueeze(1)  # (rows, 1)


@dataclass
class Judgement:
    """What one evaluation measured: its metrics (one metrics.jsonl line) and one sample per row."""

    metrics: dict
    samples: list[dict]


def judge_generators(
    generators: dict[str, GPTNeo],
    judge: torch.nn.Module,
    neo_tok: Tokenizer,
    bert_tok: Tokenizer,
    start: torch.Tensor,
    sample_gens: dict[str, torch.Generator],
    L: int,
    k: float,
    max_rounds: int = 3,
    **sampling,
) -> Judgement:
    """B4, B7: every generator writes one row per start token (R, 1); the judge classifies all G * R rows.

    `generators` in label order (alice, edgar); each samples with its own `sample_gens[name]`.
    `sampling` goes to model.sampler.generate (temperature, top_k, repetition_penalty,
    penalty_mode, bad_mask). Returns B11, B12, B13 and B16 as metrics, and every row as a sample.
    """
    names = list(generators)
    if [LABELS[n] for n in names] != list(range(len(names))):
        raise ValueError(f"generators must be given in label order {list(LABELS)}, got {names}")
    R = start.shape[0]
    batches: dict[str, JudgeBatch] = {}
    t0 = time.time()
    for name in names:
        model = generators[name]
        model.eval()  # no dropout while sampling
        device = next(model.parameters()).device
        batches[name] = generate_for_judge(model, start.to(device), neo_tok, bert_tok, L, k=k, max_rounds=max_rounds,
                                           generator=sample_gens[name], **sampling)
    gen_s = time.time() - t0

    t0 = time.time()
    input_ids = torch.cat([batches[n].input_ids for n in names])  # (G * R, L + 2)
    attention_mask = torch.cat([batches[n].attention_mask for n in names])  # (G * R, L + 2)
    logits = predict_logits(judge, input_ids, attention_mask, batch_size=len(input_ids))  # B4: (G * R, 2)
    judge_s = time.time() - t0
    labels = judge_labels(R, len(names))  # (G * R,)
    p_alice = logits.softmax(dim=-1)[:, ALICE]  # (G * R,)
    predicted = logits.argmax(dim=-1)  # (G * R,)

    n = labels.numel()
    correct = int((predicted == labels).sum())
    low, high = wilson_interval(correct, n)
    metrics = {"n": n, "correct": correct, "acc": judge_accuracy(logits, labels), "acc_low": low, "acc_high": high,
               "judge_loss": judge_loss(logits, labels)}
    all_ratios = []
    for g, name in enumerate(names):
        rows = slice(g * R, (g + 1) * R)
        metrics[f"S_{name}"] = coevolution_score(p_alice[rows])
        metrics[f"own_acc_{name}"] = judge_accuracy(logits[rows], labels[rows])  # rows judged as their own author
        metrics[f"ratio_{name}"] = mean_mismatch_ratio(batches[name].neo_bert_ratio)
        metrics[f"extra_tokens_{name}"] = sum(batches[name].extra_tokens)
        all_ratios += batches[name].neo_bert_ratio
    metrics["ratio"] = mean_mismatch_ratio(all_ratios)
    metrics["gen_s"], metrics["judge_s"] = gen_s, judge_s

    samples = []
    for g, name in enumerate(names):
        for r in range(R):
            i = g * R + r
            samples.append({"generator": name, "row": r, "start_id": int(start[r, 0]), "p_alice": p_alice[i].item(),
                            "predicted": names[int(predicted[i])], "ratio": batches[name].neo_bert_ratio[r],
                            "text": batches[name].texts[r]})
    return Judgement(metrics, samples)
