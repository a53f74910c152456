"""--compile: a training step run through torch.compile, chosen by measurement like the precision.

torch.compile traces the model's forward (and AOTAutograd its backward) into one graph and
TorchInductor writes fused C++ kernels for what is not a matrix product (LayerNorm, GELU, softmax,
the residual adds) with the machine's C++ compiler. It pays only where the time it saves over the
run's steps is more than the time it takes to compile (seconds to a minute on two cores; TorchInductor
keeps a cache on disk, so a second compile of the same model is faster). So `--compile auto`:

    1. step 1 runs eager (warm-up), step 2 eager and timed: t_eager;
    2. if the steps left, at t_eager each, take less than compiling this model did last time on this
       machine (remembered beside TorchInductor's cache), the run stays eager and says so;
    3. else the next step compiles (its time, less t_eager, is the compile time, remembered), the one
       after runs compiled and timed: t_compiled; the run keeps whichever of the two steps was faster.

`--compile on` compiles from the first step, `off` never. Without a C++ compiler the program says so
and runs eager. The eager model is never changed: the compiled one shares its parameters, so the
optimizer, the checkpoints and the saved folders are the same either way. Dropout masks are drawn by one
opaque operation (model/layers.py:dropout_mask_like) in both, so with the same seed a compiled step
gives the eager step's numbers (tests/test_compiling.py).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

COMPILE_CHOICES = ("auto", "on", "off")
FIRST_GUESS_S = 60.0  # compile seconds assumed before this machine measured one (6-45 s seen on two cores)


def compiler_missing() -> str | None:
    """Why torch.compile cannot generate kernels here (None: it can)."""
    from torch._inductor import config

    names = [c for c in config.cpp.cxx if c] if isinstance(config.cpp.cxx, tuple) else [config.cpp.cxx]
    if not any(shutil.which(c) for c in names):
        return f"no C++ compiler ({' or '.join(names)}) on the PATH: TorchInductor cannot write kernels"
    return None


def compile_times_file() -> Path:
    """Where the measured compile times live: beside TorchInductor's own cache (they go stale together)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir()) / "alice-edgar-compile-seconds.json"


def remembered_compile_s(key: str) -> float | None:
    """Seconds compiling `key` took on this machine the last time (None: never measured)."""
    try:
        return float(json.loads(compile_times_file().read_text())[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember_compile_s(key: str, seconds: float) -> None:
    """Keep the measured compile time of `key` for the next run's choice."""
    path = compile_times_file()
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
        known[key] = round(seconds, 2)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1))
    except (OSError, ValueError):
        pass  # a cache we cannot write only means the next run guesses again


def compiled_twin(model: torch.nn.Module) -> torch.nn.Module:
    """The same module (same parameters) run through torch.compile; shapes are fixed within a program."""
    return torch.compile(model, dynamic=False)


@dataclass
class CompileChoice:
    """Which model a loop's next step runs (the eager one or its compiled twin), and why; see the module docstring.

    key names the work (program, model, batch shape, precision) for the remembered compile time;
    steps: how many steps this run will take (the saving is counted over them).
    """

    requested: str
    key: str
    steps: int
    reason: str = ""
    on: bool = False
    times: dict = field(default_factory=dict)  # eager_s, compile_s, compiled_s as measured
    _twin: torch.nn.Module | None = None
    _done: int = 0  # steps recorded so far
    _deciding: bool = False

    def __post_init__(self) -> None:
        if self.requested not in COMPILE_CHOICES:
            raise ValueError(f"--compile must be one of {COMPILE_CHOICES}, got {self.requested!r}")
        missing = compiler_missing() if self.requested != "off" else None
        if self.requested == "off":
            self.reason = "eager, as asked (--compile off)"
        elif missing:
            self.requested, self.reason = "off", f"eager: {missing}"
        elif self.requested == "on":
            self.on, self.reason = True, "compiled, as asked (--compile on)"
        else:
            self._deciding, self.reason = True, "auto: deciding after the first steps"

    def model(self, eager: torch.nn.Module) -> torch.nn.Module:
        """The module the next step runs."""
        if self.on or (self._deciding and self._done >= 2):  # steps 3 and 4 of auto are the trial
            if self._twin is None:
                self._twin = compiled_twin(eager)
            return self._twin
        return eager

    def record(self, seconds: float) -> str | None:
        """The step just run took `seconds`; returns a line to print when auto has just decided."""
        self._done += 1
        if not self._deciding:
            return None
        left = self.steps - self._done
        if self._done == 2:
            self.times["eager_s"] = seconds
            known = remembered_compile_s(self.key)
            cost = known if known is not None else FIRST_GUESS_S
            if left * seconds < cost:
                how = f"compiling took {known:.0f} s here last time" if known is not None else \
                    f"a compile is assumed to take {FIRST_GUESS_S:.0f} s until one is measured here"
                return self.decide(False, f"eager: the {left} steps left take ~{left * seconds:.0f} s eager; {how}")
        elif self._done == 3:
            self.times["compile_s"] = max(seconds - self.times["eager_s"], 0.0)
            remember_compile_s(self.key, self.times["compile_s"])
        elif self._done == 4:
            self.times["compiled_s"] = seconds
            eager_s, compile_s = self.times["eager_s"], self.times["compile_s"]
            faster = seconds < eager_s
            line = f"a step takes {seconds:.3f} s compiled against {eager_s:.3f} s eager (compiling took {compile_s:.0f} s)"
            return self.decide(faster, ("compiled: " if faster else "eager: ") + line)
        return None

    def decide(self, on: bool, reason: str) -> str:
        self._deciding, self.on, self.reason = False, on, reason
        return f"compile: {reason}"

    def describe(self) -> dict:
        """What goes into the run's summary."""
        return {"compile": self.on, "compile_reason": self.reason, **{f"compile_{k}": v for k, v in self.times.items()}}
