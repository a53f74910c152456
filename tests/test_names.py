"""tokenizer_bridge/names.py: proper nouns masked by the judge's own tokenizer, at training and wherever it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenizer_bridge.load import load_bert_tokenizer
from tokenizer_bridge.names import PLACEHOLDER, masks_names, with_names_masked


def test_the_rule_masks_names_inside_sentences_and_keeps_sentence_starts_titles_and_i(minilm_folder):
    tok = with_names_masked(load_bert_tokenizer(minilm_folder))
    tokens = tok.encode("'Well!' said Alice to Mr. Darcy and Mrs. Bennet, and the Queen went to London. Then I came.",
                        add_special_tokens=False).tokens
    assert tokens == ["'", "well", "!", "'", "said", PLACEHOLDER, "to", "mr", ".", PLACEHOLDER, "and", "mrs", ".",
                      PLACEHOLDER, ",", "and", "the", PLACEHOLDER, "went", "to", PLACEHOLDER, ".", "then", "i", "came", "."]
    assert not masks_names(load_bert_tokenizer(minilm_folder)) and masks_names(tok)


def test_a_judge_trained_with_names_masked_masks_them_wherever_its_tokenizer_is_read(make_tiny_bert, small_mirror,
                                                                                    tmp_path):
    """The rule travels in the judge's tokenizer.json: our loader and transformers' tokenizer both mask the names."""
    transformers = pytest.importorskip("transformers")
    from scripts import train_bert as program

    run = program.train_judge(["--model", str(make_tiny_bert(tmp_path / "tiny")), "--runs-dir", str(tmp_path / "runs"),
                               "--mask-names", "--per-author", "2", "--length", "32", "--eval-length", "64",
                               "--eval-per-author", "2", "--steps", "1", "--device", "cpu", "--precision", "fp32",
                               "--compile", "off"])
    judge = Path(run) / "hf"
    assert masks_names(load_bert_tokenizer(judge))
    theirs = transformers.AutoTokenizer.from_pretrained(str(judge))
    assert theirs.tokenize("and then Alice said") == ["and", "then", PLACEHOLDER, "said"]
    assert "masked by its tokenizer" in (judge / "README.md").read_text()
