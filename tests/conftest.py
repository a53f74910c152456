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
