"""scripts/classify.py and eval/scoring.py: A15 score, A14 stability and prompt sensitivity, the CLI, clear errors."""

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

from eval import scoring
from plumbing.judges import load_bert_judge
from scripts import classify

LINE = re.compile(r"^P\(Alice\)=(\d\.\d{3})  P\(Edgar\)=(\d\.\d{3})$")
REPO = Path(__file__).resolve().parent.parent
TEXT = "Alice was beginning to get very tired of sitting by her sister on the bank. " * 3


@pytest.fixture
def runs(tmp_path: Path, make_tiny_judge) -> Path:
    make_tiny_judge(tmp_path, eval_length=32)
    return tmp_path


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = classify.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_score_is_a15_and_stability_a14() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    assert scoring.judge_score(probs) == pytest.approx(0.6)  # S = P(Alice | text), mean over windows
    assert scoring.judge_score(probs, 1) == pytest.approx(0.4)
    s = scoring.stability(probs)
    assert s["min"] == pytest.approx(0.2) and s["max"] == pytest.approx(0.9)
    p = torch.tensor([0.9, 0.7, 0.2])
    assert s["std"] == pytest.approx(math_std(p.tolist()), abs=1e-6)  # the population std, by hand
    assert s["agree"] == pytest.approx(2 / 3)  # the third window disagrees with the text's decision


def math_std(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return (sum((x - m) ** 2 for x in xs) / len(xs)) ** 0.5


def test_prompt_variants_and_sensitivity(runs: Path) -> None:
    variants = scoring.prompt_variants("one two three four five six seven eight")
    assert variants == {"cut": "one two three four", "shift": "six seven eight",
                        "prefix": scoring.NEUTRAL_PREFIX + " one two three four five six seven eight"}
    model, tok, _ = load_bert_judge(None, runs)
    r = scoring.prompt_sensitivity(model, tok, TEXT, 32)
    base = scoring.window_probabilities(model, tok, TEXT, 32).mean(0)[r["author"]].item()
    cut = scoring.window_probabilities(model, tok, variants_of(TEXT)["cut"], 32).mean(0)[r["author"]].item()
    assert r["p"] == pytest.approx(base) and r["dp_cut"] == pytest.approx(cut - base)


def variants_of(text: str) -> dict:
    return scoring.prompt_variants(text)


def test_one_line_per_input(runs: Path, capsys) -> None:
    code, out, _ = _cli(capsys, "--runs-dir", str(runs), TEXT, "Quoth the Raven, Nevermore.")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    for line in lines:
        m = LINE.match(line)
        assert m, line
        assert float(m[1]) + float(m[2]) == pytest.approx(1.0, abs=0.0015)


def test_json_is_the_best_author_and_every_probability(runs: Path, capsys) -> None:
    model, tok, _ = load_bert_judge(None, runs)
    probs = scoring.window_probabilities(model, tok, TEXT, 32)  # ~50 tokens: 2 windows of 30 text tokens
    assert probs.shape == (2, 2)
    code, out, _ = _cli(capsys, "--runs-dir", str(runs), "--json", TEXT)
    r = json.loads(out)
    assert code == 0 and set(r) == {"author", "probs"} and set(r["probs"]) == {"alice", "edgar"}
    geometric = probs.log().mean(0).exp()  # the windows' log P averaged, then normalised
    assert r["probs"]["alice"] == pytest.approx((geometric / geometric.sum())[0].item(), abs=1e-6)
    assert r["author"] == max(r["probs"], key=r["probs"].get)


def test_file_stdin_and_windows_view(runs: Path, capsys, monkeypatch, tmp_path: Path) -> None:
    story = tmp_path / "story.txt"
    story.write_text(TEXT)
    code, out, _ = _cli(capsys, "--runs-dir", str(runs), "--file", str(story), "--windows")
    assert code == 0 and LINE.match(out.splitlines()[0]) and "2 windows" in out and "spread" in out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(TEXT.encode())))
    code, out, _ = _cli(capsys, "--runs-dir", str(runs))
    assert code == 0 and LINE.match(out.strip())


def test_empty_text_is_a_clear_error(runs: Path, capsys) -> None:
    code, out, err = _cli(capsys, "--runs-dir", str(runs), "   ")
    assert code == 2 and out == "" and "empty text" in err
    code, _, err = _cli(capsys, "--runs-dir", str(runs), TEXT, "")
    assert code == 2 and "text 2 of 2 is empty" in err


def test_mix_with_explain_is_a_clear_error(runs: Path, capsys) -> None:
    code, out, err = _cli(capsys, "--runs-dir", str(runs), "--mix", "--explain", TEXT)
    assert code == 2 and out == "" and "does not go with --mix" in err


def test_no_judge_yet_is_a_clear_error(tmp_path: Path, capsys) -> None:
    code, out, err = _cli(capsys, "--runs-dir", str(tmp_path), TEXT)
    assert code == 2 and out == ""
    assert "no judge run yet" in err and "scripts.train_bert" in err


def test_module_entry_point_with_a_judge_folder(runs: Path) -> None:
    hf = next((runs / "judge").glob("2*/hf"))
    done = subprocess.run([sys.executable, "-m", "scripts.classify", "--judge", str(hf), "Curiouser and curiouser!"],
                          cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert LINE.match(done.stdout.strip())


def test_a_whole_passage_averages_its_windows_log_probabilities() -> None:
    """log P(a | passage) = (1/W) sum_w log P(a | window w) - log Z: windows (0.9, 0.1) and (0.4, 0.6) give
    (sqrt(0.36), sqrt(0.06)) normalised = (0.710, 0.290), where averaging the probabilities would give 0.65."""
    windows = torch.tensor([[0.9, 0.1], [0.4, 0.6]]).log()
    p = scoring.passage_log_probs(windows).exp()
    assert p.tolist() == pytest.approx([0.6 / (0.6 + 0.06**0.5), 0.06**0.5 / (0.6 + 0.06**0.5)])
    assert scoring.passage_log_probs(windows[:1]).exp().tolist() == pytest.approx([0.9, 0.1])  # one window: itself
