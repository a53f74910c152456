"""Run folders: where a program's outputs go, the metrics it logs, and the lock that keeps two processes out.

    runs/<kind>/<YYYYmmdd-HHMMSS>/     one folder per run (kind: judge, pretrain_neo, coevolve, teach)
        config.json                    the program's settings and facts about its inputs
        metrics.jsonl                  one JSON line per step or evaluation
        checkpoints/step-NNNNNN/       the newest complete checkpoint (plumbing/checkpoint.py)
    runs/<kind>/latest                 a symlink to the newest run with something to show

The runs folder is --runs-dir, else $ALICE_EDGAR_RUNS, else <repo>/runs (git-ignored).
A run folder is created only once the settings are checked and the set-up is done, and removed
again if the run is stopped before it wrote anything: no orphan folders.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from pathlib import Path

from plumbing.atomic import atomic_file, atomic_write_json, remove_path, remove_stale
from plumbing.interrupt import stop_was_asked
from weights.store import REPO_ROOT

RUNS_ENV = "ALICE_EDGAR_RUNS"
MAKE = {"judge": "make train-bert", "pretrain_neo": "make pretrain-neo", "coevolve": "make coevolve", "teach": "make teach"}
PROGRAM = {"judge": "python -m scripts.train_bert", "pretrain_neo": "python -m scripts.pretrain_neo",
           "coevolve": "python -m scripts.coevolve", "teach": "python -m scripts.teach"}  # the program of each run kind
LATEST = "latest"
CONFIG_FILE, METRICS_FILE, LOCK_FILE = "config.json", "metrics.jsonl", ".lock"


class RunError(ValueError):
    """A run folder that cannot be used as asked (missing, locked, of another kind)."""


def runs_root(runs_dir: str | Path | None = None) -> Path:
    """The runs folder: `runs_dir`, else $ALICE_EDGAR_RUNS, else <repo>/runs. RunError if it is a file."""
    env = os.environ.get(RUNS_ENV, "").strip()
    root = Path(runs_dir).expanduser() if runs_dir is not None else (Path(env).expanduser() if env else REPO_ROOT / "runs")
    if root.exists() and not root.is_dir():
        raise RunError(f"the runs folder {root} is a file, not a folder: give --runs-dir a folder (or set {RUNS_ENV})")
    return root


def check_writable(runs_dir: str | Path | None = None) -> Path:
    """The runs folder, made if missing, once a file could be written in it: RunError before any set-up if not."""
    root = runs_root(runs_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".writable-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise RunError(f"the runs folder {root} is not writable ({err.strerror or err}): give another one with "
                       f"--runs-dir FOLDER (or set {RUNS_ENV})") from None
    return root


def latest_run(kind: str, runs_dir: str | Path | None = None) -> Path:
    """The run that <runs>/<kind>/latest points to; RunError saying how to make one if there is none."""
    link = runs_root(runs_dir) / kind / LATEST
    if link.is_symlink() and not link.exists():
        raise RunError(f"{link} points to a missing folder ({os.readlink(link)}): give a run folder instead, "
                       f"or start a new run with `{MAKE.get(kind, PROGRAM.get(kind))}`")
    if not link.exists():
        raise RunError(f"no {kind} run yet ({link} does not exist): start one with "
                       f"`{MAKE.get(kind, PROGRAM.get(kind))}` (or `{PROGRAM.get(kind)}`)")
    return link.resolve()


def point_latest(run_dir: Path) -> Path:
    """Make <runs>/<kind>/latest a relative symlink to `run_dir`, replaced atomically."""
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.tmp-{os.getpid()}"
    remove_path(tmp)
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, link)
    return link


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a last line cut short by a killed process is skipped.

    ValueError naming the file and line for a broken line anywhere else.
    """
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                break  # the line being written when the process died
            raise ValueError(f"{path}, line {i + 1} is not valid JSON ({err}); remove that line to go on") from err
    return records


