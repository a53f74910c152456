"""model/sampler.py: B9 bad tokens, B10 repetition penalty (both modes), KV cache, seeding, agreement with HF."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from model.config import GPTNeoConfig
from model.gpt_neo import GPTNeo, KVCache, last_logits, lm_head
from model.sampler import (Sampling, bad_token_mask, generate, hf_repetition_penalty, lecture_repetition_penalty,
                           next_logits, process_scores, sample_top_k, token_counts, top_k_filter)
from tokenizer_bridge.bpe import train_bpe

WHITESPACE_LINES = ["Alice  said\t\tno.\r\nThe Queen\r\n\r\nwept   and\n\n\nran \t off.\n    Then\r\n"] * 300


def tiny_config(vocab_size: int = 61, **kw) -> GPTNeoConfig:
    """Two layers, one global and one local with a window far shorter than the sequences used below."""
    base = dict(vocab_size=vocab_size, max_position_embeddings=512, hidden_size=32, num_layers=2, num_heads=4,
                window_size=4, attention_layers=["global", "local"], bos_token_id=0, eos_token_id=0)
    base.update(kw)
    return GPTNeoConfig(**base)


def tiny_model(vocab_size: int = 61, seed: int = 0) -> GPTNeo:
    torch.manual_seed(seed)
    return GPTNeo(tiny_config(vocab_size)).eval()


@pytest.fixture(scope="module")
def bpe(wonderland_text) -> Tokenizer:
    """A byte-level BPE tokenizer (the project's own trainer) on corpus text plus whitespace-heavy lines."""
    return train_bpe([wonderland_text] + WHITESPACE_LINES, vocab_size=600, min_frequency=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


# ---------------------------------------------------------------- B10, by hand

def test_lecture_penalty_hand_example():
    # p = (1/2, 1/4, 1/4), c = (2, 1, 0), r = 2: p / r**c = (1/8, 1/8, 1/4), sum 1/2 -> (1/4, 1/4, 1/2)
    log_p = torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]).log()
    counts = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # second row: nothing seen, nothing changes
    out = lecture_repetition_penalty(log_p, counts, 2.0).exp()
    torch.testing.assert_close(out, torch.tensor([[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]]))


def test_lecture_penalty_counts_every_occurrence_but_hf_counts_once():
    # token 0 seen 3 times: lecture divides its probability by 1.5**3, hf divides its logit by 1.5 once
    logits = torch.tensor([[1.0, 1.0]])
    prev_ids = torch.tensor([[0, 0, 0]])
    lecture = process_scores(logits, prev_ids, Sampling(repetition_penalty=1.5, do_sample=False)).softmax(-1)
    # p = (1/2, 1/2) -> (1/2 / 3.375, 1/2) -> renormalised (1/4.375, 3.375/4.375)
    torch.testing.assert_close(lecture, torch.tensor([[1 / 4.375, 3.375 / 4.375]]))
    hf = process_scores(logits, prev_ids, Sampling(repetition_penalty=1.5, penalty_mode="hf", do_sample=False))
    torch.testing.assert_close(hf, torch.tensor([[1 / 1.5, 1.0]]))


def test_hf_penalty_hand_example():
    # seen tokens 0 and 1: 2 -> 2 / 2 = 1, -1 -> -1 * 2 = -2; unseen 0.5 and 3 unchanged
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    seen = torch.tensor([[1, 0, 1]])  # token 1 twice: still divided once
    torch.testing.assert_close(hf_repetition_penalty(logits, seen, 2.0), torch.tensor([[1.0, -2.0, 0.5, 3.0]]))
    assert logits.tolist() == [[2.0, -1.0, 0.5, 3.0]]  # the input is left as it was


def test_order_penalty_then_bad_then_temperature_then_top_k():
    # lecture log-probs of (0, 0, 0, 0) logits are log 1/4; token 1 seen once (r = e: -1), token 3 banned,
    # temperature 0.5 doubles, top-2 keeps tokens 0 and 2.
    scores = process_scores(torch.zeros(1, 4), torch.tensor([[1]]),
                            Sampling(temperature=0.5, repetition_penalty=math.e, penalty_mode="lecture",
                                     bad_mask=torch.tensor([False, False, False, True])))
    scores = top_k_filter(scores, 2)  # step 4, as sample_top_k applies it
    z = math.log(3 / 4 + math.exp(-1) / 4)  # renormaliser log Z of B10
    expect = torch.tensor([[2 * (math.log(0.25) - z), float("-inf"), 2 * (math.log(0.25) - z), float("-inf")]])
    torch.testing.assert_close(scores, expect)


