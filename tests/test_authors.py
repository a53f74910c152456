"""Several books per author, windows drawn book by book, and any author from a folder of .txt books (issue 23)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from data.authors import AUTHORS, author_from_folder, authors_spec, select_authors, split_books
from data.corpus import MIRROR_SHA256, author_books, load_book
from data.windows import AuthorIds, Specials, balanced_batch, book_starts, joined_ids, text_ids
from plumbing.judges import load_bert_judge
from scripts import train_bert as program

SOURCES_MORE_BOOKS = (29042, 121, 946, 730, 766, 1023, 3177, 3289, 2350)  # SOURCES.md, "More books per author"


@pytest.fixture(autouse=True)
def forget_folder_authors():
    """select_authors adds folder authors to AUTHORS for the process: each test starts from the table."""
    before = dict(AUTHORS)
    yield
    AUTHORS.clear()
    AUTHORS.update(before)


def test_every_more_book_is_in_the_table_with_the_mirrors_checksum_and_reads_as_a_book(corpus_mirror):
    listed = [b for a in AUTHORS.values() for b in a.more_books]
    assert sorted(listed) == sorted(SOURCES_MORE_BOOKS)
    for book in listed:
        data = (corpus_mirror / f"pg{book}.txt").read_bytes()
        assert hashlib.sha256(data).hexdigest() == MIRROR_SHA256[book]
        assert len(load_book(book)) > 100_000  # cleaned, checked, and a whole book


def test_the_book_split_trains_on_every_book_but_the_last_and_the_tail_split_keeps_the_lectures_books():
    trained, heldout = split_books("dickens", "book")
    assert trained == (1400, 730, 766, 1023) and heldout == 786  # Hard Times stays the evaluation book
    assert split_books("alice", "tail") == ((12, 11), None)  # lecture A's texts are unchanged
    assert all(len(split_books(a, "book")[0]) >= 2 for a in AUTHORS)  # two to four books to train on


def words() -> Tokenizer:
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(2000)} | {"[UNK]": 2000}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_joined_ids_are_the_joined_texts_ids_with_each_books_span():
    tok = words()
    parts = {"#1": " ".join(f"w{i}" for i in range(50)), "#2": " ".join(f"w{i}" for i in range(100, 103))}
    ids, spans = joined_ids(tok, parts)
    assert torch.equal(ids, text_ids(tok, "\n\n".join(parts.values())))
    assert spans == {"#1": (0, 50), "#2": (50, 53)}
    assert ids[slice(*spans["#2"])].tolist() == [100, 101, 102]


def test_each_windows_book_is_drawn_uniformly_not_by_length_and_counted():
    """A book of 10,000 tokens beside one of 200: half the windows from each (by length it would be 98 % / 2 %)."""
    a = AuthorIds("dickens", 0, torch.arange(10_200), torch.arange(10), {"#big": (0, 10_000), "#small": (10_000, 10_200)})
    tally: dict = {}
    starts = book_starts(a, 50, 4000, torch.Generator().manual_seed(0), tally)
    small = sum(s >= 10_000 for s in starts)
    assert 1850 < small < 2150 and tally == {"dickens": {"#big": 4000 - small, "#small": small}}
    assert all(s + 50 <= 10_000 or 10_000 <= s <= 10_150 for s in starts)  # no window crosses a book's end
    tiny = AuthorIds("x", 0, torch.arange(130), torch.arange(10), {"#a": (0, 30), "#b": (30, 130)})
    assert all(s >= 30 for s in book_starts(tiny, 50, 100, torch.Generator().manual_seed(1)))  # #a holds no window
    with pytest.raises(ValueError, match="every book of x's train split has only 100 tokens"):
        book_starts(tiny, 120, 1, torch.Generator())
    x, _, y = balanced_batch({"x": tiny, "y": torch.arange(500)}, 4, 52, torch.Generator().manual_seed(2),
                             Specials(1, 2, 0))  # an AuthorIds and a plain stream side by side
    assert x.shape == (4, 52) and y.tolist() == [0, 0, 1, 1]


def make_folder_author(corpus_mirror: Path, folder: Path, books=(2147, 2148), chars: int = 40_000) -> Path:
    """An author from a folder, built from corpus files (the first `chars` characters of each, as .txt books)."""
    folder.mkdir(parents=True)
    for i, book in enumerate(books):
        text = (corpus_mirror / f"pg{book}.txt").read_text(encoding="utf-8")
        (folder / f"{i + 1:02d}-pg{book}.txt").write_text(text[:chars], encoding="utf-8")
    return folder


def test_a_folder_is_an_author_named_after_it_whose_last_file_is_held_out(corpus_mirror, tmp_path):
    folder = make_folder_author(corpus_mirror, tmp_path / "Poe-Again")
    (folder / "notes.md").write_text("not a book")
    assert select_authors(f"alice,{folder}") == ("alice", "poe-again")
    trained, heldout = split_books("poe-again", "book")
    assert [b.name for b in trained] == ["01-pg2147.txt"] and heldout.name == "02-pg2148.txt"
    texts = author_books("poe-again", "book", words())
    assert list(texts.train) == ["01-pg2147.txt"] and texts.heldout == load_book(heldout)
    whole = load_book(trained[0])
    assert whole.startswith(texts.train["01-pg2147.txt"]) and whole.endswith(texts.validation)  # its last 5 %
    assert authors_spec(("alice", "poe-again")) == f"alice,{folder.resolve()}"


@pytest.mark.parametrize("make, message", [
    (lambda f: None, "holds no .txt file"),
    (lambda f: (f / "a.txt").write_text("Too short to be a book."), "far too short for a book"),
    (lambda f: (f / "a.txt").write_bytes(bytes(range(256)) * 100), "not valid UTF-8"),
    (lambda f: (f / "a.txt").write_bytes(b"\x00\x01\x02 binary " * 5000), "is not a text file"),
    (lambda f: (f / "a.txt").write_text("<!DOCTYPE html><html><body>Not found</body></html>" * 500), "an HTML page"),
])
def test_a_bad_folder_gets_one_clear_line(make, message, tmp_path, small_mirror, capsys):
    folder = tmp_path / "someone"
    folder.mkdir()
    make(folder)
    code = program.main(["--authors", f"alice,{folder}", "--steps", "1", "--runs-dir", str(tmp_path / "runs"),
                         "--precision", "fp32", "--compile", "off"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0], errors


def test_a_folder_named_like_an_author_of_the_table_or_missing_is_refused(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="an author of the table: rename the folder"):
        author_from_folder(str(tmp_path / "alice"))
    with pytest.raises(ValueError, match="is not a folder"):
        select_authors(f"alice,{tmp_path / 'nowhere'}")


def test_an_author_from_a_folder_trains_a_judge_end_to_end(make_tiny_bert, corpus_mirror, small_mirror, tmp_path):
    """--authors alice,<folder> --split book: the judge learns the folder's name as a label, says which books it trained
    on how often, and a program reading the judge later finds the folder's books by that name."""
    folder = make_folder_author(corpus_mirror, tmp_path / "poe2", books=(2147, 2148, 2149))
    tiny = make_tiny_bert(tmp_path / "tiny-bert")
    run = program.train_judge(["--model", str(tiny), "--runs-dir", str(tmp_path / "runs"), "--preset", "cpu",
                               "--authors", f"alice,{folder}", "--split", "book", "--per-author", "4", "--length", "32", "--eval-length", "64",
                               "--eval-per-author", "2", "--steps", "5", "--eval-every", "0", "--device", "cpu",
                               "--precision", "fp32", "--compile", "off"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["windows_per_book"]["alice"].keys() == {"#12", "#29042"}  # Wonderland (#11) held out
    assert summary["windows_per_book"]["poe2"].keys() == {"01-pg2147.txt", "02-pg2148.txt"}
    assert sum(summary["windows_per_book"]["poe2"].values()) == 5 * 4
    AUTHORS.pop("poe2")  # as in a new process: only the judge knows where the folder is
    _, _, info = load_bert_judge(run / "hf")
    assert info["labels"] == ["alice", "poe2"] and AUTHORS["poe2"].folder == folder.resolve()
    assert "poe2 (poe2: trained on 01-pg2147.txt, 02-pg2148.txt; held out 03-pg2149.txt)" in (run / "hf" / "README.md").read_text()