class Run:
    """One run folder, locked by this process; only the main process (rank 0) writes into it."""

    def __init__(self, folder: Path, writer: bool = True) -> None:
        self.folder, self.writer, self._lock = Path(folder), writer, None
        if writer:
            self._take_lock()
            remove_stale(self.folder)  # temporary files of a process killed mid-write
            remove_stale(self.folder / "checkpoints")

    @classmethod
    def create(cls, kind: str, runs_dir: str | Path | None, config: dict, writer: bool = True) -> "Run":
        """A new folder <runs>/<kind>/<time> (suffix -2, -3 ... if taken) holding config.json."""
        if stop_was_asked():  # a Ctrl-C in the set-up whose KeyboardInterrupt something swallowed: no folder
            raise KeyboardInterrupt
        if not writer:
            return cls(Path(os.devnull), writer=False)
        root = runs_root(runs_dir) / kind
        root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for i in range(1, 1000):
            folder = root / (stamp if i == 1 else f"{stamp}-{i}")
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            run = cls(folder)
            atomic_write_json(folder / CONFIG_FILE, config)
            return run
        raise RunError(f"could not create a new run folder in {root}")

    @classmethod
    def open(cls, path: str | Path, kinds: str | tuple[str, ...] = tuple(MAKE), writer: bool = True) -> "Run":
        """An existing run folder made by one of the programs `kinds` (default: any). RunError if it is none."""
        kinds = (kinds,) if isinstance(kinds, str) else kinds
        wanted = " or ".join(kinds) + " run" if len(kinds) < len(MAKE) else "run"  # "a judge run", "a run"
        given = Path(path).expanduser()
        if given.is_symlink() and not given.exists():
            raise RunError(f"{given} points to a missing folder ({os.readlink(given)}): give a {wanted} folder")
        folder = given.resolve()
        if folder.name == "hf" and (folder.parent / CONFIG_FILE).is_file():
            raise RunError(f"{given} is the hf/ folder of a run (the model it made): give the run folder, {folder.parent}")
        if not (folder / CONFIG_FILE).is_file():
            raise RunError(f"{folder} is not a {wanted} folder (it has no {CONFIG_FILE})")
        try:
            program = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")).get("program")
        except (ValueError, AttributeError) as err:
            raise RunError(f"{folder / CONFIG_FILE} is not a run's config.json ({err})") from None
        if program not in kinds:
            raise RunError(f"{folder} is a {program or 'unknown kind of'} run, not a {wanted}: give a {wanted} folder")
        return cls(folder, writer)

    def _take_lock(self) -> None:
        self._lock = open(self.folder / LOCK_FILE, "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RunError(f"{self.folder} is in use by another process (a run or a --resume of it is going on); "
                           "wait for it to end, or stop it first") from None

    def config(self) -> dict:
        """The run's config.json."""
        return json.loads((self.folder / CONFIG_FILE).read_text(encoding="utf-8"))

    def log(self, record: dict, file: str = METRICS_FILE) -> None:
        """Append one JSON line (flushed at once, so a crash loses at most the line being written)."""
        if self.writer:
            with open(self.folder / file, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, allow_nan=False) + "\n")

    def records(self, file: str = METRICS_FILE) -> list[dict]:
        """Every record of a JSONL file of the run (tolerates a cut last line)."""
        path = self.folder / file
        return read_jsonl(path) if path.is_file() else []

    def keep_records_until(self, step: int, file: str = METRICS_FILE) -> None:
        """Keep only the records of steps <= `step` (a resumed run re-does the steps after its checkpoint)."""
        if self.writer and (self.folder / file).is_file():
            kept = [r for r in self.records(file) if r["step"] <= step]
            atomic_file(self.folder / file, lambda tmp: tmp.write_text(
                "".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8"))

    def point_latest(self) -> None:
        """<runs>/<kind>/latest -> this run."""
        if self.writer:
            point_latest(self.folder)

    def discard_if_empty(self) -> bool:
        """Remove the folder if the run logged and saved nothing (stopped during set-up); True if removed."""
        if not self.writer or (self.folder / METRICS_FILE).is_file() or (self.folder / "checkpoints").exists():
            return False
        self.close()
        remove_path(self.folder)
        return True

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None
