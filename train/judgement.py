"""One judgement of the generators: Generate -> Classify, and what it measures (B3-B5, B7, B11-B13, B16, N6).

    start tokens (R, 1), the same for every generator                 (B7)
      -> each generator writes k L GPT-Neo tokens per row             (B1, B8, B9, B10)
      -> GPT-Neo ids -> text -> L BERT tokens per row                  (B6, B8; tokenizer_bridge/bridge.py)
      -> the frozen half-precision judge reads the N R rows            (B4, B5, B7)
      -> accuracy (B11), L_cls (B12), S(t) (B13), mismatch ratio (B16), S_a(t) per generator (N6)

The generators draw their samples from different random streams. At step 0 they are the same
network, so with one shared stream they would write the very same text, the judge would give
every block the same answer and the accuracy would be exactly 1/N by construction, which shows
nothing. With separate streams the step-0 accuracy is a real measurement whose expected value is 1/N.

`make coevolve` and `make teach` judge their generators with the same function, so their numbers
can be compared.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable

import torch
from tokenizers import Tokenizer

from model.decoder import Decoder
from model.half import Precision, cast_half
from tokenizer_bridge.bridge import JudgeBatch, RowSampling, generate_for_judge
from train.bert_judge import predict_logits
from train.metrics import accuracy, confusion_matrix, cross_entropy, wilson_interval

# ----------------------------------------------------------------------------- the equations


def judge_labels(rows_per_generator: int, n_generators: int = 2) -> torch.Tensor:
    """B7: y = (0 x32, 1 x32) -- the rows of generator g (in label order) all carry label g. (N,) long."""
    return torch.arange(n_generators).repeat_interleave(rows_per_generator)  # (G * R,)


def judge_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """B11: Acc = (1/N) sum_i 1(y_hat_i = y_i), as A11 (train/metrics.py:accuracy); ~1/N before fine-tuning."""
    return accuracy(logits, labels)


def judge_loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """B12: L_cls = -(1/N) sum_i sum_c y_ic log y_hat_ic (B3 = A3) on the judged rows; expect L_cls^(t+1) < L_cls^(t).

    The judge is frozen: L_cls falls only because the generators' texts become easier to tell apart.
    """
    return cross_entropy(logits, labels).item()


def coevolution_score(p_author: torch.Tensor) -> float:
    """B13: S(t) = P_BERT(Alice | X_t), averaged over the rows X_t one generator wrote at step t.

    p_author (R,): the judge's probability of "Alice" for each row. S(t) rising for the Alice
    generator means it writes more like Carroll; for the Edgar generator it should fall. With N
    authors (N6), S_a(t) = P_judge(a | X_t of generator a), the same mean of each row's P(a).
    """
    if p_author.numel() == 0:
        raise ValueError("no rows to score")
    return p_author.float().mean().item()


def mean_mismatch_ratio(ratios: list[float]) -> float:
    """B16: mean over rows of |T_neo(x)| / |T_bert(x)|, the two tokenizers' lengths for the same text x."""
    if not ratios:
        raise ValueError("no ratios to average")
    return sum(ratios) / len(ratios)


