"""--compile: a training step run through torch.compile, chosen by measurement like the precision.

torch.compile traces the model's forward (and AOTAutograd its backward) into one graph and
TorchInductor writes fused C++ kernels for what is not a matrix product (LayerNorm, GELU, softmax,
the residual adds) with the machine's C++ compiler. It pays only where the time it saves over the
run's steps is more than the time it takes to compile (seconds to a minute on two cores; TorchInductor
keeps a cache on disk, so a second compile of the same model is faster). So `--compile auto`:

    1. step 1 runs eager (warm-up), the next TIMED steps eager and timed: t_eager, the fastest of them;
    2. the run stays eager, and says why, where a compiled step of this work was slower than eager here
       last time, or where what compiling could save over the steps left (all of t_eager per step, or
       the share the last measured speed-up gave) is less than compiling took here last time (both are
       remembered beside TorchInductor's cache);
    3. else the next step compiles (its time, less t_eager, is the compile time, remembered), the TIMED
       after it run compiled and timed: t_compiled, the fastest of them (the speed-up t_eager / t_compiled
       is remembered); the run keeps whichever of the two kinds of step was faster.

The fastest of TIMED readings, not one: a single step can catch the machine busy or the library still
warming up (a judge's second step read 2.70 s eager against 1.73 s compiled, so the run compiled, where
thirty steps of each ran at 1.87 s eager and 2.05 s compiled).

`--compile on` compiles from the first step, `off` never. Without a C++ compiler the program says so
and runs eager. The eager model is never changed: the compiled one shares its parameters, so the
optimizer, the checkpoints and the saved folders are the same either way. Dropout masks are drawn by one
opaque operation (model/layers.py:dropout_keep_bits_like) in both, so with the same seed a compiled step
gives the eager step's numbers (tests/test_compiling.py).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

COMPILE_CHOICES = ("auto", "on", "off")
TIMED = 2  # timed steps of each kind (eager, then compiled) before auto decides; the fastest reading stands
FIRST_GUESS_S = 60.0  # compile seconds assumed before this machine measured one (23-46 s for the judge, ~2 min for SmolLM2 here)


def compiler_names() -> list[str]:
    """The C++ compilers TorchInductor would call (its configuration's cpp.cxx)."""
    from torch._inductor import config

    cxx = config.cpp.cxx
    return [c for c in cxx if c] if isinstance(cxx, tuple) else [cxx]


def compiler_missing() -> str | None:
    """Why torch.compile cannot generate kernels here (None: it can)."""
    names = compiler_names()
    if not any(shutil.which(c) for c in names):
        return f"no C++ compiler ({' or '.join(names)}) on the PATH: TorchInductor cannot write kernels"
    return None


def compile_times_file() -> Path:
    """Where the measured compile times live: beside TorchInductor's own cache (they go stale together)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir()) / "alice-edgar-compile-seconds.json"


def remembered(key: str) -> dict:
    """What compiling `key` cost and gave on this machine the last time: {"compile_s", "speedup"} ({}: never measured;
    speedup = eager step / compiled step, absent until a compiled step was timed)."""
    try:
        known = json.loads(compile_times_file().read_text())[key]
        return {k: float(v) for k, v in known.items() if k in ("compile_s", "speedup")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def remember(key: str, **measured: float) -> None:
    """Keep what compiling `key` cost (compile_s) or gave (speedup) for the next run's choice."""
    path = compile_times_file()
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
        entry = known.get(key) if isinstance(known.get(key), dict) else {}
        known[key] = dict(entry, **{k: round(v, 3) for k, v in measured.items()})
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
        if self.on or (self._deciding and self._done >= 1 + TIMED):  # after the warm-up and the timed eager steps
            if self._twin is None:
                self._twin = compiled_twin(eager)
            return self._twin
        return eager

    def record(self, seconds: float) -> str | None:
        """The step just run took `seconds`; returns a line to print when auto has just decided."""
        self._done += 1
        if not self._deciding:
            return None
        left, first_compiled = self.steps - self._done, 2 + TIMED  # the step that compiles
        if 2 <= self._done < first_compiled:
            self.times["eager_s"] = min(seconds, self.times.get("eager_s", seconds))
            if self._done == first_compiled - 1:
                return self.first_look(left, self.times["eager_s"], remembered(self.key))
        elif self._done == first_compiled:
            self.times["compile_s"] = max(seconds - self.times["eager_s"], 0.0)
            remember(self.key, compile_s=self.times["compile_s"])
        elif self._done > first_compiled:
            self.times["compiled_s"] = min(seconds, self.times.get("compiled_s", seconds))
            if self._done == first_compiled + TIMED:
                return self.trial_done()
        return None

    def trial_done(self) -> str:
        """After the timed compiled steps: keep the faster kind of step, and remember the speed-up."""
        eager_s, compile_s, compiled_s = self.times["eager_s"], self.times["compile_s"], self.times["compiled_s"]
        remember(self.key, speedup=eager_s / compiled_s)
        faster = compiled_s < eager_s
        line = f"a step takes {compiled_s:.3f} s compiled against {eager_s:.3f} s eager (compiling took {compile_s:.0f} s)"
        return self.decide(faster, ("compiled: " if faster else "eager: ") + line)

    def first_look(self, left: int, eager_s: float, known: dict) -> str | None:
        """After the timed eager steps: stay eager where compiling was slower here before, or where the steps left
        cannot repay its cost (what it would save: left x eager_s x (1 - 1/speedup), all of it while speedup is
        unknown); None: try it."""
        speedup = known.get("speedup")
        if speedup is not None and speedup <= 1.0:
            return self.decide(False, f"eager: a compiled step was {1 / speedup:.2f}x as slow as eager here last time")
        cost = known.get("compile_s", FIRST_GUESS_S)
        saving = left * eager_s * (1.0 - 1.0 / speedup if speedup else 1.0)
        if saving < cost:
            how = (f"compiling took {cost:.0f} s here last time" if "compile_s" in known else
                   f"a compile is assumed to take {FIRST_GUESS_S:.0f} s until one is measured here")
            return self.decide(False, f"eager: compiling could save ~{saving:.0f} s over the {left} steps left; {how}")
        return None

    def decide(self, on: bool, reason: str) -> str:
        self._deciding, self.on, self.reason = False, on, reason
        return f"compile: {reason}"

    def describe(self) -> dict:
        """What goes into the run's summary."""
        return {"compile": self.on, "compile_reason": self.reason, **{f"compile_{k}": v for k, v in self.times.items()}}
