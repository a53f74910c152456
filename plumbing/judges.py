"""Where the judges come from: the trained BERT judge of lecture A (a run folder, or runs/judge/latest),
the n-gram judge (N5), and the probe on a pretrained decoder's features (model/feature_judge.py).

A trained BERT judge is a Hugging Face BertForSequenceClassification folder, `runs/judge/<time>/hf/`
(written by plumbing/hf_folder.py); its config.json also carries, under "alice_edgar", what our programs
need (the held-out window length, its accuracy, the split).

The n-gram judge (N5, T8): the character n-gram naive Bayes of model/ngram.py, trained once per
selection of authors and split, kept in <runs>/ngram/<authors>_<split>/ and loaded from there after, as
long as it was trained on the very same text (the sha256 of every author's training split, saved with
it: another corpus, another edition or another split point retrains it; so does a broken cache).

It learns from the same training split as the BERT judge, takes seconds, and is never optimised
against: `make coevolve` and `make teach` score every judgement with it too, and `scripts.judge_report`
puts it beside the BERT judge on the same held-out passages.

The feature judge is kept the same way, in <runs>/feature_judge/<authors>_<split>/, keyed by the training text,
the decoder it reads (SmolLM2-135M unless told), its block and the precision it reads in: it fits in about a
minute. Its reader's memo (the vectors of every passage it has read) is kept beside it, so the report of the
next judge of the same split reads its passages in seconds, not minutes (`save_memo`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer

from data.authors import register_folders
from data.corpus import AuthorTexts, author_texts
from model.bert import BertClassifier
from model.config import ConfigError
from model.decoder import load_decoder
from model.feature_judge import FeatureJudge, Reader, feature_block
from model.feature_judge import FILES as FEATURE_FILES
from model.half import Precision
from model.llama import Llama
from model.ngram import FILES, NgramJudge, train_ngram_judge
from plumbing.atomic import atomic_file, atomic_folder
from plumbing.runs import latest_run, runs_root
from tokenizer_bridge.load import load_bert_tokenizer, load_neo_tokenizer
from train.probe import train_feature_judge
from weights.store import resolve

HF_FOLDER = "hf"  # inside a judge run folder
INFO_KEY = "alice_edgar"  # our own facts inside the judge's config.json
REPORT_FILE = "report.json"  # beside hf/: the judge's evaluation, written by scripts/judge_report.py

# ----------------------------------------------------------------------------- the BERT judge


def judge_folder(path: str | Path | None = None, runs_dir: str | Path | None = None) -> Path:
    """The judge's Hugging Face folder: `path` itself, `path`/hf for a run folder, or the latest run's.

    FileNotFoundError saying what to do when there is none.
    """
    if path is None:
        run = latest_run("judge", runs_dir)
        folder = run / HF_FOLDER
    else:
        p = Path(path).expanduser()
        folder = p / HF_FOLDER if (p / HF_FOLDER).is_dir() else p
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no judge (no config.json): give a judge run folder, its hf/ folder, "
                                "or train one with `make train-bert`")
    return folder.resolve()


def judge_report(folder: str | Path) -> dict:
    """The report.json of the judge whose Hugging Face folder is `folder` (`judge_folder`); FileNotFoundError saying
    what to run when it has none."""
    path = Path(folder).parent / REPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: evaluate the judge first with `python -m scripts.judge_report "
                                f"--run {Path(folder).parent}`")
    return json.loads(path.read_text(encoding="utf-8"))


def load_bert_judge(path: str | Path | None = None, runs_dir: str | Path | None = None,
               device: str | torch.device = "cpu") -> tuple[BertClassifier, Tokenizer, dict]:
    """(judge in eval mode, its tokenizer, its info) from a judge folder or run folder; the latest run if None.

    info: the "alice_edgar" facts of its config.json (eval_length, heldout_acc, split, ...) plus
    "folder" and "labels".
    """
    folder = judge_folder(path, runs_dir)
    model = BertClassifier.from_pretrained(folder)
    info = json.loads((folder / "config.json").read_text(encoding="utf-8")).get(INFO_KEY, {})
    info = dict(info, folder=str(folder), labels=list(model.labels))
    register_folders(info.get("authors"))  # authors read from folders: their books are found by name from here on
    longest = model.bert.config.max_position_embeddings
    length = info.setdefault("eval_length", 256)
    if isinstance(length, bool) or not isinstance(length, int) or not 3 <= length <= longest:
        raise ConfigError(f"{folder / 'config.json'}: {INFO_KEY}.eval_length is {length!r}, but a judge window "
                          f"holds 3 to {longest} tokens (max_position_embeddings): put back the length the judge was "
                          "trained for (256 if unsure)")
    return model.to(device).eval(), load_bert_tokenizer(folder), info


# ----------------------------------------------------------------------------- the n-gram judge



def ngram_folder(authors: list[str], split: str, runs_dir: str | Path | None = None) -> Path:
    return runs_root(runs_dir) / "ngram" / f"{'-'.join(authors)}_{split}"


def load_ngram_judge(authors: list[str], split: str, split_tokenizer: Tokenizer,
                      runs_dir: str | Path | None = None, books: dict[str, AuthorTexts] | None = None
                      ) -> tuple[NgramJudge, Path]:
    """The n-gram judge of these authors and this split: loaded if it was trained before, else trained and saved.
    books: the authors' books already split by `split_tokenizer` (data/corpus.py:author_books), if the caller has them."""
    folder = ngram_folder(list(authors), split, runs_dir)
    texts = {a: books[a].train_text if books else author_texts(a, split, split_tokenizer)[0]
             for a in authors}  # the TRAINING text only
    source = texts_digest(texts)
    cached = load_cached(folder)
    if cached is not None and cached.source == source:
        return cached, folder
    if cached is not None:
        print(f"{folder} was trained on other text (another corpus or split): training it again", file=sys.stderr)
    print(f"training the independent n-gram judge ({', '.join(authors)}, {split} split) ...", file=sys.stderr)
    judge = train_ngram_judge(texts)
    judge.source = source
    atomic_folder(folder, judge.save)  # whole or not at all
    return judge, folder


