"""`make bench`: our models against transformers on the same work, one table of times and ratios.

    python -m bench            # the sizes below for this device
    python -m bench --quick    # tiny sizes: checks that every workload runs (seconds, not a measurement)
    python -m bench --profile  # also one profiled run per side: operator tables in <run>/profiles/

Each row runs ours and transformers alternately (interleaved repeats, warm-up excluded) and
reports medians, the ratio HF time / our time (> 1: ours is faster) and the fraction of the
machine's measured matmul peak for that dtype. The table is printed and written as JSON to
runs/bench/<timestamp>/bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from bench import workloads as W
from bench.timing import interleaved, matmul_peak, profile_table
from model.config import GPTNeoConfig
from model.gpt_neo import GPTNeo
from model.sampler import bad_token_mask
from tokenizer_bridge.load import load_neo_tokenizer
from weights import store

# Sizes: the on a GPU. On a CPU, the work a 2-core machine can repeat 2 x 6 times within the
# 15-minute budget: a 64 x 256 training step takes 15-25 s here, and the 125M-shaped model makes ~5
# tokens per second per row, so those two rows are cut (every row prints its exact shape). 16-bit rows
# shrink when the CPU has no fast 16-bit matmul (measured below): they would take most of the budget alone.
# The linear-in-length rows (ours alone) run on the first model of `linear` that is there: neo-small's
# context is 512 positions, so 1024 new tokens need the 125M shape; on a CPU without neo-small (a fresh
# clone before `make pretrain-neo`) the 125M shape runs them with few rows.
SIZES = {
    "cuda": dict(train=(64, 256), infer=(64, 128), gen_small=(32, 512), gen_125m=(32, 512),
                 linear={"125M-shaped": (32, (256, 512, 1024))}),
    "cpu": dict(train=(16, 256), infer=(64, 128), gen_small=(32, 512), gen_125m=(32, 64),
                linear={"neo-small": (32, (64, 128, 256)), "125M-shaped": (4, (32, 64, 128))}),
    "quick": dict(train=(2, 32), infer=(2, 32), gen_small=(2, 8), gen_125m=(1, 4),
                  linear={"neo-small": (2, (4, 8)), "125M-shaped": (1, (4, 8))}),
}
GPT_NEO_125M = GPTNeoConfig(vocab_size=50257, max_position_embeddings=2048, hidden_size=768, num_layers=12,
                            num_heads=12, window_size=256, attention_layers=["global", "local"] * 6)


def random_125m_folder(tmp: Path, quick: bool) -> Path:
    """A random-weight model shaped like gpt-neo-125M (tiny in --quick), saved in the HF layout."""
    torch.manual_seed(0)
    cfg = GPT_NEO_125M if not quick else GPTNeoConfig(vocab_size=512, max_position_embeddings=64, hidden_size=32,
                                                       num_layers=2, num_heads=2, window_size=8,
                                                       attention_layers=["global", "local"])
    GPTNeo(cfg).save_pretrained(tmp / "gpt-neo-125M-shaped")
    return tmp / "gpt-neo-125M-shaped"


def row(pair: W.Pair, seconds: dict[str, float], peak: float) -> dict:
    """One table row: times, ratio, tokens/s and fraction of peak for both sides."""
    out = {"workload": pair.name, "dtype": pair.dtype, "ours_s": seconds["ours"], "note": pair.note,
           "ours_tok_s": pair.tokens / seconds["ours"], "ours_peak": pair.flops / seconds["ours"] / 1e9 / peak}
    if "hf" in seconds:
        out.update(hf_s=seconds["hf"], ratio=seconds["hf"] / seconds["ours"], hf_tok_s=pair.tokens / seconds["hf"],
                   hf_peak=pair.flops / seconds["hf"] / 1e9 / peak)
    return out


def measure(pair: W.Pair, peak: float, repeats: int, device: str, profiles: Path | None = None) -> dict:
    """Time one workload and print its row at once (a long run shows its results as it goes).

    With `profiles`, each side then runs once more under torch.profiler, and its table of the
    operators with the most self time goes to profiles/<workload>-<side>.txt: where the time goes.
    """
    runs = {"ours": pair.ours} if pair.hf is None else {"ours": pair.ours, "hf": pair.hf}
    result = row(pair, interleaved(runs, repeats=repeats, warmup=1, device=device), peak)
    ratio = f", HF/ours {result['ratio']:.2f}x" if "ratio" in result else ""
    print(f"  {pair.name} [{pair.dtype}]: ours {result['ours_s']:.3f} s{ratio}", flush=True)
    if profiles is not None:
        profiles.mkdir(parents=True, exist_ok=True)
        for side, fn in runs.items():
            slug = f"{pair.name} {pair.dtype} {side}".replace(" ", "-")
            (profiles / f"{slug}.txt").write_text(profile_table(fn, device) + "\n")
    return result


def print_table(rows: list[dict], header: dict) -> None:
    print(f"\n{header['device']} | torch {header['torch']} | {header['threads']} threads | "
          f"peak fp32 {header['peak_fp32']:.0f} GFLOP/s, bf16 {header['peak_bf16']:.1f} GFLOP/s")
    cols = f"{'workload':<34}{'dtype':<10}{'ours s':>9}{'HF s':>9}{'HF/ours':>9}{'ours tok/s':>12}{'ours %pk':>9}{'HF %pk':>8}"
    print(cols + "\n" + "-" * len(cols))
    for r in rows:
        hf = f"{r['hf_s']:>9.3f}{r['ratio']:>8.2f}x" if "hf_s" in r else f"{'-':>9}{'-':>9}"
        hf_pk = f"{100 * r['hf_peak']:>7.1f}%" if "hf_peak" in r else f"{'-':>8}"
        print(f"{r['workload']:<34}{r['dtype']:<10}{r['ours_s']:>9.3f}{hf}{r['ours_tok_s']:>12.0f}"
              f"{100 * r['ours_peak']:>8.1f}%{hf_pk}" + (f"  {r['note']}" if r["note"] else ""))
    for line in header.get("memory", []):
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per side (median reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runs-dir", default=os.environ.get("ALICE_EDGAR_RUNS", "runs"))
    parser.add_argument("--profile", action="store_true",
                        help="also profile each side once: operator tables in the run folder's profiles/")
    args = parser.parse_args(argv)
    device, repeats = args.device, (1 if args.quick else args.repeats)
    sizes = SIZES["quick" if args.quick else device]
    started = time.time()
    out = Path(args.runs_dir) / "bench" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    profiles = out / "profiles" if args.profile else None

    def timed(pair: W.Pair, peak: float) -> dict:
        return measure(pair, peak, repeats, device, profiles)

    peak32 = matmul_peak(torch.float32, device, n=256 if args.quick else 1024)
    peak16 = matmul_peak(torch.bfloat16, device, n=256 if args.quick else 512)
    slow16 = peak16 < peak32  # no fast 16-bit matmul on this CPU (e.g. AVX2 only)
    header = {"device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(), "peak_fp32": peak32,
              "peak_bf16": peak16, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "sizes": sizes}
    # A 16-bit row runs part of its work in float32 (autocast keeps softmax, LayerNorm, ...), so its
    # ceiling is the faster of the two peaks, not the 16-bit one alone.
    peak_half = max(peak16, peak32)
    peaks = {"fp32": peak32, "bf16": peak_half, "bfloat16": peak_half, "float16": peak_half}
    print(f"peak matmul: fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s "
          f"({header['cpu_capability'] if device == 'cpu' else device})")

    minilm = store.resolve("minilm")
    rows, memory = [], []
    b, t = sizes["train"]
    rows.append(timed(W.judge_train_step(minilm, b, t, "fp32", device), peak32))
    b16 = max(2, b // 32) if slow16 else b
    pair = W.judge_train_step(minilm, b16, t, "bf16", device)
    pair.note = f"batch cut {b // b16}x: bf16 is slow on this CPU" if b16 != b else ""
    rows.append(timed(pair, peaks["bf16"]))

    b, t = sizes["infer"]
    for half in (False, True):
        bi = max(2, b // 8) if half and slow16 else b
        pair, mem = W.judge_inference(minilm, bi, t, half, device)
        pair.note = f"batch cut {b // bi}x: bf16 is slow on this CPU" if bi != b else ""
        rows.append(timed(pair, peaks[pair.dtype]))
        memory.append("judge parameters: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" if k.endswith("bytes")
                                                      else f"{k} {v:.3f}" for k, v in mem.items()))

    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        try:
            folders["neo-small"] = store.resolve("neo-small")
        except FileNotFoundError:
            print("  neo-small not in the weights store (make pretrain-neo): its rows are skipped")
        folders["125M-shaped"] = random_125m_folder(Path(tmp), args.quick)
        for name, folder in folders.items():
            rows_, new = sizes["gen_small" if name == "neo-small" else "gen_125m"]
            V = GPTNeo.from_pretrained(folder).config.vocab_size
            if (folder / "tokenizer.json").is_file():
                bad = bad_token_mask(load_neo_tokenizer(folder), V).nonzero().flatten().tolist()
            else:  # random weights, no tokenizer: ban as many ids as a real tokenizer would (speed only)
                bad = list(range(1, 40))
            pair = W.generation(folder, rows_, new, bad, device)
            pair.name += f" {name}"
            rows.append(timed(pair, peak32))
        name = next(n for n in sizes["linear"] if n in folders)
        rows_, lengths = sizes["linear"][name]
        for new in lengths:
            pair = W.generation(folders[name], rows_, new, [], device, with_hf=False)
            pair.name += f" {name} (ours)"
            result = timed(pair, peak32)
            result["note"] = f"{1000 * result['ours_s'] / new:.1f} ms per step (flat = linear in length)"
            rows.append(result)

    header["memory"] = memory
    header["seconds"] = time.time() - started
    print_table(rows, header)
    (out / "bench.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    print(f"\nwrote {out / 'bench.json'} ({header['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
