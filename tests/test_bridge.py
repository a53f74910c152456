"""tokenizer_bridge/bridge.py: B6 translation, B8 over-generation and cut, B16 ratio."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from model.config import GPTNeoConfig
from model.gpt_neo import GPTNeo
from model.sampler import Sampling, bad_token_mask, generate
from tokenizer_bridge.bpe import train_bpe
from tokenizer_bridge.bridge import (JudgeBatch, RowSampling, ShortRowError, generate_for_judge, kept_neo_tokens,
                                     more_tokens_needed, neo_bert_ratio, neo_to_bert_text)
from tokenizer_bridge.load import load_bert_tokenizer, special_id

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def bert_tok(minilm_folder) -> Tokenizer:
    """The real uncased WordPiece of MiniLM, from the weights store (`make weights`)."""
    return load_bert_tokenizer(minilm_folder)


def byte_level_bpe(text: str, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


@pytest.fixture(scope="module")
def neo_tok(wonderland_text) -> Tokenizer:
    """Byte-level BPE trained on the start of Alice's Adventures in Wonderland."""
    return train_bpe([wonderland_text], vocab_size=800, min_frequency=1)


@pytest.fixture(scope="module")
def byte_tok() -> Tokenizer:
    """Byte-level BPE with no merges at all: one GPT-Neo token per byte, so |T_neo(x)| = len(x) for ASCII."""
    tok = byte_level_bpe("the cat", 257)  # 256 bytes + <|endoftext|>, no room for a merge
    assert len(tok.encode("the cat sat").ids) == 11
    return tok


class ScriptedModel(nn.Module):
    """A stand-in for GPTNeo that writes a fixed text: a row that starts with token s continues with

    scripts[s] repeated (the token at position p is scripts[s][(p - 1) % n]). It reads the start token of
    each row when it sees a row's first positions, and keeps them while a KV cache runs.
    """

    def __init__(self, scripts: dict[int, list[int]], vocab_size: int) -> None:
        super().__init__()
        self.config = GPTNeoConfig(vocab_size=vocab_size, max_position_embeddings=1024, hidden_size=4, num_layers=1,
                                   num_heads=1, attention_layers=["global"])
        self.scripts = {s: torch.tensor(ids) for s, ids in scripts.items()}
        self.unused = nn.Parameter(torch.zeros(1))  # gives the sampler a dtype to read

    def forward(self, input_ids: torch.Tensor, cache=None, last_only: bool = False) -> torch.Tensor:
        B, T = input_ids.shape
        first = 0 if cache is None else cache.length  # the position of input_ids[:, 0]
        if first == 0:
            self.starts = [int(s) for s in input_ids[:, 0]]
        pos = torch.arange(first, first + T)
        logits = torch.zeros(B, T, self.config.vocab_size)
        for r in range(B):
            script = self.scripts[self.starts[r]]
            logits[r, torch.arange(T), script[pos % len(script)]] = 10.0
        if cache is not None:
            cache.length += T
        return logits[:, -1:] if last_only else logits


def scripted(tok: Tokenizer, **texts: str) -> tuple[ScriptedModel, torch.Tensor]:
    """A ScriptedModel writing texts.values(), and its start ids (B, 1): the byte-level ids of texts.keys()."""
    starts = [tok.encode(name).ids[0] for name in texts]
    model = ScriptedModel({s: tok.encode(t).ids for s, t in zip(starts, texts.values())}, tok.get_vocab_size())
    return model, torch.tensor(starts)[:, None]


GREEDY = Sampling(do_sample=False, repetition_penalty=1.0)


def test_neo_to_bert_text_is_decode_then_encode(neo_tok, bert_tok):
    ids = neo_tok.encode("Alice was beginning to get very tired").ids
    text, enc = neo_to_bert_text(ids, neo_tok, bert_tok)
    assert text == "Alice was beginning to get very tired"
    assert enc.tokens == ["alice", "was", "beginning", "to", "get", "very", "tired"]  # no [CLS]/[SEP]


