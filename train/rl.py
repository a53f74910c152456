"""The judge as teacher: reinforcement learning from the judge's score (T1-T9, T11 of EXTENSIONS.md).

A generator pi_theta writes continuations x of random start tokens; the frozen judge scores them;
the generator is moved to raise that score, with a KL penalty that keeps it near the model it
started from (pi_ref). One step (scripts/teach.py):

    T1  R(x) = log P_judge(a | T_bert(T_neo^{-1}(x)))          `judge_reward`
    T2  delta_t = log pi_theta(x_t | x_<t) - log pi_ref(x_t | x_<t)   `log_ratio`
    T3  k3_t = exp(-delta_t) - 1 + delta_t;  KL(x) = (1/n) sum_t k3_t  `kl_k3`
    T4  b_i = (1/(G-1)) sum_{j != i} R(x_j);  A_i = R(x_i) - b_i   `rloo_advantages`
    T5  L_PG = -(1/G) sum_i A_i (1/n_i) sum_t log pi_theta(x_{i,t} | x_{i,<t})   `policy_gradient_loss`
    T6  L = L_PG + beta (1/G) sum_i KL(x_i)                           `total_loss`
    T7  best-of-N: keep argmax_i R(x_i); KL <= log N - (N-1)/N         `best_of_n`, `best_of_n_kl_bound`
    T8  D_n = distinct n-grams / all n-grams                           `distinct_n`
        and main characters' names per 1,000 words, against the books'  `name_rate`
    T9  L = L_PG + beta KL + gamma L_gen, L_gen on the author's real text (B2)   `with_real_text`
    T11 A_i <- (A_i - mean) / (std + eps) over the batch                 `normalised_advantages`
        beta <- beta (1 + K_beta e), e = clip((KL - KL_target) / KL_target, -0.2, 0.2)   `adaptive_beta`
    (T10, the adversarial judge, is train/adversary.py.)

The sampled distribution is not pi_theta's raw softmax: the lecture's sampler bans whitespace
tokens (B9), applies the repetition penalty (B10) and keeps the top k. The log-probabilities of the
loss and of the KL are therefore computed under the processed distribution (`processed_log_probs`,
which calls the sampler's own `process_scores`), for pi_theta and for pi_ref alike. The support of
each is that model's own top k at that position, plus the token that was drawn (so that its
log-probability is finite): for pi_theta exactly the distribution the sample came from; for pi_ref
its own processed distribution, which keeps the drawn token even where it was outside pi_ref's top k.

When T3's "unbiased" holds: E_{x ~ pi_theta}[k3] = KL(pi_theta || pi_ref) needs a fixed pi_ref that
gives every token pi_theta can draw a probability > 0. Without top-k (and with the same ban) that is
exact. With top-k it is exact wherever the drawn token is in pi_ref's top k (always at the start,
where pi_theta = pi_ref); where it is not, pi_ref's support is widened by that one token, a small
bias that keeps every k3_t >= 0. Scoring pi_ref on pi_theta's support instead would make delta
infinite; dropping the processing would estimate the KL of what is not sampled, and it can go
negative: the failure TRL reports when top-k is used while sampling.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import torch
import torch.nn.functional as F

from model.sampler import Sampling, process_scores, top_k_filter


def judge_reward(judge_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """T1: R(x) = log P_judge(a | x), the log of lecture B's S for the target author a of each row. (n,)

    log P is <= 0 and keeps a gradient of meaning where P saturates near 1.
    """
    return F.log_softmax(judge_logits.float(), dim=-1).gather(1, targets[:, None])[:, 0]


def log_ratio(logp_theta: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """T2: delta_t = log pi_theta(x_t | x_<t) - log pi_ref(x_t | x_<t), token by token."""
    return logp_theta - logp_ref


def kl_k3(delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """T3: k3_t = exp(-delta_t) - 1 + delta_t (never negative, unbiased); KL(x) = (1/n) sum_t k3_t per row.

    delta (B, T), mask (B, T) 1 on the row's n tokens -> (B,).
    """
    k3 = torch.exp(-delta) - 1.0 + delta
    return (k3 * mask).sum(-1) / mask.sum(-1)


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """T4 (RLOO): b_i = (1/(G-1)) sum_{j != i} R_j, A_i = R_i - b_i, within each prompt's G samples. (P, G) -> (P, G)."""
    G = rewards.shape[-1]
    if G < 2:
        raise ValueError("RLOO needs at least 2 samples per prompt (G >= 2): the baseline is the others' mean")
    baseline = (rewards.sum(-1, keepdim=True) - rewards) / (G - 1)
    return rewards - baseline


