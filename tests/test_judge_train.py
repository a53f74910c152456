"""Lecture A's training: A3, A7, A11-A13 by hand, the optimizer's rules, the configuration, and whole runs.

The training runs use a tiny random BERT (conftest: make_tiny_bert) with MiniLM's tokenizer on the
first 40,000 characters of each book (conftest: small_mirror), so they take seconds; they skip if
the MiniLM weights or the corpus mirror are missing.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from processes import wait_for
from safetensors.torch import load_file

from model.bert import BertClassifier
from plumbing.checkpoint import load_checkpoint
from plumbing.config import ConfigError, parse_config
from scripts import train_bert as program
from train.metrics import accuracy, convergence, cross_entropy, snapshot, update_size
from train.optim import apply_update, clip_gradients, decay_groups, lr_at, make_optimizer, sgd_step

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ equations


def test_cross_entropy_is_a3() -> None:
    z = torch.tensor([[0.0, 0.0], [2.0, -1.0], [0.5, 1.5]])
    y = torch.tensor([0, 1, 1])
    by_hand = -(math.log(0.5) + math.log(math.exp(-1) / (math.exp(2) + math.exp(-1)))
                + math.log(math.exp(1.5) / (math.exp(0.5) + math.exp(1.5)))) / 3
    assert cross_entropy(z, y).item() == pytest.approx(by_hand, rel=1e-6)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        cross_entropy(z, y[:2])


def test_three_class_cross_entropy_and_accuracy_by_hand() -> None:
    """N1: the same A3 and A11 over three authors."""
    z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 3.0, 0.0], [1.0, 2.0, 0.5]])
    y = torch.tensor([0, 2, 1, 0])
    log_p = [z[i, y[i]].item() - math.log(sum(math.exp(v) for v in z[i].tolist())) for i in range(4)]
    assert cross_entropy(z, y).item() == pytest.approx(-sum(log_p) / 4, rel=1e-6)
    assert accuracy(z, y) == 0.75  # the last row predicts 1, not 0


def test_accuracy_is_a11() -> None:
    z = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(z, torch.tensor([0, 1, 1, 1])) == 0.75


def test_update_size_is_the_l2_norm_of_the_change_a13() -> None:
    params = [torch.zeros(2), torch.zeros(1, 1)]
    before = snapshot(params)
    params[0].add_(torch.tensor([3.0, 0.0]))
    params[1].add_(4.0)
    assert update_size(params, before) == pytest.approx(5.0)


def test_sgd_step_is_a7_exactly() -> None:
    """A7: theta_1 = theta_0 - eta grad L, to the last bit."""
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3)
    F.cross_entropy(model(torch.randn(8, 6)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])).backward()
    expected = [(p - 0.1 * p.grad).detach().clone() for p in model.parameters()]
    sgd_step(model.parameters(), 0.1)
    for p, e in zip(model.parameters(), expected):
        assert torch.equal(p.detach(), e)
    opt = make_optimizer(model, "sgd", lr=0.1)  # the optimizer object the loops use does the same
    before = [p.detach().clone() for p in model.parameters()]
    F.cross_entropy(model(torch.randn(8, 6)), torch.zeros(8, dtype=torch.long)).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, b, g in zip(model.parameters(), before, grads):
        assert torch.equal(p.detach(), b - 0.1 * g)


def test_first_adamw_step_moves_each_weight_by_lr_a7_a13() -> None:
    """Adam's first step is lr * g / |g| per weight: |theta_1 - theta_0| = lr * sqrt(P) << 1."""
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 2)
    opt = make_optimizer(model, "adamw", lr=1e-4, weight_decay=0.0)
    F.cross_entropy(model(torch.randn(8, 10)), torch.tensor([0, 1] * 4)).backward()
    _, size = apply_update(model, opt, grad_clip=0.0, before=snapshot(list(model.parameters())))
    assert size == pytest.approx(1e-4 * math.sqrt(22), rel=1e-3)


def test_weight_decay_groups_matrices_and_embeddings_only(tiny_bert_config) -> None:
    """The one rule (train/optim.py): 2-D weights decay; biases and LayerNorm weights do not."""
    from model.bert import Bert

    model = BertClassifier(Bert(tiny_bert_config))
    decay, no_decay = decay_groups(model, 0.01)
    named = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {named[id(p)] for p in decay["params"]} >= {"bert.word_emb.weight", "head.weight", "bert.blocks.0.attn.qkv.weight"}
    assert all(p.dim() >= 2 for p in decay["params"])
    no = {named[id(p)] for p in no_decay["params"]}
    assert {"head.bias", "bert.emb_ln.weight", "bert.blocks.1.ln2.bias"} <= no and all(".weight" not in n or "ln" in n for n in no)
    opt = make_optimizer(model, "adamw", 1e-3, 0.01)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    # the decay really acts on a matrix and not on a LayerNorm weight: zero gradients, one step
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    w, g = model.head.weight.detach().clone(), model.bert.emb_ln.weight.detach().clone()
    opt.step()
    assert torch.allclose(model.head.weight, w * (1 - 1e-3 * 0.01)) and torch.equal(model.bert.emb_ln.weight, g)