def test_ratio_on_a_hand_checkable_example(byte_tok, bert_tok):
    # "the cat sat" is 11 bytes = 11 GPT-Neo tokens here, and 3 BERT tokens: 11 / 3
    assert neo_bert_ratio("the cat sat", byte_tok, bert_tok) == pytest.approx(11 / 3)
    model, start = scripted(byte_tok, X="the cat sat on the mat. ")
    batch = generate_for_judge(model, start, byte_tok, bert_tok, RowSampling(L=3, overgen=4, sampling=GREEDY))
    # 12 bytes "the cat sat " -> BERT: the cat sat -> keep 3; span ends after "sat"
    assert batch.texts == ["the cat sat"]
    assert batch.neo_bert_ratio == [pytest.approx(11 / 3)]
    assert batch.extra_tokens == [0]
    assert bert_tok.decode(batch.input_ids[0].tolist(), skip_special_tokens=False) == "[CLS] the cat sat [SEP]"


def test_short_row_is_continued(byte_tok, bert_tok):
    # k = 1, L = 6: 6 bytes "the ca" give 2 BERT tokens, so the row must be generated further
    model, start = scripted(byte_tok, X="the cat sat on the mat. ")
    batch = generate_for_judge(model, start, byte_tok, bert_tok, RowSampling(L=6, overgen=1, sampling=GREEDY))
    assert batch.extra_tokens[0] > 0
    assert batch.texts == ["the cat sat on the mat"]
    assert batch.neo_bert_ratio == [pytest.approx(22 / 6)]
    assert batch.input_ids.shape == (1, 8)
    assert bert_tok.decode(batch.input_ids[0].tolist(), skip_special_tokens=False) == \
        "[CLS] the cat sat on the mat [SEP]"


def test_short_row_without_rounds_left_is_an_error(byte_tok, bert_tok):
    model, start = scripted(byte_tok, X="the cat sat on the mat. ")
    with pytest.raises(ShortRowError, match="fewer than L=6"):
        generate_for_judge(model, start, byte_tok, bert_tok, RowSampling(L=6, overgen=1, max_rounds=0, sampling=GREEDY))


class StuckOnce(ScriptedModel):
    """Writes one endless word ("xxxx...", which WordPiece reads as one [UNK] past 100 characters) in its first
    draw, and its script after: a sampler that fell into a run of capitals, as SmolLM2 sometimes does."""

    def forward(self, input_ids, cache=None, last_only=False):
        fresh = cache is None or cache.length == 0
        self.draws = getattr(self, "draws", 0) + (1 if fresh and input_ids.shape[1] == 1 else 0)
        logits = super().forward(input_ids, cache, last_only)
        if self.draws == 1:
            logits = torch.zeros_like(logits)
            logits[..., self.stuck] = 10.0
        return logits


def test_a_row_stuck_in_one_endless_word_is_drawn_again(byte_tok, bert_tok):
    """Continuing cannot help a row whose text is one 100+ character word; after the rounds (each at most k L
    tokens, within the context) it is drawn again from its start token, and counted."""
    model, start = scripted(byte_tok, X="the cat sat on the mat. ")
    model.__class__, model.stuck = StuckOnce, byte_tok.encode("x").ids[0]
    batch = generate_for_judge(model, start, byte_tok, bert_tok, RowSampling(L=4, overgen=30, max_rounds=2,
                                                                             sampling=GREEDY))  # 120 x's: one [UNK]
    assert batch.redrawn == [1] and batch.texts == ["the cat sat on"]
    assert more_tokens_needed(10, 1, L=128, overgen=1.25) == 160  # capped at k L, not 1.5 x 10 x 127


def test_only_the_short_rows_grow(byte_tok, bert_tok):
    # at k = 2, L = 4 (8 bytes): "a b c d " gives 4 BERT tokens, "question" gives 1, so only row B grows
    model, start = scripted(byte_tok, A="a b c d e f g h ", B="question answered ")
    batch = generate_for_judge(model, start, byte_tok, bert_tok, RowSampling(L=4, overgen=2, sampling=GREEDY))
    assert batch.extra_tokens[0] == 0 and batch.extra_tokens[1] > 0
    assert batch.texts[0] == "a b c d" and batch.texts[1].startswith("question answered quest")  # k L = 8 per round
    assert batch.input_ids.shape == (2, 6)


