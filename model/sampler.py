"""Sampling from a decoder (GPT-Neo, SmolLM2), as lecture B does it: bad tokens (B9), repetition penalty (B10),
temperature, top-k.

One new token per step. Per step, the next-token logits go through, in this order
(the order of Hugging Face `generate`, transformers 5.23 `_get_logits_processor`:
RepetitionPenaltyLogitsProcessor -> NoBadWordsLogitsProcessor -> TemperatureLogitsWarper
-> TopKLogitsWarper; temperature and top-k only when sampling):

    1. repetition penalty   B10, mode "lecture" (on probabilities) or "hf" (the library's rule)
    2. bad tokens           B9: x_t not in B  (score -inf)
    3. temperature          s / T             (sampling only)
    4. top-k                keep the k best   (sampling only)
    5. pick                 softmax + multinomial, or argmax when do_sample=False

Steps 1-3 are `process_scores`; when sampling, 4 and 5 are `sample_top_k` (argmax needs no top-k).

All of this runs in float32 whatever the model's dtype. The counts c_i of B10
include the prompt: the course prompt is one random start token, and it has
"already appeared" as much as any generated token (Hugging Face counts the
prompt too).

A KV cache (model.gpt_neo.KVCache) keeps the keys and values of the tokens
already seen, so each step feeds the model one token and the cost of a new
token does not grow with the tokens already made (attention still reads them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from tqdm import tqdm

from model.decoder import Decoder
from model.gpt_neo import KVCache
from model.packed import packed_weights

PENALTY_MODES = ("lecture", "hf")


@dataclass(frozen=True)
class Sampling:
    """The sampler's settings, one object built once and passed whole (defaults: the lecture's, B7-B10).

    temperature: s / T (sampling only); top_k: keep the k best (0 or None: all; sampling only);
    repetition_penalty: r of B10 (1: none); penalty_mode: "lecture" (B10 on probabilities) or "hf"
    (the library's rule); bad_mask: (V,) bool, True = banned (B9, from `bad_token_mask`); do_sample:
    False is greedy (argmax of the processed scores).
    """

    temperature: float = 1.0
    top_k: int | None = 50
    repetition_penalty: float = 1.3
    penalty_mode: str = "lecture"
    bad_mask: torch.Tensor | None = None
    do_sample: bool = True


def bad_token_mask(tokenizer: Tokenizer, vocab_size: int) -> torch.Tensor:
    """B9: the set B as a (V,) bool mask, True = banned, so that sampling keeps x_t not in B.

    Banned: every token whose decoded text is empty or whitespace only (" ", "\\n", "\\n\\n", "\\t",
    "\\r\\n", "   ", no-break space, ...), found by decoding each id on its own with the tokenizer's
    decoder (byte-level BPE stores " " as "Ġ" and "\\n" as "Ċ", so the raw token strings are not enough);
    every special token (<|endoftext|> and the like); and the ids from the tokenizer's vocabulary size
    up to the model's `vocab_size` (padding rows of the embedding that no text maps to).
    """
    n_tok = tokenizer.get_vocab_size(with_added_tokens=True)
    n = min(n_tok, vocab_size)
    texts = tokenizer.decode_batch([[i] for i in range(n)], skip_special_tokens=False)  # one text per id
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[:n] = torch.tensor([text.strip() == "" for text in texts])  # str.strip() removes all whitespace
    for idx, added in tokenizer.get_added_tokens_decoder().items():
        if added.special and idx < vocab_size:
            mask[idx] = True  # <|endoftext|>: end of text, not text
    mask[n:] = True  # padding rows beyond the tokenizer
    return mask


def token_counts(prev_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """c_i of B10: how many times token i appears in each row of prev_ids (B, t) -> (B, V) float32."""
    counts = torch.zeros(prev_ids.shape[0], vocab_size, device=prev_ids.device)
    return counts.scatter_add_(1, prev_ids, torch.ones_like(prev_ids, dtype=counts.dtype))


def lecture_repetition_penalty(log_probs: torch.Tensor, counts: torch.Tensor, r: float) -> torch.Tensor:
    """B10: p_i' = p_i / r**c_i, renormalised; c_i = times token i has appeared so far (prompt included).

    Computed in log space, which is the same equation: log p_i' = log p_i - c_i log r - log Z with
    Z = sum_j p_j / r**c_j. log_probs (B, V) -> renormalised log p' (B, V); counts (B, V).
    """
    return torch.log_softmax(log_probs - counts * math.log(r), dim=-1)


def hf_repetition_penalty(logits: torch.Tensor, prev_ids: torch.Tensor, r: float) -> torch.Tensor:
    """B10, the library's rule (Keskar et al. 2019): for every token that has appeared (once, however often),

    z_i' = z_i / r if z_i > 0, z_i' = z_i * r if z_i < 0. logits (B, V), prev_ids (B, t) -> (B, V).
    Only the t earlier tokens of each row are read and rewritten, not all V scores (a token seen
    twice is rewritten twice with the same value, so "once, however often" holds).
    """
    z = logits.gather(1, prev_ids)  # (B, t): the scores of the tokens already there
    return logits.scatter(1, prev_ids, torch.where(z < 0, z * r, z / r))


def apply_temperature(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """s_i' = s_i / T: T < 1 sharpens, T > 1 flattens the distribution."""
    return scores / temperature


def top_k_filter(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest scores per row (ties with the k-th kept, as Hugging Face does); the rest -> -inf."""
    k = min(k, scores.shape[-1])
    kth = torch.topk(scores, k, dim=-1).values[..., -1:]  # (B, 1)
    return scores.masked_fill(scores < kth, float("-inf"))


def process_scores(logits: torch.Tensor, prev_ids: torch.Tensor | None, s: Sampling,
                   counts: torch.Tensor | None = None) -> torch.Tensor:
    """Steps 1-3 of one step: penalty, bad tokens, temperature. logits (B, V) -> scores (B, V) float32.

    prev_ids (B, t): every token so far, prompt included (the c_i of B10 count them). In the lecture's
    mode the counts may be given instead, (..., V) like the logits: then many positions are processed
    at once (the RL loss, train/rl.py).
    """
    scores = logits.float()  # (B, V)
    if s.penalty_mode == "lecture":
        scores = torch.log_softmax(scores, dim=-1)  # log p
        if s.repetition_penalty != 1.0:
            counts = token_counts(prev_ids, scores.shape[-1]) if counts is None else counts
            scores = lecture_repetition_penalty(scores, counts, s.repetition_penalty)
    elif s.repetition_penalty != 1.0:
        scores = hf_repetition_penalty(scores, prev_ids, s.repetition_penalty)
    if s.bad_mask is not None:
        scores = torch.where(s.bad_mask.to(scores.device), float("-inf"), scores)
    if s.do_sample and s.temperature != 1.0:
        scores = apply_temperature(scores, s.temperature)
    return scores


def sample_top_k(scores: torch.Tensor, k: int | None, rng: torch.Generator | None) -> torch.Tensor:
    """Steps 4 and 5 together: top-k, softmax and one draw per row. scores (B, V) -> token ids (B, 1).

    The same distribution as softmax(top_k_filter(scores, k)) + multinomial over all V tokens, ties
    with the k-th score kept as there; but torch.multinomial draws a random number per candidate,
    and drawing among the k kept instead of all V (50,257 for GPT-Neo) is most of the sampling time saved.
    """
    if not k or k >= scores.shape[-1]:
        return torch.multinomial(F.softmax(scores, dim=-1), 1, generator=rng)
    kept, ids = torch.topk(scores, k, dim=-1)  # (B, k), best first
    kth = kept[:, -1:]  # (B, 1)
    n = int((scores >= kth).sum(dim=-1).max())  # k, or more where scores tie with the k-th
    if n > k:  # take the tied ones too (common in bfloat16, whose scores are coarse); past a row's own ties, -inf
        kept, ids = torch.topk(scores, n, dim=-1)
        kept = kept.masked_fill(kept < kth, float("-inf"))  # probability 0
    choice = torch.multinomial(F.softmax(kept, dim=-1), 1, generator=rng)  # (B, 1) index into kept
    return ids.gather(1, choice)


def check_sampling(model: Decoder, prompt_ids: torch.Tensor, new_tokens: int, s: Sampling) -> None:
    """ValueError with a clear message for any sampling argument that cannot work (before any sampling)."""
    V, context = model.config.vocab_size, model.config.max_position_embeddings
    temperature, top_k, repetition_penalty, bad_mask = s.temperature, s.top_k, s.repetition_penalty, s.bad_mask
    for name, value in (("temperature", temperature), ("repetition_penalty", repetition_penalty)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if repetition_penalty < 1:
        raise ValueError(f"repetition_penalty must be >= 1 (B10 asks r > 1; r = 1 turns it off), got {repetition_penalty}: "
                         "r < 1 would reward repetition")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise ValueError(f"top_k must be a whole number >= 0 (0 or None: no top-k), got {top_k!r}")
    if s.penalty_mode not in PENALTY_MODES:
        raise ValueError(f"penalty_mode={s.penalty_mode!r}; choose one of {PENALTY_MODES}")
    if isinstance(new_tokens, bool) or not isinstance(new_tokens, int) or new_tokens < 0:
        raise ValueError(f"new_tokens must be a whole number >= 0, got {new_tokens!r}")
    if prompt_ids.dim() != 2 or prompt_ids.shape[1] < 1 or prompt_ids.dtype != torch.long:
        raise ValueError(f"the prompt must be a (rows, >= 1 tokens) tensor of token ids (int64), "
                         f"got shape {tuple(prompt_ids.shape)} and {prompt_ids.dtype}: an empty prompt has nothing to continue")
    if prompt_ids.numel() and (int(prompt_ids.min()) < 0 or int(prompt_ids.max()) >= V):
        raise ValueError(f"prompt ids must lie in 0..{V - 1} (the model's vocabulary)")
    if prompt_ids.shape[1] + new_tokens - 1 > context:  # the last new token is never fed back to the model
        raise ValueError(f"{prompt_ids.shape[1]} prompt + {new_tokens} new tokens need {prompt_ids.shape[1] + new_tokens - 1} "
                         f"positions, more than the model's context of {context}")
    if bad_mask is not None:
        if bad_mask.dtype != torch.bool or bad_mask.shape != (V,):
            raise ValueError(f"bad_mask must be a bool tensor of shape ({V},) (True = banned), "
                             f"got {bad_mask.dtype} of shape {tuple(bad_mask.shape)}")
        if bool(bad_mask.all()):
            raise ValueError("bad_mask bans every token: nothing left to sample")


def next_logits(model: Decoder, ids: torch.Tensor, t: int, cache: KVCache | None) -> torch.Tensor:
    """Logits (B, V) of the token at position t given ids[:, :t].

    Without a cache the whole prefix is run again; with one, only the positions it does not hold yet.
    """
    if cache is None:
        return model(ids[:, :t], last_only=True)[:, -1]
    return model(ids[:, cache.length:t], cache=cache, last_only=True)[:, -1]


@torch.no_grad()
def generate(model: Decoder, prompt_ids: torch.Tensor, new_tokens: int, s: Sampling = Sampling(),
             rng: torch.Generator | None = None, use_cache: bool = True, desc: str | None = None,
             watch: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Append `new_tokens` tokens to each prompt row: (B, T0) -> (B, T0 + new_tokens) LongTensor.

    `s`: the sampler's settings (B9, B10, temperature, top-k; `Sampling`); a seeded `rng` makes
    sampling reproducible; use_cache=False reruns the whole prefix each step (same result, slower: for
    tests); `desc` shows a progress bar with that title; `watch(logits, scores, drawn)`, if given, sees
    every step: the model's logits (B, V), the scores after steps 1-3 (B, V) and the ids drawn (B, 1)
    (the step view of `make explore`).
    """
    check_sampling(model, prompt_ids, new_tokens, s)
    B, T0 = prompt_ids.shape
    device = prompt_ids.device
    total = T0 + new_tokens
    ids = torch.empty(B, total, dtype=torch.long, device=device)  # (B, T0 + new)
    ids[:, :T0] = prompt_ids
    cache = None
    if use_cache and new_tokens > 0:  # the last new token is never fed back, so total - 1 positions
        dtype = next(model.parameters()).dtype
        if torch.is_autocast_enabled(device.type):  # keys and values come out of 16-bit products: keep them so
            dtype = torch.get_autocast_dtype(device.type)
        cache = KVCache(model.config, B, total - 1, device=device, dtype=dtype)
    # each step after the first multiplies B rows by every weight: packed once for B rows where that pays
    with packed_weights(model, B, new_tokens - 1) if cache is not None else nullcontext():
        for t in tqdm(range(T0, total), desc=desc, disable=desc is None, leave=False, unit="token"):
            logits = next_logits(model, ids, t, cache)  # (B, V)
            scores = process_scores(logits, ids[:, :t], s)  # steps 1-3
            if s.do_sample:
                nxt = sample_top_k(scores, s.top_k, rng)  # (B, 1), steps 4-5
            else:
                nxt = scores.argmax(dim=-1, keepdim=True)  # (B, 1)
            if watch is not None:
                watch(logits, scores, nxt)
            ids[:, t] = nxt[:, 0]
    return ids