def test_gradient_clipping_scales_to_the_norm() -> None:
    model = torch.nn.Linear(3, 1, bias=False)
    model.weight.grad = torch.tensor([[3.0, 0.0, 4.0]])  # norm 5
    assert clip_gradients(model, 1.0) == pytest.approx(5.0)
    assert torch.allclose(model.weight.grad, torch.tensor([[0.6, 0.0, 0.8]]))
    model.weight.grad = torch.tensor([[3.0, 0.0, 4.0]])
    assert clip_gradients(model, 0.0) == pytest.approx(5.0)  # 0: measured, not clipped
    assert torch.equal(model.weight.grad, torch.tensor([[3.0, 0.0, 4.0]]))
    opt = make_optimizer(model, "sgd", lr=1.0)  # apply_update clips before the step
    w = model.weight.detach().clone()
    apply_update(model, opt, grad_clip=1.0)
    assert torch.allclose(model.weight.detach(), w - torch.tensor([[0.6, 0.0, 0.8]]))


def test_convergence_a12() -> None:
    assert convergence([0.7, 0.6, 0.65, 0.3, 0.2, 0.1])["converged"] is True
    # each of A12's two conditions on its own is not enough:
    ends_lower = convergence([1.0, 0.0, 0.0, 0.0, 2.0, 0.9], k=1)  # L_final < L_initial, but the slope rises
    assert ends_lower["loss_initial"] > ends_lower["loss_final"] and ends_lower["slope"] == pytest.approx(2.75 / 17.5)
    assert ends_lower["converged"] is False
    falls = convergence([0.5, 3.0, 2.0, 1.0, 0.6], k=1)  # the slope falls, but L_final > L_initial
    assert falls["loss_initial"] < falls["loss_final"] and falls["slope"] == pytest.approx(-1.8 / 10)
    assert falls["converged"] is False
    # L_initial and L_final are the k-smoothed curve (A9) at its first and last full window: means of k losses
    three = convergence([3.0, 2.0, 1.0, 0.5, 0.4, 0.3], k=3)
    assert (three["loss_initial"], three["loss_final"]) == (pytest.approx(2.0), pytest.approx(0.4))
    flat = convergence([0.5, 0.6, 0.7, 0.8])
    assert flat["converged"] is False and flat["slope"] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        convergence([0.5])


def test_lr_schedules() -> None:
    assert lr_at("constant", 5e-7, 0.0) == lr_at("constant", 5e-7, 0.99) == 5e-7  # the course
    steps = 10
    assert lr_at("linear", 1e-4, 0 / steps) == 1e-4 and lr_at("linear", 1e-4, 9 / steps) == pytest.approx(1e-5)
    assert lr_at("cosine", 1.0, 0.5, min_ratio=0.1) == pytest.approx(0.55)
    assert lr_at("cosine", 1.0, 0.05, warmup=0.1) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.05)))


# ------------------------------------------------------------------ presets and the configuration system


def test_lecture_preset_is_a5() -> None:
    lec = program.PRESETS["lecture"]
    assert (program.batch_size(lec), lec.per_author, lec.length, lec.steps, lec.lr, lec.model, lec.schedule) == \
        (64, 32, 256, 150, 5e-7, "bert-base-uncased", "constant")
    assert program.tokens_seen(64, 256, 150) == 64 * 150 * 256  # M = N x L
    assert list(program.PRESETS) == ["cpu", "books", "lecture"]
    books = program.PRESETS["books"]  # the six-way judge of the README: every author, book split, averaged
    assert (books.authors, books.split, books.steps, books.average_from) == ("all", "book", 300, 40)


def test_a_book_split_without_a_preset_starts_from_the_books_preset() -> None:
    assert program.parse_args(["--authors", "all", "--split", "book"])[0] == program.PRESETS["books"]
    two = program.parse_args(["--authors", "alice,edgar", "--split=book"])[0]
    assert (two.authors, two.steps, two.pooling) == ("alice,edgar", 300, "mean")
    quick = program.parse_args(["--preset", "cpu", "--authors", "all", "--split", "book"])[0]
    assert (quick.split, quick.steps, quick.length) == ("book", 60, 64)  # the cpu preset, asked for by name
    assert program.parse_args(["--split", "tail"])[0] == program.PRESETS["cpu"]


