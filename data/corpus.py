"""The corpus: Project Gutenberg books, fetched, checked, cleaned and split into training and held-out text.

One module that the judge (lecture A) and the generators (lecture B) both read, so that they see
the same texts and hold out the same text.

Where the books come from (in this order):

1. ``ALICE_EDGAR_CORPUS`` set to a folder: ``<folder>/pg{ID}.txt``.
2. ``ALICE_EDGAR_CORPUS`` set to a base URL (http, https or file): ``<url>/pg{ID}.txt``.
3. Otherwise Project Gutenberg, ``https://www.gutenberg.org/cache/epub/{ID}/pg{ID}.txt``,
   downloaded once into the git-ignored folder ``<repo>/.cache/corpus/``.

A download is whole or it is an error: its length is checked against Content-Length, a broken
transfer is an error, and nothing partial is ever cached. Files of the project's mirror are checked
against their sha256 (`MIRROR_SHA256`, from the mirror's SOURCES.md). Every file then goes through
`clean_gutenberg` (docs/CORPUS.md says what it removes) and `check_is_book`.

Two splits (`author_books`):
- "tail": the last 10 % of each book's tokens is held out (the default for two authors);
- "book" (N3): the last book of each author's list is held out whole, the others are trained on.
Either way the last 5 % of each training part is validation text, on which nothing is trained.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from data.authors import Book, book_name, split_books
from weights.store import REPO_ROOT

CORPUS_ENV = "ALICE_EDGAR_CORPUS"
CHECKSUMS_ENV = "ALICE_EDGAR_CORPUS_CHECKSUMS"  # "off": accept mirror files that differ from MIRROR_SHA256
GUTENBERG_URL = "https://www.gutenberg.org/cache/epub/{id}/pg{id}.txt"
CACHE_DIR = REPO_ROOT / ".cache" / "corpus"
DOWNLOAD_TIMEOUT_S = 10.0  # offline machines must fail fast, not hang
HELDOUT_FRACTION = 0.1
PARAGRAPH_SEARCH_CHARS = 2000  # how far back the held-out cut may move to reach a paragraph start
MIN_BOOK_CHARS = 10_000  # a cleaned book shorter than this is a cut download or the wrong file
SPLITS = ("tail", "book")

# sha256 of the files of the project's mirror (../shared/corpus/SOURCES.md); Gutenberg's own files differ.
MIRROR_SHA256 = {
    11: "90be41dc68e60a0613997dea1c2e763806a2f2c989ccf2cb04388f36faacfd41",
    12: "24bae70935e7fce7be74357779c53861c0cd04b3687f3005c1a8687f2b909988",
    2147: "382bc2082d46e99132555d85d9b10ba3960c376c5b9759a87a1209d042165f97",
    2148: "d0572ef5913b28b3288abf39e1d3a0de220423f0c14ae9b0f1d1340e8abe1d51",
    2149: "0f2fe572f9cf326bdb73323957c551139e833b0675656c8f15f333d9b802c181",
    1342: "86dab871eec9c0cef97f4cb6313f86c6cc48f6f7809534e65cd3f1c1d486d247",
    158: "0772d17c8d5bf79d78f7c4883eac4519fc09e84df798b2a3732a4be064cef177",
    1400: "3c7e6446c53ff98da8254f08e99ab8ad564b0900c7173a3f4dbb00abaa845c0a",
    786: "b8b39f80fe25a41e80828c2f4899e11423a013e9af6b9a86b4c64a3d87603e59",
    74: "fe74f3e43a7c0a0d0189b40ce966ce73795559b63076ccc0ea2e8ba2b9a9b213",
    76: "2d169c784836170a0cdbaf3e5a7ac565cddeddd5b1920486dabcd2b00890c865",
    1661: "e21895308fe6da6919abc53e2cf77d81f914887897546153cc5d49b2eadefe50",
    834: "051cae320346f746467051967e049634af677766467d43167a1f7b741e182013",
    # more books per author (SOURCES.md, "More books per author"): trained on under --split book
    29042: "4821db27eaecf54de33dd0f612e820f9de56932da81494bae24977ec6dd99ad0",
    121: "37170ef0cd43b853e1a478af650af428d48fd62c383849ead495830e6f578274",
    946: "e730299df45a8055ab48eecab774cc74469755552b11d82affbc018f9ebfb8ab",
    730: "ed6843e69f29aee6606a1fcdeae401d9c6131b2a7f308b912ffa789dbdcc30f5",
    766: "b69b9be72fcb832f05e9e0f6069c6f8e6affe575b5320ace36de253fd13a82a5",
    1023: "1befc0792604eef39b04ecb7aee0e7b3ad9dbaaf21b6d42fe0eac6fa69db80c9",
    3177: "f029225fc0d8d86b99b3a256ba8320497758cd3b03e808a946a3559e147c459b",
    3289: "1bb15041b62cea8b2a808424c4753551f2b32c9bccc053322100efb4973c13f3",
    2350: "9d4f0eee7c35ffe86829f5fa9dec9ea08f28d22326d7eea461fdd0d8d90bf645",
}

_URL_SCHEMES = ("http://", "https://", "file://")


def book_file_name(book_id: int) -> str:
    """The file name of a book, as Gutenberg's cache names it: ``pg{ID}.txt``."""
    return f"pg{int(book_id)}.txt"


