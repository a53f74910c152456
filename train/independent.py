"""The independent judge (N5, T8): the character n-gram naive Bayes of model/ngram.py, trained once per
selection of authors and split, kept in <runs>/ngram/<authors>_<split>/ and loaded from there after, as
long as it was trained on the very same text (the sha256 of every author's training split, saved with
it: another corpus, another edition or another split point retrains it; so does a broken cache).

It learns from the same training split as the BERT judge, takes seconds, and is never optimised
against: `make coevolve` and `make teach` score every judgement with it too, and `eval.judge_report`
puts it beside the BERT judge on the same held-out passages.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from safetensors import SafetensorError

from tokenizers import Tokenizer

from data.corpus import author_texts
from model.ngram import FILES, NgramJudge, train_ngram_judge
from train.runs import runs_root


def ngram_folder(authors: list[str], split: str, runs_dir: str | Path | None = None) -> Path:
    return runs_root(runs_dir) / "ngram" / f"{'-'.join(authors)}_{split}"


def independent_judge(authors: list[str], split: str, split_tokenizer: Tokenizer,
                      runs_dir: str | Path | None = None) -> tuple[NgramJudge, Path]:
    """The n-gram judge of these authors and this split: loaded if it was trained before, else trained and saved."""
    folder = ngram_folder(list(authors), split, runs_dir)
    texts = {a: author_texts(a, split, split_tokenizer)[0] for a in authors}  # the TRAINING text only
    source = texts_digest(texts)
    cached = load_cached(folder)
    if cached is not None and cached.source == source:
        return cached, folder
    if cached is not None:
        print(f"{folder} was trained on other text (another corpus or split): training it again", file=sys.stderr)
    print(f"training the independent n-gram judge ({', '.join(authors)}, {split} split) ...", file=sys.stderr)
    judge = train_ngram_judge(texts)
    judge.source = source
    judge.save(folder)
    return judge, folder


def texts_digest(texts: dict[str, str]) -> str:
    """sha256 over every author's name and training text, in order."""
    h = hashlib.sha256()
    for author, text in texts.items():
        h.update(f"{author}\0{len(text)}\0".encode())
        h.update(text.encode("utf-8"))
    return h.hexdigest()


def load_cached(folder: Path) -> NgramJudge | None:
    """The saved n-gram judge of `folder`, or None if there is none or it is broken (said; it is then retrained)."""
    if not any((folder / f).exists() for f in FILES):
        return None
    try:
        return NgramJudge.load(folder)
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        print(f"the cached n-gram judge {folder} is broken ({err}): training it again", file=sys.stderr)
        return None