def normalised_advantages(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """T11: A_i <- (A_i - mean) / (std + eps) over the batch (std over all rows, 1/n).

    The step's size then no longer scales with how far apart the judge's scores happen to be: a judge
    that is sure of everything (rewards near 0 for every row) no longer gives near-zero steps."""
    return (advantages - advantages.mean()) / (advantages.std(correction=0) + eps)


def adaptive_beta(beta: float, kl: float, kl_target: float, gain: float) -> float:
    """T11 (Ziegler et al. 2019; TRL's AdaptiveKLController): beta <- beta (1 + K_beta e),
    e = clip((KL - KL_target) / KL_target, -0.2, 0.2), with K_beta = `gain`.

    KL above its target raises beta (the KL penalty pulls harder), below lowers it; the clip bounds each
    step's change to a factor 1 +- 0.2 K_beta."""
    error = min(max((kl - kl_target) / kl_target, -0.2), 0.2)
    return beta * (1 + gain * error)


def policy_gradient_loss(logp: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """T5: L_PG = -(1/G) sum_i A_i (1/n_i) sum_t log pi_theta(x_{i,t} | x_{i,<t}), averaged over all rows.

    logp, mask (B, T); advantages (B,), constants (no gradient flows into them).
    """
    per_row = (logp * mask).sum(-1) / mask.sum(-1)  # (1/n_i) sum_t log pi
    return -(advantages.detach() * per_row).mean()


def total_loss(pg_loss: torch.Tensor, kl: torch.Tensor, beta: float) -> torch.Tensor:
    """T6: L = L_PG + beta (1/G) sum_i KL(x_i)."""
    return pg_loss + beta * kl.mean()


def with_real_text(rl_loss: torch.Tensor, lm_loss: torch.Tensor, gamma: float) -> torch.Tensor:
    """T9 (InstructGPT's pretraining mix): L = L_PG + beta KL + gamma L_gen, with L_gen the plain LM loss (B2) on a batch
    of the target author's real text. rl_loss is T6's L_PG + beta KL; gamma = 0 is T6 alone."""
    return rl_loss + gamma * lm_loss


def best_of_n(rewards: torch.Tensor) -> torch.Tensor:
    """T7: x* = argmax_i R(x_i) among the N candidates of each row. rewards (rows, N) -> index (rows,)."""
    return rewards.argmax(dim=-1)


def best_of_n_kl_bound(n: int) -> float:
    """T7: KL(best-of-N || base) <= log N - (N - 1)/N, per sequence (0 for N = 1)."""
    return math.log(n) - (n - 1) / n


def distinct_n(texts: list[str], n: int) -> float:
    """T8: D_n = distinct n-grams / all n-grams, over the words of all `texts` together (0 if none)."""
    grams = [tuple(words[i : i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def name_rate(texts: list[str], names: tuple[str, ...]) -> float:
    """T8's watch on a shortcut: words that are one of `names` per 1,000 words of `texts` (0 if none). A word is a run
    of letters; a possessive counts as the name ("Alice's")."""
    words = [w for t in texts for w in WORD.findall(t)]
    return 1000 * sum(re.split("['\u2019]", w)[0] in names for w in words) / len(words) if words else 0.0


WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")  # letters, and an apostrophe inside: "Alice's" is one word


def processed_log_probs(logits: torch.Tensor, ids: torch.Tensor, start: int, sampling: Sampling) -> torch.Tensor:
    """T2: log p(x_t | x_<t) under the distribution the sampler drew x_t from, for t = start .. T-1.

    logits (B, T, V) of the model on ids (B, T) (row t predicts token t + 1). Every position's scores
    go through the sampler's own steps (model/sampler.py:process_scores: penalty B10 counting every
    earlier token, ban B9, temperature), then top-k keeps this model's k best, and the token actually
    drawn is always kept (for the model that drew it, it was in the top k; a re-computation may differ
    in the last bit; for pi_ref it may lie outside, see the module's note on T3).
    All positions at once, a few rows at a time (the (rows, T, V) scores are large). Differentiable
    in `logits`. Returns (B, T - start).
    """
    B, T, V = logits.shape
    chunk = max(1, 2**25 // max(1, (T - start) * V))  # rows per chunk: at most ~32 M scores at a time
    sampled = replace(sampling, do_sample=True)  # what was drawn was sampled: temperature applies
    return torch.cat([_processed_rows(logits[i : i + chunk], ids[i : i + chunk], start, sampled)
                      for i in range(0, B, chunk)])


def _processed_rows(logits: torch.Tensor, ids: torch.Tensor, start: int, s: Sampling) -> torch.Tensor:
    """processed_log_probs for a few rows: (b, T, V) logits -> (b, T - start)."""
    b, T, V = logits.shape
    z, nxt = logits[:, start - 1 : T - 1], ids[:, start:]  # (b, n, V) predict (b, n)
    if s.repetition_penalty == 1.0:  # no B10: no position needs the tokens before it
        scores = process_scores(z, None, s)
    elif s.penalty_mode == "lecture":  # c_i of B10 at every position: counts of the tokens up to it
        counts = F.one_hot(ids[:, : T - 1], V).to(z.dtype).cumsum(1)[:, start - 1 :]  # (b, n, V)
        scores = process_scores(z, None, s, counts=counts)
    else:  # the library's rule reads the earlier tokens themselves; later ones are replaced by the first
        n = T - start  # token, already among the earlier ones, so that they change nothing ("once, however often")
        prev = ids[:, None, : T - 1].expand(b, n, T - 1).clone()  # (b, n, T - 1)
        later = torch.arange(T - 1)[None, :] > torch.arange(start - 1, T - 1)[:, None]  # (n, T - 1)
        prev[:, later] = ids[:, :1, None].expand(b, n, T - 1)[:, later]
        scores = process_scores(z.reshape(b * n, V), prev.reshape(b * n, T - 1), s).reshape(b, n, V)
    if s.top_k:
        kept = (top_k_filter(scores.detach(), s.top_k) > float("-inf")).scatter(-1, nxt[..., None], True)
        scores = scores.masked_fill(~kept, float("-inf"))
    return F.log_softmax(scores, dim=-1).gather(-1, nxt[..., None])[..., 0]
