"""Batches for the BERT judge (lecture A, equations A4 and A8).

A4: the data set is D = {(x_i, y_i)}, x_i a token sequence, y_i in {0, 1} (0 = Alice, 1 = Edgar).
A8: every batch holds 32 Alice windows then 32 Edgar windows: y = (0, ..., 0, 1, ..., 1).

Each window is a real BERT input of `length` tokens:

    [CLS] t_s t_(s+1) ... t_(s+length-3) [SEP]        (length - 2 text tokens)

The course code cut raw 256-token slices, so position 0 (the one the pooler
reads) held an arbitrary word piece, never [CLS]; here it always holds [CLS].

Training windows start at random offsets in an author's TRAIN split only
(`author_batch` is never given held-out ids). Held-out evaluation uses fixed
windows (`heldout_windows`: evenly spaced, non-overlapping), so every
evaluation sees exactly the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from tokenizer_bridge.load import special_id
from train.corpus import AUTHORS, LABELS, author_splits, check_long_enough

N_SPECIAL = 2  # [CLS] and [SEP] around every window


@dataclass(frozen=True)
class Specials:
    """The ids of the three special tokens a window needs."""

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
    train: torch.Tensor  # (N_train,) int64
    heldout: torch.Tensor  # (N_heldout,) int64


def text_ids(tok: Tokenizer, text: str) -> torch.Tensor:
    """Token ids of raw text, without [CLS]/[SEP]: (N,) int64."""
    return torch.tensor(tok.encode(text, add_special_tokens=False).ids, dtype=torch.long)


def load_author_ids(tok: Tokenizer, fraction: float = 0.1) -> dict[str, AuthorIds]:
    """A4: D = {(x_i, y_i)}, y_i in {0, 1}: each author's token ids with its label (0 = Alice, 1 = Edgar).

    Tokenizes both authors' train and held-out splits (train/corpus.py decides the split).
    """
    out = {}
    for name in AUTHORS:
        train_text, heldout_text = author_splits(name, tok, fraction=fraction)
        out[name] = AuthorIds(name, LABELS[name], text_ids(tok, train_text), text_ids(tok, heldout_text))
    return out


def text_tokens_per_window(length: int) -> int:
    """A window of `length` tokens holds length - 2 text tokens ([CLS] and [SEP] take two)."""
    if length < N_SPECIAL + 1:
        raise ValueError(f"window length must be at least 3 ([CLS] + one token + [SEP]), got {length}")
    return length - N_SPECIAL


def wrap_window(piece: torch.Tensor, sp: Specials) -> torch.Tensor:
    """(n,) text ids -> (n + 2,) = [CLS] piece [SEP]."""
    return torch.cat([piece.new_tensor([sp.cls]), piece, piece.new_tensor([sp.sep])])


def windows_at(ids: torch.Tensor, starts: Sequence[int], length: int, sp: Specials) -> torch.Tensor:
    """Cut one window of `length` tokens at each start offset: (len(starts), length)."""
    n = text_tokens_per_window(length)
    rows = [wrap_window(ids[s : s + n], sp) for s in starts]
    return torch.stack(rows)  # (n_windows, length)


def random_starts(n_tokens: int, length: int, count: int, gen: torch.Generator, what: str) -> list[int]:
    """`count` random window offsets, uniform over every position where a full window fits."""
    n = text_tokens_per_window(length)
    check_long_enough(n_tokens, n, what)
    return torch.randint(0, n_tokens - n + 1, (count,), generator=gen).tolist()


def author_batch(
    alice_train: torch.Tensor,
    edgar_train: torch.Tensor,
    batch_size: int,
    length: int,
    gen: torch.Generator,
    sp: Specials,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A8: batch_size/2 Alice windows then batch_size/2 Edgar windows, y = (0, ..., 0, 1, ..., 1).

    Windows start at random offsets in the TRAIN ids given. Returns input_ids
    (B, L), attention_mask (B, L) (all ones: every window is full) and labels (B,).
    """
    if batch_size < 2 or batch_size % 2:
        raise ValueError(f"batch size must be even (half Alice, half Edgar), got {batch_size}")
    half = batch_size // 2
    x_alice = windows_at(alice_train, random_starts(len(alice_train), length, half, gen, "alice train split"),
                         length, sp)  # (B/2, L)
    x_edgar = windows_at(edgar_train, random_starts(len(edgar_train), length, half, gen, "edgar train split"),
                         length, sp)  # (B/2, L)
    x = torch.cat([x_alice, x_edgar])  # (B, L)
    y = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(half, dtype=torch.long)])  # (B,)
    return x, torch.ones_like(x), y


def evenly_spaced_starts(n_tokens: int, length: int, count: int | None = None) -> list[int]:
    """Offsets of `count` non-overlapping windows spread evenly over n_tokens (all that fit if None)."""
    n = text_tokens_per_window(length)
    most = n_tokens // n
    if count is None:
        count = most
    if count < 1:
        raise ValueError(f"need at least one window, got count={count}")
    if count > most:
        raise ValueError(f"only {most} non-overlapping windows of {length} tokens fit in {n_tokens} tokens, "
                         f"{count} were asked for")
    if count == 1:
        return [0]
    return [i * (n_tokens - n) // (count - 1) for i in range(count)]  # gaps >= n since count * n <= n_tokens


def heldout_windows(ids: torch.Tensor, length: int, sp: Specials, count: int | None = None,
                    what: str = "held-out split") -> torch.Tensor:
    """Fixed evaluation windows: `count` evenly spaced, non-overlapping windows (all that fit if None)."""
    check_long_enough(len(ids), text_tokens_per_window(length), what)
    return windows_at(ids, evenly_spaced_starts(len(ids), length, count), length, sp)  # (count, L)


def heldout_set(
    authors: dict[str, AuthorIds], length: int, sp: Specials, per_author: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed held-out evaluation set: (input_ids (N, L), attention_mask (N, L), labels (N,)).

    per_author=None takes every non-overlapping window of each author's held-out
    split; a number takes that many per author (clear error if one split is too short).
    """
    xs, ys = [], []
    for name, a in authors.items():
        x = heldout_windows(a.heldout, length, sp, per_author, what=f"{name} held-out split")
        xs.append(x)
        ys.append(torch.full((len(x),), a.label, dtype=torch.long))
    x = torch.cat(xs)  # (N, L)
    return x, torch.ones_like(x), torch.cat(ys)


def max_balanced_windows(authors: dict[str, AuthorIds], length: int) -> int:
    """The most non-overlapping held-out windows every author can give (for a balanced set)."""
    return min(len(a.heldout) // text_tokens_per_window(length) for a in authors.values())


def text_windows(ids: torch.Tensor, length: int, sp: Specials) -> tuple[torch.Tensor, torch.Tensor]:
    """Split any text's ids into consecutive windows for classification (A15).

    Returns input_ids (W, L') and attention_mask (W, L'), where L' = length, or
    less for a text shorter than one window; the last window is padded with
    [PAD] (mask 0). Raises ValueError for empty input.
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