@pytest.fixture(scope="module")
def tiny_neo(neo_tok) -> tuple[GPTNeo, torch.Tensor, int]:
    """A tiny random GPT-Neo (global + local) over the corpus BPE, its bad-token mask, and V."""
    V = neo_tok.get_vocab_size()
    torch.manual_seed(0)
    model = GPTNeo(GPTNeoConfig(vocab_size=V, max_position_embeddings=512, hidden_size=32, num_layers=2, num_heads=4,
                                window_size=8, attention_layers=["global", "local"])).eval()
    return model, bad_token_mask(neo_tok, V), V


def test_real_generated_rows_are_cut_to_exactly_L(tiny_neo, neo_tok, bert_tok):
    model, mask, V = tiny_neo
    start = torch.randint(0, V // 2, (4, 1), generator=torch.Generator().manual_seed(1))
    L, k = 24, 4
    sampling = Sampling(bad_mask=mask, top_k=50, repetition_penalty=1.3)
    batch = generate_for_judge(model, start, neo_tok, bert_tok, RowSampling(L=L, overgen=k, sampling=sampling),
                               rng=torch.Generator().manual_seed(7))
    assert isinstance(batch, JudgeBatch)
    cls_id, sep_id = special_id(bert_tok, "[CLS]"), special_id(bert_tok, "[SEP]")
    assert batch.input_ids.shape == batch.attention_mask.shape == (4, L + 2)
    assert (batch.input_ids[:, 0] == cls_id).all() and (batch.input_ids[:, -1] == sep_id).all()
    assert not torch.isin(batch.input_ids[:, 1:-1], torch.tensor([cls_id, sep_id])).any()
    assert (batch.attention_mask == 1).all()

    # the same seed through the sampler alone: the full rows translate to more than L tokens, and the
    # judge rows are their first L (the cut of B8)
    rows = generate(model, start, k * L, sampling, torch.Generator().manual_seed(7))
    for i, row in enumerate(rows):
        text, enc = neo_to_bert_text(row[1:].tolist(), neo_tok, bert_tok)
        assert len(enc.ids) > L
        assert batch.input_ids[i, 1:-1].tolist() == enc.ids[:L]
        assert text.startswith(batch.texts[i]) and len(batch.texts[i]) < len(text)
        assert bert_tok.encode(batch.texts[i], add_special_tokens=False).ids[:L] == enc.ids[:L]
    assert len(batch.neo_bert_ratio) == 4 and all(r > 0 for r in batch.neo_bert_ratio)
    assert batch.extra_tokens == [0, 0, 0, 0]


def test_real_generated_short_rows_get_more_tokens(tiny_neo, neo_tok, bert_tok):
    model, mask, V = tiny_neo
    start = torch.randint(0, V // 2, (3, 1), generator=torch.Generator().manual_seed(1))
    # k = 0.5: half a GPT-Neo token per BERT token cannot reach L, so every row is continued
    batch = generate_for_judge(model, start, neo_tok, bert_tok, RowSampling(L=20, overgen=0.5, max_rounds=5,
                               sampling=Sampling(bad_mask=mask)), rng=torch.Generator().manual_seed(3))
    assert batch.input_ids.shape == (3, 22)
    assert all(e > 0 for e in batch.extra_tokens)


def test_truncating_bert_tokenizer_is_refused(neo_tok, bert_tok):
    truncating = Tokenizer.from_str(bert_tok.to_str())
    truncating.enable_truncation(8)
    model, start = scripted(neo_tok, X="the cat sat on the mat. ")
    with pytest.raises(ValueError, match="truncat"):
        generate_for_judge(model, start, neo_tok, truncating, RowSampling(L=4, sampling=GREEDY))


def test_kept_neo_tokens_counts_the_tokens_after_the_start_that_write_the_span():
    """T5's n_i by hand. Word-level tokens joined by spaces: x=0, ab=1, cd=2, ef=3; the row x ab cd ef.

    Decoding row[1 : 1 + n]: n = 1 "ab" (2 characters), n = 2 "ab cd" (5), n = 3 "ab cd ef" (8). The
    start token x is never counted (counting it would make "ab cd" need 3 tokens: "x ab cd")."""
    tok = Tokenizer(models.WordLevel({"x": 0, "ab": 1, "cd": 2, "ef": 3}, unk_token="x"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    row = torch.tensor([0, 1, 2, 3])
    assert [kept_neo_tokens(row, span, tok) for span in ("ab", "ab c", "ab cd", "ab cd e", "ab cd ef")] == \
        [1, 2, 2, 3, 3]
