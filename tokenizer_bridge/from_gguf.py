"""SmolLM2's byte-level BPE, built with `tokenizers` from the tokens and merges a GGUF file carries.

A GGUF file has no tokenizer.json: it stores the vocabulary (`tokenizer.ggml.tokens`, already spelled
in GPT-2's byte alphabet, "Ġ" for a space), the merges in rank order (`tokenizer.ggml.merges`, "Ġ t"),
each token's type (3: control, such as <|im_end|>) and the pre-tokenizer's name. For "smollm" that is
llama.cpp's rule, SmolLM2's own: every digit alone, then GPT-2's split (words with their leading
space, runs of punctuation, runs of spaces). It gives the ids of transformers' GGUF tokenizer on the
authors' passages (tests/test_gguf.py).
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from model.gguf import GGUFError

CONTROL = 3  # token type of a special token in tokenizer.ggml.token_type


def gguf_tokenizer(metadata: dict) -> Tokenizer:
    """The file's byte-level BPE: its vocabulary and merges, its pre-tokenizer, its control tokens kept whole."""
    if metadata.get("tokenizer.ggml.model") != "gpt2":
        raise GGUFError(f"tokenizer.ggml.model is {metadata.get('tokenizer.ggml.model')!r}: only byte-level BPE "
                        "('gpt2') is read here")
    if metadata.get("tokenizer.ggml.pre") not in ("smollm", "gpt2", "default", None):
        raise GGUFError(f"pre-tokenizer {metadata.get('tokenizer.ggml.pre')!r} is not one this builder knows")
    tokens = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ")) for m in metadata["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False,
                               byte_fallback=False))
    split = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if metadata.get("tokenizer.ggml.pre") == "smollm":
        split.insert(0, pre_tokenizers.Digits(individual_digits=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(split)
    tok.decoder = decoders.ByteLevel()
    types = metadata.get("tokenizer.ggml.token_type") or []
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t, kind in zip(tokens, types) if kind == CONTROL])
    return tok