# --------------------------------------------------------------------------------------
# Fetching raw bytes: mirror folder, mirror URL, or Gutenberg with a local cache.
# --------------------------------------------------------------------------------------


def read_url(url: str, what: str) -> bytes:
    """GET a URL (http, https or file), whole or an error; errors name `what` and the variable."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
            length = response.headers.get("Content-Length")
    except urllib.error.HTTPError as err:
        raise FileNotFoundError(f"{what}: {url} answered HTTP {err.code}. If you use a mirror, check that "
                                f"{CORPUS_ENV} points to a folder or base URL that holds this file.") from err
    except http.client.HTTPException as err:  # IncompleteRead and friends: the transfer broke off
        raise ConnectionError(f"{what}: the download of {url} broke off ({type(err).__name__}); "
                              "nothing was kept: run the command again") from err
    except (urllib.error.URLError, OSError) as err:  # timeouts, refused connections, missing files
        raise _unreachable(url, what, err) from err
    if length is not None and length.isdigit() and len(data) != int(length):
        raise ConnectionError(f"{what}: {url} sent {len(data)} of the {length} bytes it announced; "
                              "nothing was kept: run the command again")
    return data


def _unreachable(url: str, what: str, err: Exception) -> Exception:
    reason = getattr(err, "reason", err)
    if url.startswith("file://"):
        return FileNotFoundError(f"{what}: cannot read {url} ({reason}). {CORPUS_ENV} must name a folder or "
                                 "base URL that holds pg{ID}.txt files.")
    return ConnectionError(f"{what}: could not download {url} ({reason}). This machine may be offline: set "
                           f"{CORPUS_ENV} to a local folder or base URL (http, https or file) that holds "
                           f"pg{{ID}}.txt files, e.g. {CORPUS_ENV}=../shared/corpus")


def mirror_folder(value: str) -> Path:
    """Resolve a mirror folder: absolute, relative to the working directory, or to the repo."""
    path = Path(value).expanduser()
    if not path.is_absolute() and not path.is_dir() and (REPO_ROOT / path).is_dir():
        path = REPO_ROOT / path
    if path.exists() and not path.is_dir():
        raise FileNotFoundError(f"{CORPUS_ENV}={value!r} is a file, not a folder: point it at the folder "
                                "that holds the pg{ID}.txt files")
    if not path.is_dir():
        raise FileNotFoundError(f"{CORPUS_ENV}={value!r} is neither an existing folder nor an http(s):// or "
                                f"file:// URL; point it at a folder (or base URL) of pg{{ID}}.txt files.")
    return path


def download_to_cache(book_id: int) -> Path:
    """Download a book from Gutenberg into CACHE_DIR once; only a complete book is ever cached."""
    name = book_file_name(book_id)
    target = CACHE_DIR / name
    if target.is_file():
        return target
    data = read_url(GUTENBERG_URL.format(id=int(book_id)), f"Gutenberg book #{book_id}")
    if not _FOOTER_START.search(data.decode("utf-8", errors="replace").replace("\r\n", "\n")):
        # Gutenberg's own files always end with "*** END OF ...": without it the transfer was cut short
        raise ConnectionError(f"Gutenberg book #{book_id}: the download ended before the book's *** END line "
                              f"({len(data)} bytes); nothing was kept: run the command again")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{name}.part-{os.getpid()}")  # a cut write leaves only this, never a short book
    part.write_bytes(data)
    os.replace(part, target)
    return target


def check_mirror_checksum(book_id: int, data: bytes, where: str) -> None:
    """A file of the project's mirror must have the sha256 that SOURCES.md gives (unless switched off)."""
    expected = MIRROR_SHA256.get(int(book_id))
    if expected is None or os.environ.get(CHECKSUMS_ENV, "").lower() == "off":
        return
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ValueError(f"{where} has sha256 {digest[:16]}..., not the mirror's {expected[:16]}... "
                         f"({len(data)} bytes): a cut or altered copy. Copy it again from the mirror, or set "
                         f"{CHECKSUMS_ENV}=off if this mirror holds other editions on purpose.")


