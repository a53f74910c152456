"""train/coevolve.py, train/coevolve_judge.py, train/stats.py, eval/coevolve_plot.py: B7, B11-B16 and the loop.

The end-to-end runs use a tiny random GPT-Neo (with a BPE tokenizer trained here) and a tiny random
BERT judge saved through train/checkpoint.py, so they are offline and take seconds; they check the
plumbing (files, steps, seeding, Ctrl-C), not the lecture's results (see `make coevolve` for those).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from eval.coevolve_plot import plot_run
from model.bert import Bert, BertClassifier
from model.config import BertConfig, GPTNeoConfig
from model.gpt_neo import GPTNeo
from train import checkpoint as ckpt
from train.checkpoint import read_jsonl
from train.coevolve import CoevolveConfig, coevolve, lecture_results, preset_config, slope
from train.coevolve_judge import (
    coevolution_score,
    judge_accuracy,
    judge_labels,
    judge_loss,
    mean_mismatch_ratio,
    start_tokens,
)
from train.corpus import LABELS
from train.neo_tokenizer import eos_id, train_neo_tokenizer
from train.stats import wilson_interval

ALICE_LINES = [
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
    "'Curiouser and curiouser!' cried Alice, and the White Rabbit hurried by.",
    "The Queen said to the Red King that the Looking-Glass was a very odd thing indeed.",
    "Tweedledum and Tweedledee agreed to have a battle, said the Mock Turtle with a sigh.",
]
EDGAR_LINES = [
    "Once upon a midnight dreary, while I pondered, weak and weary, over many a quaint volume.",
    "The fever called living is conquered at last, and the raven, never flitting, still is sitting.",
    "During the whole of a dull, dark, and soundless day in the autumn of the year, I had been passing alone.",
    "True! nervous, very, very dreadfully nervous I had been and am; but why will you say that I am mad?",
]


def text_of(lines: list[str], n: int, shift: int) -> str:
    """n lines cycling through `lines`, starting at `shift`, one paragraph each."""
    return "\n\n".join(lines[(i + shift) % len(lines)] for i in range(n))


SPLITS = {
    "alice": (text_of(ALICE_LINES, 120, 0), text_of(ALICE_LINES, 30, 1)),
    "edgar": (text_of(EDGAR_LINES, 120, 0), text_of(EDGAR_LINES, 30, 1)),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny random GPT-Neo (global + local layers) with a byte-level BPE trained on the test texts."""
    folder = tmp_path_factory.mktemp("neo")
    tok = train_neo_tokenizer([SPLITS["alice"][0], SPLITS["edgar"][0]], vocab_size=400)
    eos = eos_id(tok)
    cfg = GPTNeoConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=128, hidden_size=32, num_layers=2,
                       num_heads=4, window_size=16, attention_layers=["global", "local"], bos_token_id=eos,
                       eos_token_id=eos)
    torch.manual_seed(0)
    GPTNeo(cfg).save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def tiny_judge_runs(tmp_path_factory, minilm_folder) -> Path:
    """A runs folder whose judge/latest is a tiny random BertClassifier (MiniLM's WordPiece vocabulary)."""
    runs = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    bert = Bert(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64))
    run_dir = ckpt.new_run_dir(runs)
    meta = {"base_model": str(minilm_folder), "labels": LABELS}
    ckpt.save_checkpoint(run_dir, BertClassifier(bert, n_classes=2), None, step=1, meta=meta)
    ckpt.point_latest(run_dir)
    return runs


def tiny_config(base: Path, **kw) -> CoevolveConfig:
    """4 fine-tuning steps of 4 x 32 tokens, judged at steps 0, 2, 4 on 2 x 4 rows of 16 BERT tokens."""
    values = dict(base=str(base), steps=4, batch_size=4, seq_len=32, lr=1e-3, eval_every=2, rows=4, judge_len=16,
                  k=4, heldout_windows=2, seed=3, threads=1)
    values.update(kw)
    return CoevolveConfig(**values)


