"""train/metrics.py and train/judge.py: A3, A11, A12, A13, A5/A7 settings, resume determinism, end to end.

The training runs use a tiny random BERT (tests/test_checkpoint.py) with
MiniLM's tokenizer on the real corpus, so they take seconds; they skip if the
MiniLM weights or the corpus mirror are missing.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from eval.judge_report import main as report_main
from test_checkpoint import corpus_ids, tiny_bert_folder
from train import checkpoint as ckpt
from train.judge import (
    PRESETS,
    TrainConfig,
    apply_update,
    learning_rate,
    make_optimizer,
    main as judge_main,
    preset_config,
    tokens_seen,
    train_judge,
)
from train.metrics import accuracy, convergence, cross_entropy, snapshot, update_size

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ equations


def test_cross_entropy_is_a3() -> None:
    z = torch.tensor([[0.0, 0.0], [2.0, -1.0], [0.5, 1.5]])
    y = torch.tensor([0, 1, 1])
    by_hand = -(math.log(0.5) + math.log(math.exp(-1) / (math.exp(2) + math.exp(-1)))
                + math.log(math.exp(1.5) / (math.exp(0.5) + math.exp(1.5)))) / 3
    assert cross_entropy(z, y).item() == pytest.approx(by_hand, rel=1e-6)
    assert cross_entropy(z, y).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        cross_entropy(z, y[:2])


def test_accuracy_is_a11() -> None:
    z = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(z, torch.tensor([0, 1, 1, 1])) == 0.75


def test_update_size_is_the_l2_norm_of_the_change_a13() -> None:
    params = [torch.zeros(2), torch.zeros(1, 1)]
    before = snapshot(params)
    params[0].add_(torch.tensor([3.0, 0.0]))
    params[1].add_(4.0)
    assert update_size(params, before) == pytest.approx(5.0)


def test_first_adamw_step_moves_each_weight_by_lr_a7_a13() -> None:
    """Adam's first step is lr * g / |g| per weight: |theta_1 - theta_0| = lr * sqrt(P) << 1."""
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 2)
    opt = make_optimizer(model, lr=1e-4, weight_decay=0.0)
    F.cross_entropy(model(torch.randn(8, 10)), torch.tensor([0, 1] * 4)).backward()
    before = snapshot(list(model.parameters()))
    size = apply_update(model, opt, before)
    assert size == pytest.approx(1e-4 * math.sqrt(22), rel=1e-3)


def test_convergence_a12() -> None:
    assert convergence([0.7, 0.6, 0.65, 0.3, 0.2, 0.1])["converged"] is True
    flat = convergence([0.5, 0.6, 0.7, 0.8])
    assert flat["converged"] is False and flat["slope"] > 0
    with pytest.raises(ValueError):
        convergence([0.5])


def test_lecture_preset_is_a5_and_schedules() -> None:
    lec = preset_config("lecture")
    assert (lec.batch_size, lec.length, lec.steps, lec.lr, lec.model) == (64, 256, 150, 5e-7, "bert-base-uncased")
    assert tokens_seen(64, 256, 150) == 64 * 150 * 256  # M = N x L
    assert learning_rate(1, lec) == learning_rate(150, lec) == 5e-7  # the course: constant
    cpu = preset_config("cpu", steps=10, lr=1e-4)
    assert cpu.eval_length == 256 and cpu.batch_size % 2 == 0 and set(PRESETS) == {"cpu", "lecture"}
    assert learning_rate(1, cpu) == 1e-4 and learning_rate(10, cpu) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("gpu")


# ------------------------------------------------------------------ training runs (tiny BERT, real corpus)


@pytest.fixture(scope="module")
def tiny(minilm_folder: Path, corpus_mirror: Path, tmp_path_factory) -> tuple[Path, dict]:
    folder = tiny_bert_folder(tmp_path_factory.mktemp("tiny") / "tiny-bert", minilm_folder)
    _, authors = corpus_ids(minilm_folder, corpus_mirror)
    return folder, authors


def _cfg(folder: Path, **kw) -> TrainConfig:
    base = TrainConfig(model=str(folder), batch_size=4, length=32, eval_length=64, steps=4, lr=1e-3,
                       eval_every=2, eval_per_author=2, save_every=0, device="cpu")
    return replace(base, **kw)


def _train_lines(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / ckpt.METRICS_FILE).read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in lines]