@pytest.mark.parametrize("mode", ["lecture", "hf"])
def test_each_step_in_its_order_on_unequal_logits(mode, monkeypatch):
    """1 penalty, 2 ban, 3 temperature, 4 top-k, 5 softmax + draw, on logits that are all different.

    z = (2, 1, 0.5, -0.5, -1); tokens 0 (twice) and 3 (once) already seen; r = 2; token 1 banned; T = 0.5;
    k = 2. After the penalty, token 0 is 2 - 2 log 2 = 0.614 (lecture: log p_0 / r^2) or 2 / 2 = 1 (hf);
    the ban removes token 1 (the second best); top-2 keeps tokens 0 and 2; T doubles their gap. Any other
    order changes the answer: top-k before the ban leaves token 0 alone (p_0 = 1), the temperature before
    the lecture's penalty gives p_0 = 0.83, no penalty gives p_0 = 0.95.
    """
    z = torch.tensor([[2.0, 1.0, 0.5, -0.5, -1.0]])
    seen, bad = torch.tensor([[0, 3, 0]]), torch.tensor([False, True, False, False, False])
    token0 = 2 - 2 * math.log(2) if mode == "lecture" else 2 / 2  # token 2 keeps 0.5 (minus the same log Z)
    p0 = 1 / (1 + math.exp(2 * (0.5 - token0)))  # softmax of the two kept scores at T = 0.5
    expect = torch.tensor([p0, 0.0, 1 - p0, 0.0, 0.0])
    settings = Sampling(temperature=0.5, top_k=2, repetition_penalty=2.0, penalty_mode=mode, bad_mask=bad)
    scores = top_k_filter(process_scores(z, seen, settings), 2)
    torch.testing.assert_close(scores.softmax(-1)[0], expect)
    # the same through generate: 20,000 rows of one draw each, the model's logits replaced by z
    import model.sampler as sampler

    monkeypatch.setattr(sampler, "next_logits", lambda model, ids, t, cache: z.expand(len(ids), -1))
    rows = generate(tiny_model(5), seen.repeat(20_000, 1), 1, settings, torch.Generator().manual_seed(0))
    freq = torch.bincount(rows[:, -1], minlength=5).float() / 20_000
    assert (freq - expect).abs().max() < 0.015, freq


def test_top_k_keeps_ties():
    scores = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0]])
    out = top_k_filter(scores, 2)
    inf = float("-inf")
    assert out.tolist() == [[inf, 3.0, 2.0, 2.0, inf]]


@pytest.mark.parametrize("k", [3, 4, None])
def test_sample_top_k_follows_top_k_then_softmax(k):
    """sample_top_k draws among the k best only (ties with the k-th kept): the frequencies must match
    softmax(top_k_filter(scores, k)), and a dropped or -inf token must never come out. With k = 3 the
    two 0.5 scores tie for third place; with k = 4 there is no tie."""
    inf = float("-inf")
    scores = torch.tensor([[1.0, inf, 0.5, 2.0, 0.5, inf, -1.0, -3.0]]).repeat(4000, 1)  # 4000 draws
    probs = torch.softmax(top_k_filter(scores[:1], k)[0] if k else scores[0], dim=-1)
    drawn = sample_top_k(scores, k, torch.Generator().manual_seed(0))[:, 0]
    freq = torch.bincount(drawn, minlength=8).float() / len(drawn)
    assert freq[probs == 0].sum() == 0
    tolerance = 5 * torch.sqrt(probs * (1 - probs) / len(drawn)) + 1e-9  # 5 standard errors
    assert (freq - probs).abs().le(tolerance).all(), (freq, probs)


def test_sample_top_k_rows_with_and_without_ties_each_keep_their_own_k_best():
    """One row ties with its k-th score and the other does not: each draws among its own k best (and ties) only."""
    tie, no_tie = [1.0, 3.0, 2.0, 2.0, 0.0], [1.0, 3.0, 2.0, 1.5, 0.0]
    scores = torch.tensor([tie, no_tie]).repeat(3000, 1)
    drawn = sample_top_k(scores, 2, torch.Generator().manual_seed(0))[:, 0]
    assert set(drawn[0::2].tolist()) == {1, 2, 3}  # 3.0 and both 2.0s
    assert set(drawn[1::2].tolist()) == {1, 2}  # 3.0 and 2.0: 1.5 is third, never drawn
    for row, way in ((tie, drawn[0::2]), (no_tie, drawn[1::2])):
        probs = torch.softmax(top_k_filter(torch.tensor([row]), 2)[0], -1)
        freq = torch.bincount(way, minlength=5).float() / len(way)
        assert (freq - probs).abs().max() < 0.04, (freq, probs)


def test_token_counts_counts_every_occurrence():
    counts = token_counts(torch.tensor([[2, 0, 2, 2], [1, 1, 1, 1]]), 4)
    assert counts.tolist() == [[1, 0, 3, 0], [0, 4, 0, 0]]