def texts_digest(texts: dict[str, str]) -> str:
    """sha256 over every author's name and training text, in order."""
    h = hashlib.sha256()
    for author, text in texts.items():
        h.update(f"{author}\0{len(text)}\0".encode())
        h.update(text.encode("utf-8"))
    return h.hexdigest()


def load_cached(folder: Path, kind=NgramJudge, files: tuple[str, ...] = FILES, what: str = "n-gram judge"):
    """The saved judge of `folder` (an NgramJudge, or `kind`), or None if there is none or it is broken (said; it is
    then retrained)."""
    if not any((folder / f).exists() for f in files):
        return None
    try:
        return kind.load(folder)
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        print(f"the cached {what} {folder} is broken ({err}): training it again", file=sys.stderr)
        return None


# ----------------------------------------------------------------------------- the probe on a decoder's features

FEATURE_BASE = "smollm2-135m"  # the decoder whose features the third judge reads (model/feature_judge.py)
MEMO_FILE = "read.safetensors"  # beside the feature judge: its reader's memo, model/feature_judge.py:passage_vectors


def load_reader(base: str | Path, precision: Precision) -> Reader:
    """The frozen decoder `base` (a weights store name or a folder: a Llama) and its tokenizer, reading in `precision`."""
    folder = resolve(base)
    decoder = load_decoder(folder)
    if not isinstance(decoder, Llama):
        raise ConfigError(f"{folder} holds a {type(decoder).__name__}: the feature judge reads a Llama-family "
                          f"decoder's blocks (such as {FEATURE_BASE})")
    return Reader(decoder.to(precision.device).eval(), load_neo_tokenizer(folder), precision, str(base))


def load_feature_judge(authors: list[str], split: str, books: dict[str, AuthorTexts], precision: Precision,
                       runs_dir: str | Path | None = None, base: str | Path = FEATURE_BASE) -> tuple[FeatureJudge, Path]:
    """The probe on `base`'s features for these authors and this split (model/feature_judge.py): loaded if it was
    fitted before on the same training text with the same decoder, else fitted and saved; with its reader."""
    folder = runs_root(runs_dir) / "feature_judge" / f"{'-'.join(authors)}_{split}"
    reader = load_reader(base, precision)
    block = feature_block(reader.decoder)
    source = (f"{texts_digest({a: books[a].train_text for a in authors})} block {block} of {base} "
              f"in {precision.name} on {precision.device.type}")  # the vectors differ a little in each precision
    judge = load_cached(folder, FeatureJudge, FEATURE_FILES, "feature judge")
    if judge is None or judge.source != source:
        print(f"fitting the probe on {base}'s features ({', '.join(authors)}, {split} split) ...", file=sys.stderr)
        judge = train_feature_judge(reader, {a: books[a].train for a in authors}, block=block)
        judge.source = source
        atomic_folder(folder, judge.save)  # whole or not at all
    reader.memo = load_memo(folder / MEMO_FILE, source)
    judge.reader = reader
    return judge, folder


def load_memo(path: Path, source: str) -> dict[str, torch.Tensor]:
    """The vectors a reader of the same decoder, block and precision read before (`save_memo`), or none where the
    file is missing, of another source, or broken."""
    try:
        with safe_open(str(path), "pt") as f:
            if (f.metadata() or {}).get("source") != source:
                return {}
            return {key: f.get_tensor(key) for key in f.keys()}
    except (OSError, SafetensorError):
        return {}


def save_memo(judge: FeatureJudge, folder: str | Path) -> None:
    """The reader's memo into `folder`/MEMO_FILE, whole or not at all, filed under the judge's source."""
    memo, source = judge.reader.memo, {"source": judge.source}
    if memo:
        atomic_file(Path(folder) / MEMO_FILE, lambda tmp: save_file(memo, str(tmp), source))


def saved_feature_judge(folder: str | Path, precision: Precision) -> FeatureJudge:
    """The feature judge a report fitted (its folder, as report.json names it), with a reader of its decoder."""
    judge = load_cached(Path(folder), FeatureJudge, FEATURE_FILES, "feature judge")
    if judge is None:
        raise FileNotFoundError(f"the judge's report mixed in the probe of {folder}, which is gone or broken: run "
                                "`python -m scripts.judge_report` again (it fits the probe anew)")
    judge.reader = load_reader(judge.decoder, precision)
    return judge
