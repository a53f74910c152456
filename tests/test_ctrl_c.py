"""Ctrl-C at any moment: while the libraries load, in the set-up, in the loop's last step, in a save, and
when a library swallows the KeyboardInterrupt. Always "interrupted" and exit code 130 (plumbing/interrupt.py).

Every test here waits for a state the program is in (a request it made, a line it printed, a call it is
inside), never for time to pass, so a busy machine changes how long they take, not what they see.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from plumbing.checkpoint import load_checkpoint
from scripts import train_bert as judge_program

REPO = Path(__file__).resolve().parent.parent


def _argv(folder: Path, runs: Path, *extra: str) -> list[str]:
    return ["--model", str(folder), "--runs-dir", str(runs), "--per-author", "2", "--length", "32",
            "--eval-length", "64", "--eval-per-author", "2", "--eval-every", "0", "--device", "cpu",
            "--precision", "fp32", *extra]


@pytest.fixture
def held_mirror(corpus_mirror):
    """A loopback mirror of the corpus that holds its first answer until `release` is set: (url, asked, release)."""
    asked, release = threading.Event(), threading.Event()

    class Held(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(corpus_mirror), **kwargs)

        def do_GET(self):  # noqa: N802 - http.server's name
            asked.set()
            release.wait(300)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Held)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked, release
    release.set()
    server.shutdown()


def test_ctrl_c_during_set_up_says_so_and_leaves_no_run_folder(tmp_path, held_mirror, minilm_folder) -> None:
    url, asked, release = held_mirror
    proc = subprocess.Popen([sys.executable, "-m", "scripts.train_bert", "--runs-dir", str(tmp_path), "--steps", "5"],
                            cwd=REPO, env=dict(os.environ, ALICE_EDGAR_CORPUS=url), stderr=subprocess.PIPE, text=True)
    assert asked.wait(300), "the program never asked the mirror for a book"
    proc.send_signal(signal.SIGINT)  # it is inside the set-up: waiting for the book it asked for
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and err.strip().endswith("interrupted"), err[-2000:]
    assert "Traceback" not in err and not list(tmp_path.glob("judge/2*"))


IMPORT_HELD = textwrap.dedent("""
    import importlib.abc, runpy, sys, time

    class HoldTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch":
                print("importing torch", file=sys.stderr, flush=True)
                time.sleep(300)  # the Ctrl-C lands here, inside the program's imports
            return None

    sys.meta_path.insert(0, HoldTorch())
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
""")


@pytest.mark.parametrize("program", ["scripts.report", "scripts.train_bert", "scripts.classify"])
def test_ctrl_c_while_the_libraries_load_is_not_a_traceback(program) -> None:
    proc = subprocess.Popen([sys.executable, "-c", IMPORT_HELD, program], cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().strip() == "importing torch"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and err.strip() == "interrupted"


def _interrupt_once(real, when):
    """`real` wrapped so that its call number `when` sends this process a Ctrl-C from inside it."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == when:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    return wrapped


def test_ctrl_c_in_the_last_step_still_exits_130(make_tiny_bert, small_mirror, tmp_path, monkeypatch, capsys) -> None:
    folder = make_tiny_bert(tmp_path / "tiny")
    monkeypatch.setattr(judge_program, "classifier_step", _interrupt_once(judge_program.classifier_step, 2))
    assert judge_program.main(_argv(folder, tmp_path, "--steps", "2")) == 130
    err = capsys.readouterr().err
    assert "stopping after this step" in err and err.strip().endswith("interrupted")
    assert load_checkpoint(max(tmp_path.glob("judge/2*"))).step == 2  # the run is complete and saved


def test_ctrl_c_during_a_save_finishes_it_and_stops_at_the_next_step(make_tiny_bert, small_mirror, tmp_path, monkeypatch,
                                                           capsys) -> None:
    folder = make_tiny_bert(tmp_path / "tiny")
    monkeypatch.setattr(judge_program, "save_checkpoint", _interrupt_once(judge_program.save_checkpoint, 1))
    assert judge_program.main(_argv(folder, tmp_path, "--steps", "6", "--save-every", "2")) == 130
    run = max(tmp_path.glob("judge/2*"))
    # the save of step 2 is whole; the stop is seen at the end of step 3, which is saved too; step 4 never begins
    assert load_checkpoint(run).step == 3 and "--resume" in capsys.readouterr().err
    assert (run / "metrics.jsonl").read_text().count('"train"') == 3


