"""Lecture B, the co-evolution loop: `python -m train.coevolve` (the first half of `make coevolve`).

Three models in one process: the fine-tuned BERT judge of lecture A (frozen, in
half precision, B5) and two copies of one pretrained GPT-Neo, one fine-tuned on
Carroll (the Alice generator), one on Poe (the Edgar generator), each with the
plain language-model loss on its own author's training split (B1, B2). Every
`eval_every` steps, and at step 0 before any fine-tuning, both generators write
from the same random start tokens, the judge classifies what they wrote (B4,
B7) and the loop logs accuracy (B11), L_cls (B12), S(t) (B13) and the tokenizer
mismatch ratio (B16); see train/coevolve_judge.py.

    python -m train.coevolve                     # preset "cpu": neo-small, about 5 minutes on 2 cores
    python -m train.coevolve --preset lecture    # the course's numbers (B7), gpt-neo-125M, for a GPU
    python -m train.coevolve --steps 20 --lr 1e-4 --judge-dtype float32

Output: runs/coevolve/<timestamp>/ with config.json, metrics.jsonl (one line per
training step and per evaluation), samples.jsonl (every judged text with its
P(Alice)) and summary.json; runs/coevolve/latest points to the newest run with
at least one evaluation. Ctrl-C keeps every line written so far, and
`python -m eval.coevolve_plot` plots them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP; see train/judge.py
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from model.gpt_neo import GPTNeo
from model.half import cast_half
from model.sampler import PENALTY_MODES, bad_token_mask
from tokenizer_bridge.load import load_neo_tokenizer
from train import checkpoint as ckpt
from train.coevolve_judge import judge_generators, start_tokens
from train.corpus import AUTHORS, LABELS
from train.judge import append_jsonl, pick_device
from train.lm import FinetuneConfig, finetune_steps, heldout_loss
from train.pretrain_neo import corpus_splits, encode
from train.stats import wilson_interval
from weights.store import resolve

JUDGE_DTYPES = {"auto": None, "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
METRICS_FILE, SAMPLES_FILE, CONFIG_FILE, SUMMARY_FILE = "metrics.jsonl", "samples.jsonl", "config.json", "summary.json"


@dataclass
class CoevolveConfig:
    """Everything that decides a co-evolution run (saved in config.json). Defaults: the "cpu" preset."""

    preset: str = "cpu"
    base: str = "neo-small"  # the pretrained generator: a weights-store name or a GPT-Neo folder
    judge: str | None = None  # a judge run folder; None = runs/judge/latest
    # generators' fine-tuning (B2)
    steps: int = 40
    batch_size: int = 16  # windows per step
    seq_len: int = 128  # tokens per window
    lr: float = 1e-4  # 10 x the lecture's 1e-5, which is too slow for a 40-step run (see PRESETS)
    micro_batch_size: int | None = None
    # the judgement every eval_every steps (B7, B8, B9, B10)
    eval_every: int = 10
    rows: int = 32  # rows per generator: half the judge batch
    judge_len: int = 128  # L: BERT tokens the judge reads per row
    k: float = 4  # over-generation: k L GPT-Neo tokens per row
    max_rounds: int = 3  # extra sampling rounds for rows still short of L BERT tokens
    temperature: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.3
    penalty_mode: str = "lecture"  # "lecture": B10 on probabilities; "hf": the library's rule (course code)
    judge_dtype: str = "auto"  # B5: auto = cast_half's default (bfloat16 on CPU, float16 on CUDA); float32 = no cast
    heldout_windows: int = 16  # held-out windows of seq_len tokens per author for the held-out LM loss
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (None: torch's choice)


# "lecture": B7 and the course code: batch 64 x 128, lr 1e-5, 121 steps, judged every 10 steps, k = 4 (B8).
# "cpu": measured on this project's 2-core CPU (shared, load 1-3) with neo-small (4.3 M parameters) and the
# MiniLM judge in bfloat16: one fine-tuning step of 16 x 128 ~1 s per generator (64 x 128: 4-5 x that);
# one judgement ~40-60 s (sampling 32 x 512 tokens ~15 s per generator, the bfloat16 judge on 64 x 130: 12-24 s,
# float32 would take ~4 s: this CPU has no fast bfloat16). 40 steps, judged 5 times: ~5 minutes.
# lr (seed 0, accuracy at steps 0, 10, 20, ...): the lecture's 1e-5 is slow here (0.47 -> 0.63 after 20 steps);
# 3e-4 jumps (0.47, 0.95, 1.0, 0.95, 1.0); 1e-4 rises over the first 20 steps (0.47, 0.84, 0.97, 0.94, 0.95).
PRESETS: dict[str, dict] = {
    "lecture": dict(base="gpt-neo-125M", steps=121, batch_size=64, seq_len=128, lr=1e-5, eval_every=10),
    "cpu": dict(),  # the CoevolveConfig defaults above
}


def preset_config(name: str, **overrides) -> CoevolveConfig:
    """A CoevolveConfig from a preset, with every non-None override applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    cfg = replace(CoevolveConfig(preset=name), **PRESETS[name])
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def check_config(cfg: CoevolveConfig) -> None:
    """Clear errors for values that cannot work, before anything slow happens."""
    for name in ("steps", "batch_size", "eval_every", "rows", "judge_len", "heldout_windows"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.seq_len < 2 or cfg.lr <= 0:
        raise ValueError(f"seq_len must be >= 2 and lr > 0, got seq_len={cfg.seq_len}, lr={cfg.lr}")
    if cfg.k <= 1:
        raise ValueError(f"k must be > 1 (B8: over-generate, then cut), got {cfg.k}")
    if cfg.judge_dtype not in JUDGE_DTYPES:
        raise ValueError(f"judge_dtype must be one of {', '.join(JUDGE_DTYPES)}, got {cfg.judge_dtype!r}")
    if cfg.penalty_mode not in PENALTY_MODES:
        raise ValueError(f"penalty_mode must be one of {PENALTY_MODES}, got {cfg.penalty_mode!r}")


# ----------------------------------------------------------------------------- set-up


@dataclass
class Setup:
    """The three models and the data, ready for the loop."""

    generators: dict[str, GPTNeo]  # alice, edgar (label order), two copies of the base
    judge: torch.nn.Module
    neo_tok: Tokenizer  # GPT-Neo's byte-level BPE
    bert_tok: Tokenizer  # the judge's WordPiece
    bad_mask: torch.Tensor  # (V,) B9
    train_ids: dict[str, torch.Tensor]  # author -> (n,) GPT-Neo ids of the training split
    heldout_ids: dict[str, torch.Tensor]  # author -> (n,) GPT-Neo ids of the held-out split
    info: dict  # facts for config.json


def load_setup(
    cfg: CoevolveConfig, runs_dir: str | Path | None = None, splits: dict[str, tuple[str, str]] | None = None
) -> Setup:
    """Load the base generator twice, the judge in half precision (B5), and both authors' token streams.

    splits: author -> (train_text, heldout_text) for tests; None reads the corpus (train/corpus.py),
    split with the MiniLM tokenizer so that judge and generators hold out the same text.
    """
    device = pick_device(cfg.device)
    base = resolve(cfg.base)
    neo_tok = load_neo_tokenizer(base)
    base_model = GPTNeo.from_pretrained(base)
    need = int(cfg.k * cfg.judge_len)  # the start token + k L new tokens, the last of which is never fed back
    if need > base_model.config.max_position_embeddings:
        raise ValueError(f"k L = {need} positions exceed the base model's context of "
                         f"{base_model.config.max_position_embeddings}: lower k or judge_len")
    generators = {name: copy.deepcopy(base_model).to(device) for name in AUTHORS}  # label order
    bad_mask = bad_token_mask(neo_tok, base_model.config.vocab_size)

    judge, bert_tok, jmeta = ckpt.load_judge(cfg.judge, runs_dir, device)
    if jmeta.get("labels", LABELS) != LABELS:
        raise ValueError(f"the judge's labels {jmeta['labels']} are not {LABELS}: S(t) would read the wrong class")
    for p in judge.parameters():
        p.requires_grad_(False)  # the judge only measures (B15)
    dtype = JUDGE_DTYPES[cfg.judge_dtype]
    half = {"dtype": "float32", "ratio": 1.0} if dtype is torch.float32 else cast_half(judge, dtype)  # B5

    if splits is None:
        print("reading and tokenizing the corpus ...", file=sys.stderr)
        splits = corpus_splits(list(AUTHORS))
    train_ids = {a: encode(neo_tok, splits[a][0]) for a in AUTHORS}
    heldout_ids = {a: encode(neo_tok, splits[a][1]) for a in AUTHORS}
    for a in AUTHORS:
        for what, ids in (("train", train_ids[a]), ("held-out", heldout_ids[a])):
            if ids.numel() < cfg.seq_len + 1:
                raise ValueError(f"{a} {what} split has {ids.numel()} GPT-Neo tokens, fewer than one window "
                                 f"of {cfg.seq_len}: use a shorter --seq-len")
    info = {
        "base_folder": str(base),
        "generator_parameters": sum(p.numel() for p in base_model.parameters()),
        "judge_run": str(Path(jmeta["run_dir"]).resolve()),
        "judge_heldout_acc": jmeta.get("metrics", {}).get("heldout_acc"),
        "judge_half": {k: half[k] for k in ("dtype", "ratio")},
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "train_tokens": {a: train_ids[a].numel() for a in AUTHORS},
        "heldout_tokens": {a: heldout_ids[a].numel() for a in AUTHORS},
        "banned_ids": int(bad_mask.sum()),
    }
    return Setup(generators, judge, neo_tok, bert_tok, bad_mask, train_ids, heldout_ids, info)


# ----------------------------------------------------------------------------- run folder


def coevolve_root(runs_dir: str | Path | None = None) -> Path:
    """<runs>/coevolve: one sub-folder per run (runs = --runs-dir, $ALICE_EDGAR_RUNS or <repo>/runs)."""
    return ckpt.runs_root(runs_dir) / "coevolve"  # folders made by ckpt.new_run_dir(kind="coevolve")


# ----------------------------------------------------------------------------- B14: what the run shows


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope dy/dx of the points (x, y); 0.0 for fewer than two distinct x."""
    n = len(xs)
    if n < 2:
        return 0.0
    x_mean, y_mean = sum(xs) / n, sum(ys) / n
    var = sum((x - x_mean) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys)) / var


def lecture_results(evals: list[dict]) -> dict:
    """B14: untuned Acc ~ 45-50 %; accuracy rises with fine-tuning; dL_cls/dt < 0; S(t) up for Alice, down for Edgar.

    Read off the evaluation records (the first one is step 0). Slopes are least-squares fits
    per step over all evaluations; accuracies come with their Wilson 95 % interval.
    """
    if not evals:
        raise ValueError("no evaluation records")
    first, last = evals[0], evals[-1]
    steps = [r["step"] for r in evals]
    out = {"evaluations": len(evals), "first_step": first["step"], "last_step": last["step"]}
    for tag, r in (("start", first), ("end", last)):
        out[f"acc_{tag}"] = r["acc"]
        out[f"acc_{tag}_ci95"] = list(wilson_interval(r["correct"], r["n"]))
        out[f"judge_loss_{tag}"] = r["judge_loss"]
        for name in AUTHORS:
            out[f"S_{name}_{tag}"] = r[f"S_{name}"]
    out["chance_in_start_ci95"] = out["acc_start_ci95"][0] <= 0.5 <= out["acc_start_ci95"][1]
    out["acc_slope"] = slope(steps, [r["acc"] for r in evals])
    out["judge_loss_slope"] = slope(steps, [r["judge_loss"] for r in evals])  # B12/B14: < 0 expected
    for name in AUTHORS:
        out[f"S_{name}_slope"] = slope(steps, [r[f"S_{name}"] for r in evals])
    out["end_target_met"] = bool(out["acc_end"] >= 0.85 and out["S_alice_end"] > out["S_alice_start"]
                                 and out["S_edgar_end"] < out["S_edgar_start"])
    return out


def eval_line(r: dict) -> str:
    """One evaluation as a console line."""
    held = " ".join(f"{a} {r[f'heldout_{a}']:.3f}" for a in AUTHORS)
    return (f"step {r['step']:4d}: acc {r['acc']:.3f} [{r['acc_low']:.2f}, {r['acc_high']:.2f}]  "
            f"L_cls {r['judge_loss']:.3f}  S alice {r['S_alice']:.3f} edgar {r['S_edgar']:.3f}  "
            f"ratio {r['ratio']:.2f}  held-out LM {held}  (generate {r['gen_s']:.0f} s, judge {r['judge_s']:.0f} s)")


# ----------------------------------------------------------------------------- the loop


def coevolve(
    cfg: CoevolveConfig,
    runs_dir: str | Path | None = None,
    splits: dict[str, tuple[str, str]] | None = None,
    stop_after: int | None = None,
) -> Path:
    """B15: Generate -> Classify -> Optimize, a weak form of adversarial learning. Returns the run folder.

    Generate: both generators write from the same start tokens (own random streams);
    Classify: the frozen half-precision judge labels every row (B4, B7) and the loop logs
    B11, B12, B13, B16 and each generator's held-out LM loss; Optimize: each generator takes
    `eval_every` AdamW steps on its own author's text (B2). Weak, because the judge never
    feeds back into the generators: no gradient and no reward flows from BERT to GPT-Neo,
    and the judge itself never learns. It only measures how far plain fine-tuning moved
    each generator towards its author.

    Ctrl-C stops the loop at once; summary.json then says complete: false.
    splits: pre-split texts (tests; None reads the corpus). stop_after: act as if Ctrl-C
    came after that step (tests).
    """
    check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t_setup = time.time()
    s = load_setup(cfg, runs_dir, splits)
    run_dir = ckpt.new_run_dir(runs_dir, kind="coevolve")
    setup_s = time.time() - t_setup
    ft = FinetuneConfig(steps=cfg.steps, batch_size=cfg.batch_size, seq_len=cfg.seq_len, lr=cfg.lr,
                        micro_batch_size=cfg.micro_batch_size)
    (run_dir / CONFIG_FILE).write_text(json.dumps({"config": asdict(cfg), "finetune": asdict(ft), **s.info,
                                                   "setup_s": setup_s}, indent=2) + "\n", encoding="utf-8")
    print(f"run folder: {run_dir}", file=sys.stderr)

    # Seeded random streams, one per purpose: each generator's batches and samples, the start tokens.
    data_gens = {a: torch.Generator().manual_seed(cfg.seed + 1 + LABELS[a]) for a in AUTHORS}
    device = next(s.generators["alice"].parameters()).device
    sample_gens = {a: torch.Generator(device).manual_seed(cfg.seed + 101 + LABELS[a]) for a in AUTHORS}
    start_gen = torch.Generator().manual_seed(cfg.seed + 201)
    sampling = dict(temperature=cfg.temperature, top_k=cfg.top_k, repetition_penalty=cfg.repetition_penalty,
                    penalty_mode=cfg.penalty_mode, bad_mask=s.bad_mask)
    optimizers: dict = {a: None for a in AUTHORS}
    t0 = time.time()
    evals: list[dict] = []

    def evaluate(step: int) -> None:
        start = start_tokens(cfg.rows, s.bad_mask, start_gen)  # (R, 1), the same for both generators
        j = judge_generators(s.generators, s.judge, s.neo_tok, s.bert_tok, start, sample_gens, cfg.judge_len,
                             cfg.k, cfg.max_rounds, **sampling)
        record = {"kind": "eval", "step": step, **j.metrics}
        for a in AUTHORS:  # B2 on held-out text: each generator on its own author and on the other one
            for b in AUTHORS:
                key = f"heldout_{a}" if a == b else f"heldout_{a}_on_{b}"
                record[key] = heldout_loss(s.generators[a], s.heldout_ids[b], cfg.seq_len,
                                           max_windows=cfg.heldout_windows)
        record["time"] = time.time() - t0
        with ckpt.HoldInterrupt():  # an evaluation is written whole or not at all
            for sample in j.samples:
                append_jsonl(run_dir / SAMPLES_FILE, {"step": step, **sample})
            append_jsonl(run_dir / METRICS_FILE, record)
        evals.append(record)
        if len(evals) == 1:
            ckpt.point_latest(run_dir)  # latest = the newest run that has something to plot
        tqdm.write(eval_line(record), file=sys.stderr)

    step = 0
    interrupted = False
    bar = tqdm(total=cfg.steps, desc="co-evolve", unit="step")
    try:
        bar.set_postfix_str("judging step 0")
        evaluate(0)
        while step < cfg.steps:
            n = min(cfg.eval_every, cfg.steps - step)
            losses = {}
            for a in AUTHORS:  # Optimize: each generator on its own author's training split (B2)
                losses[a], optimizers[a] = finetune_steps(s.generators[a], s.train_ids[a], ft, steps=n,
                                                          optimizer=optimizers[a], generator=data_gens[a],
                                                          desc=f"fine-tune {a}")
            with ckpt.HoldInterrupt():
                for i in range(n):
                    append_jsonl(run_dir / METRICS_FILE, {"kind": "train", "step": step + i + 1,
                                                          **{f"loss_{a}": losses[a][i] for a in AUTHORS},
                                                          "time": time.time() - t0})
            step += n
            bar.update(n)
            bar.set_postfix_str(f"judging step {step}")
            evaluate(step)
            if stop_after is not None and step >= stop_after:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted at step {step}: metrics and samples so far are in {run_dir}", file=sys.stderr)
    finally:
        bar.close()
    summary = {"complete": not interrupted, "steps_done": step, "run_s": time.time() - t0, "setup_s": setup_s}
    if evals:
        summary.update(lecture_results(evals))
    ckpt.atomic_write_json(summary, run_dir / SUMMARY_FILE)
    return run_dir


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.coevolve", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="starting values (see PRESETS)")
    p.add_argument("--base", help="pretrained generator: store name (neo-small, gpt-neo-125M) or folder")
    p.add_argument("--judge", help="judge run folder (default: runs/judge/latest)")
    p.add_argument("--steps", type=int, help="fine-tuning steps of each generator")
    p.add_argument("--batch-size", type=int, help="windows per fine-tuning step")
    p.add_argument("--seq-len", type=int, help="tokens per fine-tuning window")
    p.add_argument("--lr", type=float, help="AdamW learning rate of the generators")
    p.add_argument("--micro-batch-size", type=int, help="split each batch into chunks of this many windows")
    p.add_argument("--eval-every", type=int, help="judge the generators every N steps (and at step 0)")
    p.add_argument("--rows", type=int, help="rows per generator per judgement (half the judge batch)")
    p.add_argument("--judge-len", type=int, help="L: BERT tokens per judged row")
    p.add_argument("--k", type=float, help="over-generation factor: k L GPT-Neo tokens per row (B8)")
    p.add_argument("--max-rounds", type=int, help="extra sampling rounds for rows short of L BERT tokens")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--repetition-penalty", type=float, help="r of B10")
    p.add_argument("--penalty-mode", choices=PENALTY_MODES, help="lecture: B10 on probabilities; hf: course code")
    p.add_argument("--judge-dtype", choices=sorted(JUDGE_DTYPES),
                   help="B5: auto = bfloat16 on CPU, float16 on CUDA; float32 = do not cast")
    p.add_argument("--heldout-windows", type=int, help="held-out windows per author for the held-out LM loss")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, ...")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--runs-dir", help=f"runs folder (default ${ckpt.RUNS_ENV} or <repo>/runs)")
    return p.parse_args(argv)


def print_summary(run_dir: Path) -> None:
    """The numbers a student checks first: step-0 and final accuracy with 95 % intervals, S(t) at both ends."""
    r = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    if "acc_start" not in r:
        print(f"no evaluation finished in {run_dir}")
        return
    lo, hi = r["acc_start_ci95"]
    print(f"step {r['first_step']}: judge accuracy {r['acc_start']:.3f} (95 % CI {lo:.3f}-{hi:.3f}; "
          f"chance 0.5 {'inside' if r['chance_in_start_ci95'] else 'OUTSIDE'})")
    lo, hi = r["acc_end_ci95"]
    print(f"step {r['last_step']}: judge accuracy {r['acc_end']:.3f} (95 % CI {lo:.3f}-{hi:.3f}), "
          f"L_cls {r['judge_loss_start']:.3f} -> {r['judge_loss_end']:.3f}")
    for name in AUTHORS:
        print(f"S(t) of the {name} generator: {r[f'S_{name}_start']:.3f} -> {r[f'S_{name}_end']:.3f}")
    print(f"target (acc >= 0.85, S alice up, S edgar down): {'met' if r['end_target_met'] else 'NOT met'}; "
          f"{r['steps_done']} steps in {r['run_s']:.0f} s (+ {r['setup_s']:.0f} s set-up); run folder {run_dir}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {f.name: getattr(args, f.name, None) for f in fields(CoevolveConfig) if f.name != "preset"}
    try:
        cfg = preset_config(args.preset, **overrides)
        run_dir = coevolve(cfg, runs_dir=args.runs_dir)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted during set-up, before the first evaluation", file=sys.stderr)
        return 130
    print_summary(run_dir)
    complete = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))["complete"]
    return 0 if complete else 130


if __name__ == "__main__":
    sys.exit(main())
