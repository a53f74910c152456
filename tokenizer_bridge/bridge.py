"""From GPT-Neo samples to judge input: tokenizer translation (B6), over-generation (B8), mismatch ratio (B16).

The generators and the judge use different tokenizers (byte-level BPE vs uncased
WordPiece), so generated ids cannot be fed to BERT as they are:

    B6   T_bert(T_neo^{-1}(x)): GPT-Neo ids -> text -> BERT ids
    B8   L_neo = k L_bert with k > 1 (`overgen`), then cut after translation: X_bert = X_neo[1:L]
    B16  |T_neo(x)| != |T_bert(x)|: we record the ratio per row

Choices (the lecture cuts to L = 128 tokens and adds no special tokens):
- The start token (position 0, a random id in the course) is dropped before decoding.
- Each row keeps exactly L BERT tokens and is wrapped as [CLS] x_1 .. x_L [SEP], so the judge
  input has L + 2 positions: the judge reads its [CLS] vector at position 0 (A2), and the
  text it judges is the lecture's L tokens.
- A row whose text gives fewer than L BERT tokens is continued by the sampler (its whole row
  is the prompt, so the repetition counts carry on) for a bounded number of rounds, each adding
  at most k L tokens. A row still short after them is drawn again from its start token (at most
  `REDRAWS` times, counted in `JudgeBatch.redrawn`): a sampler that fell into one endless
  "word" (SmolLM2 sometimes writes a run of capitals; WordPiece reads any word of more than 100
  characters as one [UNK]) would never reach L. After that a `ShortRowError`. A short row is
  never padded and never passed on.
- The ratio is taken on the kept span x = the decoded text from its first character to the
  end of the L-th kept BERT token: |T_neo(x)| / |T_bert(x)|, both tokenizers re-encoding
  the same x (no special tokens). |T_bert(x)| is L, or rarely L +- 1 when the cut falls
  inside a word that WordPiece splits differently once the word is cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tokenizers import Encoding, Tokenizer

from model.decoder import Decoder
from model.sampler import Sampling, generate
from tokenizer_bridge.load import special_id


@dataclass(frozen=True)
class RowSampling:
    """How every row the judge reads is written, one object built once per run and passed whole (B7-B10).

    L: BERT tokens the judge reads per row (B7: 128); overgen: k of B8, k L GPT-Neo tokens are sampled
    per row; max_rounds: extra sampling rounds for rows still short of L BERT tokens; sampling: the
    sampler's own settings (temperature, top-k, B9's banned ids, B10's penalty: model/sampler.py).
    """

    L: int = 128
    overgen: float = 4.0
    max_rounds: int = 3
    sampling: Sampling = Sampling()


class ShortRowError(RuntimeError):
    """A generated row still translates to fewer than L BERT tokens after every allowed round."""


@dataclass
class JudgeBatch:
    """What the judge reads, one row per generated sample."""

    input_ids: torch.Tensor  # (B, L + 2) [CLS] x_1 .. x_L [SEP]
    attention_mask: torch.Tensor  # (B, L + 2) all ones: every row is exactly L + 2 long
    texts: list[str]  # the kept span x of each row
    neo_bert_ratio: list[float]  # B16 |T_neo(x)| / |T_bert(x)| on that span
    extra_tokens: list[int]  # GPT-Neo tokens generated for the row beyond k * L (0 if none)
    rows: list[torch.Tensor]  # the GPT-Neo ids of each row, start token first (rows may differ in length)
    kept: list[int]  # n of each row: the GPT-Neo tokens after the start token that write its kept span (T5's n_i)
    redrawn: list[int]  # how often each row was drawn again from its start token (0 almost always)

    def select(self, index: list[int]) -> "JudgeBatch":
        """The rows at `index`, in that order."""
        return JudgeBatch(self.input_ids[index], self.attention_mask[index], [self.texts[i] for i in index],
                          [self.neo_bert_ratio[i] for i in index], [self.extra_tokens[i] for i in index],
                          [self.rows[i] for i in index], [self.kept[i] for i in index],
                          [self.redrawn[i] for i in index])


def neo_to_bert_text(neo_ids: list[int], neo_tok: Tokenizer, bert_tok: Tokenizer) -> tuple[str, Encoding]:
    """B6: T_bert(T_neo^{-1}(x)). GPT-Neo ids -> text -> BERT encoding (ids and character offsets, no specials)."""
    text = neo_tok.decode(neo_ids)  # T_neo^{-1}; special tokens such as <|endoftext|> are not text: skipped
    return text, bert_tok.encode(text, add_special_tokens=False)  # T_bert


def neo_bert_ratio(text: str, neo_tok: Tokenizer, bert_tok: Tokenizer) -> float:
    """B16: |T_neo(x)| / |T_bert(x)|, the two tokenizers' lengths for the same text x (no special tokens)."""
    n_neo = len(neo_tok.encode(text, add_special_tokens=False).ids)
    n_bert = len(bert_tok.encode(text, add_special_tokens=False).ids)
    return n_neo / n_bert


