"""The authors: the one place to add one, or a folder of books given on the command line.

Each author has a short name (used in flags, files and metrics), the writer's name, and its books:
Project Gutenberg ids, or .txt files for an author read from a folder. The order of `books` matters
for `--split book` (N3): the LAST book of the list is the evaluation book, never trained on.
`more_books` are trained on under `--split book` only: there the judge must learn the author across
several books rather than one book; the two-author lecture experiment (split "tail") keeps its texts.

A run works with a selection of authors (`--authors alice,edgar`, the lectures' default, or
`--authors all`, or a folder among them: `--authors alice,edgar,/path/to/woolf`, whose name is the
author's and whose .txt files are its books, in name order). Within a run, an author's label is its
position in the selection (A4: y = 0 Alice, 1 Edgar; N1: labels 0..N-1), and every model saves the
names of its labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

Book = int | Path  # a Gutenberg id, or the .txt file of an author read from a folder


@dataclass(frozen=True)
class Author:
    """One author of the corpus."""

    name: str  # short name: "alice", "edgar", ...
    writer: str  # who wrote the books
    books: tuple[Book, ...]  # every split reads them; the last one is the evaluation book of --split book
    more_books: tuple[Book, ...] = ()  # trained on under --split book only (before the evaluation book)
    folder: Path | None = None  # where an author from a folder came from
    names: tuple[str, ...] = ()  # main characters, whose rate in generated text T8 watches (RL's "Alice" habit)


AUTHORS: dict[str, Author] = {a.name: a for a in (
    # Through the Looking-Glass, Alice's Adventures in Wonderland; A Tangled Tale
    Author("alice", "Lewis Carroll", (12, 11), (29042,), names=("Alice",)),
    # Works, Raven Edition, vols I, II, III
    Author("edgar", "Edgar Allan Poe", (2147, 2148, 2149), names=("Dupin", "Usher", "Legrand", "Ligeia", "Pym")),
    # Pride and Prejudice, Emma; Northanger Abbey, Lady Susan
    Author("austen", "Jane Austen", (1342, 158), (121, 946), names=("Elizabeth", "Darcy", "Bennet", "Emma", "Knightley")),
    # Great Expectations, Hard Times and Reprinted Pieces; Oliver Twist, David Copperfield, Bleak House
    Author("dickens", "Charles Dickens", (1400, 786), (730, 766, 1023), names=("Pip", "Estella", "Joe", "Gradgrind")),
    # Tom Sawyer, Huckleberry Finn; Roughing It
    Author("twain", "Mark Twain", (74, 76), (3177,), names=("Tom", "Huck", "Jim", "Sawyer")),
    # Adventures, Memoirs of Sherlock Holmes; The Valley of Fear, His Last Bow
    Author("doyle", "Arthur Conan Doyle", (1661, 834), (3289, 2350), names=("Holmes", "Watson")),
)}
BUILT_IN = tuple(AUTHORS)  # `--authors all`: the table's authors, not the folders a run added
DEFAULT_AUTHORS = "alice,edgar"  # the lectures' experiment


def is_folder_spec(item: str) -> bool:
    """Does an --authors item name a folder (a path) rather than an author of the table?"""
    return "/" in item or item.startswith((".", "~"))


def author_from_folder(spec: str) -> Author:
    """An author read from a folder: its name is the folder's, its books the folder's .txt files in name order.

    ValueError (one line) for a folder that is missing, holds no .txt file, or takes a name of the table.
    What is inside each file is checked when it is read (data/corpus.py:load_book).
    """
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise ValueError(f"{spec} is not a folder: an author from a folder is a folder of .txt books")
    books = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() == ".txt" and p.is_file()))
    if not books:
        raise ValueError(f"{spec} holds no .txt file: put the author's books there, one plain-text file each")
    name = folder.resolve().name.lower()
    if name in BUILT_IN:
        raise ValueError(f"the folder {spec} would be named {name!r}, an author of the table: rename the folder")
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"the folder {spec} is named {name!r}: an author's name is letters, digits, - and _")
    return Author(name, folder.resolve().name, books, folder=folder.resolve())


def add_folder_author(spec: str) -> str:
    """The author of a folder (`author_from_folder`), added to AUTHORS for this process; returns its name."""
    author = author_from_folder(spec)
    AUTHORS[author.name] = author
    return author.name


def select_authors(spec: str | Sequence[str]) -> tuple[str, ...]:
    """`"alice,edgar"`, `"all"`, a list of names, or folders among them -> the tuple of names, in the order given
    (their labels). A folder's author is added to AUTHORS (for this process) under its folder's name.

    ValueError for an unknown name, a bad folder, a repeated name, or fewer than two (a judge needs two classes).
    """
    items = list(BUILT_IN) if spec == "all" else (spec.split(",") if isinstance(spec, str) else list(spec))
    items = [n.strip() for n in items if n.strip()]
    names = [add_folder_author(item) if is_folder_spec(item) else item for item in items]
    unknown = [n for n in names if n not in AUTHORS]
    if unknown:
        raise ValueError(f"unknown author(s) {', '.join(unknown)}; known: {', '.join(BUILT_IN)} (or 'all', or a "
                         "folder of .txt books such as ./my-author)")
    if len(set(names)) != len(names):
        raise ValueError(f"an author is named twice in {','.join(names)}")
    if len(names) < 2:
        raise ValueError(f"need at least two authors to tell apart, got {names}: e.g. --authors alice,edgar")
    return tuple(names)


def register_folders(spec: str | None) -> None:
    """Add the folder authors of a saved --authors spec (a judge's) to AUTHORS, where their folders still exist,
    so that a program reading that judge's labels can read their books; a folder gone is left unknown."""
    for item in (spec or "").split(","):
        if is_folder_spec(item.strip()) and Path(item.strip()).expanduser().is_dir():
            add_folder_author(item.strip())


def authors_spec(names: Sequence[str]) -> str:
    """The --authors spec that selects `names` again from anywhere: folder authors by their absolute folder."""
    return ",".join(str(AUTHORS[n].folder) if AUTHORS[n].folder else n for n in names)


def label_names(authors: Sequence[str]) -> dict[int, str]:
    """A4/N1: label -> author name, labels 0..N-1 in the selection's order."""
    return dict(enumerate(authors))


def split_books(author: str, split: str) -> tuple[tuple[Book, ...], Book | None]:
    """N3: (books trained on, the held-out book or None) of `author` under `split` ("tail": every book on both
    sides)."""
    a = AUTHORS[author]
    if split == "tail":
        return a.books, None
    if len(a.books) < 2:
        raise ValueError(f"{author} has one book: --split book needs one to train on and one to hold out")
    return a.books[:-1] + a.more_books, a.books[-1]


def book_name(book: Book) -> str:
    """How a book is named in reports: "#12" for a Gutenberg id, the file's name for a folder's book."""
    return book.name if isinstance(book, Path) else f"#{book}"


def book_ids(authors: Sequence[str]) -> list[Book]:
    """Every book of the selected authors (their `more_books` too), in order."""
    return [book for name in authors for book in AUTHORS[name].books + AUTHORS[name].more_books]
