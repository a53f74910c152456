"""Token ids and windows of them: what the judge reads (A4, A8, N2) and what the generators learn from (B2).

A4: the data set is D = {(x_i, y_i)}, x_i a token sequence, y_i its author's label.
A8 / N2: every judge batch holds B/N windows of each author in label order: y = (0 ..., 1 ..., N-1 ...).

A judge window is a real BERT input of `length` tokens:

    [CLS] t_s t_(s+1) ... t_(s+length-3) [SEP]        (length - 2 text tokens)

The course code cut raw 256-token slices, so position 0 (the one the pooler reads) held an
arbitrary word piece, never [CLS]; here it always holds [CLS]. A generator window (`lm_windows`)
is a plain slice of `length` tokens.

Training windows start at random offsets in an author's TRAIN ids only. Held-out evaluation
uses fixed windows (evenly spaced, non-overlapping), so every evaluation sees the same inputs.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from data.corpus import BOOK_SEPARATOR, AuthorTexts, author_books, check_long_enough
from tokenizer_bridge.load import special_id

N_SPECIAL = 2  # [CLS] and [SEP] around every judge window


def text_ids(tok: Tokenizer, text: str) -> torch.Tensor:
    """Token ids of raw text, without special tokens: (N,) int64. The one text -> ids of the project."""
    return torch.tensor(tok.encode(text, add_special_tokens=False).ids, dtype=torch.long)


@dataclass(frozen=True)
class Specials:
    """The ids of the three special tokens a judge window needs."""

    cls: int
    sep: int
    pad: int

    @classmethod
    def of(cls, tok: Tokenizer) -> "Specials":
        """Read [CLS], [SEP] and [PAD] from a BERT tokenizer (clear error if one is missing)."""
        return cls(special_id(tok, "[CLS]"), special_id(tok, "[SEP]"), special_id(tok, "[PAD]"))


@dataclass
class AuthorIds:
    """One author's token ids (no special tokens): the train split and the held-out split."""

    name: str
    label: int
    train: torch.Tensor  # (N_train,) int64: the training books one after the other
    heldout: torch.Tensor  # (N_heldout,) int64
    books: dict[str, tuple[int, int]] | None = None  # each training book's [start, end) in `train`; None: one book
    validation: torch.Tensor | None = None  # (N_validation,) int64: never trained on (data/corpus.py:AuthorTexts)


def joined_ids(tok: Tokenizer, parts: dict[str, str]) -> tuple[torch.Tensor, dict[str, tuple[int, int]]]:
    """The ids of the parts joined with BOOK_SEPARATOR (what `text_ids` gives for the joined text), and each part's
    [start, end) token span in them, read from the tokenizer's character offsets."""
    text = BOOK_SEPARATOR.join(parts.values())
    enc = tok.encode(text, add_special_tokens=False)
    token_starts = [start for start, _ in enc.offsets]
    spans, char = {}, 0
    for name, part in parts.items():
        first = bisect.bisect_left(token_starts, char)
        spans[name] = (first, bisect.bisect_left(token_starts, char + len(part)))
        char += len(part) + len(BOOK_SEPARATOR)
    return torch.tensor(enc.ids, dtype=torch.long), spans


def load_author_ids(tok: Tokenizer, authors: Sequence[str], split: str = "tail",
                    split_tokenizer: Tokenizer | None = None) -> dict[str, AuthorIds]:
    """A4/N1: D = {(x_i, y_i)}: each author's train and held-out token ids, labels 0..N-1 in the given order.

    `split_tokenizer` decides where the "tail" split cuts (default: `tok`); the generators pass
    the judge's tokenizer, so that judge and generators hold out exactly the same text.
    """
    return author_ids(tok, {name: author_books(name, split, split_tokenizer or tok) for name in authors})


def author_ids(tok: Tokenizer, books: dict[str, AuthorTexts]) -> dict[str, AuthorIds]:
    """`load_author_ids` for authors whose books are already split (author -> data/corpus.py:AuthorTexts)."""
    out = {}
    for label, (name, texts) in enumerate(books.items()):
        train, spans = joined_ids(tok, texts.train)
        out[name] = AuthorIds(name, label, train, text_ids(tok, texts.heldout), spans, text_ids(tok, texts.validation))
    return out


# --------------------------------------------------------------------------------------
# Judge windows.
# --------------------------------------------------------------------------------------


def text_tokens_per_window(length: int) -> int:
    """A judge window of `length` tokens holds length - 2 text tokens ([CLS] and [SEP] take two)."""
    if length < N_SPECIAL + 1:
        raise ValueError(f"window length must be at least 3 ([CLS] + one token + [SEP]), got {length}")
    return length - N_SPECIAL


