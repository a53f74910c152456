"""Loading the two tokenizers through the `tokenizers` library (nothing hand-written).

BERT: uncased WordPiece, from tokenizer.json, or built from vocab.txt the way
Hugging Face's BertTokenizerFast builds it. GPT-Neo: byte-level BPE, from
tokenizer.json, or from vocab.json + merges.txt.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from weights.store import repair_advice


class TokenizerError(FileNotFoundError):
    """A model folder without usable tokenizer files."""


def _from_json(path: Path) -> Tokenizer:
    """tokenizer.json as saved, minus any truncation or padding it carries (MiniLM's truncates at 128)."""
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as err:  # the library raises a bare Exception for a file it cannot parse
        raise TokenizerError(f"{path} is not a valid tokenizer ({str(err).strip()[:200]}): "
                             f"{repair_advice(path.parent)}") from None
    tok.no_truncation()
    tok.no_padding()
    return _fits_the_model(tok, path)


def _fits_the_model(tok: Tokenizer, path: Path) -> Tokenizer:
    """A tokenizer with more tokens than the model beside it has embedding rows is another model's."""
    config = path.parent / "config.json"
    try:
        vocab_size = json.loads(config.read_text(encoding="utf-8")).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return tok  # no readable config.json beside it: the model's loader says what is wrong with that
    n = tok.get_vocab_size(with_added_tokens=True)
    if isinstance(vocab_size, int) and n > vocab_size:
        raise TokenizerError(f"{path} has {n} tokens, but the model in {path.parent} has only {vocab_size} "
                             "(config.json vocab_size): it is another model's tokenizer; put the model's own back")
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