def test_help_shows_every_flag_with_its_real_default(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_config(program.JudgeConfig, program.PRESETS, ["--help"], "judge", "")
    out = capsys.readouterr().out
    assert "(default: None)" not in out
    assert "--lr FLOAT" in out and "(default: 0.0001)" in out and "--per-author INT" in out
    with pytest.raises(SystemExit):
        parse_config(program.JudgeConfig, program.PRESETS, ["--preset", "lecture", "--help"], "judge", "")
    assert "(default: 5e-07)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--lr", "inf"], "--lr must be a finite number"), (["--lr", "nan"], "finite"), (["--lr", "0"], "--lr must be > 0"),
    (["--steps", "x"], "invalid int value"), (["--stepz", "3"], "unrecognized arguments"),
    (["--optimizer", "adam"], "must be one of adamw, sgd"), (["--authors", "alice,bob"], "unknown author"),
    (["--per-author", "0"], "--per-author must be >= 1"), (["--preset", "gpu"], "unknown preset"),
    (["--dropout", "-0.1"], ">= 0"),
])
def test_bad_settings_are_refused_before_anything_runs(argv, match) -> None:
    with pytest.raises(ConfigError, match=match):
        program.parse_args(argv)


# ------------------------------------------------------------------ training runs (tiny BERT, real corpus)


