"""eval/classify.py: A15 score, A14 stability, CLI output, windows averaged, clear errors."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eval import classify
from test_checkpoint import tiny_judge_run
from train import checkpoint as ckpt

LINE = re.compile(r"^P\(Alice\)=(\d\.\d{3})  P\(Edgar\)=(\d\.\d{3})$")
REPO = Path(__file__).resolve().parent.parent
TEXT = "Alice was beginning to get very tired of sitting by her sister on the bank. " * 3


@pytest.fixture
def runs(tmp_path: Path, minilm_folder: Path) -> Path:
    tiny_judge_run(tmp_path, minilm_folder, eval_length=32)
    return tmp_path


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = classify.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_score_is_a15_and_stability_a14() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    assert classify.judge_score(probs) == pytest.approx(0.6)  # S = P(Alice | text), mean over windows
    assert classify.judge_score(probs, 1) == pytest.approx(0.4)
    s = classify.stability(probs)
    assert s["min"] == pytest.approx(0.2) and s["max"] == pytest.approx(0.9)
    assert s["agree"] == pytest.approx(2 / 3)  # the third window disagrees with the text's decision


def test_one_line_per_input(runs: Path, capsys) -> None:
    code, out, _ = _cli(capsys, "--runs-dir", str(runs), TEXT, "Quoth the Raven, Nevermore.")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    for line in lines:
        m = LINE.match(line)
        assert m, line
        assert float(m[1]) + float(m[2]) == pytest.approx(1.0, abs=0.0015)


def test_long_text_is_split_into_windows_and_averaged(runs: Path, capsys) -> None:
    model, tok, meta = ckpt.load_judge(None, runs)
    probs = classify.window_probabilities(model, tok, TEXT, 32)  # ~50 tokens: 2 windows of 30 text tokens
    assert probs.shape == (2, 2)
    code, out, _ = _cli(capsys, "--runs-dir", str(runs), "--json", TEXT)
    r = json.loads(out)
    assert code == 0 and r["windows"] == 2
    assert r["p_alice"] == pytest.approx(probs[:, 0].mean().item(), abs=1e-6)
    assert r["p_alice"] + r["p_edgar"] == pytest.approx(1.0)


def test_file_stdin_and_windows_view(runs: Path, capsys, monkeypatch, tmp_path: Path) -> None:
    story = tmp_path / "story.txt"
    story.write_text(TEXT)
    code, out, _ = _cli(capsys, "--runs-dir", str(runs), "--file", str(story), "--windows")
    assert code == 0 and LINE.match(out.splitlines()[0]) and "2 windows" in out and "spread" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO(TEXT))
    code, out, _ = _cli(capsys, "--runs-dir", str(runs))
    assert code == 0 and LINE.match(out.strip())


def test_empty_text_is_a_clear_error(runs: Path, capsys) -> None:
    code, out, err = _cli(capsys, "--runs-dir", str(runs), "   ")
    assert code == 2 and out == "" and "empty text" in err
    code, _, err = _cli(capsys, "--runs-dir", str(runs), TEXT, "")
    assert code == 2 and "text 2 of 2 is empty" in err


def test_no_checkpoint_yet_is_a_clear_error(tmp_path: Path, capsys) -> None:
    code, out, err = _cli(capsys, "--runs-dir", str(tmp_path), TEXT)
    assert code == 1 and out == ""
    assert "no judge checkpoint yet" in err and "make train-bert" in err


def test_module_entry_point(runs: Path) -> None:
    env = dict(os.environ, ALICE_EDGAR_RUNS=str(runs))
    done = subprocess.run([sys.executable, "-m", "eval.classify", "Curiouser and curiouser!"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert LINE.match(done.stdout.strip())
