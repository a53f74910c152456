"""The bad-input and fault table of issue 19, one test per row (or a few rows of one kind), run as a user
meets them: the command line in a subprocess, with its exit code and its one line on standard error.

The general rules they check: bad input gets one line naming the input and what to do, exit 2, before
any slow work; a failure of the machine or the files exit 1 with the file named; nothing a user owns is
deleted; a resumed run uses exactly the models its config.json names; caches are keyed by what they
depend on; files are written with the umask's permissions.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from plumbing.checkpoint import load_checkpoint
from scripts import coevolve as coevolve_program
from scripts import train_bert as judge_program

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
J = ["--steps", "1", "--per-author", "2", "--length", "32", "--eval-length", "64", "--eval-per-author", "2",
     "--eval-every", "0", "--device", "cpu", "--precision", "fp32"]


def run_module(*args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", *args], cwd=REPO, env=dict(os.environ, **(env or {})), capture_output=True,
                          text=True, timeout=600, input=stdin)


def one_line_error(done: subprocess.CompletedProcess, code: int, *says: str) -> None:
    """The program ended with `code` and one error line that holds every phrase of `says`; no traceback."""
    assert done.returncode == code, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    for phrase in says:
        assert phrase in last, (phrase, last)


@pytest.fixture
def judge_run(make_tiny_bert, small_mirror, tmp_path) -> Path:
    """A tiny judge trained for one step, in tmp_path/runs (the real program, in-process)."""
    folder = make_tiny_bert(tmp_path / "tiny")
    return judge_program.train_judge(["--model", str(folder), "--runs-dir", str(tmp_path / "runs"), *J])


# ----------------------------------------------------------------------------- B1, W19: make


def test_b1_w19_make_refuses_runs_dir_in_args_and_stops_after_help(tmp_path) -> None:
    env = dict(os.environ, ALICE_EDGAR_RUNS=str(tmp_path))
    done = subprocess.run(["make", "-s", "train-bert", "ARGS=--runs-dir /tmp/elsewhere --steps 1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "give the runs folder as ALICE_EDGAR_RUNS=FOLDER make train-bert" in done.stderr
    assert not (tmp_path / "judge").exists()
    done = subprocess.run(["make", "-s", "train-bert", "ARGS=--help"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and "usage: python -m scripts.train_bert" in done.stdout
    assert "report page:" not in done.stdout and "B5 memory" not in done.stdout  # neither report step ran


# ----------------------------------------------------------------------------- B2: --out never deletes


def test_b2_pretrain_out_that_holds_user_files_or_is_a_file_is_refused_before_training(tmp_path) -> None:
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("notes")
    done = run_module("scripts.pretrain_neo", "--runs-dir", str(tmp_path / "runs"), "--out", str(mine))
    one_line_error(done, 2, f"--out {mine} holds files this program did not write (notes.txt, sub)")
    assert (mine / "notes.txt").read_text() == "notes" and (mine / "sub").is_dir()
    (tmp_path / "some_file.txt").write_text("keep me")
    done = run_module("scripts.pretrain_neo", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "some_file.txt"))
    one_line_error(done, 2, "is a file, not a model folder")
    assert (tmp_path / "some_file.txt").read_text() == "keep me" and "tokenizing" not in done.stderr


# ----------------------------------------------------------------------------- B4: a resumed run keeps its judge


def test_b4_a_resumed_coevolve_run_is_judged_by_the_judge_it_started_with(tiny_neo_base, make_tiny_judge, small_mirror,
                                                                         tmp_path) -> None:
    first = make_tiny_judge(tmp_path, seed=1)
    argv = ["--base", str(tiny_neo_base), "--runs-dir", str(tmp_path), "--batch-size", "2", "--length", "32",
            "--eval-every", "1", "--rows", "2", "--judge-length", "12", "--overgen", "4", "--heldout-windows", "1",
            "--device", "cpu", "--precision", "fp32"]
    run = coevolve_program.coevolve(argv + ["--steps", "1"])
    make_tiny_judge(tmp_path, seed=2)  # a newer judge is `latest` now
    saved = json.loads((run / "config.json").read_text())["judge_folder"]
    assert saved == str((first / "hf").resolve())
    moved = tmp_path / "moved-away"
    shutil.move(first, moved)  # without its own judge, the run refuses to go on rather than take the newer one
    done = run_module("scripts.coevolve", "--resume", str(run), "--steps", "2", "--runs-dir", str(tmp_path))
    one_line_error(done, 2, "the judge this run was made with", "is gone")
    shutil.move(moved, first)
    assert coevolve_program.main(["--resume", str(run), "--steps", "2", "--runs-dir", str(tmp_path)]) == 0
    assert load_checkpoint(run).step == 2


# ----------------------------------------------------------------------------- B5, W14: the n-gram cache


def test_b5_w14_the_ngram_judge_is_retrained_for_other_text_and_when_its_cache_is_broken(corpus_ids, tmp_path,
                                                                                       monkeypatch, capsys) -> None:
    from plumbing.judges import load_ngram_judge, ngram_folder

    tok, _ = corpus_ids
    judge, folder = load_ngram_judge(["alice", "edgar"], "tail", tok, tmp_path)
    assert "training the independent n-gram judge" in capsys.readouterr().err
    again, _ = load_ngram_judge(["alice", "edgar"], "tail", tok, tmp_path)
    assert again.source == judge.source and "training" not in capsys.readouterr().err  # the same text: loaded
    import plumbing.judges as judges

    real = judges.author_texts
    monkeypatch.setattr(judges, "author_texts", lambda a, s, t: ("other text " * 500 + real(a, s, t)[0], ""))
    other, _ = load_ngram_judge(["alice", "edgar"], "tail", tok, tmp_path)
    assert other.source != judge.source and "trained on other text" in capsys.readouterr().err
    monkeypatch.setattr(judges, "author_texts", real)
    (folder / "ngram.json").write_text('{"authors": ["al')  # cut
    fixed, _ = load_ngram_judge(["alice", "edgar"], "tail", tok, tmp_path)
    assert fixed.source == judge.source and "is broken" in capsys.readouterr().err
    assert folder == ngram_folder(["alice", "edgar"], "tail", tmp_path)


# ----------------------------------------------------------------------------- B6: file modes


def test_b6_written_files_get_the_umask_modes_and_unreadable_weights_are_said_to_be(judge_run, monkeypatch) -> None:
    mask = os.umask(0)
    os.umask(mask)
    written = [p for p in judge_run.rglob("*.safetensors")] + [judge_run / "hf" / "config.json"]
    assert len(written) >= 3  # the judge, the checkpoint's models and optimizers
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    from model.loading import read_safetensors

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as another user would find a 0600 file
    with pytest.raises(PermissionError, match=r"cannot read .*model.safetensors: permission denied .*chmod a\+r"):
        read_safetensors(judge_run / "hf")


# ----------------------------------------------------------------------------- B7, W26: teach's flags


def test_b7_w26_match_judge_calls_needs_best_of_n_and_an_rl_run_and_betas_are_unique(judge_run, tmp_path) -> None:
    done = run_module("scripts.teach", "--arm", "best-of-n", "--steps", "1", "--runs-dir", str(tmp_path / "runs"),
                      "--match-judge-calls", str(judge_run))
    one_line_error(done, 2, "is a judge run, not a teach run")
    done = run_module("scripts.teach", "--arm", "rl", "--steps", "1", "--runs-dir", str(tmp_path / "runs"),
                      "--match-judge-calls", str(judge_run))
    one_line_error(done, 2, "goes with --arm best-of-n, not --arm rl")
    done = run_module("scripts.teach", "--beta", "0.05,0.05", "--steps", "1", "--runs-dir", str(tmp_path / "runs"))
    one_line_error(done, 2, "0.05 given more than once")


# ----------------------------------------------------------------------------- B8, W1, W2, W3: edited judge and generator folders


def test_b8_w1_a_tokenizer_that_is_not_the_models_or_not_a_tokenizer_is_named(judge_run, tiny_neo_base, tmp_path) -> None:
    gen = tmp_path / "gen"
    shutil.copytree(tiny_neo_base, gen)
    shutil.copy(judge_run / "hf" / "tokenizer.json", gen / "tokenizer.json")  # MiniLM's 30522 tokens, a 400-token model
    done = run_module("scripts.generate", str(gen), "--tokens", "4", "--rows", "1")
    one_line_error(done, 1, f"{gen / 'tokenizer.json'} has 30522 tokens", "another model's tokenizer")
    judge = tmp_path / "judge"
    shutil.copytree(judge_run / "hf", judge)
    (judge / "tokenizer.json").write_text('{"version": "1.0", "trunc')
    done = run_module("scripts.classify", "--judge", str(judge), "hi")
    one_line_error(done, 1, f"{judge / 'tokenizer.json'} is not a valid tokenizer", "write that folder again")


def _edit_config(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def test_w2_w3_a_judge_config_without_labels_or_with_a_bad_window_length(judge_run, tmp_path) -> None:
    judge = tmp_path / "judge"
    shutil.copytree(judge_run / "hf", judge)
    _edit_config(judge, lambda c: [c.pop("id2label"), c.pop("label2id")])
    done = run_module("scripts.classify", "--judge", str(judge), "--json", "Alice was beginning to get very tired")
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(json.loads(done.stdout)["probs"]) == ["LABEL_0", "LABEL_1"]  # the head's two classes
    for bad in (0, 100000):
        _edit_config(judge, lambda c: c["alice_edgar"].update(eval_length=bad))
        done = run_module("scripts.classify", "--judge", str(judge), "hi there")
        one_line_error(done, 2, f"{judge / 'config.json'}: alice_edgar.eval_length is {bad}", "3 to 512")


# ----------------------------------------------------------------------------- W4, W5, W6, W7, W15, W22, W23: run folders


def test_w4_w6_w7_w15_a_run_folder_of_another_kind_a_dangling_latest_and_an_hf_folder(judge_run, tmp_path) -> None:
    one_line_error(run_module("scripts.coevolve", "--resume", str(judge_run)), 2, "is a judge run, not a coevolve run")
    one_line_error(run_module("scripts.compare", str(judge_run), str(judge_run)), 2,
                   "is a judge run, not a teach or coevolve run")
    done = run_module("scripts.report", str(judge_run / "hf"))
    one_line_error(done, 2, "is the hf/ folder of a run", f"give the run folder, {judge_run}")
    one_line_error(run_module("scripts.report", str(tmp_path)), 2, f"{tmp_path} is not a run folder (it has no config.json)")
    dangling = tmp_path / "ra" / "judge"
    dangling.mkdir(parents=True)
    (dangling / "latest").symlink_to("does-not-exist")
    for cmd in (["scripts.classify", "--runs-dir", str(tmp_path / "ra"), "hi"],
                ["scripts.train_bert", "--resume", "--runs-dir", str(tmp_path / "ra")],
                ["scripts.report", "--runs-dir", str(tmp_path / "ra")]):
        one_line_error(run_module(*cmd), 2, "latest points to a missing folder (does-not-exist)")
    one_line_error(run_module("scripts.train_bert", "--resume", str(dangling / "latest")), 2,
                   "points to a missing folder (does-not-exist)")


def test_w5_w22_w23_resuming_an_edited_an_older_or_an_old_layout_run(judge_run, tmp_path, small_mirror) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(judge_run, edited)
    _edit_config(edited, lambda c: c["config"].update(authors="alice,edgar,twain"))
    one_line_error(run_module("scripts.train_bert", "--resume", str(edited), "--steps", "3"), 2,
                   "the checkpoint does not fit the model that the run's config.json describes", "edited?")
    older = tmp_path / "older"
    shutil.copytree(judge_run, older)
    _edit_config(older, lambda c: [c["config"].pop(k) for k in list(c["config"]) if k.startswith("lora_")])
    done = run_module("scripts.train_bert", "--resume", str(older), "--steps", "2")
    assert done.returncode == 0 and "is from before LoRA" in done.stderr, done.stderr[-2000:]
    unknown = tmp_path / "unknown"
    shutil.copytree(judge_run, unknown)
    _edit_config(unknown, lambda c: c["config"].pop("optimizer"))
    one_line_error(run_module("scripts.train_bert", "--resume", str(unknown), "--steps", "2"), 2,
                   f"{unknown / 'config.json'} does not fit", "another version", "start a new run")
    flat = tmp_path / "flat"
    shutil.copytree(judge_run, flat)
    step = next((flat / "checkpoints").iterdir())
    for f in step.iterdir():
        f.rename(flat / "checkpoints" / f.name)
    step.rmdir()
    one_line_error(run_module("scripts.train_bert", "--resume", str(flat), "--steps", "2"), 2,
                   "holds no step-NNNNNN folder", "older layout")


# ----------------------------------------------------------------------------- W9, W10: classify's input


def test_w9_w10_many_windows_show_progress_and_unknown_symbols_get_no_verdict(judge_run, tmp_path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("Alice was beginning to get very tired of sitting by her sister on the bank. " * 400)
    done = run_module("scripts.classify", "--judge", str(judge_run), "--file", str(big))
    assert done.returncode == 0 and "judging" in done.stderr and "windows" in done.stderr, done.stderr[-2000:]
    one_line_error(run_module("scripts.classify", "--judge", str(judge_run), "😀😀😀🎉🎉🎉🐍🐍🐍"), 2,
                   "the judge knows none of this text's", "no word to judge")
    done = run_module("scripts.classify", "--judge", str(judge_run), "🐍🐍🐍🐍 🐍🐍🐍 🐍🐍 Alice")
    assert done.returncode == 0 and "warning:" in done.stderr and "unknown to the judge" in done.stderr


# ----------------------------------------------------------------------------- W11, W12, W21: the wrong kind of model


def test_w11_w12_w21_a_judge_where_a_generator_goes_and_the_other_way_round(judge_run, tiny_neo_base, tmp_path) -> None:
    one_line_error(run_module("scripts.generate", str(judge_run / "hf")), 2,
                   "holds a BERT model", "not a generator", "scripts.classify or --judge")
    one_line_error(run_module("scripts.train_bert", *J, "--runs-dir", str(tmp_path), "--model", str(tiny_neo_base)), 2,
                   "holds a GPT-Neo generator, not a BERT model")
    one_line_error(run_module("scripts.train_bert", *J, "--runs-dir", str(tmp_path), "--model", str(judge_run / "hf")), 2,
                   "is a trained judge", "--resume RUN")
    done = run_module("scripts.teach", "--steps", "1", "--runs-dir", str(tmp_path), "--start-from", str(judge_run))
    one_line_error(done, 2, "must be a coevolve (or teach) run folder with generators/<author>/")
    assert "precision:" not in done.stderr  # refused before the set-up


# ----------------------------------------------------------------------------- W17, W18: mirror files


def test_w17_w18_a_mirror_file_with_nul_bytes_a_folder_or_a_looping_link(corpus_mirror, tmp_path) -> None:
    from data.authors import AUTHORS

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for book in {b for a in AUTHORS.values() for b in a.books}:
        (mirror / f"pg{book}.txt").symlink_to(corpus_mirror / f"pg{book}.txt")
    (mirror / "pg12.txt").unlink()
    text = (corpus_mirror / "pg12.txt").read_bytes()
    (mirror / "pg12.txt").write_bytes(text[:50_000] + b"\x00" * 5000 + text[50_000:])
    env = {"ALICE_EDGAR_CORPUS": str(mirror), "ALICE_EDGAR_CORPUS_CHECKSUMS": "off"}
    cmd = ["scripts.train_bert", *J, "--runs-dir", str(tmp_path / "runs"), "--model", "minilm"]
    one_line_error(run_module(*cmd, env=env), 2, "pg12.txt", "is not a text file", "'\\x00'")
    (mirror / "pg12.txt").unlink()
    (mirror / "pg12.txt").mkdir()
    one_line_error(run_module(*cmd, env=env), 1, "pg12.txt in the mirror folder", "is a folder, not the book's text file")
    (mirror / "pg12.txt").rmdir()
    (mirror / "pg12.txt").symlink_to("pg12.txt")
    one_line_error(run_module(*cmd, env=env), 1, "is a broken or looping symlink")


# ----------------------------------------------------------------------------- W24: the runs folder


def test_w24_a_runs_folder_that_cannot_be_written_is_said_before_the_set_up(tmp_path, monkeypatch, capsys) -> None:
    import tempfile

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    assert judge_program.main(["--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"the runs folder {tmp_path} is not writable (Permission denied)" in err and "--runs-dir" in err
    assert "tokenizing" not in err


# ----------------------------------------------------------------------------- W26: judge_report --per-author


def test_w26_judge_report_per_author_bounds_both_judges_table(judge_run, tiny_llama_base, tiny_neo_base,
                                                              tmp_path) -> None:
    done = run_module("scripts.judge_report", "--run", str(judge_run), "--runs-dir", str(tmp_path / "runs"),
                      "--per-author", "2", "--probe-base", str(tiny_llama_base))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((judge_run / "report.json").read_text())
    assert report["heldout"]["per_author"] == 2
    assert {length: r["passages"] for length, r in report["authorship"].items()} == {"64": 4, "128": 4, "256": 4, "1024": 4}
    one_line_error(run_module("scripts.judge_report", "--per-author", "0"), 2, "a whole number >= 1")
    one_line_error(run_module("scripts.judge_report", "--run", str(judge_run), "--runs-dir", str(tmp_path / "runs"),
                              "--per-author", "2", "--probe-base", str(tiny_neo_base)), 2, "reads a Llama-family")