def read_raw_book(book_id: int) -> bytes:
    """The raw bytes of Gutenberg book `book_id`, from the mirror in ALICE_EDGAR_CORPUS or the web.

    FileNotFoundError (naming the file and ALICE_EDGAR_CORPUS) if a mirror lacks the file,
    ConnectionError if a download fails or is cut short, ValueError if a mirror file has the
    wrong checksum.
    """
    name = book_file_name(book_id)
    source = os.environ.get(CORPUS_ENV, "").strip()
    if not source:
        return download_to_cache(book_id).read_bytes()
    if source.lower().startswith(_URL_SCHEMES):
        data = read_url(f"{source.rstrip('/')}/{name}", f"{name} from {CORPUS_ENV}={source!r}")
    else:
        path = mirror_folder(source) / name
        if path.is_dir():
            raise FileNotFoundError(f"{name} in the mirror folder {CORPUS_ENV}={source!r} is a folder, not the book's "
                                    "text file: put the file pg{ID}.txt there instead")
        if path.is_symlink() and not path.exists():
            raise FileNotFoundError(f"{name} in the mirror folder {CORPUS_ENV}={source!r} is a broken or looping "
                                    f"symlink (to {os.readlink(path)}): point it at the book's file, or copy the file")
        if not path.is_file():
            raise FileNotFoundError(f"{name} (Gutenberg book #{book_id}) is missing from the mirror folder "
                                    f"{CORPUS_ENV}={source!r}: add the file there, or unset {CORPUS_ENV} to download it.")
        data = path.read_bytes()
    check_mirror_checksum(book_id, data, f"{name} from {CORPUS_ENV}={source!r}")
    return data


# --------------------------------------------------------------------------------------
# Clean-up: decode, repair, normalise line ends, strip Gutenberg header and licence footer.
# --------------------------------------------------------------------------------------

# Last line of the Gutenberg header (the header ends with it, inclusive).
_HEADER_END = re.compile(
    r"^\s*\*{3}\s*START OF\b"  # *** START OF THIS PROJECT GUTENBERG EBOOK ... ***
    r"|^\s*\*END\*?\s*THE SMALL PRINT",  # old files: *END*THE SMALL PRINT! FOR PUBLIC DOMAIN ...
    re.IGNORECASE | re.MULTILINE,
)
# First line of the licence footer (the footer starts with it, inclusive).
_FOOTER_START = re.compile(
    r"^\s*\*{3}\s*END OF\b"  # *** END OF THIS PROJECT GUTENBERG EBOOK ... ***
    r"|^\s*End of (the )?Project Gutenberg",  # End of the Project Gutenberg EBook / End of Project Gutenberg's
    re.IGNORECASE | re.MULTILINE,
)
# Lines that only the licence holds (for files whose markers were removed).
_LICENCE_LINE = re.compile(r"Project Gutenberg(-tm|™)|FULL LICENSE|PROJECT GUTENBERG LICENSE|gutenberg\.org/license",
                           re.IGNORECASE)
# Lines that only the header holds (for files whose START marker was removed).
_HEADER_LINE = re.compile(r"^\s*(The )?Project Gutenberg('s)? e-?(Book|text)\b|This e-?Book is for the use of anyone"
                          r"|^\s*(Release Date|Posting Date|Character set encoding|Last Updated):", re.IGNORECASE)
HEADER_ZONE_LINES = 60  # a header without its START line is looked for in the first lines only

# A character U+00C2..U+00F4 (a UTF-8 lead byte read as Latin-1/cp1252) followed by one to three
# continuation bytes read the same way: the mark of UTF-8 decoded as Latin-1/cp1252 and encoded again.
_CP1252_HIGH = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"
_MOJIBAKE = re.compile(f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_HIGH}]{{1,3}}")


