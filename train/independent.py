"""The independent judge (N5, T8): the character n-gram naive Bayes of model/ngram.py, trained once per
selection of authors and split, kept in <runs>/ngram/<authors>-<split>/ and loaded from there after.

It learns from the same training split as the BERT judge, takes seconds, and is never optimised
against: `make coevolve` and `make teach` score every judgement with it too, and `eval.judge_report`
puts it beside the BERT judge on the same held-out passages.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
    if all((folder / f).is_file() for f in FILES):
        return NgramJudge.load(folder), folder
    print(f"training the independent n-gram judge ({', '.join(authors)}, {split} split) ...", file=sys.stderr)
    texts = {a: author_texts(a, split, split_tokenizer)[0] for a in authors}  # the TRAINING text only
    judge = train_ngram_judge(texts)
    judge.save(folder)
    return judge, folder