@pytest.fixture(scope="module")
def tiny_folder(make_tiny_bert, tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny") / "tiny-bert")


def _argv(folder: Path, runs: Path, *extra: str) -> list[str]:
    return ["--model", str(folder), "--runs-dir", str(runs), "--per-author", "2", "--length", "32",
            "--eval-length", "64", "--eval-per-author", "2", "--save-every", "0", "--lr", "1e-3",
            "--schedule", "constant", "--device", "cpu", "--precision", "fp32", *extra]  # fp32: runs compared bit by bit


def _lines(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in ("time", "step_s")}
            for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_gives_the_same_final_weights(tiny_folder, small_mirror, tmp_path) -> None:
    whole = program.train_judge(_argv(tiny_folder, tmp_path / "a", "--steps", "4", "--eval-every", "2"))
    part = program.train_judge(_argv(tiny_folder, tmp_path / "b", "--steps", "2", "--eval-every", "2"))
    assert load_checkpoint(part).step == 2
    resumed = program.train_judge(["--resume", str(part), "--steps", "4", "--runs-dir", str(tmp_path / "b")])
    assert resumed == part
    a, b = load_file(whole / "hf" / "model.safetensors"), load_file(part / "hf" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _lines(whole) == _lines(part)  # same losses, accuracies, update sizes, evaluations


def test_resume_refuses_changes_to_the_run(tiny_folder, small_mirror, tmp_path) -> None:
    run = program.train_judge(_argv(tiny_folder, tmp_path, "--steps", "1", "--eval-every", "0"))
    with pytest.raises(ConfigError, match=r"--lr \(0.001 in the run, 0.5 given\)"):
        program.train_judge(["--resume", str(run), "--steps", "3", "--lr", "0.5"])


def test_training_changes_the_weights_logs_every_step_and_saves_a_judge(tiny_folder, small_mirror, tmp_path) -> None:
    run = program.train_judge(_argv(tiny_folder, tmp_path, "--steps", "3", "--eval-every", "0", "--optimizer", "sgd"))
    lines = _lines(run)
    train = [r for r in lines if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3] and all(r["update"] > 0 for r in train)
    assert [r["step"] for r in lines if r["kind"] == "eval"] == [0, 3]  # before training and at the end
    start = load_file(tiny_folder / "model.safetensors")["bert.encoder.layer.0.output.dense.weight"]
    trained = load_file(run / "hf" / "model.safetensors")["bert.encoder.layer.0.output.dense.weight"]
    assert not torch.equal(start, trained)
    judge = BertClassifier.from_pretrained(run / "hf")  # the saved judge loads back, head included
    assert judge.labels == ["alice", "edgar"] and (tmp_path / "judge" / "latest").resolve() == run
    card = (run / "hf" / "README.md").read_text()  # the model card
    assert "Edgar Allan Poe: Gutenberg #2147, #2148, #2149" in card and str(run) in card and "A11 held-out" in card


def test_make_train_bert_end_to_end_with_ctrl_c_and_resume(tiny_folder, small_mirror, tiny_llama_base, tmp_path) -> None:
    """`make train-bert` on a tiny model, interrupted by a real Ctrl-C, resumed, then evaluated and reported."""
    env = dict(os.environ, ALICE_EDGAR_RUNS=str(tmp_path))
    # far more steps than the test lasts: the Ctrl-C always finds it training
    cmd = [sys.executable, "-m", "scripts.train_bert", *_argv(tiny_folder, tmp_path, "--steps", "100000", "--eval-every", "0")]
    log = tmp_path / "train.log"  # a file, not a pipe that would fill up while nobody reads it
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=out, text=True)

    def two_steps() -> bool:
        return any(m.read_text().count('"train"') >= 2 for m in (tmp_path / "judge").glob("2*/metrics.jsonl"))

    wait_for(two_steps, proc, "two training steps")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    err = log.read_text()
    assert proc.returncode == 130, err[-2000:]
    assert "stopping after this step" in err and "--resume" in err
    run = next((tmp_path / "judge").glob("2*/metrics.jsonl")).parent
    step = load_checkpoint(run).step
    assert 2 <= step < 100000 and [r["step"] for r in _lines(run) if r["kind"] == "train"] == list(range(1, step + 1))
    done = subprocess.run([sys.executable, "-m", "scripts.train_bert", "--resume", "--steps", str(step + 2)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and f"resuming {run}" in done.stderr, done.stderr[-2000:]
    text = "Alice was beginning to get very tired of sitting by her sister on the bank."
    mix = [sys.executable, "-m", "scripts.classify", "--mix", "--json", text]
    done = subprocess.run(mix, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "report.json does not exist" in done.stderr  # one line, and what to run:
    assert "python -m scripts.judge_report --run" in done.stderr
    for cmd in (["scripts.judge_report", "--per-author", "3", "--probe-base", str(tiny_llama_base)], ["scripts.report"]):
        done = subprocess.run([sys.executable, "-m", *cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads((run / "report.json").read_text())
    done = subprocess.run(mix, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    both = json.loads(done.stdout)  # the mix by hand from each judge's P(author) and the report's fitted weights
    alpha, weight, mu = r["authorship"][str(both["mix_length"])]["mix_weights"]
    assert both["mix_weights"] == [alpha, weight, mu] and both["mix_length"] == 64  # the shortest length: a short text
    score = {a: alpha * math.log(both["bert"][a]) + weight * math.log(both["ngram"][a]) + mu * math.log(both["probe"][a])
             for a in both["bert"]}
    z = sum(math.exp(v) for v in score.values())
    assert both["probs"] == pytest.approx({a: math.exp(v) / z for a, v in score.items()}, rel=1e-6)
    assert r["heldout"] == {"windows": 6, "per_author": 3, "length": 64} and r["memory"]["ratio"] == pytest.approx(0.5, abs=0.02)
    assert (run / "judge_plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (run / "report.html").is_file()
    page = (run / "report.html").read_text(encoding="utf-8")  # E1 on a held-out passage of each author
    assert page.count('<div class="explained">') == 2 and "a held-out passage of edgar" in page


def test_judge_plot_draws_the_loss_left_and_the_accuracies_right_with_their_smoothing(tmp_path, monkeypatch) -> None:
    """A12's two-axis plot, read back from the figure: what each axis draws is the metrics' numbers."""
    from eval import plots
    from eval.smoothing import mean_smooth

    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.setdefault("fig", fig) and Path(path))
    train = [{"step": s, "loss": l, "acc": a} for s, l, a in [(1, 0.9, 0.5), (2, 0.7, 0.5), (3, 0.8, 0.75),
                                                              (4, 0.4, 1.0), (5, 0.3, 1.0)]]
    plots.judge_plot(train, [{"step": 0, "heldout_acc": 0.5}, {"step": 5, "heldout_acc": 0.875}], "t", tmp_path / "p.png")
    left, right = drawn["fig"].axes
    as_lists = [[list(map(float, line.get_xdata())), list(map(float, line.get_ydata()))] for line in left.lines]
    loss = [0.9, 0.7, 0.8, 0.4, 0.3]
    assert as_lists == [[[1, 2, 3, 4, 5], loss], [[1, 2, 3, 4, 5], pytest.approx(mean_smooth(loss, k=3))]]
    acc_raw, acc_smooth, heldout = ([float(v) for v in line.get_ydata()] for line in right.lines)
    assert acc_raw == [0.5, 0.5, 0.75, 1.0, 1.0] and acc_smooth == pytest.approx(mean_smooth(acc_raw, k=3))
    assert heldout == [0.5, 0.875] and list(right.lines[2].get_xdata()) == [0, 5]


def test_averaged_judge_is_the_mean_of_its_steps_and_a_resume_keeps_it(tiny_folder, small_mirror, tmp_path) -> None:
    """--average-from 2 over 4 steps saves the mean of the weights after steps 2, 3 and 4 (each the judge of a run of
    that many steps), evaluates it, and a run stopped at step 3 and resumed saves the same mean."""
    own = [load_file(program.train_judge(_argv(tiny_folder, tmp_path / f"s{n}", "--steps", str(n), "--eval-every", "0"))
                     / "hf" / "model.safetensors") for n in (2, 3, 4)]
    averaged = program.train_judge(_argv(tiny_folder, tmp_path / "avg", "--steps", "4", "--eval-every", "0",
                                         "--average-from", "2"))
    mean = load_file(averaged / "hf" / "model.safetensors")
    for name in mean:
        torch.testing.assert_close(mean[name], (own[0][name] + own[1][name] + own[2][name]) / 3, atol=1e-6, rtol=1e-5)
    assert not torch.equal(mean["classifier.weight"], own[2]["classifier.weight"])
    assert _lines(averaged)[-1]["heldout_loss"] != _lines(tmp_path / "s4" / "judge" / "latest")[-1]["heldout_loss"]
    assert "the mean of steps 2-4" in (averaged / "hf" / "README.md").read_text()
    part = program.train_judge(_argv(tiny_folder, tmp_path / "part", "--steps", "3", "--eval-every", "0",
                                     "--average-from", "2"))
    program.train_judge(["--resume", str(part), "--steps", "4", "--runs-dir", str(tmp_path / "part")])
    resumed = load_file(part / "hf" / "model.safetensors")
    assert all(torch.equal(resumed[k], mean[k]) for k in mean)


def test_a_probe_fits_the_head_before_the_first_step_and_the_run_says_so(tiny_folder, small_mirror, tmp_path) -> None:
    """--probe 2: the head is fitted on 2 windows per author before step 0's evaluation (which so differs from a run
    with a random head and the same seed), the run records it, the card says it; the training batches are the same."""
    plain = program.train_judge(_argv(tiny_folder, tmp_path / "plain", "--steps", "1", "--eval-every", "0"))
    probed = program.train_judge(_argv(tiny_folder, tmp_path / "probed", "--steps", "1", "--eval-every", "0",
                                       "--probe", "2"))
    recorded = json.loads((probed / "config.json").read_text())["probe"]
    assert recorded["windows"] == 4 and 0 <= recorded["accuracy"] <= 1
    assert _lines(probed)[0]["heldout_loss"] != _lines(plain)[0]["heldout_loss"]
    assert json.loads((probed / "summary.json").read_text())["windows_per_book"] == \
        json.loads((plain / "summary.json").read_text())["windows_per_book"]
    assert "(LP-FT)" in (probed / "hf" / "README.md").read_text()


def test_a_mean_pooled_judge_trains_saves_itself_as_an_encoder_and_loads_back(tiny_folder, small_mirror, tmp_path) -> None:
    """--pooling mean: the pooler is read by nothing, so it leaves the run as it came; the folder is a BertModel
    marked mean-pooled, loads back so, is refused as --model and its card says how to read it; LoRA is refused."""
    run = program.train_judge(_argv(tiny_folder, tmp_path, "--steps", "2", "--eval-every", "0", "--pooling", "mean",
                                    "--probe", "2"))
    start, saved = load_file(tiny_folder / "model.safetensors"), load_file(run / "hf" / "model.safetensors")
    pooler = [name for name in saved if "pooler" in name]
    assert pooler and all(torch.equal(saved[name], start[name]) for name in pooler)
    layer = "bert.encoder.layer.0.output.dense.weight"
    assert not torch.equal(saved[layer], start[layer])
    config = json.loads((run / "hf" / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["classifier_pooling"] == "mean"
    assert BertClassifier.from_pretrained(run / "hf").pooling == "mean"
    card = (run / "hf" / "README.md").read_text()
    assert "the mean of the last hidden states" in card and "last_hidden_state" in card
    with pytest.raises(ConfigError, match="is a trained judge"):
        program.train_judge(_argv(run / "hf", tmp_path / "again", "--steps", "1"))
    with pytest.raises(ConfigError, match="add --pooling cls"):
        program.train_judge(_argv(tiny_folder, tmp_path / "lora", "--steps", "1", "--pooling", "mean", "--lora-rank", "2"))