def test_last_logits_equals_the_tied_head():
    torch.manual_seed(0)
    x, wte = torch.randn(5, 48), torch.randn(300, 48)
    torch.testing.assert_close(last_logits(x, wte), lm_head(x, wte), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lm_head(x, wte), F.linear(x, wte), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- cache, seeding, greedy

def test_cached_and_uncached_logits_are_equal():
    model = tiny_model()
    ids = torch.randint(0, 61, (3, 40), generator=torch.Generator().manual_seed(1))  # (B, T), T >> window 4
    cache = KVCache(model.config, 3, 40)
    with torch.no_grad():
        for t in range(5, 40):  # first call feeds 5 prompt positions at once, then one at a time
            cached = next_logits(model, ids, t, cache)
            full = next_logits(model, ids, t, None)
            torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)
    assert cache.length == 39


@pytest.mark.parametrize("mode", ["lecture", "hf"])
def test_generate_same_with_and_without_cache(mode):
    model = tiny_model()
    prompt = torch.tensor([[3], [7]])
    out = [generate(model, prompt, 30, Sampling(penalty_mode=mode), torch.Generator().manual_seed(5),
                    use_cache=use_cache) for use_cache in (True, False)]
    assert torch.equal(out[0], out[1])
    assert out[0].shape == (2, 31) and torch.equal(out[0][:, :1], prompt)


