"""Shared test set-up: the repository root on sys.path, and fixtures that skip cleanly when an
optional piece (fetched weights, the corpus mirror, transformers) is not there."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    """The embedded MiniLM BERT folder from the weights store (`make weights`), or skip."""
    from weights import store

    try:
        return store.resolve("minilm")
    except FileNotFoundError as err:
        pytest.skip(f"MiniLM weights not fetched ({err})")


@pytest.fixture(scope="session")
def corpus_mirror() -> Path:
    """The corpus mirror folder named by ALICE_EDGAR_CORPUS (or ../shared/corpus beside the repo), or skip."""
    value = os.environ.get("ALICE_EDGAR_CORPUS") or str(ROOT.parent / "shared" / "corpus")
    folder = Path(value)
    if not folder.is_dir():
        pytest.skip("no corpus mirror: set ALICE_EDGAR_CORPUS to a folder of pg{ID}.txt files")
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models step faster on one thread; on a shared 2-core machine extra threads only spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def wonderland_text(corpus_mirror) -> str:
    """The first 60,000 characters of the raw Wonderland file (#11): real text for test tokenizers."""
    return (corpus_mirror / "pg11.txt").read_text(encoding="utf-8-sig")[:60_000]