def cut_to_judge(text: str, enc: Encoding, L: int, cls_id: int, sep_id: int) -> tuple[list[int], str]:
    """B8: X_bert = X_neo[1:L] after translation -> ([CLS] + first L BERT ids + [SEP], kept span of text).

    `text` is the decoded row without its start token, `enc` its BERT encoding; needs len(enc.ids) >= L.
    """
    if len(enc.ids) < L:
        raise ShortRowError(f"the row gives {len(enc.ids)} BERT tokens, fewer than L={L}")
    end = enc.offsets[L - 1][1]  # character where the L-th BERT token ends
    return [cls_id] + enc.ids[:L] + [sep_id], text[:end]


REDRAWS = 3  # a row still short after every round is drawn again from its start token, at most this often


def more_tokens_needed(n_neo: int, n_bert: int, L: int, overgen: float) -> int:
    """B8: GPT-Neo tokens to add to a short row: the missing L - n_bert BERT tokens at the row's own observed
    rate n_neo / n_bert (at least `overgen`, and at least 1), with a 50 % margin; at most k L, a first round's.
    """
    rate = max(overgen, n_neo / max(n_bert, 1), 1.0)
    return min(math.ceil(1.5 * rate * (L - n_bert)), math.ceil(overgen * L))


def generate_for_judge(model: Decoder, start_ids: torch.Tensor, neo_tok: Tokenizer, bert_tok: Tokenizer,
                       how: RowSampling = RowSampling(), rng: torch.Generator | None = None,
                       desc: str | None = None) -> JudgeBatch:
    """B8: sample k L GPT-Neo tokens (k = how.overgen) after each start token (B, 1), translate (B6), keep L BERT tokens.

    Rows still short of L BERT tokens are sampled further (their whole row is the prompt, so the
    repetition counts carry on) for up to `how.max_rounds` more rounds, then drawn again from their start
    token (at most REDRAWS times), else ShortRowError.
    `how.sampling` and `rng` go to model.sampler.generate; `desc` titles a progress bar of the first round.
    Returns a JudgeBatch of exactly (B, L + 2) ids.
    """
    if bert_tok.truncation is not None:
        raise ValueError("bert_tok truncates its encodings, so short rows could not be told apart; "
                         "load it with tokenizer_bridge.load.load_bert_tokenizer or call no_truncation()")
    new = int(how.overgen * how.L)
    first = generate(model, start_ids, new, how.sampling, rng, desc=desc)  # (B, 1 + kL)
    rows, redrawn, context = list(first), [0] * len(first), model.config.max_position_embeddings
    for round_ in range(how.max_rounds + 1 + REDRAWS):
        pairs = [neo_to_bert_text(row[1:].tolist(), neo_tok, bert_tok) for row in rows]  # drop the start token
        short = [i for i, (_, enc) in enumerate(pairs) if len(enc.ids) < how.L]
        if short and round_ >= how.max_rounds:  # continuing did not help: draw these rows again
            check_redraws(short, pairs, redrawn, how)
            for i, row in zip(short, generate(model, start_ids[short], new, how.sampling, rng)):
                rows[i], redrawn[i] = row, redrawn[i] + 1
            continue
        if not short:
            break
        for group, extra in short_rows(rows, pairs, short, how, context):  # one batch per row length (rectangular)
            for i, row in zip(group, generate(model, torch.stack([rows[i] for i in group]), extra, how.sampling, rng)):
                rows[i] = row
    return judge_batch(rows, pairs, first.shape[1], neo_tok, bert_tok, how.L, redrawn)