def test_seeded_sampling_is_reproducible():
    model = tiny_model()
    prompt = torch.tensor([[1], [2], [3]])
    run = lambda seed: generate(model, prompt, 50, rng=torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_greedy_is_deterministic_and_is_argmax():
    model = tiny_model()
    prompt = torch.tensor([[4, 9]])
    out = generate(model, prompt, 1, Sampling(do_sample=False, repetition_penalty=1.0))
    with torch.no_grad():
        assert out[0, 2] == model(prompt)[0, -1].argmax()
    a = generate(model, prompt, 20, Sampling(do_sample=False), torch.Generator().manual_seed(0))
    b = generate(model, prompt, 20, Sampling(do_sample=False), torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_bfloat16_model_generates():
    model = tiny_model().to(torch.bfloat16)
    out = generate(model, torch.tensor([[1], [2]]), 20, rng=torch.Generator().manual_seed(0))
    assert out.dtype == torch.long and out.shape == (2, 21) and int(out.max()) < 61


def test_bad_arguments_are_refused():
    model = tiny_model()
    prompt = torch.tensor([[1]])
    with pytest.raises(ValueError, match="penalty_mode"):
        generate(model, prompt, 2, Sampling(penalty_mode="openai"))
    with pytest.raises(ValueError, match="shape"):
        generate(model, prompt, 2, Sampling(bad_mask=torch.zeros(60, dtype=torch.bool)))
    with pytest.raises(ValueError, match="every token"):
        generate(model, prompt, 2, Sampling(bad_mask=torch.ones(61, dtype=torch.bool)))
    with pytest.raises(ValueError, match="r < 1 would reward repetition"):
        generate(model, prompt, 2, Sampling(repetition_penalty=0.9))


@pytest.mark.parametrize("mode", ["lecture", "hf"])
def test_r_equal_to_one_is_no_penalty(mode):
    """B10 with r = 1: p_i / 1^c_i = p_i, so sampling is the plain softmax (seeded: the same tokens)."""
    model, prompt = tiny_model(), torch.tensor([[1, 1, 1], [4, 5, 4]])
    with_r1 = generate(model, prompt, 6, Sampling(repetition_penalty=1.0, penalty_mode=mode),
                       torch.Generator().manual_seed(2))
    logits = torch.randn(2, 61)
    plain = process_scores(logits, prompt, Sampling(repetition_penalty=1.0, penalty_mode=mode))
    torch.testing.assert_close(plain.softmax(-1), logits.softmax(-1))
    assert with_r1.shape == (2, 9)


# ---------------------------------------------------------------- agreement with transformers (hf mode)

def test_hf_mode_greedy_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    V = 97
    cfg = transformers.GPTNeoConfig(
        vocab_size=V, max_position_embeddings=64, hidden_size=32, num_layers=4, num_heads=4,
        attention_types=[[["global", "local"], 2]], window_size=5, initializer_range=0.2,
        bos_token_id=V - 1, eos_token_id=V - 1, pad_token_id=V - 1,
    )
    torch.manual_seed(0)
    hf = transformers.GPTNeoForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path)
    ours = GPTNeo.from_pretrained(tmp_path)

    banned = [V - 1, 0, 5, 17, 42, 43, 80]
    mask = torch.zeros(V, dtype=torch.bool)
    mask[banned] = True
    prompts = torch.randint(1, V - 1, (3, 4), generator=torch.Generator().manual_seed(2))  # (B, T0)
    n = 40  # 44 positions, window 5
    with torch.no_grad():
        want = hf.generate(
            prompts, attention_mask=torch.ones_like(prompts), do_sample=False, num_beams=1,
            repetition_penalty=1.3, bad_words_ids=[[i] for i in banned], max_new_tokens=n, min_new_tokens=n,
            top_k=None, top_p=None, no_repeat_ngram_size=0, pad_token_id=V - 1, eos_token_id=V - 1,
        )
    got = generate(ours, prompts, n, Sampling(repetition_penalty=1.3, penalty_mode="hf", bad_mask=mask, do_sample=False))
    assert want.shape == got.shape == (3, 4 + n)
    assert torch.equal(got, want)
    assert not mask[got[:, 4:]].any()
    # the penalty mattered: without it, greedy decoding takes another path
    plain = generate(ours, prompts, n, Sampling(repetition_penalty=1.0, penalty_mode="hf", bad_mask=mask, do_sample=False))
    assert not torch.equal(plain, got)


# ---------------------------------------------------------------- B9, on a real byte-level BPE

def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (how byte-level BPE writes raw bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def test_bad_token_mask_on_byte_level_bpe(bpe):
    V = bpe.get_vocab_size() + 7  # seven padding rows past the tokenizer
    mask = bad_token_mask(bpe, V)
    assert mask.shape == (V,) and mask.dtype == torch.bool
    for text in [" ", "\n", "\n\n", "\t", "\r\n", "  ", "   ", "\r", " \t"]:
        ids = bpe.encode(text).ids
        assert len(ids) == 1, f"{text!r} should be one token in this vocabulary, got {bpe.encode(text).tokens}"
        assert mask[ids[0]], f"{text!r} is not banned"
    assert mask[bpe.token_to_id("<|endoftext|>")]
    assert mask[-7:].all()
    for word in [" Alice", " the", "said", " Queen", ".", ","]:
        assert not mask[bpe.encode(word).ids].any(), word
    # independent check: read each raw token back to bytes through GPT-2's table
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    expected = torch.zeros(V, dtype=torch.bool)
    expected[bpe.get_vocab_size():] = True
    for token, idx in bpe.get_vocab().items():
        if token == "<|endoftext|>":
            expected[idx] = True
        else:
            expected[idx] = bytes(to_byte[c] for c in token).decode("utf-8", errors="replace").isspace()
    assert torch.equal(mask, expected)
    assert int(mask[: bpe.get_vocab_size()].sum()) >= 15  # far more than the course's 6 ids


@pytest.mark.parametrize("mode", ["lecture", "hf"])
def test_sampling_never_emits_a_banned_token(bpe, mode):
    V = bpe.get_vocab_size() + 7
    mask = bad_token_mask(bpe, V)
    torch.manual_seed(0)
    model = GPTNeo(tiny_config(V)).eval()
    with torch.no_grad():  # make banned tokens very likely: every hidden state is e_0, banned rows of wte get +6
        model.ln_f.weight.zero_()
        model.ln_f.bias.zero_()
        model.ln_f.bias[0] = 1.0
        model.wte.weight[mask, 0] = 6.0
    prompt = torch.randint(0, V, (8, 1), generator=torch.Generator().manual_seed(3))
    free = generate(model, prompt, 400, Sampling(penalty_mode=mode), torch.Generator().manual_seed(0))
    assert mask[free[:, 1:]].float().mean() > 0.5  # without the mask, most tokens are banned ones
    kept = generate(model, prompt, 400, Sampling(penalty_mode=mode, bad_mask=mask), torch.Generator().manual_seed(0))
    assert kept.shape == (8, 401)
    assert not mask[kept[:, 1:]].any()
    assert len(set(kept[:, 1:].flatten().tolist())) > 40  # it did sample, and widely


def test_under_autocast_the_kv_cache_keeps_16_bit_keys_and_values(monkeypatch, tiny_llama_base) -> None:
    """Sampling under bfloat16 autocast (plumbing/precision.py:choose_sampling): the cache holds what the 16-bit
    products give, in 16 bits (not a float32 copy cast back on every read)."""
    from model import sampler
    from model.decoder import load_decoder

    model = load_decoder(tiny_llama_base).eval()
    made = []
    original = sampler.KVCache
    monkeypatch.setattr(sampler, "KVCache", lambda *a, **k: made.append(k["dtype"]) or original(*a, **k))
    start = torch.tensor([[5], [9]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rows = sampler.generate(model, start, 12, sampler.Sampling(do_sample=False))
    assert made == [torch.bfloat16] and rows.shape == (2, 13) and torch.equal(rows[:, :1], start)
    sampler.generate(model, start, 2, sampler.Sampling(do_sample=False))
    assert made[-1] == torch.float32  # outside autocast: the weights' own dtype