# ----------------------------------------------------------------------------- equations on hand examples


def test_wilson_interval_matches_published_values():
    """Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score, no correction)."""
    for (k, n), (lo, hi) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                             (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        got = wilson_interval(k, n)
        assert got[0] == pytest.approx(lo, abs=5e-5) and got[1] == pytest.approx(hi, abs=5e-5), (k, n, got)


def test_wilson_interval_symmetry_and_errors():
    lo, hi = wilson_interval(32, 64)
    assert lo == pytest.approx(1 - hi) and lo < 0.5 < hi
    assert hi - lo == pytest.approx(0.2380, abs=1e-4)  # 64 rows: 0.5 means "0.38 to 0.62"
    assert wilson_interval(64, 64)[1] == 1.0 and wilson_interval(64, 64)[0] > 0.9
    for bad in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)


def test_labels_accuracy_loss_score_ratio_by_hand():
    labels = judge_labels(2)
    assert labels.tolist() == [0, 0, 1, 1]  # B7: y = (0 x R, 1 x R)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0], [0.5, 0.0]])  # predictions 0, 1, 1, 0
    assert judge_accuracy(logits, labels) == 0.5  # rows 0 and 2 right
    p = torch.softmax(logits, dim=-1)
    by_hand = -(math.log(p[0, 0]) + math.log(p[1, 0]) + math.log(p[2, 1]) + math.log(p[3, 1])) / 4
    assert judge_loss(logits, labels) == pytest.approx(by_hand, rel=1e-6)
    assert coevolution_score(torch.tensor([0.2, 0.4, 0.9])) == pytest.approx(0.5)
    assert mean_mismatch_ratio([1.0, 1.5]) == 1.25
    with pytest.raises(ValueError):
        coevolution_score(torch.tensor([]))


def test_start_tokens_first_half_not_banned_and_seeded():
    bad = torch.zeros(20, dtype=torch.bool)
    bad[[0, 3, 4, 15]] = True
    draw = start_tokens(200, bad, torch.Generator().manual_seed(1))
    assert draw.shape == (200, 1)
    assert set(draw.flatten().tolist()) == {1, 2, 5, 6, 7, 8, 9}  # ids < 10, minus the banned 0, 3, 4
    assert torch.equal(draw, start_tokens(200, bad, torch.Generator().manual_seed(1)))
    bad[:10] = True
    with pytest.raises(ValueError, match="banned"):
        start_tokens(4, bad, torch.Generator())


def test_lecture_results_reads_trends():
    def ev(step, correct, loss, s_a, s_e):
        return {"step": step, "n": 64, "correct": correct, "acc": correct / 64, "judge_loss": loss,
                "S_alice": s_a, "S_edgar": s_e}

    r = lecture_results([ev(0, 30, 0.70, 0.45, 0.44), ev(10, 45, 0.55, 0.6, 0.3), ev(20, 58, 0.30, 0.8, 0.1)])
    assert r["chance_in_start_ci95"] and r["end_target_met"]
    assert r["acc_slope"] > 0 and r["judge_loss_slope"] < 0 and r["S_alice_slope"] > 0 > r["S_edgar_slope"]
    r = lecture_results([ev(0, 60, 0.70, 0.45, 0.44), ev(10, 50, 0.75, 0.4, 0.5)])
    assert not r["chance_in_start_ci95"] and not r["end_target_met"]
    assert slope([0, 1, 2], [1.0, 3.0, 5.0]) == pytest.approx(2.0)


def test_presets():
    c = preset_config("lecture")
    assert (c.batch_size, c.seq_len, c.lr, c.steps, c.eval_every) == (64, 128, 1e-5, 121, 10)  # B7, course code
    assert (c.rows, c.judge_len, c.k, c.repetition_penalty, c.top_k) == (32, 128, 4, 1.3, 50)  # B7, B8, B10
    assert preset_config("cpu", steps=7).steps == 7
    with pytest.raises(ValueError):
        preset_config("gpu")


