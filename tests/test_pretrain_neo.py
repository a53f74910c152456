"""Tests for the generator LM loss (B2), the window sampler, the byte-level BPE and the neo-small pretraining.

The pretraining runs on a tiny config and synthetic two-author text (no corpus
needed), into tmp_path: a few seconds. The Hugging Face check skips if
transformers is not installed.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
import torch.nn.functional as F

from model.gpt_neo import GPTNeo
from tokenizer_bridge.load import load_neo_tokenizer
from train.lm import FinetuneConfig, finetune_steps, heldout_loss, lm_loss, lm_train_step, sample_windows
from train.neo_tokenizer import EOS_TOKEN, train_neo_tokenizer
from train.pretrain_neo import PretrainConfig, install_atomically, lr_at, main, pretrain
from weights.store import is_installed

RARE_WORD = "Zyzzogeton"  # appears in the held-out text only


def synthetic_text(words: list[str], n_sentences: int, seed: int) -> str:
    """Sentences of 4-9 words drawn from `words`, a stand-in for one author's style."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n_sentences):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(4, 9)))
        sentences.append(body.capitalize() + rng.choice([".", "!", "?", ","]))
    return " ".join(sentences)


ALICE_WORDS = "alice said the queen rabbit little curious very dear oh tea hatter cat grin".split()
EDGAR_WORDS = "the raven nevermore dark midnight dreary tomb heart beating chamber door lenore".split()


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def splits() -> dict[str, tuple[str, str]]:
    """author -> (train, held-out); the held-out text of alice repeats a word the train text never has."""
    alice_heldout = synthetic_text(ALICE_WORDS, 60, seed=2) + (" " + RARE_WORD) * 40
    return {
        "alice": (synthetic_text(ALICE_WORDS, 400, seed=1), alice_heldout),
        "edgar": (synthetic_text(EDGAR_WORDS, 400, seed=3), synthetic_text(EDGAR_WORDS, 60, seed=4)),
    }


def tiny_config(**overrides) -> PretrainConfig:
    """2 layers (one global, one local with a window of 8), context 64, a few dozen steps."""
    cfg = dict(vocab_size=512, hidden_size=32, num_layers=2, num_heads=2, window_size=8, context=64,
               seq_len=64, batch_size=4, lr=1e-2, warmup_steps=5, steps=40, eval_every=20, eval_windows=4)
    cfg.update(overrides)
    return PretrainConfig(**cfg)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, splits):
    """(metrics, folder) of one tiny pretraining run installed into a temporary folder."""
    folder = tmp_path_factory.mktemp("store") / "neo-small"
    metrics = pretrain(tiny_config(), splits, folder, run_dir=None, sample_tokens=30)
    return metrics, folder


# ---------------------------------------------------------------------------------- B2


def test_lm_loss_is_cross_entropy_on_shifted_targets():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)  # (B, T, V)
    ids = torch.randint(0, 11, (3, 7))
    by_hand = F.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1))
    log_p = torch.log_softmax(logits, dim=-1)
    by_definition = -torch.stack([log_p[b, t, ids[b, t + 1]] for b in range(3) for t in range(6)]).mean()
    assert torch.allclose(lm_loss(logits, ids), by_hand, atol=1e-6)
    assert torch.allclose(lm_loss(logits, ids), by_definition, atol=1e-6)


def test_lm_loss_scores_row_t_against_token_t_plus_1():
    ids = torch.tensor([[1, 2, 3, 4, 0]])
    logits = torch.full((1, 5, 5), -20.0)
    logits[0, torch.arange(4), ids[0, 1:]] = 20.0  # row t is sure of token t + 1
    assert lm_loss(logits, ids).item() < 1e-6
    unshifted = torch.full((1, 5, 5), -20.0)
    unshifted[0, torch.arange(5), ids[0]] = 20.0  # sure of its own token: wrong for a language model
    assert lm_loss(unshifted, ids).item() > 10.0
    with pytest.raises(ValueError):
        lm_loss(logits, ids[:, :4])


def test_sample_windows_are_contiguous_slices():
    ids = torch.arange(100)
    batch = sample_windows(ids, 16, 10, torch.Generator().manual_seed(0))
    assert batch.shape == (16, 10)
    assert torch.equal(batch - batch[:, :1], torch.arange(10).expand(16, 10))  # consecutive tokens
    assert batch.min() >= 0 and batch.max() <= 99
    assert sample_windows(ids, 4, 100).tolist() == [list(range(100))] * 4  # the only window there is
    with pytest.raises(ValueError):
        sample_windows(ids, 1, 101)


def test_micro_batches_give_the_same_step(pretrained):
    _, folder = pretrained
    batch = torch.randint(0, 300, (4, 16))
    params = []
    for micro in (None, 1):
        model = GPTNeo.from_pretrained(folder)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        lm_train_step(model, opt, batch, micro_batch_size=micro, grad_clip=None)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(params[0], params[1], atol=1e-5)