def wrap_window(piece: torch.Tensor, sp: Specials) -> torch.Tensor:
    """(n,) text ids -> (n + 2,) = [CLS] piece [SEP]."""
    return torch.cat([piece.new_tensor([sp.cls]), piece, piece.new_tensor([sp.sep])])


def windows_at(ids: torch.Tensor, starts: Sequence[int], length: int, sp: Specials) -> torch.Tensor:
    """Cut one window of `length` tokens at each start offset: (len(starts), length)."""
    n = text_tokens_per_window(length)
    return torch.stack([wrap_window(ids[s : s + n], sp) for s in starts])  # (n_windows, length)


def random_starts(n_tokens: int, n: int, count: int, rng: torch.Generator, what: str) -> torch.Tensor:
    """`count` random offsets of an n-token window, uniform over every position where it fits: (count,)."""
    check_long_enough(n_tokens, n, what)
    return torch.randint(0, n_tokens - n + 1, (count,), generator=rng)


def book_starts(a: AuthorIds, n: int, count: int, rng: torch.Generator, tally: dict | None = None) -> list[int]:
    """N3: `count` random offsets of n-token windows in a.train: each window's book drawn uniformly among the
    author's training books that hold a window, then its offset uniform within that book.

    Uniform over books, not over tokens: Bleak House (1.0 M characters) does not drown Oliver Twist
    (0.9 M) or Hard Times, so the judge sees every book of an author as often. `tally` counts the
    windows drawn from each book (tally[author][book] += 1), for the run's report.
    """
    spans = a.books or {"": (0, len(a.train))}
    fits = [(name, start, end) for name, (start, end) in spans.items() if end - start >= n]
    if not fits:
        check_long_enough(max(end - start for start, end in spans.values()), n, f"every book of {a.name}'s train split")
    starts = []
    for pick in torch.randint(0, len(fits), (count,), generator=rng).tolist():
        name, start, end = fits[pick]
        starts.append(start + int(torch.randint(0, end - start - n + 1, (1,), generator=rng)))
        if tally is not None:
            tally.setdefault(a.name, {}).setdefault(name, 0)
            tally[a.name][name] += 1
    return starts


