"""The judge applied to any text (lecture A, equations A14 and A15).

A15: S = P(Alice | text) -- or P(a | text) for any author a of the judge.
A14: qualitative checks -- does it recognise style (held-out accuracy), are its predictions stable
     along a text (`stability`), how sensitive is it to the prompt (`prompt_sensitivity`).

A text longer than one window is cut into consecutive windows ([CLS] ... [SEP] each, as in
training), and the text gets one answer from all of them (`passage_log_probs`):

    log P(a | text) = (1/W) sum_w log P(a | window w) - log Z

the windows' log-probabilities averaged (a normalised geometric mean): each window is evidence, a
window that rules an author out counts as much as one that favours it, and the 1/W keeps a chapter's
verdict as confident as one window's rather than W times more.
"""

from __future__ import annotations

import sys

import torch
from tokenizers import Tokenizer

from data.windows import Specials, text_ids, text_windows
from train.bert_judge import predict_logits

NEUTRAL_PREFIX = "The following passage is taken from a book."
SHIFT_WORDS = 5  # "shifted by a few words": the passage starts this many words later


def window_probabilities(model: torch.nn.Module, tok: Tokenizer, text: str, length: int) -> torch.Tensor:
    """y_hat = softmax(z) (A2) for each window of `text`: (W, n_classes). ValueError for empty text."""
    ids = text_ids(tok, text)  # (N,)
    if len(ids) == 0:
        raise ValueError("empty text: nothing to classify (give some words)")
    check_known_words(ids, tok)
    x, mask = text_windows(ids, length, Specials.of(tok))  # (W, L), (W, L)
    return predict_logits(model, x, mask, desc=f"judging {len(x)} windows").softmax(dim=-1)  # (W, C)


def check_known_words(ids: torch.Tensor, tok: Tokenizer) -> None:
    """A verdict needs words the judge knows: an error if every token is [UNK], a warning if most are."""
    unk = tok.token_to_id("[UNK]")
    unknown = int((ids == unk).sum()) if unk is not None else 0
    if unknown == len(ids):
        raise ValueError(f"the judge knows none of this text's {len(ids)} tokens (all [UNK]: emoji, symbols or "
                         "another script?): there is no word to judge")
    if unknown > len(ids) / 2:
        print(f"warning: {unknown} of the text's {len(ids)} tokens are unknown to the judge ([UNK]): its verdict "
              "rests on the few words it knows", file=sys.stderr)


def passage_log_probs(window_log_probs: torch.Tensor) -> torch.Tensor:
    """A15, a whole passage: log P(a | passage) = (1/W) sum_w log P(a | window w) - log Z: (..., W, C) -> (..., C)."""
    return torch.log_softmax(window_log_probs.mean(dim=-2), dim=-1)


def judge_score(probs: torch.Tensor, label: int = 0) -> float:
    """A15: S = P(Alice | text) (label 0; label a gives P(author a | text)), averaged over the text's windows."""
    return probs[:, label].mean().item()


def stability(probs: torch.Tensor, label: int = 0) -> dict[str, float]:
    """A14: are the judge's predictions stable along a text? The spread of P(label) over its windows.

    std (population) and min/max of the per-window probability, and the share of windows whose
    own decision (P >= 0.5) agrees with the decision on the whole text.
    """
    p = probs[:, label]  # (W,)
    decision = judge_score(probs, label) >= 0.5
    return {"std": p.std(unbiased=False).item(), "min": p.min().item(), "max": p.max().item(),
            "agree": ((p >= 0.5) == decision).float().mean().item()}


def prompt_variants(text: str) -> dict[str, str]:
    """A14's prompt changes of one passage: cut to its first half, shifted by a few words, a neutral prefix."""
    words = text.split()
    return {"cut": " ".join(words[: max(1, len(words) // 2)]),
            "shift": " ".join(words[SHIFT_WORDS:]) if len(words) > SHIFT_WORDS else text,
            "prefix": f"{NEUTRAL_PREFIX} {text}"}


def prompt_sensitivity(model: torch.nn.Module, tok: Tokenizer, text: str, length: int) -> dict[str, float]:
    """A14: how P(author) moves when the passage changes but its author does not.

    The author is the one the judge picks for the unchanged passage; for each variant of
    `prompt_variants`, dP = P_variant(author) - P_original(author), and whether the decision flips.
    """
    base = window_probabilities(model, tok, text, length).mean(0)  # (C,)
    author = int(base.argmax())
    out = {"p": base[author].item(), "author": author}
    for name, variant in prompt_variants(text).items():
        p = window_probabilities(model, tok, variant, length).mean(0)
        out[f"dp_{name}"] = p[author].item() - base[author].item()
        out[f"flip_{name}"] = bool(int(p.argmax()) != author)
    return out


def classify(model: torch.nn.Module, tok: Tokenizer, text: str, length: int, labels: list[str]) -> dict:
    """P(author | text) for every author of the judge (A15), from all its windows (`passage_log_probs`); the best
    author; A14 stability along the windows."""
    probs = window_probabilities(model, tok, text, length)  # (W, C)
    whole = passage_log_probs(probs.log()).exp()  # (C,)
    scores = {name: whole[label].item() for label, name in enumerate(labels)}
    best = max(scores, key=scores.get)
    return {"author": best, "probs": scores, "windows": len(probs),
            "per_window": probs[:, labels.index(best)].tolist(), "stability": stability(probs, labels.index(best))}