def test_finetune_steps_lowers_the_loss_on_its_text(pretrained, splits):
    _, folder = pretrained
    model = GPTNeo.from_pretrained(folder)
    tok = load_neo_tokenizer(folder)
    ids = torch.tensor(tok.encode(splits["alice"][0]).ids)
    before = heldout_loss(model, ids, 32, max_windows=8)
    cfg = FinetuneConfig(steps=15, batch_size=8, seq_len=32, lr=3e-3)
    losses, opt = finetune_steps(model, ids, cfg, generator=torch.Generator().manual_seed(0))
    assert len(losses) == 15 and isinstance(opt, torch.optim.AdamW)
    assert heldout_loss(model, ids, 32, max_windows=8) < before


# ---------------------------------------------------------------------------------- tokenizer


def test_byte_level_bpe_round_trips_any_text():
    tok = train_neo_tokenizer(["the raven said nevermore " * 20], vocab_size=300)
    text = "Unseen: ÆØÅ, 漢字, emoji 🐇 and\ttabs\n\n"
    assert tok.decode(tok.encode(text).ids) == text
    assert tok.token_to_id(EOS_TOKEN) == 0


def test_tokenizer_never_sees_the_heldout_text(pretrained, splits):
    _, folder = pretrained
    saved = load_neo_tokenizer(folder)
    # Control: a tokenizer that saw the held-out text learns the rare word as (nearly) one token.
    leaky = train_neo_tokenizer([splits["alice"][0], splits["alice"][1], splits["edgar"][0]], vocab_size=512)
    assert len(leaky.encode(" " + RARE_WORD).ids) <= 2
    assert len(saved.encode(" " + RARE_WORD).ids) >= 5


# ---------------------------------------------------------------------------------- pretraining


def test_lr_schedule_warms_up_then_decays():
    cfg = PretrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, 0.0, cfg) == pytest.approx(0.1)
    assert lr_at(9, 0.0, cfg) == pytest.approx(1.0)
    assert lr_at(50, 0.5, cfg) == pytest.approx(0.55)
    assert lr_at(99, 1.0, cfg) == pytest.approx(0.1)


def test_tiny_pretraining_lowers_the_heldout_loss(pretrained):
    metrics, folder = pretrained
    first, last = metrics["evals"][0]["heldout"], metrics["evals"][-1]["heldout"]  # the same windows
    for author in ("alice", "edgar"):
        assert first[author] > 5.0  # about ln(vocab size) at initialisation
        assert last[author] < first[author] - 1.0, (author, first[author], last[author])
    assert [e["step"] for e in metrics["evals"]] == [0, 20, 40]
    assert metrics["steps"] == 40 and metrics["tokens_trained"] == 40 * 4 * 64
    assert is_installed(folder)


def test_saved_folder_is_a_gpt_neo_with_global_and_local_layers(pretrained):
    _, folder = pretrained
    hf = json.loads((folder / "config.json").read_text())
    tok = load_neo_tokenizer(folder)
    assert hf["model_type"] == "gpt_neo"
    assert hf["attention_types"] == [[["global", "local"], 1]]
    assert hf["window_size"] < hf["max_position_embeddings"]
    assert hf["bos_token_id"] == hf["eos_token_id"] == tok.token_to_id(EOS_TOKEN)
    assert hf["vocab_size"] == tok.get_vocab_size()


def test_transformers_loads_it_with_the_same_logits(pretrained):
    transformers = pytest.importorskip("transformers")
    _, folder = pretrained
    ours = GPTNeo.from_pretrained(folder)
    theirs = transformers.GPTNeoForCausalLM.from_pretrained(str(folder)).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(0))  # 48 > window 8
    with torch.no_grad():
        diff = (ours(ids) - theirs(ids).logits).abs().max().item()
    assert diff <= 1e-4, diff
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    text = "The Raven said: nevermore!"
    assert hf_tok(text)["input_ids"] == load_neo_tokenizer(folder).encode(text).ids
    assert hf_tok.eos_token == EOS_TOKEN


def test_a_half_finished_install_never_looks_installed(tmp_path):
    target = tmp_path / "neo-small"

    def crash_after_weights(folder):
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # e.g. Ctrl-C while the tokenizer is saved

    with pytest.raises(KeyboardInterrupt):
        install_atomically(crash_after_weights, target)
    assert not target.exists() and not is_installed(target)
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind

    install_atomically(lambda f: [(f / n).write_text("v1") for n in ("config.json", "model.safetensors")], target)
    with pytest.raises(KeyboardInterrupt):
        install_atomically(crash_after_weights, target)
    assert is_installed(target) and (target / "config.json").read_text() == "v1"  # the old install survives
    assert [p.name for p in tmp_path.iterdir()] == ["neo-small"]


def test_cli_leaves_an_installed_model_alone(pretrained, capsys):
    _, folder = pretrained
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert main(["--out", str(folder)]) == 0
    assert "installed already" in capsys.readouterr().out
    assert (folder / "model.safetensors").stat().st_mtime_ns == before