def short_rows(rows: list[torch.Tensor], pairs: list, short: list[int], how: RowSampling,
               context: int) -> list[tuple[list[int], int]]:
    """The `short` rows (fewer than L BERT tokens) grouped by length, each group with the GPT-Neo tokens to add
    (within the model's `context`; a row with no room left waits to be drawn again). [] when none is short."""
    groups = []
    for length in sorted({len(rows[i]) for i in short}):
        group = [i for i in short if len(rows[i]) == length]
        extra = max(more_tokens_needed(length - 1, len(pairs[i][1].ids), how.L, how.overgen) for i in group)
        extra = min(extra, context + 1 - length)  # the last new token is never fed back: context + 1 positions
        if extra > 0:
            groups.append((group, extra))
    return groups


def check_redraws(short: list[int], pairs: list, redrawn: list[int], how: RowSampling) -> None:
    """ShortRowError when a row is still short after every round and REDRAWS fresh draws."""
    spent = [i for i in short if redrawn[i] >= REDRAWS]
    if spent:
        got = {i: len(pairs[i][1].ids) for i in spent}
        raise ShortRowError(f"rows {spent} still give fewer than L={how.L} BERT tokens after {how.max_rounds} extra "
                            f"rounds and {REDRAWS} fresh draws (BERT tokens per row: {got}); raise overgen or "
                            "max_rounds, or check the bad-token mask")


def judge_batch(rows: list[torch.Tensor], pairs: list, first_length: int, neo_tok: Tokenizer, bert_tok: Tokenizer,
                L: int, redrawn: list[int]) -> JudgeBatch:
    """Every row cut to [CLS] + its first L BERT tokens + [SEP], with its span, B16 ratio and kept GPT-Neo tokens."""
    cls_id, sep_id = special_id(bert_tok, "[CLS]"), special_id(bert_tok, "[SEP]")
    ids, texts, ratios = [], [], []
    for text, enc in pairs:
        row_ids, span = cut_to_judge(text, enc, L, cls_id, sep_id)
        ids.append(row_ids)
        texts.append(span)
        ratios.append(neo_bert_ratio(span, neo_tok, bert_tok))
    input_ids = torch.tensor(ids, dtype=torch.long)  # (B, L + 2)
    return JudgeBatch(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        texts=texts,
        neo_bert_ratio=ratios,
        extra_tokens=[len(row) - first_length for row in rows],
        rows=rows,
        kept=[kept_neo_tokens(row, span, neo_tok) for row, span in zip(rows, texts)],
        redrawn=redrawn,
    )


def kept_neo_tokens(row: torch.Tensor, span: str, neo_tok: Tokenizer) -> int:
    """T5's n_i: how many GPT-Neo tokens after the start token it takes to write the kept span: the n of the row.

    The smallest n such that decoding row[1 : 1 + n] gives at least the span's characters (binary
    search: decoding is monotone in n). The tokens after them never reach the judge.
    """
    lo, hi = 1, len(row) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if len(neo_tok.decode(row[1 : 1 + mid].tolist())) >= len(span):
            hi = mid
        else:
            lo = mid + 1
    return lo
