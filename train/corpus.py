"""The corpus: Project Gutenberg books by Lewis Carroll (Alice) and Edgar Allan Poe.

One module that both the BERT judge (lecture A) and the GPT-Neo generators
(lecture B) read, so that they see the same texts and the same held-out tail.

    from tokenizers import Tokenizer
    from train.corpus import author_splits
    tok = Tokenizer.from_file(".../tokenizer.json")
    train_text, heldout_text = author_splits("alice", tok)

Where the books come from (in this order):

1. ``ALICE_EDGAR_CORPUS`` set to a folder: ``<folder>/pg{ID}.txt``.
2. ``ALICE_EDGAR_CORPUS`` set to a base URL (http, https or file): ``<url>/pg{ID}.txt``.
3. Otherwise Project Gutenberg, ``https://www.gutenberg.org/cache/epub/{ID}/pg{ID}.txt``,
   downloaded once into the git-ignored folder ``<repo>/.cache/corpus/``.

Every raw file goes through `clean_gutenberg` (see docs/CORPUS.md for what it
removes from each book), then `split_heldout` keeps the last 10 % of each book's
tokens apart: never trained on, used to measure accuracy honestly.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

# --------------------------------------------------------------------------------------
# Authors and books: the one place to change them.
# --------------------------------------------------------------------------------------

# label 0 = Alice, label 1 = Edgar (A4: y_i ∈ {0, 1}); the order of the keys is the label.
AUTHORS: dict[str, tuple[int, ...]] = {
    "alice": (12, 11),  # Through the Looking-Glass (#12), Alice's Adventures in Wonderland (#11)
    "edgar": (2147, 2148, 2149),  # Works of Edgar Allan Poe, Raven Edition, vols I, II, III
}
LABELS: dict[str, int] = {name: label for label, name in enumerate(AUTHORS)}

CORPUS_ENV = "ALICE_EDGAR_CORPUS"
GUTENBERG_URL = "https://www.gutenberg.org/cache/epub/{id}/pg{id}.txt"
REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / ".cache" / "corpus"
DOWNLOAD_TIMEOUT_S = 10.0  # offline machines must fail fast, not hang
HELDOUT_FRACTION = 0.1
PARAGRAPH_SEARCH_CHARS = 2000  # how far back the held-out cut may move to reach a paragraph start

_URL_SCHEMES = ("http://", "https://", "file://")


def book_file_name(book_id: int) -> str:
    """The file name of a book, as Gutenberg's cache names it: ``pg{ID}.txt``."""
    return f"pg{int(book_id)}.txt"


# --------------------------------------------------------------------------------------
# Fetching raw bytes: mirror folder, mirror URL, or Gutenberg with a local cache.
# --------------------------------------------------------------------------------------


