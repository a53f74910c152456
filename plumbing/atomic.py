"""Files that are whole or absent: every write goes to a temporary name, then one rename.

A reader (or a run killed half-way) never sees half a file: `os.replace` within one folder is
atomic. The temporary names start with "." and carry the writer's pid, so a later start can
recognise what a killed process left behind and remove it (`remove_stale`).

Every module that writes weights, checkpoints, configs or reports uses these four functions.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

TMP_MARK = ".tmp-"  # in every temporary name: "<.name>.tmp-<pid>"

# errno values that mean "the disk (or the quota, or the file-size limit) is full"
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def tmp_name(path: Path) -> Path:
    """The temporary sibling that `path` is written to before the rename: .<name>.tmp-<pid>."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def fsync_path(path: Path) -> None:
    """Flush a file (or a folder entry) to disk, so that the rename after it cannot outrun the data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def umask_modes(path: Path) -> None:
    """Give `path` (a file, or a folder and everything in it) the modes a plain open() would under the umask
    (0644 and 0755 for the usual 022): safetensors writes its files 0600 whatever the umask, which other
    users, and containers that run under another uid, then cannot read."""
    mask = current_umask()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def atomic_file(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temporary name beside `path`, flush it, rename it over `path`.

    If write fails (disk full, Ctrl-C, a bug), the temporary file is removed and `path` keeps its
    previous content. Returns `path`.
    """
    path = Path(path)
    tmp = tmp_name(path)
    try:
        write(tmp)
        umask_modes(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """A text file (UTF-8), written atomically."""
    return atomic_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """A JSON file (indented, UTF-8), written atomically. NaN and infinities are refused: JSON has none."""
    return atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def atomic_folder(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a hidden temporary folder beside `target`, then rename it to `target`.

    If write fails, the temporary folder is removed and `target` is untouched: a half-written
    model folder never looks complete. An existing `target` is replaced only once the new
    folder is complete (it is moved aside first, and put back if the final rename fails).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = tmp_name(target), target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        umask_modes(tmp)
        if target.exists() or target.is_symlink():
            os.replace(target, old)  # keep the previous folder until the new one is in place
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if (old.exists() or old.is_symlink()) and not target.exists():
            os.replace(old, target)  # put the previous folder back
        raise
    remove_path(old)
    return target


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a folder tree; nothing if it is absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def remove_stale(folder: str | Path) -> list[str]:
    """Remove the temporary files and folders that killed writers left in `folder`; return their names.

    Call it only while no other process writes into `folder` (the run lock ensures that).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and (TMP_MARK in p.name or ".old-" in p.name)]
    for p in stale:
        remove_path(p)
    return [p.name for p in stale]


def is_disk_full(err: BaseException) -> bool:
    """True for the errors that mean no space is left (disk, quota, or file-size limit).

    An OSError carries its errno; the safetensors library reports the same failure as its own
    error whose text ends with "(os error N)".
    """
    if isinstance(err, OSError):
        return err.errno in DISK_FULL
    return any(f"(os error {code})" in str(err) for code in DISK_FULL)