def balanced_batch(train_ids: dict[str, torch.Tensor | AuthorIds], batch_size: int, length: int,
                   rng: torch.Generator, sp: Specials, tally: dict | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A8/N2: batch_size/N windows of each author (label order), y = (0 ..., 1 ..., N-1 ...).

    train_ids: author -> TRAIN id stream (one book: offsets uniform over it) or its AuthorIds (several
    books: each window's book uniform, `book_starts`), in label order. Returns input_ids (B, L),
    attention_mask (B, L) (all ones: every window is full) and labels (B,).
    """
    n_authors = len(train_ids)
    if batch_size < n_authors or batch_size % n_authors:
        raise ValueError(f"batch size must be a multiple of the {n_authors} authors (A8: equal shares), got {batch_size}")
    share = batch_size // n_authors
    n = text_tokens_per_window(length)
    xs = [windows_at(ids.train, book_starts(ids, n, share, rng, tally), length, sp) if isinstance(ids, AuthorIds)
          else windows_at(ids, random_starts(len(ids), n, share, rng, f"{name} train split").tolist(), length, sp)
          for name, ids in train_ids.items()]  # N x (B/N, L)
    x = torch.cat(xs)  # (B, L)
    y = torch.arange(n_authors).repeat_interleave(share)  # (B,): 0 x B/N, 1 x B/N, ...
    return x, torch.ones_like(x), y


def evenly_spaced_starts(n_tokens: int, n: int, count: int | None = None) -> list[int]:
    """Offsets of `count` non-overlapping n-token windows spread evenly over n_tokens (all that fit if None)."""
    most = n_tokens // n
    count = most if count is None else count
    if count < 1:
        raise ValueError(f"need at least one window, got count={count}")
    if count > most:
        raise ValueError(f"only {most} non-overlapping windows of {n} tokens fit in {n_tokens} tokens, "
                         f"{count} were asked for")
    if count == 1:
        return [0]
    return [i * (n_tokens - n) // (count - 1) for i in range(count)]  # gaps >= n since count * n <= n_tokens


def heldout_set(authors: dict[str, AuthorIds], length: int, sp: Specials, per_author: int | None = None,
                part: str = "heldout") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed held-out evaluation set: (input_ids (N, L), attention_mask (N, L), labels (N,)).

    per_author=None takes every non-overlapping window of each author's held-out split; a
    number takes that many per author (clear error if one split is too short).
    part="validation": the same from each author's validation text (data/corpus.py:AuthorTexts).
    """
    n = text_tokens_per_window(length)
    xs, ys = [], []
    for name, a in authors.items():
        ids = getattr(a, part)
        check_long_enough(len(ids), n, f"{name} {'held-out' if part == 'heldout' else part} split")
        x = windows_at(ids, evenly_spaced_starts(len(ids), n, per_author), length, sp)
        xs.append(x)
        ys.append(torch.full((len(x),), a.label, dtype=torch.long))
    x = torch.cat(xs)  # (N, L)
    return x, torch.ones_like(x), torch.cat(ys)


def heldout_passages(tok: Tokenizer, text: str, length: int, sp: Specials, count: int | None = None
                     ) -> tuple[torch.Tensor, list[str]]:
    """Fixed held-out windows of `text` AND the raw text each one covers: ((count, length) ids, count strings).

    The same evenly spaced windows as `heldout_set`, so that a judge that reads token ids (BERT) and
    one that reads characters (the n-gram baseline, N5) can be compared on exactly the same passages.
    """
    enc = tok.encode(text, add_special_tokens=False)
    n = text_tokens_per_window(length)
    check_long_enough(len(enc.ids), n, "held-out text")
    starts = evenly_spaced_starts(len(enc.ids), n, count)
    ids = windows_at(torch.tensor(enc.ids, dtype=torch.long), starts, length, sp)
    offsets = enc.offsets  # read once: each read of enc.offsets builds the whole list again (0.04 s for a novel)
    return ids, [text[offsets[s][0] : offsets[s + n - 1][1]] for s in starts]


def max_balanced_windows(authors: dict[str, AuthorIds], length: int) -> int:
    """The most non-overlapping held-out windows every author can give (for a balanced set)."""
    return min(len(a.heldout) // text_tokens_per_window(length) for a in authors.values())


def text_windows(ids: torch.Tensor, length: int, sp: Specials) -> tuple[torch.Tensor, torch.Tensor]:
    """Split any text's ids into consecutive windows for classification (A15).

    Returns input_ids (W, L') and attention_mask (W, L'), where L' = length, or less for a text
    shorter than one window; the last window is padded with [PAD] (mask 0). ValueError if empty.
    """
    if len(ids) == 0:
        raise ValueError("empty text: nothing to classify")
    n = text_tokens_per_window(length)
    pieces = [wrap_window(ids[s : s + n], sp) for s in range(0, len(ids), n)]
    width = max(len(p) for p in pieces)
    x = torch.full((len(pieces), width), sp.pad, dtype=torch.long)  # (W, L')
    mask = torch.zeros_like(x)
    for i, p in enumerate(pieces):
        x[i, : len(p)] = p
        mask[i, : len(p)] = 1
    return x, mask


# --------------------------------------------------------------------------------------
# Generator windows.
# --------------------------------------------------------------------------------------


def lm_windows(ids: torch.Tensor, batch_size: int, length: int, rng: torch.Generator | None = None) -> torch.Tensor:
    """A (batch_size, length) batch of windows cut at uniformly random starts of the 1-D token stream `ids`."""
    if ids.dim() != 1:
        raise ValueError(f"expected a 1-D token stream, got shape {tuple(ids.shape)}")
    starts = random_starts(ids.numel(), length, batch_size, rng, "the token stream")  # (B,)
    return ids[starts[:, None] + torch.arange(length)[None, :]]  # (B, T)


def balanced_lm_batch(streams: Sequence[torch.Tensor], batch_size: int, length: int,
                      rng: torch.Generator) -> torch.Tensor:
    """(batch_size, length) generator windows, an equal share from each author's stream (as B7's 32 + 32).

    Balanced, not proportional to size (Poe's books are 5 x Carroll's): a base model pretrained
    on it leans towards no author, so that untuned generators are judged ~50 % (B11).
    """
    if batch_size % len(streams):
        raise ValueError(f"batch size {batch_size} must split evenly between {len(streams)} authors")
    share = batch_size // len(streams)
    return torch.cat([lm_windows(ids, share, length, rng) for ids in streams])  # (B, T)


def consecutive_windows(ids: torch.Tensor, length: int, max_windows: int | None = None) -> torch.Tensor:
    """Non-overlapping windows of `length` tokens from the start of `ids`: (n, length). For held-out LM loss."""
    n = ids.numel() // length
    n = n if max_windows is None else min(n, max_windows)
    if n < 1:
        raise ValueError(f"a held-out stream of {ids.numel()} tokens is shorter than one window of {length}")
    return ids[: n * length].view(n, length)
