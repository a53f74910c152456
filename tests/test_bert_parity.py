"""A1: our hand-written BERT against transformers.BertModel, on the real MiniLM weights and on a
random bert-base-uncased-shaped model; and our tokenizer against Hugging Face's."""

from __future__ import annotations

import shutil

import pytest
import torch

from model.bert import Bert
from tokenizer_bridge.load import load_bert_tokenizer

transformers = pytest.importorskip("transformers")

SENTENCES = [
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
    "Once upon a midnight dreary, while I pondered, weak and weary,",
    "Curiouser and curiouser!",
    "The thousand injuries of Fortunato I had borne as I best could, but when he ventured upon "
    "insult, I vowed revenge. You, who so well know the nature of my soul, will not suppose.",
]


def padded_batch(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, T) padded with 0 on the right, and the attention mask (B, T)."""
    rows = [tokenizer.encode(t).ids for t in texts]
    T = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def max_diffs(ours: Bert, ref, ids: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """Max abs difference of hidden states (at real tokens) and of the pooled vector.

    Hidden states at padded positions are outputs no one reads (every real token ignores them);
    both libraries compute them, and they agree there to about 1e-5 of values near 6.
    """
    with torch.no_grad():
        hidden, pooled = ours(ids, attention_mask=mask)
        out = ref(input_ids=ids, attention_mask=mask)
    real = mask.bool()
    return (
        (hidden - out.last_hidden_state)[real].abs().max().item(),
        (pooled - out.pooler_output).abs().max().item(),
    )


def test_minilm_hidden_states_and_pooler_match(minilm_folder):
    ours = Bert.from_pretrained(minilm_folder)
    ref = transformers.BertModel.from_pretrained(str(minilm_folder)).eval()
    ids, mask = padded_batch(load_bert_tokenizer(minilm_folder), SENTENCES)
    assert (mask == 0).any(), "the batch must contain padding for this test to mean anything"
    hidden, pooled = max_diffs(ours, ref, ids, mask)
    assert hidden <= 1e-5 and pooled <= 1e-5, (hidden, pooled)


def test_padding_does_not_change_real_tokens(minilm_folder):
    """A sentence alone and the same sentence padded in a batch give the same hidden states."""
    ours = Bert.from_pretrained(minilm_folder)
    ids, mask = padded_batch(load_bert_tokenizer(minilm_folder), SENTENCES)
    n = int(mask[2].sum())
    with torch.no_grad():
        alone, _ = ours(ids[2:3, :n])
        batched, _ = ours(ids, attention_mask=mask)
    assert (alone[0] - batched[2, :n]).abs().max().item() <= 1e-5


def test_tokenizer_ids_equal_hugging_face_on_corpus_paragraph(minilm_folder, corpus_mirror, tmp_path):
    raw = (corpus_mirror / "pg12.txt").read_text(encoding="utf-8-sig")
    start = raw.index("One thing was certain")
    paragraph = raw[start : start + 3000]
    reference = transformers.BertTokenizer(str(minilm_folder / "vocab.txt"), do_lower_case=True)
    expected = reference(paragraph)["input_ids"]
    assert load_bert_tokenizer(minilm_folder).encode(paragraph).ids == expected
    # The vocab.txt-only path (no tokenizer.json, as in some hub folders) gives the same ids.
    shutil.copy(minilm_folder / "vocab.txt", tmp_path / "vocab.txt")
    assert load_bert_tokenizer(tmp_path).encode(paragraph).ids == expected


def test_bert_base_shaped_random_model_matches(tmp_path):
    """12 layers, width 768, 12 heads: the shape of bert-base-uncased, random weights."""
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                                  num_attention_heads=12, intermediate_size=3072)
    transformers.BertModel(cfg).eval().save_pretrained(tmp_path, safe_serialization=True)
    ref = transformers.BertModel.from_pretrained(str(tmp_path)).eval()
    ours = Bert.from_pretrained(tmp_path)
    ids = torch.randint(1000, 30000, (2, 48))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    hidden, pooled = max_diffs(ours, ref, ids, mask)
    assert hidden <= 1e-5 and pooled <= 1e-5, (hidden, pooled)
