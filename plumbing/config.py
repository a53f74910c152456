"""One configuration system for every program: a typed dataclass, presets written out in full, --flags.

In the spirit of nanoGPT's configurator, but typed and checked:

    @dataclass
    class JudgeConfig:
        steps: int = setting("training steps", min=1)
        lr: float = setting("learning rate", above=0)

    PRESETS = {"cpu": JudgeConfig(steps=60, lr=1e-4), "lecture": JudgeConfig(steps=150, lr=5e-7)}
    cfg, given, args = parse_config(JudgeConfig, PRESETS, argv, prog="python -m scripts.train_bert")

- Every field has no default in the class: a preset gives every value, so nothing hides in defaults.
- Every field is a --flag (`lr` -> `--lr`, `batch_size` -> `--batch-size`) whose help text shows the
  preset's value; `--preset NAME` picks the preset (the first one is the default).
- Values are parsed by the field's type (int, float, str, bool as --x/--no-x); floats must be finite;
  `min`, `max`, `above` and `choices` are checked before anything slow happens. Every failure is a
  `ConfigError`, which the programs turn into a one-line message and exit code 2.
- `given` is the set of fields named on the command line, so that `--resume` can refuse the ones
  that would change a saved run (`refuse_changes`).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from plumbing.runs import CONFIG_FILE, PROGRAM, Run, check_writable, latest_run


# Settings added after runs were saved without them, with what those runs did: they ran eager, names unmasked,
# RL without real text, raw advantages, a fixed beta (the adversary's settings are unused by their arms); judges had
# no weight averaging, a random head and read the pooled [CLS].
ADDED_LATER = {"compile": "auto", "mask_names": False, "lm_coef": 0.0, "advantage_norm": False, "kl_target": 0.0,
               "kl_gain": 0.1, "adversary_every": 1, "adversary_steps": 2, "adversary_replay": 16, "adversary_lr": 5e-5,
               "average_from": 0, "probe": 0, "pooling": "cls"}


class ConfigError(ValueError):
    """A setting that is unknown, of the wrong type, or out of range: bad input, exit code 2."""


def setting(help: str, *, min: float | None = None, max: float | None = None, above: float | None = None,
            choices: tuple | None = None, check: Callable[[Any], None] | None = None) -> Any:
    """A config field: its help text and the range its value must lie in (checked by `check_config`)."""
    return field(metadata={"help": help, "min": min, "max": max, "above": above, "choices": choices, "check": check})


def check_value(f: Field, value: Any) -> None:
    """ConfigError unless `value` fits field `f` (type, finite, min, max, above, choices, check)."""
    m, name = f.metadata, f"--{f.name.replace('_', '-')}"
    if f.type in ("float", float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    kind = {"int": int, "float": float, "str": str, "bool": bool}.get(f.type, f.type)
    if isinstance(kind, type) and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise ConfigError(f"{name} must be a {kind.__name__}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    if m.get("min") is not None and value < m["min"]:
        raise ConfigError(f"{name} must be >= {m['min']}, got {value}")
    if m.get("max") is not None and value > m["max"]:
        raise ConfigError(f"{name} must be <= {m['max']}, got {value}")
    if m.get("above") is not None and not value > m["above"]:
        raise ConfigError(f"{name} must be > {m['above']}, got {value}")
    if m.get("choices") is not None and value not in m["choices"]:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, m['choices']))}, got {value!r}")
    if m.get("check") is not None:
        try:
            m["check"](value)
        except ValueError as err:
            raise ConfigError(f"{name}: {err}") from None


def check_config(cfg: Any) -> Any:
    """Check every field of a config dataclass; returns it. ConfigError names the first bad one."""
    for f in fields(cfg):
        check_value(f, getattr(cfg, f.name))
    return cfg


def from_dict(cls: type, values: dict, where: str = "saved config", defaults: Any = None) -> Any:
    """A config rebuilt from saved JSON (a run's config.json): unknown keys refused, every field checked.

    A run from before LoRA has no lora_* settings: it trained every weight, so they are filled with
    `defaults`' (LoRA off) and said so. Any other difference means another version wrote the file.
    """
    names = {f.name for f in fields(cls)}
    older = sorted(n for n in names - set(values) if n in LORA_FIELDS) if defaults is not None else []
    if older:
        print(f"note: {where} is from before LoRA (no {', '.join(older)}): resumed with LoRA off", file=sys.stderr)
        values = {**values, **{n: getattr(defaults, n) for n in older}}  # the presets have LoRA off
    added = {n: v for n, v in ADDED_LATER.items() if n in names and n not in values}  # a run from before them
    values = {**values, **added}
    unknown, missing = sorted(set(values) - names), sorted(names - set(values))
    if unknown or missing:
        raise ConfigError(f"{where} does not fit this version's {cls.__name__} (unknown {unknown}, missing {missing}): "
                          "it was written by another version of the program; start a new run")
    return check_config(cls(**values))


def add_flags(parser: argparse.ArgumentParser, cls: type, preset: Any) -> None:
    """One --flag per field, typed, with its help text and the preset's value as its default."""
    group = parser.add_argument_group(f"settings ({cls.__name__}; defaults from the chosen preset)")
    for f in fields(cls):
        flag, default = f"--{f.name.replace('_', '-')}", getattr(preset, f.name)
        text = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")  # argparse formats help with %
        if f.type in ("bool", bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=text,
                               default=argparse.SUPPRESS)  # absent from the namespace = not given
        else:
            kind = {"int": int, "float": float, "str": str}.get(f.type, str)
            group.add_argument(flag, dest=f.name, type=kind, metavar=kind.__name__.upper(), help=text,
                               default=argparse.SUPPRESS)


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of exiting, so every program reports bad input one way."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse's hook
        raise ConfigError(f"{self.prog}: {message} (see --help)")


def parse_config(cls: type, presets: dict[str, Any], argv: list[str] | None, prog: str, description: str,
                 extra: Callable[[argparse.ArgumentParser], None] | None = None) -> tuple[Any, set[str], argparse.Namespace]:
    """(config, names of the fields given on the command line, the other arguments) from argv.

    `extra(parser)` adds the program's own arguments (--resume, --runs-dir, ...). The config is
    the preset named by --preset (default: the first) with the given flags applied, and checked.
    """
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset", default=next(iter(presets)))
    known, _ = first.parse_known_args(argv)
    if known.preset not in presets:
        raise ConfigError(f"unknown preset {known.preset!r}; presets: {', '.join(presets)}")
    parser = _Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=known.preset, choices=list(presets),
                        help=f"starting values for every setting (default: {next(iter(presets))})")
    if extra is not None:
        extra(parser)
    add_flags(parser, cls, presets[known.preset])
    args = parser.parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return check_config(replace(presets[known.preset], **given)), set(given), args


