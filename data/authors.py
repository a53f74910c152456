"""The authors: the one place to add one.

Each author has a short name (used in flags, files and metrics), the writer's name, and the
Project Gutenberg ids of its books. The order of `books` matters for `--split book` (N3): the
LAST book of the list is the evaluation book, never trained on.

A run works with a selection of authors (`--authors alice,edgar`, the lectures' default, or
`--authors all`). Within a run, an author's label is its position in the selection (A4:
y = 0 Alice, 1 Edgar; N1: labels 0..N-1), and every model saves the names of its labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Author:
    """One author of the corpus."""

    name: str  # short name: "alice", "edgar", ...
    writer: str  # who wrote the books
    books: tuple[int, ...]  # Gutenberg ids; the last one is the evaluation book of --split book


AUTHORS: dict[str, Author] = {a.name: a for a in (
    Author("alice", "Lewis Carroll", (12, 11)),  # Through the Looking-Glass, Alice's Adventures in Wonderland
    Author("edgar", "Edgar Allan Poe", (2147, 2148, 2149)),  # Works, Raven Edition, vols I, II, III
    Author("austen", "Jane Austen", (1342, 158)),  # Pride and Prejudice, Emma
    Author("dickens", "Charles Dickens", (1400, 786)),  # Great Expectations, Hard Times and Reprinted Pieces
    Author("twain", "Mark Twain", (74, 76)),  # Tom Sawyer, Huckleberry Finn
    Author("doyle", "Arthur Conan Doyle", (1661, 834)),  # Adventures, Memoirs of Sherlock Holmes
)}
DEFAULT_AUTHORS = "alice,edgar"  # the lectures' experiment


def select_authors(spec: str | Sequence[str]) -> tuple[str, ...]:
    """`"alice,edgar"`, `"all"` or a list of names -> the tuple of names, in the order given (their labels).

    ValueError for an unknown name, a repeated one, or fewer than two (a judge needs two classes).
    """
    names = list(AUTHORS) if spec == "all" else (spec.split(",") if isinstance(spec, str) else list(spec))
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in AUTHORS]
    if unknown:
        raise ValueError(f"unknown author(s) {', '.join(unknown)}; known: {', '.join(AUTHORS)} (or 'all')")
    if len(set(names)) != len(names):
        raise ValueError(f"an author is named twice in {','.join(names)}")
    if len(names) < 2:
        raise ValueError(f"need at least two authors to tell apart, got {names}: e.g. --authors alice,edgar")
    return tuple(names)


def label_names(authors: Sequence[str]) -> dict[int, str]:
    """A4/N1: label -> author name, labels 0..N-1 in the selection's order."""
    return dict(enumerate(authors))


def book_ids(authors: Sequence[str]) -> list[int]:
    """Every Gutenberg id of the selected authors, in order."""
    return [book for name in authors for book in AUTHORS[name].books]
