"""Strict, safe loading of Hugging Face safetensors checkpoints into our modules.

Each model file (`bert.py`, `gpt_neo.py`, `llama.py`) owns one visible table that maps our
parameter names to the Hugging Face names. A row with several Hugging Face
names means "concatenate them along dim 0" (our fused q/k/v projection). This
file applies such a table and refuses anything but an exact match: every
missing, unexpected or wrong-shaped tensor is collected and reported in one
error. Only safetensors are read: we never unpickle a file we did not write.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Iterable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from weights.store import repair_advice

WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A weights file that is missing, corrupt, or does not fit the model exactly."""


def normalise_hf_name(name: str, prefix: str) -> str:
    """Strip the task-model prefix (`bert.`, `transformer.`, `model.`) and rename legacy LayerNorm gamma/beta."""
    if name.startswith(prefix):
        name = name[len(prefix):]
    if name.endswith(".gamma"):
        name = name[: -len(".gamma")] + ".weight"
    elif name.endswith(".beta"):
        name = name[: -len(".beta")] + ".bias"
    return name


def read_safetensors(folder: str | Path) -> dict[str, torch.Tensor]:
    """Read `folder/model.safetensors` on the CPU, with an error that says what is wrong and what to do."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        pickles = [p.name for p in Path(folder).glob("*.bin")] if Path(folder).is_dir() else []
        extra = (
            f" The folder holds {pickles}: pickled checkpoints are never read here (unpickling runs code); "
            "fetch the safetensors version instead."
            if pickles
            else ""
        )
        raise CheckpointError(f"{path} is missing.{extra} Fetch it with `python -m scripts.weights fetch NAME`.")
    if not os.access(path, os.R_OK):  # safetensors itself would report this as a missing file
        info = path.stat()
        raise PermissionError(f"cannot read {path}: permission denied (mode {info.st_mode & 0o777:o}, owner uid "
                              f"{info.st_uid}): its owner can make it readable with `chmod a+r {path}`")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(f"{path} is truncated or corrupt ({err}): {repair_advice(Path(folder))}.") from err


def check_finite(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse weights holding NaN or infinity (a run that diverged): they would only compute garbage."""
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CheckpointError(f"{path} holds NaN or infinite values in {shown}: the run that wrote it diverged. "
                              "Train it again (with a smaller learning rate).")


def load_with_table(
    model: torch.nn.Module,
    folder: str | Path,
    table: dict[str, tuple[str, ...]],
    prefix: str,
    ignored: Iterable[str] = (),
) -> None:
    """Copy a Hugging Face checkpoint into `model` through `table`, or raise one CheckpointError listing every problem.

    table:   our parameter name -> the Hugging Face names it is made of (several = concatenated on dim 0).
    prefix:  the task-model prefix to strip from checkpoint names ("bert.", "transformer.", "model."; "" for none).
    ignored: patterns (fnmatch, e.g. "cls.*") of checkpoint names, after stripping, that are known
             non-parameters or heads we do not use.
    """
    tensors = {normalise_hf_name(k, prefix): v for k, v in read_safetensors(folder).items()}
    check_finite(tensors, Path(folder) / WEIGHTS_FILE)
    ours = model.state_dict()
    uncovered = sorted(set(ours) - set(table))
    assert not uncovered, f"programming error: the name table misses {uncovered}"

    missing, wrong_shape, state, used = [], [], {}, set()
    for our_name, hf_names in table.items():
        used.update(n for n in hf_names if n in tensors)
        absent = [n for n in hf_names if n not in tensors]
        if absent:
            missing.extend(absent)
            continue
        parts = [tensors[n] for n in hf_names]
        tensor = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]
        if tensor.shape != ours[our_name].shape:
            got = " + ".join(str(tuple(p.shape)) for p in parts)
            wrong_shape.append(f"{' + '.join(hf_names)}: file has {got}, model needs {tuple(ours[our_name].shape)}")
            continue
        state[our_name] = tensor.to(ours[our_name].dtype)

    unexpected = sorted(
        n for n in tensors if n not in used and not any(fnmatch.fnmatchcase(n, p) for p in ignored)
    )
    if missing or unexpected or wrong_shape:
        lines = [f"{Path(folder) / WEIGHTS_FILE} does not fit {type(model).__name__} exactly:"]
        for title, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if names:
                lines.append(f"  {title} ({len(names)}): " + ", ".join(names))
        lines.append("Check that the folder holds the architecture and size its config.json describes.")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state, strict=True, assign=True)  # assign: the model may live on "meta"


def to_hf_state(model: torch.nn.Module, table: dict[str, tuple[str, ...]], prefix: str) -> dict[str, torch.Tensor]:
    """The inverse of `load_with_table`: our state dict under Hugging Face names (fused rows split again)."""
    ours = model.state_dict()
    hf: dict[str, torch.Tensor] = {}
    for our_name, hf_names in table.items():
        pieces = ours[our_name].chunk(len(hf_names), dim=0)
        for hf_name, piece in zip(hf_names, pieces):
            hf[prefix + hf_name] = piece.detach().to("cpu").contiguous().clone()
    return hf


def save_hf_folder(folder: str | Path, tensors: dict[str, torch.Tensor], config: dict) -> None:
    """Write config.json and model.safetensors into `folder`, plainly.

    A folder that must appear whole (config, weights and tokenizer together, never half of them after a
    Ctrl-C) is written through the plumbing's atomic folder: plumbing/hf_folder.py:write_model_folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2, allow_nan=False), encoding="utf-8")
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def check_head_is_tied(embedding: torch.Tensor, path: Path) -> None:
    """A checkpoint may carry lm_head.weight; our decoders tie the head to the token embedding, so it must equal it."""
    with safe_open(str(path), framework="pt") as f:
        if "lm_head.weight" not in f.keys():
            return
        head = f.get_tensor("lm_head.weight")
    if head.shape != embedding.shape or not torch.equal(head.to(embedding.dtype), embedding):
        raise CheckpointError(f"{path}: lm_head.weight differs from the token embedding, but this decoder ties them.")