def _read_url(url: str, what: str) -> bytes:
    """GET a URL (http, https or file) with a short timeout; errors name `what` and the variable."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            return response.read()
    except urllib.error.HTTPError as err:
        raise FileNotFoundError(
            f"{what}: {url} answered HTTP {err.code}. If you use a mirror, check that "
            f"{CORPUS_ENV} points to a folder or base URL that holds this file."
        ) from err
    except (urllib.error.URLError, OSError) as err:  # includes timeouts and refused connections
        reason = getattr(err, "reason", err)
        if url.startswith("file://"):
            raise FileNotFoundError(
                f"{what}: cannot read {url} ({reason}). {CORPUS_ENV} must name a folder or "
                f"base URL that holds pg{{ID}}.txt files."
            ) from err
        raise ConnectionError(
            f"{what}: could not download {url} ({reason}). This machine may be offline: "
            f"set {CORPUS_ENV} to a local folder or base URL (http, https or file) that "
            f"holds pg{{ID}}.txt files, e.g. {CORPUS_ENV}=../shared/corpus"
        ) from err


def _mirror_folder(value: str) -> Path:
    """Resolve a mirror folder: absolute, relative to the working directory, or to the repo."""
    path = Path(value).expanduser()
    if not path.is_absolute() and not path.is_dir() and (REPO_ROOT / path).is_dir():
        path = REPO_ROOT / path
    if not path.is_dir():
        raise FileNotFoundError(
            f"{CORPUS_ENV}={value!r} is neither an existing folder nor an http(s):// or "
            f"file:// URL; point it at a folder (or base URL) of pg{{ID}}.txt files."
        )
    return path


def _download_to_cache(book_id: int) -> Path:
    """Download a book from Gutenberg into CACHE_DIR once (written to .part, then renamed)."""
    name = book_file_name(book_id)
    target = CACHE_DIR / name
    if target.is_file():
        return target
    url = GUTENBERG_URL.format(id=int(book_id))
    data = _read_url(url, f"Gutenberg book #{book_id}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    part = target.with_name(name + ".part")
    part.write_bytes(data)
    os.replace(part, target)  # atomic: a half-written file is never taken for a book
    return target


def read_raw_book(book_id: int) -> bytes:
    """The raw bytes of Gutenberg book `book_id`, from the mirror in ALICE_EDGAR_CORPUS or the web.

    Raises FileNotFoundError (naming the file and ALICE_EDGAR_CORPUS) if a mirror
    lacks the file, ConnectionError (naming ALICE_EDGAR_CORPUS) if a download fails.
    """
    name = book_file_name(book_id)
    source = os.environ.get(CORPUS_ENV, "").strip()
    if not source:
        return _download_to_cache(book_id).read_bytes()
    if source.lower().startswith(_URL_SCHEMES):
        return _read_url(f"{source.rstrip('/')}/{name}", f"{name} from {CORPUS_ENV}={source!r}")
    path = _mirror_folder(source) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{name} (Gutenberg book #{book_id}) is missing from the mirror folder "
            f"{CORPUS_ENV}={source!r}: add the file there, or unset {CORPUS_ENV} to download it."
        )
    return path.read_bytes()


# --------------------------------------------------------------------------------------
# Clean-up: decode, normalise line ends, strip Gutenberg header and licence footer.
# --------------------------------------------------------------------------------------

# Last line of the Gutenberg header (the header ends with it, inclusive).
_HEADER_END = re.compile(
    r"^\s*\*{3}\s*START OF\b"  # *** START OF THIS PROJECT GUTENBERG EBOOK ... ***
    r"|^\s*\*END\*?\s*THE SMALL PRINT",  # old files: *END*THE SMALL PRINT! FOR PUBLIC DOMAIN ...
    re.IGNORECASE,
)
# First line of the licence footer (the footer starts with it, inclusive).
_FOOTER_START = re.compile(
    r"^\s*\*{3}\s*END OF\b"  # *** END OF THIS PROJECT GUTENBERG EBOOK ... ***
    r"|^\s*End of (the )?Project Gutenberg",  # End of the Project Gutenberg EBook / End of Project Gutenberg's
    re.IGNORECASE,
)


def decode_text(raw: bytes | str, name: str = "text") -> str:
    """Decode UTF-8 strictly and drop a leading byte-order mark; `name` appears in errors."""
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{name} is not valid UTF-8: byte {raw[err.start:err.start + 1]!r} at offset "
                f"{err.start} ({err.reason}). Use the UTF-8 file from Gutenberg (pg{{ID}}.txt); "
                f"bytes are never replaced silently."
            ) from err
    return text.removeprefix("\ufeff")


def strip_gutenberg_boilerplate(text: str) -> str:
    """Remove the header up to and including its ``*** START OF`` line and the footer from ``*** END OF`` on.

    The footer starts at the first footer marker (``*** END OF``, ``End of the
    Project Gutenberg EBook``, ``End of Project Gutenberg's``) after the header;
    the header ends at the last header marker (``*** START OF``, old
    ``*END*THE SMALL PRINT``) before the footer. A text with no markers is kept whole.
    """
    lines = text.split("\n")
    header_lines = [i for i, line in enumerate(lines) if _HEADER_END.match(line)]
    first_body = header_lines[0] + 1 if header_lines else 0
    footer = next((i for i in range(first_body, len(lines)) if _FOOTER_START.match(lines[i])), len(lines))
    header_end = max((i for i in header_lines if i < footer), default=-1)
    return "\n".join(lines[header_end + 1 : footer])


def normalise_whitespace(text: str) -> str:
    """CRLF/CR -> LF, strip trailing spaces, 3+ newlines -> one blank line, trim blank lines at both ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def unify_transcription(text: str) -> str:
    """Undo differences between transcribers that are not the author's style: "—" -> "--", no line indentation.

    Poe vol. II (#2148) alone writes the dash as "—" (1,497 times, never "--") and
    indents 8,915 lines by six spaces; the other four books write "--" and indent only
    verse, headings and quotations (55-368 lines each). Left alone, the judge could learn
    "a '—' means Edgar" from a third of Edgar's text, and the generators would learn the
    indentation. Applied to every book alike, so verse loses its indentation everywhere
    (its line breaks stay): by design, indentation then tells neither author apart.
    """
    text = text.replace("\u2014", "--")
    return "\n".join(line.lstrip(" \t") for line in text.split("\n"))


def clean_gutenberg(raw: bytes | str, name: str = "text") -> str:
    """A Gutenberg file as plain book text: decoded, header and licence footer removed, whitespace tidied.

    Steps: strict UTF-8 decode (ValueError naming `name` on bad bytes), BOM
    removed, CRLF/CR -> LF, header up to and including ``*** START OF ...`` and
    footer from ``*** END OF ...`` on removed (older variants too; no markers:
    everything kept), trailing spaces removed, runs of blank lines collapsed to
    one, blank lines at both ends removed, and transcription differences unified
    (`unify_transcription`: "—" -> "--", leading indentation removed).
    Raises ValueError if nothing is left (an empty file).
    """
    text = decode_text(raw, name)
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # before the line-based marker search
    text = normalise_whitespace(unify_transcription(strip_gutenberg_boilerplate(text)))
    if not text.strip():
        raise ValueError(f"{name} is empty (no text left after removing the Gutenberg header/footer)")
    return text


# --------------------------------------------------------------------------------------
# Books and authors.
# --------------------------------------------------------------------------------------


def load_book(book_id: int) -> str:
    """The cleaned text of Gutenberg book `book_id`."""
    return clean_gutenberg(read_raw_book(book_id), name=f"{book_file_name(book_id)} (Gutenberg #{book_id})")


def author_ids(author: str, ids: Sequence[int] | None = None) -> tuple[int, ...]:
    """The Gutenberg ids of `author`: `ids` if given, else AUTHORS[author]."""
    if ids is not None:
        if len(ids) == 0:
            raise ValueError(f"no Gutenberg ids given for author {author!r}")
        return tuple(int(i) for i in ids)
    if author not in AUTHORS:
        raise KeyError(f"unknown author {author!r}; known authors: {', '.join(AUTHORS)}")
    return AUTHORS[author]


def load_author_text(author: str, ids: Sequence[int] | None = None) -> list[str]:
    """One cleaned text per book of `author` (ids default to AUTHORS[author])."""
    return [load_book(book_id) for book_id in author_ids(author, ids)]


# --------------------------------------------------------------------------------------
# Held-out split and length checks.
# --------------------------------------------------------------------------------------


def _plain_tokenizer(tokenizer: Tokenizer) -> Tokenizer:
    """A tokenizer without truncation and padding (a copy if needed; the caller's is untouched)."""
    if tokenizer.truncation is None and tokenizer.padding is None:
        return tokenizer
    plain = Tokenizer.from_str(tokenizer.to_str())
    plain.no_truncation()
    plain.no_padding()
    return plain


def count_tokens(text: str, tokenizer: Tokenizer) -> int:
    """Number of tokens in `text` (no special tokens, no truncation)."""
    return len(_plain_tokenizer(tokenizer).encode(text, add_special_tokens=False).ids)


def split_heldout(text: str, tokenizer: Tokenizer, fraction: float = HELDOUT_FRACTION) -> tuple[str, str]:
    """Split one book into (train_text, heldout_text): the held-out part is its last `fraction` of tokens.

    The cut is placed at the character where the first held-out token starts
    (from the tokenizer's offsets), then moved back to the start of that
    paragraph if it is at most PARAGRAPH_SEARCH_CHARS characters back, else to
    the previous whitespace, so no word or paragraph is shared. The separator
    at the cut ("\\n\\n" or one whitespace character) belongs to neither part:
    ``text == train_text + separator + heldout_text``. The same text and
    tokenizer always give the same cut.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be between 0 and 1 (exclusive), got {fraction}")
    offsets = _plain_tokenizer(tokenizer).encode(text, add_special_tokens=False).offsets
    n_tokens = len(offsets)
    n_train = round(n_tokens * (1.0 - fraction))
    if n_train < 1 or n_train >= n_tokens:
        raise ValueError(
            f"text of {n_tokens} tokens is too short to hold out {fraction:.0%} of it "
            f"and still train on the rest"
        )
    cut = offsets[n_train][0]  # first character of the first held-out token

    paragraph = text.rfind("\n\n", 0, cut)
    if paragraph > 0 and cut - paragraph <= PARAGRAPH_SEARCH_CHARS:
        return text[:paragraph], text[paragraph + 2 :]
    space = max(text.rfind(c, 0, cut) for c in (" ", "\n", "\t"))
    if space > 0:
        return text[:space], text[space + 1 :]
    return text[:cut], text[cut:]


def author_splits(
    author: str,
    tokenizer: Tokenizer,
    ids: Sequence[int] | None = None,
    fraction: float = HELDOUT_FRACTION,
) -> tuple[str, str]:
    """(train_text, heldout_text) of `author`: every book split by `split_heldout`, parts joined with "\\n\\n".

    Each book keeps its own last `fraction` of tokens apart, so every book is
    represented on both sides and the author's held-out share is `fraction`.
    """
    train_parts, heldout_parts = [], []
    for book_id, text in zip(author_ids(author, ids), load_author_text(author, ids)):
        try:
            train, heldout = split_heldout(text, tokenizer, fraction)
        except ValueError as err:
            raise ValueError(f"{author}, Gutenberg book #{book_id}: {err}") from err
        train_parts.append(train)
        heldout_parts.append(heldout)
    return "\n\n".join(train_parts), "\n\n".join(heldout_parts)


def check_long_enough(n_tokens: int, window: int, what: str) -> None:
    """Raise ValueError unless `what` (an author, book or split) has at least one window of tokens.

    Random training windows of `window` tokens need n_tokens >= window; pass
    window + 1 when the targets are the inputs shifted by one (language models).
    """
    if window < 1:
        raise ValueError(f"window must be a positive number of tokens, got {window}")
    if n_tokens < window:
        raise ValueError(
            f"{what} has only {n_tokens} tokens, fewer than one window of {window} tokens: "
            f"use a shorter window or add books to it (train/corpus.py, AUTHORS)"
        )
