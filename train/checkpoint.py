"""Judge run folders and checkpoints: safetensors for tensors, JSON for the rest, never pickle.

A run folder (runs/judge/<timestamp>/) holds:

    judge.safetensors    the classifier's weights (BERT + head), float32
    resume.safetensors   what `--resume` needs besides the weights: AdamW moments, RNG states
    judge.json           config, BERT config, base model, step, latest metrics, optimizer scalars
    tokenizer.json       the WordPiece tokenizer, so the judge works without its base folder
    metrics.jsonl        one line per training step / held-out evaluation

`runs/judge/latest` is a symlink to the newest run that has a checkpoint.

Every file is written to a temporary name and renamed with os.replace, so a
reader never sees half a file; Ctrl-C is held back while a checkpoint is
written, and the three files carry the same step number, which loading checks.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from model.bert import Bert, BertClassifier
from model.config import BertConfig
from tokenizer_bridge.load import load_bert_tokenizer

FORMAT = "alice-edgar-judge/1"
WEIGHTS_FILE = "judge.safetensors"
STATE_FILE = "resume.safetensors"
META_FILE = "judge.json"
TOKENIZER_FILE = "tokenizer.json"
METRICS_FILE = "metrics.jsonl"
LATEST = "latest"

RUNS_ENV = "ALICE_EDGAR_RUNS"
REPO_ROOT = Path(__file__).resolve().parents[1]


class NoCheckpoint(FileNotFoundError):
    """No judge checkpoint where one was looked for."""


class CheckpointMismatch(ValueError):
    """Checkpoint files that do not belong together (different steps, wrong format, wrong shapes)."""


# ----------------------------------------------------------------------------- run folders


def runs_root(runs_dir: str | Path | None = None) -> Path:
    """The runs folder: `runs_dir`, else $ALICE_EDGAR_RUNS, else <repo>/runs (git-ignored)."""
    if runs_dir is not None:
        return Path(runs_dir).expanduser()
    env = os.environ.get(RUNS_ENV, "").strip()
    return Path(env).expanduser() if env else REPO_ROOT / "runs"


def judge_root(runs_dir: str | Path | None = None) -> Path:
    """<runs>/judge: one sub-folder per training run."""
    return runs_root(runs_dir) / "judge"


def new_run_dir(runs_dir: str | Path | None = None, kind: str = "judge") -> Path:
    """Create and return <runs>/<kind>/<YYYYmmdd-HHMMSS> (a suffix -2, -3, ... if taken)."""
    root = runs_root(runs_dir) / kind
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1, 1000):
        run = root / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            run.mkdir()
            return run
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder in {root}")


def point_latest(run_dir: Path) -> Path:
    """Make <judge root>/latest a relative symlink to `run_dir`, replaced atomically."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.tmp-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, link)
    return link


def find_run(path: str | Path | None = None, runs_dir: str | Path | None = None) -> Path:
    """The run folder named by `path` (a run folder or a file inside one), else the latest run.

    Raises NoCheckpoint (with what to do) if there is no such run or it has no checkpoint.
    """
    if path is None:
        run = judge_root(runs_dir) / LATEST
        if not run.exists():
            raise NoCheckpoint(f"no judge checkpoint yet ({run} does not exist): train one with "
                               "`make train-bert` (or `python -m train.judge`), or give the path of a run folder")
        run = run.resolve()
    else:
        run = Path(path).expanduser()
        if run.is_file():
            run = run.parent
        if not run.is_dir():
            raise NoCheckpoint(f"{run} is neither a judge run folder nor a file in one")
    for name in (WEIGHTS_FILE, META_FILE):
        if not (run / name).is_file():
            raise NoCheckpoint(f"{run} has no {name}: the run was stopped before its first checkpoint, "
                               "or this is not a judge run folder")
    return run


# ----------------------------------------------------------------------------- atomic writes