def decode_text(raw: bytes | str, name: str = "text") -> str:
    """Decode UTF-8 strictly, drop a leading byte-order mark; `name` appears in errors."""
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


def looks_double_encoded(text: str) -> bool:
    """True if most non-ASCII characters come in UTF-8-read-as-Latin-1 sequences ("â€™" for "’")."""
    sequences = _MOJIBAKE.findall(text)
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return len(sequences) >= 10 and sum(map(len, sequences)) >= 0.8 * non_ascii


def undo_double_encoding(text: str, name: str = "text") -> str:
    """Repair double-encoded UTF-8: map each character back to the byte it was read from, decode as UTF-8.

    The byte is the character's Latin-1 code (< 256) or its cp1252 code ("€" was 0x80). ValueError
    naming `name` if the text does not decode: then it was not a Latin-1/cp1252 round trip.
    """
    out = bytearray()
    for ch in text:
        code = ord(ch)
        if code < 256:
            out.append(code)
        else:
            try:
                out += ch.encode("cp1252")
            except UnicodeEncodeError:
                raise ValueError(f"{name} looks double-encoded (mojibake such as 'â€™'), but {ch!r} maps to no "
                                 "byte: it cannot be repaired. Use the original UTF-8 file.") from None
    try:
        return out.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise ValueError(f"{name} looks double-encoded (mojibake such as 'â€™'), but undoing it gives invalid "
                         f"UTF-8 at byte {err.start}: it cannot be repaired. Use the original UTF-8 file.") from err


def strip_gutenberg_boilerplate(text: str) -> str:
    """Remove the header up to and including its ``*** START OF`` line and the footer from ``*** END OF`` on.

    The footer starts at the first footer marker after the first header marker (a ``*** START:
    FULL LICENSE`` line inside the licence is never taken for the book's start); the header ends
    at the last header marker before the footer. Where a file lost its marker lines, the licence
    and the header are still recognised by lines only they hold (`unmarked_footer`,
    `unmarked_header_end`). A leading "Produced by ..." credit paragraph goes too.
    """
    lines = text.split("\n")
    header_lines = [i for i, line in enumerate(lines) if _HEADER_END.match(line)]
    first_body = header_lines[0] + 1 if header_lines else 0
    footer = next((i for i in range(first_body, len(lines)) if _FOOTER_START.match(lines[i])), None)
    footer = unmarked_footer(lines) if footer is None else footer
    header_end = max((i for i in header_lines if i < footer), default=None)
    header_end = unmarked_header_end(lines, footer) if header_end is None else header_end
    body = "\n".join(lines[header_end + 1 : footer]).lstrip("\n")
    if body.startswith("Produced by"):  # the transcribers' credit, the header's last paragraph
        body = body.split("\n\n", 1)[-1]
    return body


