"""A byte-level BPE tokenizer for our own small GPT-Neo, trained with the `tokenizers` library.

Byte-level means GPT-2's recipe: every UTF-8 byte is first mapped to a printable
character (so no text is ever "unknown"), then BPE merges frequent pairs until
the vocabulary has `vocab_size` entries. The one special token is
<|endoftext|>, which GPT-Neo uses as both BOS and EOS.

    tok = train_bpe([alice_train, edgar_train], vocab_size=4096)
    tok.save("tokenizer.json")

Feed it TRAINING text only: the held-out tail of each author must stay unseen,
or the held-out loss measures nothing (the merges would already fit it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

EOS_TOKEN = "<|endoftext|>"
DEFAULT_VOCAB_SIZE = 4096


def train_bpe(
    texts: Sequence[str], vocab_size: int = DEFAULT_VOCAB_SIZE, min_frequency: int = 2
) -> Tokenizer:
    """Train a GPT-2 style byte-level BPE on `texts` (training text only); <|endoftext|> gets id 0.

    The pre-tokenizer splits on GPT-2's regex and maps bytes to characters
    (`add_prefix_space=False`, as GPT-2/GPT-Neo); the decoder maps them back, so
    `decode(encode(text).ids) == text` for any text. The 256 byte symbols are
    always in the vocabulary, hence vocab_size must exceed 257.
    """
    if vocab_size <= 257:
        raise ValueError(f"vocab_size={vocab_size} leaves no room for merges: the 256 bytes + {EOS_TOKEN} take 257")
    if not texts or not any(t.strip() for t in texts):
        raise ValueError("no training text given to the tokenizer trainer")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def eos_id(tok: Tokenizer) -> int:
    """The id of <|endoftext|> (GPT-Neo's BOS and EOS), with a clear error if the tokenizer lacks it."""
    idx = tok.token_to_id(EOS_TOKEN)
    if idx is None:
        raise ValueError(f"this tokenizer has no {EOS_TOKEN!r} token; train it with train_bpe")
    return idx


def neo_tokenizer_config(tok: Tokenizer, max_length: int) -> dict:
    """tokenizer_config.json so that `transformers.AutoTokenizer.from_pretrained(folder)` finds the special tokens."""
    eos_id(tok)  # fail early if missing
    return {
        "tokenizer_class": "GPT2TokenizerFast",
        "bos_token": EOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "add_prefix_space": False,
        "model_max_length": max_length,
    }


def token_byte_lengths(tok: Tokenizer, vocab_size: int) -> torch.Tensor:
    """The UTF-8 bytes each token id writes, (vocab_size,) int64: L7's denominator, token by token.

    A byte-level BPE token is spelled one character per byte ("Ġ" is the byte 0x20, "â" 0xE2 of a curly
    quote), so the length of its spelling is its bytes, whether or not it ends inside a character. A
    special token (<|endoftext|>, <|im_end|>) writes no text: 0, as do the padding rows beyond the tokenizer.
    """
    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    special = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    lengths = torch.zeros(vocab_size, dtype=torch.long)
    for i in range(min(vocab_size, tok.get_vocab_size(with_added_tokens=True))):
        spelling = tok.id_to_token(i)
        if i in special or spelling is None:
            continue
        if not set(spelling) <= alphabet:
            raise ValueError(f"token {i} ({spelling!r}) is not spelled in the byte-level alphabet: L7 counts the bytes "
                             "of a byte-level BPE (GPT-Neo's, SmolLM2's)")
        lengths[i] = len(spelling)
    return lengths