def test_resume_gives_the_same_final_weights(tiny, tmp_path: Path) -> None:
    folder, authors = tiny
    whole = train_judge(_cfg(folder), runs_dir=tmp_path / "a", authors=authors)
    cut = train_judge(_cfg(folder), runs_dir=tmp_path / "b", authors=authors, stop_after=1)  # as Ctrl-C at step 1
    assert ckpt.read_meta(cut)["step"] == 1 and ckpt.read_meta(cut)["complete"] is False
    resumed = train_judge(_cfg(folder), resume=cut, authors=authors)
    assert resumed == cut
    a, b = load_file(whole / ckpt.WEIGHTS_FILE), load_file(cut / ckpt.WEIGHTS_FILE)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert _train_lines(whole) == _train_lines(cut)  # same losses, accuracies, update sizes, evaluations
    assert ckpt.read_meta(cut)["complete"] is True


def test_training_changes_the_weights_and_logs_every_step(tiny, tmp_path: Path) -> None:
    folder, authors = tiny
    run = train_judge(_cfg(folder, steps=3, eval_every=0), runs_dir=tmp_path, authors=authors)
    lines = _train_lines(run)
    train = [r for r in lines if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all(r["update"] > 0 and 0 <= r["acc"] <= 1 and r["loss"] > 0 for r in train)
    assert [r["step"] for r in lines if r["kind"] == "eval"] == [0, 3]  # before training and at the end
    start = load_file(folder / "model.safetensors")["bert.encoder.layer.0.output.dense.weight"]
    trained = load_file(run / ckpt.WEIGHTS_FILE)["bert.blocks.0.mlp.proj.weight"]
    assert not torch.equal(start, trained)


def test_bad_settings_are_clear_errors(tiny, tmp_path: Path) -> None:
    folder, authors = tiny
    with pytest.raises(ValueError, match="even"):
        train_judge(_cfg(folder, batch_size=5), runs_dir=tmp_path, authors=authors)
    with pytest.raises(ValueError, match="held-out split"):
        train_judge(_cfg(folder, eval_per_author=10**4), runs_dir=tmp_path, authors=authors)


@pytest.fixture
def small_mirror(corpus_mirror: Path, tmp_path: Path) -> Path:
    """The first 40,000 characters of every book: the runs below tokenize it in no time."""
    from train.corpus import AUTHORS

    folder = tmp_path / "corpus"
    folder.mkdir()
    for book_id in (i for ids in AUTHORS.values() for i in ids):
        text = (corpus_mirror / f"pg{book_id}.txt").read_text(encoding="utf-8")
        (folder / f"pg{book_id}.txt").write_text(text[:40_000], encoding="utf-8")
    return folder


def test_make_train_bert_end_to_end_with_ctrl_c_and_resume(
    tiny, small_mirror: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`make train-bert` on a tiny model, interrupted by a real Ctrl-C, resumed, then reported on."""
    folder, _ = tiny
    env = dict(os.environ, ALICE_EDGAR_CORPUS=str(small_mirror), ALICE_EDGAR_RUNS=str(tmp_path))
    cmd = [sys.executable, "-m", "train.judge", "--model", str(folder), "--steps", "60", "--batch-size", "4",
           "--length", "32", "--eval-length", "64", "--eval-per-author", "2", "--eval-every", "0",
           "--save-every", "0"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = None
    while time.time() < deadline and proc.poll() is None:  # wait for two training steps, then Ctrl-C
        runs = list((tmp_path / "judge").glob("2*/metrics.jsonl"))
        if runs and runs[0].read_text().count('"train"') >= 2:
            metrics = runs[0]
            break
        time.sleep(0.02)
    assert metrics is not None and proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: checkpoint of step" in err
    run = metrics.parent.resolve()
    meta = ckpt.read_meta(run)
    steps = [r["step"] for r in _train_lines(run) if r["kind"] == "train"]
    assert 2 <= meta["step"] < 60 and steps == list(range(1, meta["step"] + 1))  # consistent with the weights
    ckpt.load_judge(run)  # every file present, same step

    # the rest in this process (the same entry points, without paying for new interpreters)
    monkeypatch.setenv("ALICE_EDGAR_CORPUS", str(small_mirror))
    monkeypatch.setenv("ALICE_EDGAR_RUNS", str(tmp_path))
    assert judge_main(["--resume"]) == 0
    out, err = capsys.readouterr()
    assert f"resuming {run}" in err and "held-out accuracy" in out
    assert ckpt.read_meta(run)["step"] == 60 and (tmp_path / "judge" / "latest").resolve() == run.resolve()

    assert report_main(["--per-author", "3"]) == 0
    out, _ = capsys.readouterr()
    plot = run / "judge_plot.png"
    assert f"plot: {plot}" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = json.loads((run / "report.json").read_text())
    assert r["heldout"] == {"windows": 6, "per_author": 3, "length": 64}
    assert r["memory"]["ratio"] == pytest.approx(0.5, abs=0.02)
    assert 0 <= r["float32"]["accuracy"] <= 1 and 0 <= r["agreement"] <= 1 and r["half"]["dtype"] == "bfloat16"
    assert "agreement float32 vs bfloat16" in out
