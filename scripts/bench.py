"""`make bench`: our models against transformers on the same work, one table of times and ratios.

    python -m scripts.bench            # the sizes below for this device
    python -m scripts.bench --quick    # tiny sizes: checks that every workload runs (seconds, not a measurement)
    python -m scripts.bench --profile  # also one profiled run per side: operator tables in <run>/profiles/

Each row runs ours and transformers alternately (interleaved repeats, warm-up excluded) and reports
medians, the ratio HF time / our time (> 1: ours is faster) and the fraction of the machine's
measured matmul peak. The header says what this machine is: its CPU flags, the float32 and
bfloat16 peaks, and the precision the programs choose here (plumbing/precision.py). The table is
printed and written as JSON to runs/bench/<timestamp>/bench.json.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C ends with "interrupted", exit 130 (bench writes its file only at the end)
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import workloads as W
from bench.timing import Peak, interleaved, matmul_peak, profile_table
from model.config import GPTNeoConfig, LlamaConfig
from model.gpt_neo import GPTNeo
from model.llama import Llama
from model.sampler import bad_token_mask
from plumbing.allocator import keep_freed_memory
from plumbing.compiling import compiler_missing
from plumbing.precision import FAST_RATIO, choose_precision
from tokenizer_bridge.load import load_neo_tokenizer
from weights import store

# Sizes: the on a GPU. On a CPU, what a 2-core machine can repeat 2 x 6 times within 15 minutes:
# the 125M-shaped model makes ~5 tokens per second per row, so its generation row is cut (every row prints
# its exact shape). 16-bit rows shrink when this CPU has no fast 16-bit matmul (measured): they would take
# the whole budget. The linear-in-length rows (ours alone) run on the first model of `linear` that is there.
SIZES = {
    "cuda": dict(train=(64, 256), infer=(64, 128), gen_small=(32, 512), gen_125m=(32, 512), pretrain=(8, 512),
                 linear={"125M-shaped": (32, (256, 512, 1024))}, smollm2_train=(16, 128), smollm2_gen=(32, 512)),
    "cpu": dict(train=(16, 256), infer=(64, 128), gen_small=(32, 512), gen_125m=(32, 64), pretrain=(8, 512),
                linear={"neo-small": (32, (64, 128, 256)), "125M-shaped": (4, (32, 64, 128))},
                smollm2_train=(8, 128), smollm2_gen=(32, 64)),
    "quick": dict(train=(2, 32), infer=(2, 32), gen_small=(2, 8), gen_125m=(1, 4), pretrain=(2, 16),
                  linear={"neo-small": (2, (4, 8)), "125M-shaped": (1, (4, 8))}, smollm2_train=(2, 16),
                  smollm2_gen=(2, 8)),
}
GPT_NEO_125M = GPTNeoConfig(vocab_size=50257, max_position_embeddings=2048, hidden_size=768, num_layers=12,
                            num_heads=12, window_size=256, attention_layers=["global", "local"] * 6)
TINY_NEO = GPTNeoConfig(vocab_size=512, max_position_embeddings=64, hidden_size=32, num_layers=2, num_heads=2,
                        window_size=8, attention_layers=["global", "local"])
NEO_SMALL_SHAPE = GPTNeoConfig(vocab_size=4096, max_position_embeddings=512, hidden_size=256, num_layers=4,
                               num_heads=4, window_size=256, attention_layers=["global", "local"] * 2)
TINY_LLAMA = LlamaConfig(vocab_size=512, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3,
                         num_key_value_heads=1, max_position_embeddings=64)
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


@dataclass
class Bench:
    """What every row needs: where to run, how often, the peaks, where profiles go."""

    device: str
    repeats: int
    sizes: dict
    peaks: dict[str, Peak]  # "fp32", "bf16": measured before the rows (raised after them, see main)
    profiles: Path | None
    compile: bool  # also the training steps through torch.compile (a row each, in the programs' precision)

    @property
    def slow16(self) -> bool:
        """No fast 16-bit matmul here (e.g. AVX2 only): 16-bit rows are cut."""
        return self.peaks["bf16"].gflops < self.peaks["fp32"].gflops

    def measure(self, pair: W.Pair) -> dict:
        """Time one workload and print its row at once; with profiles, one profiled run per side too."""
        runs = {"ours": pair.ours} if pair.hf is None else {"ours": pair.ours, "hf": pair.hf}
        result = row(pair, interleaved(runs, repeats=self.repeats, warmup=1, device=self.device))
        ratio = f", HF/ours {result['ratio']:.2f}x" if "ratio" in result else ""
        print(f"  {pair.name} [{pair.dtype}]: ours {result['ours_s']:.3f} s{ratio}", flush=True)
        if self.profiles is not None:
            self.profiles.mkdir(parents=True, exist_ok=True)
            for side, fn in runs.items():
                slug = f"{pair.name} {pair.dtype} {side}".replace(" ", "-")
                (self.profiles / f"{slug}.txt").write_text(profile_table(fn, self.device) + "\n")
        return result


def row(pair: W.Pair, seconds: dict[str, float]) -> dict:
    """One table row: times, ratio, tokens/s and GFLOP/s of both sides (fractions of the peak: `against`)."""
    out = {"workload": pair.name, "dtype": pair.dtype, "ours_s": seconds["ours"], "note": pair.note,
           "ours_tok_s": pair.tokens / seconds["ours"], "ours_gflops": pair.flops / seconds["ours"] / 1e9}
    if "hf" in seconds:
        out.update(hf_s=seconds["hf"], ratio=seconds["hf"] / seconds["ours"], hf_tok_s=pair.tokens / seconds["hf"],
                   hf_gflops=pair.flops / seconds["hf"] / 1e9)
    return out


def ceiling(peaks: dict[str, Peak], dtype: str) -> Peak:
    """A 16-bit row runs part of its work in float32 (norms, losses), so its ceiling is the faster peak."""
    return peaks["fp32"] if dtype == "fp32" else peaks["fp32"].raised_to(peaks["bf16"])


def against(rows: list[dict], peaks: dict[str, Peak]) -> None:
    """Each row's fraction of its precision's peak, measured once before and once after the rows.

    A rate above the peak would mean the peak was measured in a slow spell: the row says so rather
    than print more than 100 %.
    """
    for r in rows:
        peak = ceiling(peaks, r["dtype"])
        for side in ("ours", "hf"):
            if f"{side}_gflops" in r:
                r[f"{side}_peak"] = r[f"{side}_gflops"] / peak.gflops
                if not peak.holds(r[f"{side}_gflops"]):
                    r["note"] = (r["note"] + "; " if r["note"] else "") + f"{side} above the measured peak"


def cut(pair: W.Pair, full: int, used: int) -> W.Pair:
    """Note on a row whose batch was cut because 16-bit products are slow here."""
    if used != full:
        pair.note = "; ".join(filter(None, (pair.note, f"batch cut {full // used}x: bf16 is slow on this CPU")))
    return pair


def judge_rows(b: Bench, minilm: Path) -> tuple[list[dict], list[str]]:
    """The judge's training step in float32 and bfloat16 autocast, its inference in float32 and half (B5)."""
    rows, memory = [], []
    n, t = b.sizes["train"]
    rows.append(b.measure(W.judge_train_step(minilm, n, t, "fp32", b.device)))
    n16 = max(2, n // 32) if b.slow16 else n
    rows.append(b.measure(cut(W.judge_train_step(minilm, n16, t, "bf16", b.device), n, n16)))
    if b.compile:
        chosen = "fp32" if b.slow16 else "bf16"
        rows.append(b.measure(W.judge_train_step(minilm, n, t, chosen, b.device, compiled=True)))
    n, t = b.sizes["infer"]
    for half in (False, True):
        ni = max(2, n // 8) if half and b.slow16 else n
        pair, mem = W.judge_inference(minilm, ni, t, half, b.device)
        rows.append(b.measure(cut(pair, n, ni)))
        memory.append("judge parameters: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" if k.endswith("bytes")
                                                      else f"{k} {v:.3f}" for k, v in mem.items()))
    return rows, memory


def neo_folders(tmp: Path, quick: bool) -> dict[str, Path]:
    """neo-small from the store (if pretrained), and random models shaped like gpt-neo-125M and like neo-small."""
    folders = {}
    try:
        folders["neo-small"] = store.resolve("neo-small")
    except FileNotFoundError:
        print("  neo-small not in the weights store (make pretrain-neo): its generation rows are skipped")
    torch.manual_seed(0)
    for name, cfg in (("125M-shaped", GPT_NEO_125M), ("neo-small-shaped", NEO_SMALL_SHAPE)):
        GPTNeo(TINY_NEO if quick else cfg).save_pretrained(tmp / name)
        folders[name] = tmp / name
    return folders


def generation_rows(b: Bench, folders: dict[str, Path]) -> list[dict]:
    """Sampling against `generate` on both models, then ours alone at growing lengths (cost per new token)."""
    rows = []
    for name in ("neo-small", "125M-shaped"):
        if name not in folders:
            continue
        n, new = b.sizes["gen_small" if name == "neo-small" else "gen_125m"]
        folder = folders[name]
        V = GPTNeo.from_pretrained(folder).config.vocab_size
        bad = (bad_token_mask(load_neo_tokenizer(folder), V).nonzero().flatten().tolist()
               if (folder / "tokenizer.json").is_file() else list(range(1, 40)))  # random weights: as many bans
        pair = W.generation(folder, n, new, bad, b.device)
        pair.name += f" {name}"
        rows.append(b.measure(pair))
    name = next(n for n in b.sizes["linear"] if n in folders)
    n, lengths = b.sizes["linear"][name]
    for new in lengths:
        pair = W.generation(folders[name], n, new, [], b.device, with_hf=False)
        pair.name += f" {name} (ours)"
        result = b.measure(pair)
        result["note"] = f"{1000 * result['ours_s'] / new:.1f} ms per step (flat = linear in length)"
        rows.append(result)
    return rows


def pretrain_rows(b: Bench, folders: dict[str, Path]) -> list[dict]:
    """One pretraining step of a neo-small-shaped GPT-Neo in both precisions: tokens per second, fraction of peak."""
    n, t = b.sizes["pretrain"]
    rows = [b.measure(W.lm_train_step(folders["neo-small-shaped"], n, t, "fp32", b.device))]
    n16 = max(1, n // 8) if b.slow16 else n
    rows.append(b.measure(cut(W.lm_train_step(folders["neo-small-shaped"], n16, t, "bf16", b.device), n, n16)))
    return rows


def smollm2_folder(tmp: Path, quick: bool) -> Path | None:
    """SmolLM2-135M from the store (python -m scripts.weights fetch smollm2-135m); with --quick a tiny random Llama."""
    if quick:
        Llama(TINY_LLAMA).save_pretrained(tmp / "tiny-llama")
        return tmp / "tiny-llama"
    try:
        return store.resolve("smollm2-135m")
    except FileNotFoundError:
        print("  smollm2-135m not in the weights store (python -m scripts.weights fetch smollm2-135m): its rows are skipped")
        return None


def smollm2_rows(b: Bench, folder: Path | None) -> tuple[list[dict], list[str]]:
    """SmolLM2-135M against LlamaForCausalLM: a fine-tuning step (AdamW) in both precisions, ours eager and compiled
    in the programs' precision, and sampling with a KV cache (B8-B10)."""
    if folder is None:
        return [], []
    n, t = b.sizes["smollm2_train"]
    rows = [b.measure(W.lm_train_step(folder, n, t, "fp32", b.device, what="smollm2 train"))]
    n16 = max(1, n // 8) if b.slow16 else n
    rows.append(b.measure(cut(W.lm_train_step(folder, n16, t, "bf16", b.device, what="smollm2 train"), n, n16)))
    if b.compile:
        chosen = "fp32" if b.slow16 else "bf16"
        rows.append(b.measure(W.lm_train_step(folder, n, t, chosen, b.device, what="smollm2 train", compiled=True)))
    n, new = b.sizes["smollm2_gen"]
    bad = (bad_token_mask(load_neo_tokenizer(folder), W.load_decoder(folder).config.vocab_size).nonzero().flatten().tolist()
           if (folder / "tokenizer.json").is_file() else list(range(1, 40)))  # random weights: as many bans
    for dtype in ("fp32",) if b.slow16 else ("fp32", "bf16"):  # bf16: as the programs sample where it is faster
        pair = W.generation(folder, n, new, bad, b.device, dtype=dtype)
        pair.name += " smollm2"
        rows.append(b.measure(pair))
    model = W.load_decoder(folder)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    memory = [f"smollm2 generator: parameters {weights / 2**20:.0f} MiB (float32), AdamW state {2 * weights / 2**20:.0f} "
              f"MiB (two moments per parameter), gradients {weights / 2**20:.0f} MiB while training"]
    return rows, memory


def machine(device: str, quick: bool) -> dict:
    """What this machine is: its processor and flags, the measured peaks, the precision the programs choose."""
    peaks = measure_peaks(device, quick)
    chosen = choose_precision(torch.device(device), "auto")
    flags = []
    if os.path.exists("/proc/cpuinfo"):
        words = set(Path("/proc/cpuinfo").read_text().split())
        flags = [f for f in CPU_FLAGS if f in words]
    name = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or "cpu")
    return {"device": name, "cpu_flags": flags, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "peaks": peaks, "precision": chosen.name, "precision_reason": chosen.reason,
            "bf16_over_fp32_speed": chosen.ratio, "probe": probe_spread(torch.device(device), 2 if quick else 10)}


def measure_peaks(device: str, quick: bool) -> dict[str, Peak]:
    """float32 and bfloat16 peaks over a few shapes (bench/timing.py:matmul_peak)."""
    sizes = (64, 128) if quick else (256, 512, 1024, 2048)
    return {name: matmul_peak(dtype, device, sizes, repeats=2 if quick else 5)
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}


def probe_spread(device: torch.device, runs: int) -> dict:
    """The programs' precision probe run `runs` times: its ratios' range and how often each choice came out."""
    chosen = [choose_precision(device, "auto") for _ in range(runs)]
    ratios = sorted(c.ratio for c in chosen if c.ratio is not None)
    names = [c.name for c in chosen]
    return {"runs": runs, "ratios": ratios, "choices": {name: names.count(name) for name in sorted(set(names))}}


def targets(rows: list[dict], header: dict) -> list[str]:
    """The goals `make bench` checks, each with its measured number (issue: fast on every machine)."""
    by = {(r["workload"].split(" ")[0] + " " + r["workload"].split(" ")[1], r["dtype"]): r for r in rows
          if not r["workload"].endswith("compiled")}  # the eager rows; the compiled ones have their own lines
    lines, peak_ratio = [], header["peaks"]["bf16"].gflops / header["peaks"]["fp32"].gflops
    train32, train16 = by.get(("judge train", "fp32")), by.get(("judge train", "bf16"))
    for r in (train32, train16):
        if r and "ratio" in r:
            lines.append(f"judge training step {r['dtype']}: {r['ratio']:.2f}x transformers (goal >= 1.5x)")
    if train32 and train16 and "batch cut" not in train16["note"]:
        lines.append(f"our bfloat16 step / our float32 step: {train32['ours_s'] / train16['ours_s']:.2f}x "
                     f"(goal >= 2.5x where the peak ratio, here {peak_ratio:.1f}, is >= 3)")
    inf32, inf16 = by.get(("judge inference", "fp32")), by.get(("judge inference", "bfloat16"))
    if inf32 and inf16:
        lines.append(f"half judge inference / float32: {inf16['ours_tok_s'] / inf32['ours_tok_s']:.2f}x throughput "
                     f"(goal >= 2.5x where the peak ratio is >= 3)")
    for r in rows:
        if r["workload"].startswith("generate") and "ratio" in r:
            lines.append(f"{r['workload']} {r['dtype']}: {r['ratio']:.2f}x transformers' generate (goal >= 1.5x)")
        if r["workload"].startswith("smollm2 train") and "ratio" in r:
            lines.append(f"{r['workload']} {r['dtype']}: {r['ratio']:.2f}x LlamaForCausalLM (goal >= 1.5x), "
                         f"{100 * r['ours_peak']:.0f} % of the peak")
        elif r["workload"].endswith("compiled") and "ratio" in r:
            lines.append(f"{r['workload']} {r['dtype']}: {r['ratio']:.2f}x transformers (eager), "
                         f"{100 * r['ours_peak']:.0f} % of the peak")
    return lines


def peak_lines(header: dict) -> str:
    """The peaks with their spread, and the precision probe's spread over its runs."""
    lines = [f"peak {name}: {p.gflops:.0f} GFLOP/s ({p.n}x{p.n} products; readings {p.low:.0f}-{p.high:.0f})"
             for name, p in header["peaks"].items()]
    probe = header["probe"]
    low, high = probe["ratios"][0], probe["ratios"][-1]
    lines.append(f"precision probe, {probe['runs']} runs: bf16/fp32 speed {low:.3g}-{high:.3g}, choices {probe['choices']}"
                 + ("" if len(probe["choices"]) == 1 else " (the choice flipped)"))
    return "\n".join(lines)


def print_table(rows: list[dict], header: dict) -> None:
    print(f"\n{header['device']} ({', '.join(header['cpu_flags']) or 'no flags read'}) | torch {header['torch']} | "
          f"{header['threads']} threads | programs choose {header['precision']} ({header['precision_reason']})")
    print(peak_lines(header))
    print(f"allocator: {header['allocator']}")
    cols = f"{'workload':<36}{'dtype':<10}{'ours s':>9}{'HF s':>9}{'HF/ours':>9}{'ours tok/s':>12}{'ours %pk':>9}{'HF %pk':>8}"
    print(cols + "\n" + "-" * len(cols))
    for r in rows:
        hf = f"{r['hf_s']:>9.3f}{r['ratio']:>8.2f}x" if "hf_s" in r else f"{'-':>9}{'-':>9}"
        hf_pk = f"{100 * r['hf_peak']:>7.1f}%" if "hf_peak" in r else f"{'-':>8}"
        print(f"{r['workload']:<36}{r['dtype']:<10}{r['ours_s']:>9.3f}{hf}{r['ours_tok_s']:>12.0f}"
              f"{100 * r['ours_peak']:>8.1f}%{hf_pk}" + (f"  {r['note']}" if r["note"] else ""))
    for line in header.get("memory", []) + [""] + header.get("targets", []):
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per side (median reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runs-dir", default=os.environ.get("ALICE_EDGAR_RUNS", "runs"))
    parser.add_argument("--profile", action="store_true", help="also profile each side once: operator tables")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the compiled rows (each compiles first: up to two minutes on 2 cores)")
    args = parser.parse_args(argv)
    started, out = time.time(), Path(args.runs_dir) / "bench" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    allocator = keep_freed_memory()  # as every program does (plumbing/cli.py:run_program), for both sides
    header = machine(args.device, args.quick)
    header["allocator"] = allocator
    print(peak_lines(header), flush=True)
    b = Bench(args.device, 1 if args.quick else args.repeats, SIZES["quick" if args.quick else args.device],
              header["peaks"], out / "profiles" if args.profile else None, args.compile and compiler_missing() is None)
    rows, header["memory"] = judge_rows(b, store.resolve("minilm"))
    with tempfile.TemporaryDirectory() as tmp:
        folders = neo_folders(Path(tmp), args.quick)
        rows += generation_rows(b, folders) + pretrain_rows(b, folders)
        llama_rows, llama_memory = smollm2_rows(b, smollm2_folder(Path(tmp), args.quick))
        rows += llama_rows
        header["memory"] += llama_memory
    after = measure_peaks(args.device, args.quick)  # a slow spell during the first measurement must not stand
    header["peaks_after"] = after
    header["peaks"] = {name: peak.raised_to(after[name]) for name, peak in header["peaks"].items()}
    against(rows, header["peaks"])
    header.update(targets=targets(rows, header), seconds=time.time() - started, sizes=b.sizes,
                  fast_ratio=FAST_RATIO)
    print_table(rows, header)
    (out / "bench.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2, default=vars))
    print(f"\nwrote {out / 'bench.json'} ({header['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