def start_tokens(rows: int, bad_mask: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """B7: (rows, 1) random start ids, uniform over the first half of the vocabulary minus the banned ids (B9).

    As the course does: one random token per row, shared by every generator, dropped before decoding.
    """
    half = bad_mask.numel() // 2
    allowed = torch.nonzero(~bad_mask[:half].cpu()).flatten()  # (n_allowed,)
    if allowed.numel() == 0:
        raise ValueError("every id in the first half of the vocabulary is banned: no start token to draw")
    pick = torch.randint(0, allowed.numel(), (rows,), generator=rng)  # (rows,)
    return allowed[pick].unsqueeze(1)  # (rows, 1)


def prepare_judge(judge: torch.nn.Module, half: torch.dtype | None) -> dict:
    """B5: the judge frozen (no gradient ever reaches it) and cast to 16 bits (half=None: kept float32).

    Returns cast_half's report (dtype, bytes before and after, ratio).
    """
    judge.eval()
    for p in judge.parameters():
        p.requires_grad_(False)  # the judge only measures (B15)
    if half is None:
        return {"dtype": "float32", "ratio": 1.0}
    return cast_half(judge, half)


# ----------------------------------------------------------------------------- generate -> classify


@dataclass(frozen=True)
class Judging:
    """What every judgement of a run shares, built once: the frozen judge, both tokenizers, R, how rows are written."""

    judge: torch.nn.Module  # the BERT judge, frozen and in half precision (B5)
    neo_tok: Tokenizer  # the generators' byte-level BPE
    bert_tok: Tokenizer  # the judge's WordPiece
    rows: int  # R of B7: rows per generator
    row_sampling: RowSampling  # L, k, the extra rounds, the sampler's settings (B8-B10)
    ngram: Callable[[list[str]], torch.Tensor] | None = None  # texts -> (n, N) log P of the n-gram judge (N5)
    sampling_precision: Precision | None = None  # generators write in it (plumbing/precision.py); None: float32

    def writing(self):
        """The context generators sample in: `sampling_precision`'s autocast (never the judges' reading: their own)."""
        p = self.sampling_precision
        return p.autocast() if p is not None else contextlib.nullcontext()


@dataclass
class Judgement:
    """What one judgement measured: its metrics (one metrics.jsonl line), one sample per row, the batches."""

    metrics: dict
    samples: list[dict]
    batches: dict[str, JudgeBatch]
    log_probs: torch.Tensor  # (G R, N) the judge's log P(author) per row (T1's reward reads it as it is)


def score_rows(log_probs: torch.Tensor, labels: torch.Tensor, names: list[str], prefix: str = "") -> dict:
    """B11, B12, B13 and N6 from a judge's log-probabilities (G R, N) of rows whose true labels are `labels`.

    log P serves as the logits of B3 and B11 as it is: softmax(log P) = P.
    """
    logits, probs = log_probs, log_probs.exp()
    correct = int((probs.argmax(-1) == labels).sum())
    low, high = wilson_interval(correct, len(labels))
    m = {f"{prefix}n": len(labels), f"{prefix}correct": correct, f"{prefix}acc": judge_accuracy(logits, labels),
         f"{prefix}acc_low": low, f"{prefix}acc_high": high, f"{prefix}judge_loss": judge_loss(logits, labels),
         f"{prefix}confusion": confusion_matrix(probs.argmax(-1), labels, len(names))}
    for g, name in enumerate(names):
        rows = labels == g
        m[f"{prefix}S_{name}"] = coevolution_score(probs[rows, 0])  # B13: P(first author, Alice) of g's rows
        m[f"{prefix}own_{name}"] = coevolution_score(probs[rows, g])  # N6: S_a = P(a) of a's rows
    return m


def judge_generators(generators: dict[str, Decoder], judging: Judging, rngs: dict[str, torch.Generator],
                     write: Callable[[torch.Tensor], dict[str, JudgeBatch]] | None = None) -> Judgement:
    """B4, B7, N6: R start tokens, the same for every generator; each generator writes one row per start
    token (B8-B10); the judge classifies all G R rows.

    `generators` in the judge's label order; rngs: "start" draws the start tokens, "sample_<author>" each
    generator's samples. `write(start)` may write the rows instead of the generators themselves (T7's
    best-of-N writes each row as the best of N samples).
    """
    t0 = time.time()
    start = start_tokens(judging.rows, judging.row_sampling.sampling.bad_mask, rngs["start"])  # (R, 1)
    if write is not None:
        batches = write(start)
    else:
        batches = {}
        for name, model in generators.items():
            model.eval()  # no dropout while sampling
            device = next(model.parameters()).device
            with judging.writing():
                batches[name] = generate_for_judge(model, start.to(device), judging.neo_tok, judging.bert_tok,
                                                   judging.row_sampling, rngs[f"sample_{name}"],
                                                   desc=f"the {name} generator writes {judging.rows} rows")
    judgement = classify_rows(batches, judging.judge, start, judging.ngram)
    judgement.metrics["gen_s"] = time.time() - t0 - judgement.metrics["judge_s"]
    return judgement


def classify_rows(batches: dict[str, JudgeBatch], judge: torch.nn.Module, start: torch.Tensor,
                  ngram: Callable[[list[str]], torch.Tensor] | None = None) -> Judgement:
    """Classify: the judge reads every generator's rows (B4); B11-B13, B16 and N6 as metrics, every row as a sample."""
    t0, names, R = time.time(), list(batches), start.shape[0]
    ids = torch.cat([batches[n].input_ids for n in names])  # (G R, L + 2)
    log_probs = predict_logits(judge, ids, torch.ones_like(ids), batch_size=len(ids)).log_softmax(-1)  # B4: (G R, N)
    probs, labels = log_probs.exp(), judge_labels(R, len(names))  # (G R, N), (G R,)
    metrics = score_rows(log_probs, labels, names)
    if ngram is not None:  # N5: a second judge that is never trained against, on the same texts
        metrics.update(score_rows(ngram([t for n in names for t in batches[n].texts]), labels, names, prefix="nb_"))
    for name in names:
        metrics[f"ratio_{name}"] = mean_mismatch_ratio(batches[name].neo_bert_ratio)  # B16
        metrics[f"extra_tokens_{name}"] = sum(batches[name].extra_tokens)
        metrics[f"redrawn_{name}"] = sum(batches[name].redrawn)  # rows drawn again: they could not give L tokens
    metrics["ratio"] = mean_mismatch_ratio([r for n in names for r in batches[n].neo_bert_ratio])
    metrics["judge_s"] = time.time() - t0
    samples = [{"generator": name, "row": r, "start_id": int(start[r, 0]), "probs": probs[g * R + r].tolist(),
                "predicted": names[int(probs[g * R + r].argmax())], "ratio": batches[name].neo_bert_ratio[r],
                "text": batches[name].texts[r]} for g, name in enumerate(names) for r in range(R)]
    return Judgement(metrics, samples, batches, log_probs)
