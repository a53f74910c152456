"""data/windows.py: A4/A8 batch composition, real BERT windows, train-only sampling, fixed held-out windows."""

from __future__ import annotations

import pytest
import torch

from data.windows import (AuthorIds, Specials, balanced_batch, evenly_spaced_starts, heldout_set, max_balanced_windows,
                          text_windows)

SP = Specials(cls=101, sep=102, pad=0)
ALICE = torch.arange(1000, 1600)  # consecutive ids: a window is a slice iff its tokens count up by one
EDGAR = torch.arange(5000, 5900)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_batch_is_32_alice_then_32_edgar_real_bert_windows() -> None:
    x, mask, y = balanced_batch({'alice': ALICE, 'edgar': EDGAR}, 64, 32, gen(), SP)
    assert x.shape == mask.shape == (64, 32) and y.shape == (64,)
    assert y.tolist() == [0] * 32 + [1] * 32  # A8
    assert (x[:, 0] == SP.cls).all() and (x[:, -1] == SP.sep).all()  # [CLS] ... [SEP]
    assert (mask == 1).all()
    body = x[:, 1:-1]  # (64, 30) text tokens
    assert ((body[:32] >= 1000) & (body[:32] < 1600)).all()  # Alice rows hold Alice ids only
    assert ((body[32:] >= 5000) & (body[32:] < 5900)).all()
    assert (body[:, 1:] - body[:, :-1] == 1).all()  # each window is one contiguous slice of the ids


def test_other_batch_sizes_split_equally_and_uneven_is_an_error() -> None:
    _, _, y = balanced_batch({'alice': ALICE, 'edgar': EDGAR}, 10, 16, gen(), SP)
    assert y.tolist() == [0] * 5 + [1] * 5
    with pytest.raises(ValueError, match="multiple of the 2 authors"):
        balanced_batch({'alice': ALICE, 'edgar': EDGAR}, 7, 16, gen(), SP)
    third = torch.arange(9000, 9500)
    x, _, y = balanced_batch({"alice": ALICE, "edgar": EDGAR, "austen": third}, 6, 16, gen(), SP)  # N2
    assert y.tolist() == [0, 0, 1, 1, 2, 2] and ((x[4:, 1:-1] >= 9000) & (x[4:, 1:-1] < 9500)).all()


def test_random_offsets_reach_both_ends_and_follow_the_seed() -> None:
    short = torch.arange(100, 133)  # 33 tokens, windows of 30 text tokens: offsets 0..3
    firsts = set()
    for seed in range(20):
        x, _, _ = balanced_batch({'alice': short, 'edgar': short}, 8, 32, gen(seed), SP)
        firsts.update(x[:, 1].tolist())
    assert firsts == {100, 101, 102, 103}
    a, b = balanced_batch({'alice': ALICE, 'edgar': EDGAR}, 8, 32, gen(5), SP), balanced_batch({'alice': ALICE, 'edgar': EDGAR}, 8, 32, gen(5), SP)
    assert torch.equal(a[0], b[0])


def test_split_shorter_than_a_window_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="alice train split has only 20 tokens"):
        balanced_batch({'alice': torch.arange(20), 'edgar': EDGAR}, 4, 32, gen(), SP)
    with pytest.raises(ValueError, match="at least 3"):
        balanced_batch({'alice': ALICE, 'edgar': EDGAR}, 4, 2, gen(), SP)


def test_heldout_windows_are_fixed_evenly_spaced_and_disjoint() -> None:
    starts = evenly_spaced_starts(1000, 30, 10)  # windows of 30 text tokens (32 with [CLS] and [SEP])
    assert starts[0] == 0 and starts[-1] == 1000 - 30
    assert all(b - a >= 30 for a, b in zip(starts, starts[1:]))  # non-overlapping
    assert len(evenly_spaced_starts(1000, 30)) == 1000 // 30  # None: every window that fits
    with pytest.raises(ValueError, match="only 33 non-overlapping"):
        evenly_spaced_starts(1000, 30, 34)
    authors = {"edgar": AuthorIds("edgar", 0, EDGAR, EDGAR)}
    w1, w2 = heldout_set(authors, 32, SP, 5)[0], heldout_set(authors, 32, SP, 5)[0]
    assert torch.equal(w1, w2) and (w1[:, 0] == SP.cls).all() and (w1[:, -1] == SP.sep).all()


def test_text_windows_cover_the_text_and_pad_the_last() -> None:
    with pytest.raises(ValueError, match="empty"):
        text_windows(torch.tensor([], dtype=torch.long), 32, SP)
    x, mask = text_windows(torch.arange(1000, 1010), 32, SP)  # shorter than one window: no padding
    assert x.shape == (1, 12) and mask.all() and x[0, 0] == SP.cls and x[0, -1] == SP.sep
    x, mask = text_windows(torch.arange(1000, 1070), 32, SP)  # 30 + 30 + 10 text tokens
    assert x.shape == (3, 32)
    assert mask.sum(dim=1).tolist() == [32, 32, 12]
    assert x[2, 11] == SP.sep and (x[2, 12:] == SP.pad).all()
    body = torch.cat([x[i, 1 : int(mask[i].sum()) - 1] for i in range(3)])
    assert torch.equal(body, torch.arange(1000, 1070))  # every token once, in order


# ------------------------------------------------------------------ the real corpus (skips if absent)


@pytest.fixture(scope="module")
def real_authors(corpus_ids):
    return corpus_ids  # conftest: the corpus is tokenized once per session


def _occurs_in(window: torch.Tensor, ids: torch.Tensor) -> bool:
    """Is `window` a contiguous slice of `ids`?"""
    return bool((ids.unfold(0, len(window), 1) == window).all(dim=1).any())


def test_training_windows_come_from_the_train_split_only(real_authors) -> None:
    tok, authors = real_authors
    sp = Specials.of(tok)
    x, _, y = balanced_batch({'alice': authors["alice"].train, 'edgar': authors["edgar"].train}, 16, 40, gen(3), sp)
    assert x[0, 0].item() == tok.token_to_id("[CLS]") and x[0, -1].item() == tok.token_to_id("[SEP]")
    for row, label in zip(x, y):
        a = authors["alice" if label == 0 else "edgar"]
        assert _occurs_in(row[1:-1], a.train)
        assert not _occurs_in(row[1:-1], a.heldout)


def test_real_heldout_set_is_balanced_and_from_the_heldout_split(real_authors) -> None:
    tok, authors = real_authors
    n = max_balanced_windows(authors, 256)
    assert n >= 16  # the lecture's 256-token windows: enough held-out text for a real evaluation
    x, mask, y = heldout_set(authors, 256, Specials.of(tok), n)
    assert x.shape == (2 * n, 256) and mask.all() and y.tolist() == [0] * n + [1] * n
    assert _occurs_in(x[0, 1:-1], authors["alice"].heldout)
    assert _occurs_in(x[-1, 1:-1], authors["edgar"].heldout)