def refuse_changes(saved: Any, cfg: Any, given: set[str], allowed: set[str]) -> Any:
    """For --resume: the saved config, with only the `allowed` fields taken from the command line.

    ConfigError naming every other given field whose value differs from the saved run's.
    """
    changed = sorted(n for n in given - allowed if getattr(cfg, n) != getattr(saved, n))
    if changed:
        shown = ", ".join(f"--{n.replace('_', '-')} ({getattr(saved, n)!r} in the run, {getattr(cfg, n)!r} given)"
                          for n in changed)
        raise ConfigError(f"--resume continues a run with its own settings; these would change it: {shown}. "
                          f"Only {', '.join('--' + a.replace('_', '-') for a in sorted(allowed))} may be given, "
                          "or start a new run.")
    return replace(saved, **{n: getattr(cfg, n) for n in given & allowed})


def as_dict(cfg: Any) -> dict:
    """The config as plain JSON-ready values."""
    return asdict(cfg)


def parse_program(cls: type, presets: dict[str, Any], argv: list[str] | None, kind: str, description: str,
                  may_change: set[str], extra: Callable[[argparse.ArgumentParser], None] | None = None
                  ) -> tuple[Any, Path | None, dict, argparse.Namespace]:
    """A training program's command line: (config, run folder to resume or None, its config.json or {}, arguments).

    Every program takes --resume [RUN] (default: runs/<kind>/latest) and --runs-dir. For --resume
    the config is the saved one, with only the `may_change` fields taken from the flags.
    """
    def flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--resume", nargs="?", const="latest", metavar="RUN",
                       help=f"continue RUN (default: runs/{kind}/latest) from its newest checkpoint")
        p.add_argument("--runs-dir", help="runs folder (default $ALICE_EDGAR_RUNS or <repo>/runs)")
        if extra is not None:
            extra(p)

    cfg, given, args = parse_config(cls, presets, argv, PROGRAM[kind], description, flags)
    check_writable(args.runs_dir)  # before the set-up's seconds, not after them
    if args.resume is None:
        return cfg, None, {}, args
    resume = latest_run(kind, args.runs_dir) if args.resume == "latest" else Path(args.resume)
    run = Run.open(resume, kind, writer=False)
    saved = run.config()
    old = from_dict(cls, saved["config"], str(run.folder / CONFIG_FILE), next(iter(presets.values())))
    return refuse_changes(old, cfg, given, may_change), resume, saved, args


@dataclass
class LoraSettings:
    """The LoRA switch of every training program (model/lora.py, P1-P4): rank 0 is full fine-tuning."""

    lora_rank: int = setting("LoRA rank r (P1): train only low-rank updates of the chosen layers; 0: every weight", min=0)
    lora_alpha: float = setting("LoRA alpha: the update B A is scaled by alpha / r", above=0)
    lora_targets: str = setting("layers with adapters: attention (q, k, v, output) or attention+mlp",
                                choices=("attention", "attention+mlp"))
    lora_dropout: float = setting("dropout on the adapters' input", min=0, max=0.9)
    lora_lr: float = setting("learning rate with LoRA (it replaces --lr): updates that start at 0 need a larger one",
                             above=0, max=1)


LORA_FIELDS = {f.name for f in fields(LoraSettings)}


def lora_off(lora_lr: float) -> dict:
    """The LoRA settings of a preset: off (rank 0), and the learning rate it would use when switched on."""
    return dict(lora_rank=0, lora_alpha=16.0, lora_targets="attention", lora_dropout=0.0, lora_lr=lora_lr)


def learning_rate(cfg) -> float:
    """The learning rate a program trains with: --lora-lr with adapters, --lr without."""
    return cfg.lora_lr if cfg.lora_rank else cfg.lr