class HoldInterrupt:
    """Context manager: a Ctrl-C that arrives inside is delivered when the block ends, not during it."""

    def __enter__(self) -> "HoldInterrupt":
        self.caught = False
        outer = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
        # only in the main thread (signals go there), and not again inside another HoldInterrupt
        self.active = threading.current_thread() is threading.main_thread() and not isinstance(outer, HoldInterrupt)
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame) -> None:
        self.caught = True

    def __exit__(self, *exc) -> None:
        if self.active:
            signal.signal(signal.SIGINT, self.previous)
            if self.caught:
                raise KeyboardInterrupt


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """safetensors file written to a temporary name, flushed to disk, then renamed over `path`."""
    tmp = _tmp_name(path)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    _fsync(tmp)
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a last line cut short by a killed process is skipped."""
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                break  # the line being written when the process died
            raise ValueError(f"{path}, line {i + 1} is not valid JSON ({err})") from err
    return records


def atomic_write_json(obj: Any, path: Path) -> None:
    """JSON file written to a temporary name, flushed to disk, then renamed over `path`."""
    tmp = _tmp_name(path)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- optimizer and RNG


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors ("optimizer.<param index>.<name>") and JSON scalars."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], saved: dict) -> None:
    """Inverse of `optimizer_to_flat`: load the saved state into `optimizer` (same parameters, same order)."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in saved["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = []
    for group in saved["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])  # JSON turned the tuple into a list
        groups.append(group)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def capture_rng(data_gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Every random state the training loop draws from: torch's (dropout), CUDA's, the batch sampler's."""
    rng = {"rng.torch": torch.get_rng_state(), "rng.data": data_gen.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["rng.cuda"] = torch.cuda.get_rng_state()
    return rng


def restore_rng(rng: dict[str, torch.Tensor], data_gen: torch.Generator) -> None:
    """Put back the random states saved by `capture_rng` (uint8 tensors)."""
    torch.set_rng_state(rng["rng.torch"])
    data_gen.set_state(rng["rng.data"])
    if "rng.cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["rng.cuda"])


# ----------------------------------------------------------------------------- save and load


def bert_config_dict(bert: Bert) -> dict:
    """The BERT config as plain JSON, enough to rebuild the network without its base folder."""
    return asdict(bert.config)


def save_checkpoint(
    run_dir: Path,
    model: BertClassifier,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    meta: dict,
    rng: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write judge.safetensors, resume.safetensors (if an optimizer is given) and judge.json, atomically.

    `meta` holds the run's JSON facts (training config, base model, metrics);
    this adds the format, the step, the BERT config and the optimizer scalars.
    Ctrl-C is held back until all files are in place.
    """
    run_dir = Path(run_dir)
    tag = {"format": FORMAT, "step": str(step)}
    meta = dict(meta, format=FORMAT, step=step, bert_config=bert_config_dict(model.bert),
                n_classes=model.head.out_features, dropout=model.drop.p,
                saved_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    with HoldInterrupt():
        if optimizer is not None:
            tensors, scalars = optimizer_to_flat(optimizer)
            tensors.update(rng or {})
            atomic_save_tensors(tensors, run_dir / STATE_FILE, tag)
            meta["optimizer"] = scalars
        atomic_save_tensors(model.state_dict(), run_dir / WEIGHTS_FILE, tag)
        atomic_write_json(meta, run_dir / META_FILE)  # last: it names the step the others must carry


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, with a clear error if it is missing or broken."""
    if not path.is_file():
        raise NoCheckpoint(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointMismatch(f"{path} is truncated or corrupt ({err})") from err


def read_meta(run_dir: Path) -> dict:
    """judge.json of a run, checked for the format."""
    path = Path(run_dir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise NoCheckpoint(f"{path} is missing") from err
    except json.JSONDecodeError as err:
        raise CheckpointMismatch(f"{path} is not valid JSON ({err})") from err
    if meta.get("format") != FORMAT:
        raise CheckpointMismatch(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def _check_step(path: Path, metadata: dict[str, str], step: int) -> None:
    if metadata.get("step") != str(step):
        raise CheckpointMismatch(
            f"{path} is from step {metadata.get('step')} but {META_FILE} says step {step}: the run was "
            "killed while writing a checkpoint. Start a new run, or delete the run folder."
        )


def build_judge(meta: dict) -> BertClassifier:
    """An untrained BertClassifier of the shape recorded in judge.json (no base weights needed)."""
    bert = Bert(BertConfig(**meta["bert_config"]))
    return BertClassifier(bert, n_classes=meta["n_classes"], dropout=meta["dropout"])


def load_weights(model: BertClassifier, run_dir: Path, step: int) -> None:
    """Load judge.safetensors into `model`, strictly, after checking its step."""
    path = Path(run_dir) / WEIGHTS_FILE
    tensors, metadata = _read_tensors(path)
    _check_step(path, metadata, step)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointMismatch(f"{path} does not fit the judge: missing {missing}, unexpected {unexpected}")


def load_resume(
    run_dir: Path, model: BertClassifier, optimizer: torch.optim.Optimizer
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Load weights and optimizer state of a run into `model` / `optimizer`; return (meta, rng states)."""
    meta = read_meta(run_dir)
    load_weights(model, run_dir, meta["step"])
    path = Path(run_dir) / STATE_FILE
    tensors, metadata = _read_tensors(path)
    _check_step(path, metadata, meta["step"])
    optimizer_from_flat(optimizer, tensors, meta["optimizer"])
    rng = {k: v for k, v in tensors.items() if k.startswith("rng.")}
    return meta, rng


def load_judge(
    path: str | Path | None = None, runs_dir: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[BertClassifier, Tokenizer, dict]:
    """(judge in eval mode, its tokenizer, judge.json) from a run folder or a file in one; latest run if None.

    The network is rebuilt from the BERT config stored in judge.json, so the
    base model's folder is not needed; the tokenizer is the run's tokenizer.json
    (or the base folder's, for runs that lack one).
    """
    run = find_run(path, runs_dir)
    meta = read_meta(run)
    model = build_judge(meta)
    load_weights(model, run, meta["step"])
    tok_folder = run if (run / TOKENIZER_FILE).is_file() else Path(meta["base_model"])
    tokenizer = load_bert_tokenizer(tok_folder)
    meta["run_dir"] = str(run)
    return model.to(device).eval(), tokenizer, meta
