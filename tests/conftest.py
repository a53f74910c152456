"""Shared test set-up: the repository root on sys.path, and fixtures that skip cleanly when an
optional piece (fetched weights, the corpus mirror, transformers) is not there.

On a student's laptop a missing piece skips its tests. With ALICE_EDGAR_STRICT=1 (CI sets it in
.ci/run) every skip is a failure instead: in CI a skipped test is a test that did not run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STRICT_ENV = "ALICE_EDGAR_STRICT"


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip() not in ("", "0")


def _fail_if_strict(report) -> None:
    """Under ALICE_EDGAR_STRICT a skipped test (or module) is reported as failed, with the reason it skipped."""
    if strict() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{STRICT_ENV}=1 and this would have skipped: {reason}"


def pytest_configure(config) -> None:
    if strict():  # a module that fails for a missing package must not keep the other modules from running
        config.option.continue_on_collection_errors = True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    _fail_if_strict((yield).get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):  # a module that skips as a whole (pytest.importorskip at the top)
    _fail_if_strict((yield).get_result())


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


# ----------------------------------------------------------------------------- tiny models, shared


@pytest.fixture(scope="session")
def tiny_bert_config():
    """A 2-layer, 32-wide BERT with MiniLM's vocabulary: whole training runs take seconds."""
    from model.config import BertConfig

    return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@pytest.fixture(scope="session")
def make_tiny_bert(tiny_bert_config, minilm_folder):
    """make_tiny_bert(folder, seed=0): a random tiny BERT saved in the Hugging Face layout, MiniLM's tokenizer beside it."""
    import shutil

    import torch

    from model.bert import Bert, hf_names
    from model.loading import save_hf_folder, to_hf_state

    def make(folder: Path, seed: int = 0) -> Path:
        torch.manual_seed(seed)
        bert = Bert(tiny_bert_config)
        save_hf_folder(folder, to_hf_state(bert, hf_names(tiny_bert_config), "bert."), tiny_bert_config.to_hf())
        shutil.copy(minilm_folder / "tokenizer.json", folder / "tokenizer.json")
        return folder

    return make


@pytest.fixture(scope="session")
def make_tiny_judge(tiny_bert_config, minilm_folder):
    """make_tiny_judge(runs_dir, labels=("alice", "edgar"), eval_length=64): an untrained tiny judge run, `latest`."""
    import torch

    from model.bert import Bert, BertClassifier
    from plumbing.hf_folder import write_model_folder
    from plumbing.judges import HF_FOLDER, INFO_KEY
    from plumbing.runs import Run
    from tokenizer_bridge.load import load_bert_tokenizer

    def make(runs_dir: Path, labels=("alice", "edgar"), eval_length: int = 64, seed: int = 0) -> Path:
        torch.manual_seed(seed)
        model = BertClassifier(Bert(tiny_bert_config), labels)
        run = Run.create("judge", runs_dir, {"program": "judge", "config": {}, "labels": list(labels)})
        write_model_folder(run.folder / HF_FOLDER, model, load_bert_tokenizer(minilm_folder),
                           config_extra={INFO_KEY: {"eval_length": eval_length, "split": "tail"}})
        run.point_latest()
        run.close()
        return run.folder

    return make


@pytest.fixture
def judge_runs(tmp_path, make_tiny_judge) -> Path:
    """A runs folder whose judge/latest is an untrained tiny judge (for the generators' programs)."""
    make_tiny_judge(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def corpus_ids(minilm_folder, corpus_mirror):
    """(MiniLM tokenizer, author ids of alice and edgar) of the real corpus, tokenized once per session."""
    from data.windows import load_author_ids
    from tokenizer_bridge.load import load_bert_tokenizer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALICE_EDGAR_CORPUS", str(corpus_mirror))
        tok = load_bert_tokenizer(minilm_folder)
        return tok, load_author_ids(tok, ("alice", "edgar"))


@pytest.fixture
def small_mirror(corpus_mirror: Path, tmp_path: Path, monkeypatch) -> Path:
    """The first 40,000 characters of every book, as a mirror (checksums off: these are cut copies on purpose)."""
    from data.authors import AUTHORS

    folder = tmp_path / "corpus"
    folder.mkdir()
    for book in (b for a in AUTHORS.values() for b in a.books + a.more_books if isinstance(b, int)):
        text = (corpus_mirror / f"pg{book}.txt").read_text(encoding="utf-8")
        (folder / f"pg{book}.txt").write_text(text[:40_000], encoding="utf-8")
    monkeypatch.setenv("ALICE_EDGAR_CORPUS", str(folder))
    monkeypatch.setenv("ALICE_EDGAR_CORPUS_CHECKSUMS", "off")
    return folder


@pytest.fixture(scope="session")
def tiny_neo_base(tmp_path_factory, wonderland_text) -> Path:
    """A tiny random GPT-Neo (global + local layers, context 128) with a byte-level BPE trained on Wonderland,
    saved as a Hugging Face folder: the base of the generators' tiny runs."""
    import torch

    from model.config import GPTNeoConfig
    from model.gpt_neo import GPTNeo
    from plumbing.hf_folder import write_model_folder
    from tokenizer_bridge.bpe import eos_id, train_bpe

    tok = train_bpe([wonderland_text], vocab_size=400)
    cfg = GPTNeoConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=128, hidden_size=32, num_layers=2,
                       num_heads=4, window_size=16, attention_layers=["global", "local"], bos_token_id=eos_id(tok),
                       eos_token_id=eos_id(tok))
    torch.manual_seed(0)
    return write_model_folder(tmp_path_factory.mktemp("neo") / "base", GPTNeo(cfg), tok)


@pytest.fixture(scope="session")
def tiny_llama_base(tmp_path_factory, wonderland_text) -> Path:
    """A tiny random Llama (L1-L5: 3 query heads sharing 1 key/value group) with the same kind of BPE as
    `tiny_neo_base`, saved as a Hugging Face LlamaForCausalLM folder: SmolLM2's shape in miniature."""
    import torch

    from model.config import LlamaConfig
    from model.llama import Llama
    from plumbing.hf_folder import write_model_folder
    from tokenizer_bridge.bpe import eos_id, train_bpe

    tok = train_bpe([wonderland_text], vocab_size=400)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=256,
                      bos_token_id=eos_id(tok), eos_token_id=eos_id(tok))
    torch.manual_seed(0)
    return write_model_folder(tmp_path_factory.mktemp("llama") / "base", Llama(cfg), tok)
