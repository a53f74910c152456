"""The generators' LM loss (B2), their windows, the byte-level BPE, and the neo-small pretraining program.

The pretraining runs on a tiny config and synthetic two-author text (no corpus needed: the program's
corpus reader is replaced by a synthetic one), into tmp_path: a few seconds. The Hugging Face check
skips if transformers is not installed.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from data.windows import consecutive_windows, lm_windows
from model.gpt_neo import GPTNeo
from plumbing.atomic import atomic_folder
from plumbing.precision import choose_precision
from scripts import pretrain_neo as program
from tokenizer_bridge.bpe import EOS_TOKEN, token_byte_lengths, train_bpe
from tokenizer_bridge.load import load_neo_tokenizer
from train.lm import heldout_loss, heldout_scores, lm_loss, lm_step, nats_per_byte
from train.optim import make_optimizer
from weights.store import is_installed

RARE_WORD = "Zyzzogeton"  # appears in the held-out text only
FP32 = choose_precision(torch.device("cpu"), "fp32")


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
SPLITS = {  # author -> (train, held-out); alice's held-out text repeats a word its train text never has
    "alice": (synthetic_text(ALICE_WORDS, 400, seed=1), synthetic_text(ALICE_WORDS, 60, seed=2) + (" " + RARE_WORD) * 40),
    "edgar": (synthetic_text(EDGAR_WORDS, 400, seed=3), synthetic_text(EDGAR_WORDS, 60, seed=4)),
}
TINY = ["--vocab-size", "512", "--hidden-size", "32", "--num-layers", "2", "--num-heads", "2", "--window-size", "8",
        "--context", "64", "--length", "64", "--per-author", "2", "--lr", "1e-2", "--steps", "40", "--eval-every", "20",
        "--eval-windows", "4", "--precision", "fp32", "--device", "cpu"]

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, minilm_folder):
    """(run folder, model folder) of one tiny pretraining run on SPLITS."""
    runs, out = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("store") / "neo-small"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(program, "author_texts", lambda author, split, tok: SPLITS[author])
        program.pretrain(TINY + ["--out", str(out), "--runs-dir", str(runs)])
    return next((runs / "pretrain_neo").glob("2*")), out


# ---------------------------------------------------------------------------------- B2


def test_lm_loss_is_cross_entropy_on_shifted_targets():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)  # (B, T, V)
    ids = torch.randint(0, 11, (3, 7))
    log_p = torch.log_softmax(logits, dim=-1)
    by_definition = -torch.stack([log_p[b, t, ids[b, t + 1]] for b in range(3) for t in range(6)]).mean()
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


def test_lm_windows_are_contiguous_slices():
    ids = torch.arange(100)
    batch = lm_windows(ids, 16, 10, torch.Generator().manual_seed(0))
    assert batch.shape == (16, 10)
    assert torch.equal(batch - batch[:, :1], torch.arange(10).expand(16, 10))  # consecutive tokens
    assert lm_windows(ids, 4, 100).tolist() == [list(range(100))] * 4  # the only window there is
    with pytest.raises(ValueError):
        lm_windows(ids, 1, 101)


def test_heldout_loss_is_the_mean_over_consecutive_windows(pretrained):
    """The value heldout_loss returns: B2 of each window, averaged over windows, by hand."""
    _, folder = pretrained
    model = GPTNeo.from_pretrained(folder)
    ids = torch.randint(0, 300, (100,), generator=torch.Generator().manual_seed(0))
    windows = consecutive_windows(ids, 16, 5)  # 5 of the 6 windows that fit
    with torch.no_grad():
        by_hand = sum(lm_loss(model(w[None]), w[None]).item() for w in windows) / 5
    assert heldout_loss(model, ids, 16, batch_size=2, max_windows=5) == pytest.approx(by_hand, rel=1e-5)
    assert torch.equal(windows[1], ids[16:32])


def test_l7_nats_per_byte_is_the_summed_loss_over_the_bytes_of_the_predicted_text(pretrained):
    """L7 by hand: -sum log P of tokens 1..T-1 of each window, over the UTF-8 bytes those tokens decode to."""
    _, folder = pretrained
    model, tok = GPTNeo.from_pretrained(folder), load_neo_tokenizer(folder)
    text = "\u2018Curiouser and curiouser!\u2019 cried Alice \u2014 she was so much surprised. " * 6
    ids = torch.tensor(tok.encode(text).ids)
    lengths = token_byte_lengths(tok, model.config.vocab_size)
    assert int(lengths[ids].sum()) == len(text.encode("utf-8"))  # every byte once, curly quotes included
    ids = torch.tensor(tok.encode(text.replace("\u2018", "'").replace("\u2019", "'").replace("\u2014", "-")).ids)
    scores = heldout_scores(model, ids, 16, lengths, max_windows=3)  # (ASCII, so that a cut window decodes whole)
    windows = consecutive_windows(ids, 16, 3)
    with torch.no_grad():
        nats = sum(lm_loss(model(w[None]), w[None]).item() * 15 for w in windows)
    n_bytes = sum(len(tok.decode(w[1:].tolist()).encode("utf-8")) for w in windows)
    assert scores["per_byte"] == pytest.approx(nats / n_bytes, rel=1e-5)
    assert scores["per_token"] == pytest.approx(nats / 45, rel=1e-5)
    assert nats_per_byte(3.0, 2) == 1.5
    with pytest.raises(ValueError, match="one byte"):
        nats_per_byte(1.0, 0)


def test_micro_batches_give_the_same_step(pretrained):
    _, folder = pretrained
    batch = torch.randint(0, 300, (4, 16))
    params = []
    for micro in (0, 1):
        model = GPTNeo.from_pretrained(folder)
        lm_step(model, make_optimizer(model, "sgd", lr=0.1), batch, FP32, grad_clip=0.0, micro_batch=micro)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(params[0], params[1], atol=1e-5)


def test_a_nan_loss_stops_before_the_update(pretrained):
    from train.optim import Diverged

    _, folder = pretrained
    model = GPTNeo.from_pretrained(folder)
    with torch.no_grad():
        model.wte.weight[3, 0] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(Diverged, match="nan"):
        lm_step(model, make_optimizer(model, "adamw", lr=0.1), torch.full((2, 8), 3), FP32)
    assert all(torch.equal(a, b) or torch.isnan(a).any() for a, b in zip(before, model.parameters()))


# ---------------------------------------------------------------------------------- tokenizer


def test_byte_level_bpe_round_trips_any_text():
    tok = train_bpe(["the raven said nevermore " * 20], vocab_size=300)
    text = "Unseen: ÆØÅ, 漢字, emoji 🐇 and\ttabs\n\n"
    assert tok.decode(tok.encode(text).ids) == text
    assert tok.token_to_id(EOS_TOKEN) == 0


def test_tokenizer_never_sees_the_heldout_text(pretrained):
    _, folder = pretrained
    saved = load_neo_tokenizer(folder)
    # Control: a tokenizer that saw the held-out text learns the rare word as (nearly) one token.
    leaky = train_bpe([SPLITS["alice"][0], SPLITS["alice"][1], SPLITS["edgar"][0]], vocab_size=512)
    assert len(leaky.encode(" " + RARE_WORD).ids) <= 2
    assert len(saved.encode(" " + RARE_WORD).ids) >= 5


# ---------------------------------------------------------------------------------- pretraining


def test_tiny_pretraining_lowers_the_heldout_loss(pretrained):
    run, folder = pretrained
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    first, last = evals[0]["heldout"], evals[-1]["heldout"]  # the same windows
    for author in ("alice", "edgar"):
        assert first[author] > 5.0  # about ln(vocab size) at initialisation
        assert last[author] < first[author] - 1.0, (author, first[author], last[author])
    assert [e["step"] for e in evals] == [0, 20, 40]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["tokens_trained"] == 40 * 4 * 64 and summary["precision"] == "fp32"
    assert is_installed(folder) and (run / "sample.txt").read_text().strip()


def test_saved_folder_is_a_gpt_neo_with_global_and_local_layers(pretrained):
    _, folder = pretrained
    hf = json.loads((folder / "config.json").read_text())
    tok = load_neo_tokenizer(folder)
    assert hf["model_type"] == "gpt_neo" and hf["attention_types"] == [[["global", "local"], 1]]
    assert hf["window_size"] < hf["max_position_embeddings"]
    assert hf["bos_token_id"] == hf["eos_token_id"] == tok.token_to_id(EOS_TOKEN)
    assert hf["vocab_size"] == tok.get_vocab_size()
    card = (folder / "README.md").read_text()  # its model card: made from what, measured how, whose licence
    summary = json.loads((folder / "pretrain.json").read_text())
    assert "Lewis Carroll: Gutenberg #12, #11" in card and f"{summary['final_heldout_loss']['alice']:.4g}" in card
    assert "public domain" in card and "## Measured" in card


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


def test_a_half_finished_folder_never_looks_installed(tmp_path):
    target = tmp_path / "neo-small"

    def crash_after_weights(folder):
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # e.g. Ctrl-C while the tokenizer is saved

    with pytest.raises(KeyboardInterrupt):
        atomic_folder(target, crash_after_weights)
    assert not target.exists() and not is_installed(target)
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind
    atomic_folder(target, lambda f: [(f / n).write_text("v1") for n in ("config.json", "model.safetensors")])
    with pytest.raises(KeyboardInterrupt):
        atomic_folder(target, crash_after_weights)
    assert is_installed(target) and (target / "config.json").read_text() == "v1"  # the old one survives
    assert [p.name for p in tmp_path.iterdir()] == ["neo-small"]


def test_cli_leaves_an_installed_model_alone(pretrained, capsys):
    _, folder = pretrained
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert program.main(["--out", str(folder)]) == 0
    assert "installed already" in capsys.readouterr().out
    assert (folder / "model.safetensors").stat().st_mtime_ns == before
