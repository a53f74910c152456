"""Solutions to the exercises of notebooks/lecture_b.ipynb. tests/test_notebooks.py runs every `exercise_` function;
each checks its answer, so a change to the library that makes an answer wrong fails the suite."""

from __future__ import annotations

import functools
from collections import Counter

import torch

from model.decoder import load_decoder
from model.sampler import Sampling, bad_token_mask, generate, lecture_repetition_penalty
from tokenizer_bridge.bridge import neo_bert_ratio
from tokenizer_bridge.load import load_bert_tokenizer, load_neo_tokenizer
from weights import resolve

PROMPT = "The Queen said"


@functools.cache
def smollm2():
    """SmolLM2, its tokenizer and B9's mask, loaded once for all the exercises."""
    folder = resolve("smollm2-135m")
    model, tok = load_decoder(folder).eval(), load_neo_tokenizer(folder)
    return model, tok, bad_token_mask(tok, model.config.vocab_size)


def sample(r: float, mask: bool, tokens: int = 48) -> tuple[list[int], object]:
    """48 tokens of SmolLM2 after PROMPT, seed 0, top-k 50, penalty r (B10), with or without B9's mask."""
    model, tok, bad = smollm2()
    prompt = torch.tensor([tok.encode(PROMPT).ids])
    s = Sampling(repetition_penalty=r, bad_mask=bad if mask else None)
    out = generate(model, prompt, tokens, s, torch.Generator().manual_seed(0))
    return out[0, prompt.shape[1]:].tolist(), (tok, bad)


def exercise_1_b10_a_stronger_penalty() -> dict[float, int]:
    """With r = 3 every repeat of a token costs a factor 3 per earlier appearance (B10: p / r^c), so the most frequent
    token of the text appears less often than with r = 1 (no penalty), from the same start and seed."""
    most = {r: Counter(sample(r, mask=True)[0]).most_common(1)[0][1] for r in (1.0, 3.0)}
    assert most[3.0] < most[1.0], most
    return most


def exercise_2_b9_the_mask_off() -> dict[str, int]:
    """Without B9's mask the sampler may draw whitespace-only tokens (line breaks, runs of spaces); with it, never."""
    counts = {}
    for mask in (True, False):
        ids, (tok, bad) = sample(1.3, mask)
        counts["with the mask" if mask else "without"] = sum(bool(bad[i]) for i in ids)
    assert counts["with the mask"] == 0
    return counts


def exercise_3_b10_unseen_tokens_gain() -> list[float]:
    """Yes for every token never seen: dividing the seen ones by r^c and renormalising moves their probability to all
    the others. Token 1 (never seen) goes from 0.30 to more."""
    p = torch.tensor([[0.50, 0.30, 0.15, 0.05]])
    after = lecture_repetition_penalty(p.log(), torch.tensor([[2.0, 0.0, 1.0, 0.0]]), 1.3).exp()[0]
    assert after[1] > 0.30 and after[3] > 0.05 and after[0] < 0.50
    return after.tolist()


def exercise_4_b16_carroll_or_poe() -> dict[str, float]:
    """The ratio |T_neo(x)| / |T_bert(x)| for a sentence of each: both near 1, since both tokenizers keep common words
    whole; rare words and punctuation move it (each tokenizer splits different words)."""
    folder = resolve("smollm2-135m")
    neo, bert = load_neo_tokenizer(folder), load_bert_tokenizer(resolve("minilm"))
    texts = {"carroll": "'Curiouser and curiouser!' cried Alice; she was so much surprised.",
             "poe": "Once upon a midnight dreary, while I pondered, weak and weary."}
    ratios = {name: neo_bert_ratio(text, neo, bert) for name, text in texts.items()}
    for name, text in texts.items():
        n_neo, n_bert = len(neo.encode(text).ids), len(bert.encode(text, add_special_tokens=False).ids)
        assert abs(ratios[name] - n_neo / n_bert) < 1e-12
    return ratios