def unmarked_footer(lines: list[str]) -> int:
    """The first line in the second half of the text that only the licence holds ("Project Gutenberg-tm", ...)."""
    return next((i for i in range(len(lines) // 2, len(lines)) if _LICENCE_LINE.search(lines[i])), len(lines))


def unmarked_header_end(lines: list[str], footer: int) -> int:
    """The last line among the first HEADER_ZONE_LINES that only a header holds ("Release Date:", ...), or -1."""
    return max((i for i in range(min(HEADER_ZONE_LINES, footer)) if _HEADER_LINE.search(lines[i])), default=-1)


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
    (its line breaks stay): by design, indentation then tells no author apart.
    """
    text = text.replace("\u2014", "--")
    return "\n".join(line.lstrip(" \t") for line in text.split("\n"))


def clean_gutenberg(raw: bytes | str, name: str = "text") -> str:
    """A Gutenberg file as plain book text: decoded, repaired, header and licence removed, whitespace tidied.

    Steps: strict UTF-8 decode (ValueError naming `name` on bad bytes), BOM removed, double-encoded
    UTF-8 repaired (`undo_double_encoding`), an HTML page refused, CRLF/CR -> LF, header and
    licence footer removed (with or without their marker lines), trailing spaces removed, runs of
    blank lines collapsed, transcription differences unified (`unify_transcription`).
    Raises ValueError if nothing is left (an empty file).
    """
    text = decode_text(raw, name)
    if looks_double_encoded(text):
        text = undo_double_encoding(text, name)
    if re.match(r"\s*(<!doctype html|<html|<\?xml)", text[:1000], re.IGNORECASE):
        raise ValueError(f"{name} is an HTML page, not a book's text: a server answered with an error or a "
                         "web page. Fetch the plain-text file (pg{ID}.txt) again.")
    control = CONTROL_BYTES.search(text)
    if control:
        raise ValueError(f"{name} is not a text file: it holds the control character {control.group()!r} (NUL and "
                         f"its kind) at character {control.start()}, as a binary or damaged file does. Copy the "
                         "plain-text file (pg{ID}.txt) again.")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # before the line-based marker search
    text = normalise_whitespace(unify_transcription(strip_gutenberg_boilerplate(text)))
    if not text.strip():
        raise ValueError(f"{name} is empty (no text left after removing the Gutenberg header/footer)")
    return text


CONTROL_BYTES = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # not in a text: all C0 controls but \t \n \f \r


def check_is_book(text: str, name: str, advice: str = "a cut download or the wrong file. Fetch it again.") -> str:
    """A cleaned book must be long enough to be one (a cut download or a wrong file is not)."""
    if len(text) < MIN_BOOK_CHARS:
        raise ValueError(f"{name} holds only {len(text)} characters of text after clean-up, far too short for a "
                         f"book (at least {MIN_BOOK_CHARS}): {advice}")
    return text


def load_book(book: Book) -> str:
    """The cleaned text of a book: Gutenberg book `book` (an id), or the .txt file `book` of an author's folder.

    A folder's book goes through the same clean-up and checks (UTF-8, not HTML, not binary, long enough).
    """
    if isinstance(book, Path):
        try:
            raw = book.read_bytes()
        except OSError as err:
            raise ValueError(f"{book} cannot be read ({err.strerror}): an author's folder holds readable .txt books") from None
        return check_is_book(clean_gutenberg(raw, name=str(book)), str(book),
                             "each .txt file of an author's folder is one whole book; remove or join the short ones.")
    name = f"{book_file_name(book)} (Gutenberg #{book})"
    return check_is_book(clean_gutenberg(read_raw_book(book), name=name), name)


# --------------------------------------------------------------------------------------
# Held-out split and length checks.
# --------------------------------------------------------------------------------------


def plain_tokenizer(tokenizer: Tokenizer) -> Tokenizer:
    """A tokenizer without truncation and padding (a copy if needed; the caller's is untouched)."""
    if tokenizer.truncation is None and tokenizer.padding is None:
        return tokenizer
    plain = Tokenizer.from_str(tokenizer.to_str())
    plain.no_truncation()
    plain.no_padding()
    return plain


def count_tokens(text: str, tokenizer: Tokenizer) -> int:
    """Number of tokens in `text` (no special tokens, no truncation)."""
    return len(plain_tokenizer(tokenizer).encode(text, add_special_tokens=False).ids)


def split_heldout(text: str, tokenizer: Tokenizer, fraction: float = HELDOUT_FRACTION) -> tuple[str, str]:
    """Split one book into (train_text, heldout_text): the held-out part is its last `fraction` of tokens.

    The cut is placed at the character where the first held-out token starts (from the
    tokenizer's offsets), then moved back to the start of that paragraph if it is at most
    PARAGRAPH_SEARCH_CHARS characters back, else to the previous whitespace, so no word or
    paragraph is shared. The separator at the cut ("\\n\\n" or one whitespace character) belongs
    to neither part: ``text == train_text + separator + heldout_text``. Deterministic.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be between 0 and 1 (exclusive), got {fraction}")
    offsets = plain_tokenizer(tokenizer).encode(text, add_special_tokens=False).offsets
    n_tokens = len(offsets)
    n_train = round(n_tokens * (1.0 - fraction))
    if n_train < 1 or n_train >= n_tokens:
        raise ValueError(f"text of {n_tokens} tokens is too short to hold out {fraction:.0%} of it "
                         f"and still train on the rest")
    cut = offsets[n_train][0]  # first character of the first held-out token
    paragraph = text.rfind("\n\n", 0, cut)
    if paragraph > 0 and cut - paragraph <= PARAGRAPH_SEARCH_CHARS:
        return text[:paragraph], text[paragraph + 2 :]
    space = max(text.rfind(c, 0, cut) for c in (" ", "\n", "\t"))
    if space > 0:
        return text[:space], text[space + 1 :]
    return text[:cut], text[cut:]


BOOK_SEPARATOR = "\n\n"  # between an author's books in its joined texts
VALIDATION_FRACTION = 0.05  # the last 5 % of each training book's text: what a judge is calibrated on, never trained on


@dataclass
class AuthorTexts:
    """One author's text in three parts that share no paragraph: training books, validation, held-out."""

    train: dict[str, str]  # book name -> the text trained on (its validation tail cut off)
    validation: str  # the last VALIDATION_FRACTION of every training book, joined: fitting T (N7) and the mix
    heldout: str  # the evaluation text: each book's tail ("tail") or the last book ("book", N3)

    @property
    def train_text(self) -> str:
        """The training books joined with BOOK_SEPARATOR, in order."""
        return BOOK_SEPARATOR.join(self.train.values())


def author_books(author: str, split: str, tokenizer: Tokenizer, fraction: float = HELDOUT_FRACTION) -> AuthorTexts:
    """`author`'s training books, validation text and held-out text under `split`.

    split "tail": every book keeps its own last `fraction` of tokens apart (`tokenizer` defines
    the tokens), so every book is on both sides. split "book" (N3): the last book of the author's
    list is held out whole, the others (and the author's `more_books`) are trained on. Either way
    the last VALIDATION_FRACTION of each training part is set aside as validation text.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    train_books, heldout_book = split_books(author, split)
    train, validation, heldout = {}, [], []
    for book in train_books:
        try:
            text = load_book(book)
            if heldout_book is None:
                text, tail = split_heldout(text, tokenizer, fraction)
                heldout.append(tail)
            train[book_name(book)], valid = split_heldout(text, tokenizer, VALIDATION_FRACTION)
        except ValueError as err:
            raise ValueError(f"{author}, book {book_name(book)}: {err}") from err
        validation.append(valid)
    if heldout_book is not None:
        heldout = [load_book(heldout_book)]
    return AuthorTexts(train, BOOK_SEPARATOR.join(validation), BOOK_SEPARATOR.join(heldout))


# A chapter heading: "CHAPTER IX.", "Chapter 12", "BOOK II", "STAVE I", "Adventure IV", or a capital roman numeral, a
# dot and a short title ("IV. The Stockbroker's Clerk"); of the one-letter numerals only I, V and X, or "C. Auguste
# Dupin" would be a heading.
CHAPTER_HEADING = re.compile(r"^\s*(?:(?i:chapter|book|part|stave|adventure)\s+(?i:[ivxlcdm]+|\d+)\b"
                             r"|(?:[IVX]|[IVXLC]{2,})\.\s+\S.{0,60}$)")


def chapters(text: str) -> list[str]:
    """`text` cut before every chapter heading line (CHAPTER_HEADING), in order, headings kept; the text before the
    first heading is the first piece, and a book with no heading is one piece. Contents lists give short pieces: a
    reader of chapters drops those by length."""
    starts, pos = [0], 0
    for line in text.splitlines(keepends=True):
        if pos and CHAPTER_HEADING.match(line):
            starts.append(pos)
        pos += len(line)
    return [piece for a, b in zip(starts, starts[1:] + [len(text)]) if (piece := text[a:b].strip())]


def author_texts(author: str, split: str, tokenizer: Tokenizer,
                 fraction: float = HELDOUT_FRACTION) -> tuple[str, str]:
    """(train_text, heldout_text) of `author`, its training books joined with BOOK_SEPARATOR (see `author_books`)."""
    texts = author_books(author, split, tokenizer, fraction)
    return texts.train_text, texts.heldout


def check_long_enough(n_tokens: int, length: int, what: str) -> None:
    """Raise ValueError unless `what` (an author, book or split) holds at least one window of `length` tokens.

    Random training windows of `length` tokens need n_tokens >= length; pass length + 1 when
    the targets are the inputs shifted by one (language models).
    """
    if length < 1:
        raise ValueError(f"a window must be a positive number of tokens, got {length}")
    if n_tokens < length:
        raise ValueError(f"{what} has only {n_tokens} tokens, fewer than the {length} it needs: "
                         f"use shorter (or fewer) windows, or add books to it (data/authors.py)")
