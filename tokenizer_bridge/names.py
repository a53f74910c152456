"""Names masked: the judge reads one placeholder where the text names a person or a place (issue 23).

A judge that tells Dickens from Twain by "Pip" and "Huck" has learned the books, not the authors; RL
from such a judge teaches the Alice generator to say "Alice". With names masked the judge has to use
style. The rule, stated so that anyone can check it:

    a proper noun is a capitalised word (an upper-case letter, then lower-case letters) that does not
    start a sentence: it follows a lower-case letter, a comma, a semicolon or a colon and one space,
    or a title ("Mr. ", "Mrs. ", "Dr. ", "St. ").

So "said Alice", "the Queen of Hearts", "went to London" and "Mr. Darcy" are masked; a sentence's first
word, "I", and a name that opens a sentence are not (the rule cannot tell "Alice went" from "She went").
Each match becomes PLACEHOLDER, one token of BERT's vocabulary that these books hardly use.

It is done by the tokenizer itself: a `Replace` normalizer before the tokenizer's own (which lower-cases),
so a judge trained with names masked carries the rule in its saved tokenizer.json, and every program that
reads the judge's text through it (scripts.classify, the report, the judgement of generated text in
lecture B, transformers' pipeline) masks the same names.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, normalizers

PLACEHOLDER = "§"
NAME = r"(?<=[a-z,;:] )(?!(?:Mr|Mrs|Dr|St)\b)[A-Z][a-z]+|(?<=\b(?:Mr|Dr|St)\. )[A-Z][a-z]+|(?<=\bMrs\. )[A-Z][a-z]+"


def with_names_masked(tok: Tokenizer) -> Tokenizer:
    """A copy of `tok` whose normalizer first replaces every proper noun (NAME) by PLACEHOLDER."""
    masked = Tokenizer.from_str(tok.to_str())
    mask = normalizers.Replace(Regex(NAME), PLACEHOLDER)
    masked.normalizer = mask if tok.normalizer is None else normalizers.Sequence([mask, tok.normalizer])
    return masked


def masks_names(tok: Tokenizer) -> bool:
    """Does this tokenizer mask names (a judge trained with --mask-names)?"""
    return PLACEHOLDER in tok.encode("He met Quixotic today.", add_special_tokens=False).tokens
