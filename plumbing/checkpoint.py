"""Checkpoints: one consistent set per step, safetensors for tensors, JSON for the rest, never pickle.

    <run>/checkpoints/step-000060/
        models.safetensors      every model's weights, "<model name>/<parameter name>"
        optimizers.safetensors  every optimizer's moments, "<optimizer name>/<param index>/<state name>",
                                and every random state, "rng/<name>"
        state.json              the step, optimizer scalars and groups, and the loop's own state

A checkpoint is written into a hidden temporary folder and renamed to step-NNNNNN only when all its
files are complete, so a step folder is always a whole set. Older step folders are removed after the
rename. Resume takes the newest step folder; a temporary folder left by a killed process is removed
when the run is next opened (plumbing/runs.py). Disk full during a save: the temporary folder is
removed, the previous checkpoint is intact, and the error says so.
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from plumbing.atomic import atomic_folder, is_disk_full, remove_path

CHECKPOINTS = "checkpoints"
MODELS_FILE, OPTIMIZERS_FILE, STATE_FILE = "models.safetensors", "optimizers.safetensors", "state.json"


class CheckpointError(ValueError):
    """A checkpoint that is missing, broken, or does not fit the run's models."""


def step_folder(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:06d}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete step folder of a run, or None."""
    folder = Path(run_dir) / CHECKPOINTS
    steps = sorted(p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()) if folder.is_dir() else []
    return steps[-1] if steps else None


def optimizer_tensors(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state split into tensors ("<name>/<param index>/<state>") and JSON (groups, scalars)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{name}/{idx}/{key}"] = value
            else:
                scalars[f"{idx}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], saved: dict) -> None:
    """Inverse of `optimizer_tensors`: the saved state back into `optimizer` (same parameters, same order)."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(name + "/"):
            _, idx, what = key.split("/", 2)
            state.setdefault(int(idx), {})[what] = value
    for key, value in saved["scalars"].items():
        idx, what = key.split("/", 1)
        state.setdefault(int(idx), {})[what] = value
    groups = [dict(g, betas=tuple(g["betas"])) if isinstance(g.get("betas"), list) else g for g in saved["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(run_dir: Path, step: int, models: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], rngs: dict[str, torch.Generator], state: dict) -> Path:
    """Write the step's folder atomically; remove older step folders. Returns the new folder.

    `state` is the loop's own JSON (metrics so far, counters); `rngs` every random stream the loop
    draws from ("torch" is added: dropout). OSError for a full disk names the kept checkpoint.
    """
    tensors = {f"{m}/{k}": v.detach().cpu().contiguous() for m, model in models.items()
               for k, v in model.state_dict().items()}
    opt_tensors, opt_json = {}, {}
    for name, optimizer in optimizers.items():
        t, opt_json[name] = optimizer_tensors(name, optimizer)
        opt_tensors.update(t)
    opt_tensors.update({f"rng/{n}": g.get_state() for n, g in rngs.items()})
    opt_tensors["rng/torch"] = torch.get_rng_state()
    meta = {"step": step, "optimizers": opt_json, "state": state}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / MODELS_FILE), metadata={"step": str(step)})
        save_file(opt_tensors, str(tmp / OPTIMIZERS_FILE), metadata={"step": str(step)})
        (tmp / STATE_FILE).write_text(json.dumps(meta, allow_nan=False), encoding="utf-8")  # last

    previous = latest_checkpoint(run_dir)
    target = step_folder(run_dir, step)
    try:
        atomic_folder(target, write)
    except (OSError, SafetensorError) as err:
        if not is_disk_full(err):
            raise
        kept = f"the checkpoint of {previous.name} is intact" if previous else "no earlier checkpoint exists"
        raise OSError(errno.ENOSPC, f"no space left to save the checkpoint of step {step} in {run_dir} "
                      f"({err}); the partial files were removed and {kept}. Free some disk space "
                      "and resume with --resume") from None
    for old in (Path(run_dir) / CHECKPOINTS).glob("step-*"):
        if old != target:
            remove_path(old)
    return target


@dataclass
class Checkpoint:
    """A loaded step folder: call `restore` to put its contents into the run's objects."""

    folder: Path
    step: int
    state: dict
    models: dict[str, torch.Tensor]
    extra: dict[str, torch.Tensor]  # optimizer tensors and random states
    optimizers: dict

    def restore(self, models: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                rngs: dict[str, torch.Generator]) -> None:
        """Weights, optimizer moments and random streams back where they were at this step."""
        for name, model in models.items():
            prefix = name + "/"
            own = {k[len(prefix):]: v for k, v in self.models.items() if k.startswith(prefix)}
            try:
                missing, unexpected = model.load_state_dict(own, strict=False)
            except RuntimeError as err:  # a tensor of another shape: torch's "size mismatch for ..."
                first = str(err).strip().splitlines()[-1].strip()
                raise CheckpointError(f"{self.folder / MODELS_FILE}: the checkpoint does not fit the model that the "
                                      f"run's config.json describes ({first}); was config.json edited? Put it back, "
                                      "or start a new run") from None
            if missing or unexpected:
                raise CheckpointError(f"{self.folder / MODELS_FILE}: model {name!r} does not fit "
                                      f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        for name, optimizer in optimizers.items():
            load_optimizer(name, optimizer, self.extra, self.optimizers[name])
        for name, rng in rngs.items():
            rng.set_state(self.extra[f"rng/{name}"])
        torch.set_rng_state(self.extra["rng/torch"])


def load_checkpoint(run_dir: Path) -> Checkpoint:
    """The newest complete checkpoint of a run; CheckpointError if there is none or it is broken."""
    folder = latest_checkpoint(run_dir)
    if folder is None and any((Path(run_dir) / CHECKPOINTS).glob("*")):
        raise CheckpointError(f"{Path(run_dir) / CHECKPOINTS} holds no step-NNNNNN folder with a {STATE_FILE} "
                              "(a checkpoint of an older layout, or a cut one): it cannot be resumed. Start a new run.")
    if folder is None:
        raise CheckpointError(f"{run_dir} has no checkpoint: it was stopped before its first one. Start a new run.")
    try:
        meta = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        models, extra = load_file(str(folder / MODELS_FILE)), load_file(str(folder / OPTIMIZERS_FILE))
    except (OSError, SafetensorError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{folder} is broken ({err}); delete that folder to go back to no checkpoint") from err
    return Checkpoint(folder, meta["step"], meta["state"], models, extra, meta["optimizers"])