def test_a_ctrl_c_that_a_library_swallows_is_not_lost(make_tiny_bert, small_mirror, tmp_path, monkeypatch,
                                                     capsys) -> None:
    folder = make_tiny_bert(tmp_path / "tiny")
    real = judge_program.load_data

    def swallowing(*args):  # as a `__del__` or a C callback does with an exception raised inside it
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
        return real(*args)

    monkeypatch.setattr(judge_program, "load_data", swallowing)
    before = signal.getsignal(signal.SIGINT)
    assert judge_program.main(_argv(folder, tmp_path, "--steps", "3")) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")
    assert not list(tmp_path.glob("judge/2*")) and signal.getsignal(signal.SIGINT) is before


def _generator_argv(base: Path, runs: Path, *extra: str) -> list[str]:
    return ["--base", str(base), "--runs-dir", str(runs), "--batch-size", "2", "--length", "32", "--eval-every", "1",
            "--rows", "2", "--judge-length", "12", "--overgen", "4", "--heldout-windows", "1", "--device", "cpu",
            "--precision", "fp32", *extra]


def test_ctrl_c_in_coevolve_stops_after_the_step_with_a_checkpoint(tiny_neo_base, judge_runs, small_mirror, monkeypatch,
                                                                   capsys) -> None:
    from scripts import coevolve as program

    monkeypatch.setattr(program, "lm_step", _interrupt_once(program.lm_step, 2))  # step 1, the second generator
    assert program.main(_generator_argv(tiny_neo_base, judge_runs, "--steps", "5")) == 130
    run = max(judge_runs.glob("coevolve/2*"))
    assert load_checkpoint(run).step == 1 and "--resume" in capsys.readouterr().err
    assert (run / "generators" / "alice" / "config.json").is_file()


def test_ctrl_c_in_a_teach_sweep_saves_that_run_and_ends_the_sweep(tiny_neo_base, judge_runs, small_mirror, monkeypatch,
                                                                   capsys) -> None:
    from scripts import teach as program

    monkeypatch.setitem(program.ARMS, "rl", program.Arm(step=_interrupt_once(program.rl_step, 1), writer=None))
    argv = _generator_argv(tiny_neo_base, judge_runs, "--steps", "4", "--prompts", "1", "--samples", "2",
                           "--rl-overgen", "3", "--beta", "0,0.2")
    assert program.main(argv) == 130
    [run] = judge_runs.glob("teach/2*")  # the second beta never started
    assert load_checkpoint(run).step == 1 and (run / "generators" / "edgar" / "config.json").is_file()
    err = capsys.readouterr().err
    assert f"--resume {run}" in err and err.strip().endswith("interrupted")


def test_ctrl_c_in_pretraining_stops_after_the_step_with_a_checkpoint(minilm_folder, tmp_path, monkeypatch,
                                                                      capsys) -> None:
    from scripts import pretrain_neo as program

    texts = {a: ((" ".join(f"{a} word{i % 50}" for i in range(3000))), " ".join(f"{a} held{i % 40}" for i in range(800)))
             for a in ("alice", "edgar")}
    monkeypatch.setattr(program, "author_texts", lambda author, split, tok: texts[author])
    monkeypatch.setattr(program, "lm_step", _interrupt_once(program.lm_step, 3))
    tiny = ["--vocab-size", "300", "--hidden-size", "32", "--num-layers", "2", "--num-heads", "2", "--window-size", "8",
            "--context", "64", "--length", "32", "--per-author", "2", "--steps", "50", "--eval-every", "100",
            "--eval-windows", "1", "--precision", "fp32", "--device", "cpu"]
    out = tmp_path / "neo"
    assert program.main(tiny + ["--out", str(out), "--runs-dir", str(tmp_path / "runs")]) == 130
    run = max(tmp_path.glob("runs/pretrain_neo/2*"))
    assert load_checkpoint(run).step == 3 and "--resume" in capsys.readouterr().err and not out.exists()