# ----------------------------------------------------------------------------- the loop, end to end


def test_tiny_run_writes_metrics_samples_summary_and_plot(tiny_base, tiny_judge_runs):
    run = coevolve(tiny_config(tiny_base), runs_dir=tiny_judge_runs, splits=SPLITS)
    assert (tiny_judge_runs / "coevolve" / "latest").resolve() == run.resolve()
    config = json.loads((run / "config.json").read_text())
    assert config["judge_half"]["dtype"] == "bfloat16"  # B5 on the CPU, cast_half's default

    records = read_jsonl(run / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert [r["step"] for r in evals] == [0, 2, 4]  # step 0 before any fine-tuning, then every 2
    for r in train:
        assert math.isfinite(r["loss_alice"]) and math.isfinite(r["loss_edgar"])
    assert train[0]["loss_alice"] != train[0]["loss_edgar"]  # each generator on its own author's text

    samples = read_jsonl(run / "samples.jsonl")
    assert len(samples) == 3 * 2 * 4  # 3 evaluations x 2 generators x 4 rows
    for e in evals:
        rows = [s for s in samples if s["step"] == e["step"]]
        assert all(s["text"] and 0.0 <= s["p_alice"] <= 1.0 for s in rows)
        right = sum(s["predicted"] == s["generator"] for s in rows)
        assert e["correct"] == right and e["acc"] == pytest.approx(right / len(rows))
        for name in ("alice", "edgar"):
            mine = [s["p_alice"] for s in rows if s["generator"] == name]
            assert e[f"S_{name}"] == pytest.approx(sum(mine) / len(mine), abs=1e-6)  # B13 from the samples
        assert e["acc_low"] <= e["acc"] <= e["acc_high"]

    step0 = [s for s in samples if s["step"] == 0]
    alice0 = [s["text"] for s in step0 if s["generator"] == "alice"]
    edgar0 = [s["text"] for s in step0 if s["generator"] == "edgar"]
    assert [s["start_id"] for s in step0[:4]] == [s["start_id"] for s in step0[4:]]  # shared start tokens
    assert alice0 != edgar0  # same network at step 0, but two sampling streams

    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] and summary["steps_done"] == 4 and summary["evaluations"] == 3

    png = plot_run(runs_dir=tiny_judge_runs)
    assert png == run.resolve() / "coevolve.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = coevolve(tiny_config(tiny_base), runs_dir=tiny_judge_runs, splits=SPLITS)  # seeded: same numbers
    assert read_jsonl(again / "metrics.jsonl")[-1]["acc"] == evals[-1]["acc"]
    assert read_jsonl(again / "samples.jsonl")[-1]["text"] == samples[-1]["text"]


def test_interrupted_run_keeps_its_lines_and_plots(tiny_base, tiny_judge_runs):
    run = coevolve(tiny_config(tiny_base, steps=6, judge_dtype="float32"), runs_dir=tiny_judge_runs, splits=SPLITS,
                   stop_after=2)
    summary = json.loads((run / "summary.json").read_text())
    assert not summary["complete"] and summary["steps_done"] == 2
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2]
    assert len(read_jsonl(run / "samples.jsonl")) == 2 * 2 * 4
    assert plot_run(run).is_file()


def test_clear_errors(tiny_base, tiny_judge_runs):
    with pytest.raises(ValueError, match="k must be > 1"):
        coevolve(tiny_config(tiny_base, k=1), runs_dir=tiny_judge_runs, splits=SPLITS)
    with pytest.raises(ValueError, match="exceed the base model's context"):
        coevolve(tiny_config(tiny_base, judge_len=64), runs_dir=tiny_judge_runs, splits=SPLITS)
    short = {"alice": ("Alice.", "Alice."), "edgar": SPLITS["edgar"]}
    with pytest.raises(ValueError, match="fewer than one window"):
        coevolve(tiny_config(tiny_base), runs_dir=tiny_judge_runs, splits=short)
