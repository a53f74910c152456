"""LoRA against full fine-tuning, side by side: `python -m scripts.lora_table RUN [RUN ...]` (`make lora-compare`).

For each judge, coevolve or teach run: the parameters it trained and their fraction (P2), the
optimizer state it kept, the peak memory of its training steps, the median time per step, and
its result (a judge: held-out accuracy; generators: held-out LM loss and the judge's accuracy on
what they write). Prints a Markdown table and writes it to runs/compare/<time>/lora.md.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from eval.pages import markdown_table
from plumbing.atomic import atomic_write_text
from plumbing.cli import run_program
from plumbing.runs import Run, runs_root

HEADER = ("run", "LoRA", "trained parameters", "P2 fraction (LoRA / |θ|)", "optimizer state MiB", "peak memory MiB",
          "s per step", "result")


def row(folder: Path) -> tuple:
    """One run as a table row."""
    run = Run.open(folder, writer=False)
    config, records = run.config(), run.records()
    summary = json.loads((run.folder / "summary.json").read_text(encoding="utf-8"))
    c = config["config"]
    lora = f"r={c['lora_rank']}, alpha={c['lora_alpha']:g}, {c['lora_targets']}" if c.get("lora_rank") else "full"
    steps = [r["step_s"] for r in records if r["kind"] == "train" and "step_s" in r]
    evals = [r for r in records if r["kind"] == "eval"]
    if config["program"] == "judge":
        result = f"held-out accuracy {summary['heldout_acc']:.3f}"
    else:
        authors = list(config["train_tokens"])
        held = sum(evals[-1][f"heldout_{a}"] for a in authors) / len(authors)
        result = f"held-out LM loss {held:.3f}, judge accuracy {evals[-1]['acc']:.3f}"
    return (f"{config['program']} ({folder.name})", lora, f"{summary['trainable']:,}", f"{summary['fraction']:.2%}",
            f"{summary['optimizer_state_bytes'] / 2**20:.1f}", f"{summary['peak_memory_mib']:.0f}",
            f"{statistics.median(steps):.3f}" if steps else "-", result)


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.lora_table", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="judge, coevolve or teach run folders (each holds a summary.json)")
    p.add_argument("--runs-dir", help="runs folder (default $ALICE_EDGAR_RUNS or <repo>/runs)")
    args = p.parse_args(argv)
    md = markdown_table([row(Path(f)) for f in args.runs], HEADER)
    out = runs_root(args.runs_dir) / "compare" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "lora.md", md)
    print(md + f"\nwritten to {out / 'lora.md'}")


def main(argv: list[str] | None = None) -> int:
    return run_program(run, argv)


if __name__ == "__main__":
    sys.exit(main())
