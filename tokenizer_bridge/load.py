"""Loading the two tokenizers through the `tokenizers` library (nothing hand-written).

BERT: uncased WordPiece, from tokenizer.json, or built from vocab.txt the way
Hugging Face's BertTokenizerFast builds it. GPT-Neo: byte-level BPE, from
tokenizer.json, or from vocab.json + merges.txt.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors


class TokenizerError(FileNotFoundError):
    """A model folder without usable tokenizer files."""


def _from_json(path: Path) -> Tokenizer:
    """tokenizer.json as saved, minus any truncation or padding it carries (MiniLM's truncates at 128)."""
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return tok


def load_bert_tokenizer(folder: str | Path) -> Tokenizer:
    """WordPiece tokenizer of a BERT folder; encode(text) adds [CLS] ... [SEP]."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        return _from_json(folder / "tokenizer.json")
    vocab = folder / "vocab.txt"
    if not vocab.is_file():
        raise TokenizerError(f"{folder} has neither tokenizer.json nor vocab.txt; fetch the model again.")
    lowercase = json.loads((folder / "tokenizer_config.json").read_text()).get("do_lower_case", True) \
        if (folder / "tokenizer_config.json").is_file() else True
    tok = Tokenizer(models.WordPiece.from_file(str(vocab), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def load_neo_tokenizer(folder: str | Path) -> Tokenizer:
    """Byte-level BPE tokenizer of a GPT-Neo folder (no special tokens added when encoding)."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        return _from_json(folder / "tokenizer.json")
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        raise TokenizerError(f"{folder} has neither tokenizer.json nor vocab.json + merges.txt; fetch it again.")
    tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def special_id(tok: Tokenizer, token: str) -> int:
    """The id of a special token such as "[CLS]" or "<|endoftext|>", with a clear error if absent."""
    idx = tok.token_to_id(token)
    if idx is None:
        raise TokenizerError(f"the tokenizer has no {token!r} token")
    return idx
