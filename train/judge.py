"""Train the BERT judge of lecture A: `python -m train.judge` (the first half of `make train-bert`).

A6, the procedure: tokenize the two authors; load the pretrained BERT; add the
classification layer (dropout + linear, A2); train by back-propagation on
cross-entropy (A3) with AdamW (A7); save the trained model.

    python -m train.judge                      # preset "cpu": MiniLM, a few minutes on 2 cores
    python -m train.judge --preset lecture     # the course's set-up (A5), bert-base-uncased, for a GPU
    python -m train.judge --steps 40 --lr 5e-5 # any preset value can be overridden
    python -m train.judge --resume             # continue the latest run from its last checkpoint

Output: runs/judge/<timestamp>/ (see train/checkpoint.py) and runs/judge/latest.
Each step logs loss (A3), batch accuracy (A11) and update size (A13) to
metrics.jsonl; every `eval_every` steps the judge is also evaluated on fixed
held-out windows of `eval_length` tokens, never trained on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from tqdm import tqdm

from model.bert import Bert, BertClassifier
from tokenizer_bridge.load import load_bert_tokenizer
from train import checkpoint as ckpt
from train.batches import AuthorIds, Specials, author_batch, heldout_set, load_author_ids, text_tokens_per_window
from train.corpus import check_long_enough
from train.metrics import accuracy, cross_entropy, snapshot, update_size
from weights.store import resolve


@dataclass
class TrainConfig:
    """Everything that decides a judge training run (saved in judge.json)."""

    preset: str = "cpu"
    model: str = "minilm"  # a weights-store name or a Hugging Face BERT folder
    batch_size: int = 16  # half Alice, half Edgar (A8)
    length: int = 64  # tokens per training window, [CLS] and [SEP] included
    eval_length: int = 256  # tokens per held-out window (the lecture's L, A5)
    steps: int = 60
    lr: float = 1e-4
    schedule: str = "linear"  # "constant": eta_t = lr (the course); "linear": eta_t falls from lr to lr/steps
    weight_decay: float = 0.01  # AdamW's default, as in the course
    dropout: float = 0.1
    seed: int = 1234
    eval_every: int = 20  # held-out evaluation every N steps (and at steps 0 and last); 0 = only at the end
    eval_per_author: int = 16  # held-out windows per author for those evaluations
    save_every: int = 30  # checkpoint every N steps (and at the last step and on Ctrl-C)
    device: str = "auto"  # auto = cuda if available, else cpu
    autocast: str = "off"  # "bf16": bfloat16 autocast (fast on GPUs and CPUs with AMX/AVX512-BF16)


# A5: the lecture's set-up. "cpu": chosen so that `make train-bert` ends within 10 minutes on 2 cores.
PRESETS: dict[str, dict] = {
    "lecture": dict(model="bert-base-uncased", batch_size=64, length=256, steps=150, lr=5e-7, schedule="constant",
                    eval_every=10, eval_per_author=31, save_every=50),
    "cpu": dict(),  # the TrainConfig defaults above
}


def preset_config(name: str, **overrides) -> TrainConfig:
    """A TrainConfig from a preset, with any non-None override applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    cfg = replace(TrainConfig(preset=name), **PRESETS[name])
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def tokens_seen(batch_size: int, length: int, steps: int) -> int:
    """A5: M = N x L, with N = batch_size x steps windows of L tokens each."""
    return batch_size * steps * length


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise the named device (clear error if cuda is absent)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def autocast_context(device: torch.device, mode: str):
    """bfloat16 autocast on `device` if mode == 'bf16', else a no-op context."""
    if mode == "off":
        return contextlib.nullcontext()
    if mode == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"autocast must be 'off' or 'bf16', got {mode!r}")


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """A7: theta_{t+1} = theta_t - eta grad_theta L_t

    The lecture's rule is plain gradient descent; like the course code we use
    AdamW, which applies the same step direction scaled per parameter by running
    moments of the gradient, plus decoupled weight decay. eta = lr.
    """
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """eta_t of A7 at step t = 1..steps: constant (the course), or linear decay from lr to lr/steps.

    The decay lets a short, noisy run settle: its last updates are the smallest.
    """
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "linear":
        return cfg.lr * (cfg.steps - step + 1) / cfg.steps
    raise ValueError(f"schedule must be 'constant' or 'linear', got {cfg.schedule!r}")


def forward_backward(
    model: BertClassifier, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], amp
) -> tuple[float, float]:
    """Forward pass, A3 loss, backward pass (gradients in .grad). Returns (loss, batch accuracy A11)."""
    x, mask, y = batch  # (B, L), (B, L), (B,)
    with amp:
        logits = model(x, mask)  # (B, 2)
    loss = cross_entropy(logits, y)
    model.zero_grad(set_to_none=True)
    loss.backward()
    return loss.item(), accuracy(logits.detach(), y)


def apply_update(model: BertClassifier, optimizer: torch.optim.Optimizer, before: list[torch.Tensor]) -> float:
    """A7 step theta_t -> theta_{t+1}; returns its size |theta_{t+1} - theta_t| (A13).

    `before` holds reusable buffers for the snapshot of theta_t.
    """
    params = list(model.parameters())
    snapshot(params, before)  # theta_t
    optimizer.step()  # theta_{t+1}
    return update_size(params, before)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    batch_size: int = 16,
    amp=None,
    desc: str | None = None,
) -> torch.Tensor:
    """Logits (N, C) in float32 on the CPU for windows x (N, L), `batch_size` windows at a time, eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    starts = range(0, len(x), batch_size)
    for s in tqdm(starts, desc=desc, leave=False, disable=desc is None or len(starts) < 2):
        with amp or contextlib.nullcontext():
            z = model(x[s : s + batch_size].to(device), mask[s : s + batch_size].to(device))  # (b, C)
        out.append(z.float().cpu())
    model.train(was_training)
    return torch.cat(out)


def evaluate(model: torch.nn.Module, heldout: tuple[torch.Tensor, ...], amp=None,
             desc: str | None = "held-out") -> dict[str, float]:
    """Held-out loss (A3) and accuracy (A11) on fixed windows (x, mask, y)."""
    x, mask, y = heldout
    logits = predict_logits(model, x, mask, amp=amp, desc=desc)
    return {"heldout_loss": cross_entropy(logits, y).item(), "heldout_acc": accuracy(logits, y)}


def check_config(cfg: TrainConfig) -> None:
    """Clear errors for values that cannot work, before anything slow happens."""
    if cfg.batch_size < 2 or cfg.batch_size % 2:
        raise ValueError(f"batch size must be even and >= 2 (half Alice, half Edgar), got {cfg.batch_size}")
    for name in ("length", "eval_length"):
        if getattr(cfg, name) < 3:
            raise ValueError(f"{name} must be >= 3 ([CLS] + at least one token + [SEP]), got {getattr(cfg, name)}")
    if cfg.steps < 1 or cfg.lr <= 0:
        raise ValueError(f"steps must be >= 1 and lr > 0, got steps={cfg.steps}, lr={cfg.lr}")
    if cfg.eval_per_author < 1:
        raise ValueError(f"eval_per_author must be >= 1, got {cfg.eval_per_author}")
    learning_rate(1, cfg)  # checks the schedule's name
    autocast_context(torch.device("cpu"), cfg.autocast)  # checks the autocast mode


def check_corpus(authors: dict[str, AuthorIds], cfg: TrainConfig) -> None:
    """Clear errors before training if a split cannot give the windows the config asks for."""
    for name, a in authors.items():
        check_long_enough(len(a.train), text_tokens_per_window(cfg.length), f"{name} train split")
        need = text_tokens_per_window(cfg.eval_length) * max(cfg.eval_per_author, 1)
        check_long_enough(len(a.heldout), need,
                          f"{name} held-out split ({cfg.eval_per_author} windows of {cfg.eval_length})")


def append_jsonl(path: Path, record: dict) -> None:
    """One JSON line, flushed at once (so a crash loses at most the line being written)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the metrics of steps <= `step` (a resumed run re-does the steps after its checkpoint)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)


def train_judge(
    cfg: TrainConfig,
    runs_dir: str | Path | None = None,
    resume: str | Path | None = None,
    authors: dict[str, AuthorIds] | None = None,
    stop_after: int | None = None,
) -> Path:
    """A6: tokenize, load the pretrained BERT, add the head, train, save. Returns the run folder.

    resume: a run folder to continue from its last checkpoint (its config is
    used; `cfg.steps` may extend it). authors: pre-tokenized corpus (tests);
    None reads it through train/corpus.py. stop_after: stop (with a checkpoint)
    after this step, as Ctrl-C would (tests).
    """
    check_config(cfg)
    device = pick_device(cfg.device)
    run_dir = None if resume is None else ckpt.find_run(resume)
    saved_meta = {}
    if run_dir is not None:
        saved_meta = ckpt.read_meta(run_dir)
        cfg = replace(TrainConfig(**saved_meta["train_config"]), steps=cfg.steps, device=cfg.device)
        base = Path(saved_meta["base_model"])
    else:
        base = resolve(cfg.model)

    # 1. tokenize
    tok = load_bert_tokenizer(base if run_dir is None else run_dir)
    sp = Specials.of(tok)
    if authors is None:
        print("tokenizing the corpus ...", file=sys.stderr)
        authors = load_author_ids(tok)
    check_corpus(authors, cfg)
    heldout = heldout_set(authors, cfg.eval_length, sp, cfg.eval_per_author)

    # 2-3. pretrained BERT + classification head; fixed seed for the head and the batches
    torch.manual_seed(cfg.seed)
    data_gen = torch.Generator().manual_seed(cfg.seed)
    if run_dir is None:
        model = BertClassifier(Bert.from_pretrained(base), n_classes=2, dropout=cfg.dropout)
    else:
        model = ckpt.build_judge(saved_meta)  # its weights come from the checkpoint, below
    model = model.to(device)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    amp = autocast_context(device, cfg.autocast)

    start = 0
    if run_dir is None:
        run_dir = ckpt.new_run_dir(runs_dir)
        tok.save(str(run_dir / ckpt.TOKENIZER_FILE))
    else:
        saved_meta, rng = ckpt.load_resume(run_dir, model, optimizer)
        start = saved_meta["step"]
        if cfg.steps < start:
            raise ValueError(f"{run_dir} is already at step {start}; pass --steps N with N > {start} to extend it")
        ckpt.restore_rng(rng, data_gen)
        truncate_metrics(run_dir / ckpt.METRICS_FILE, start)
        print(f"resuming {run_dir} at step {start} of {cfg.steps}", file=sys.stderr)
    metrics_path = run_dir / ckpt.METRICS_FILE
    meta = {
        "base_model": str(base),
        "train_config": asdict(cfg),
        "labels": {name: a.label for name, a in authors.items()},
        "tokens_seen": tokens_seen(cfg.batch_size, cfg.length, cfg.steps),
        "metrics": saved_meta.get("metrics", {}),
    }
    print(f"run folder: {run_dir}", file=sys.stderr)

    saved = [start]

    def save(step: int, rng: dict) -> None:
        meta["complete"] = step >= cfg.steps
        with ckpt.HoldInterrupt():  # the checkpoint and the `latest` link, both or neither
            ckpt.save_checkpoint(run_dir, model, optimizer, step, meta, rng)
            ckpt.point_latest(run_dir)
            saved[0] = step

    def held_out_eval(step: int) -> dict:
        record = {"kind": "eval", "step": step, **evaluate(model, heldout, amp)}
        append_jsonl(metrics_path, record)
        meta["metrics"].update(record)
        return record

    # 4. train by back-propagation
    model.train()
    before = snapshot(list(model.parameters()))
    boundary_rng = ckpt.capture_rng(data_gen)  # the random state at the last completed step
    done = start
    t0 = time.time() - meta["metrics"].get("time", 0.0)  # a resumed run continues the clock
    last_eval = {}
    if start == 0:
        last_eval = held_out_eval(0)  # the untrained judge: about 0.5
    bar = tqdm(range(start + 1, cfg.steps + 1), desc="train judge", initial=start, total=cfg.steps)
    try:
        for step in bar:
            batch = author_batch(authors["alice"].train, authors["edgar"].train, cfg.batch_size, cfg.length,
                                 data_gen, sp)
            batch = tuple(t.to(device) for t in batch)
            loss, acc = forward_backward(model, batch, amp)
            # Ctrl-C waits until the update, its RNG state and its metrics are all recorded:
            # an interrupt always finds the run at a step boundary.
            with ckpt.HoldInterrupt():
                lr = learning_rate(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                size = apply_update(model, optimizer, before)
                done = step
                boundary_rng = ckpt.capture_rng(data_gen)
                out = {"loss": loss, "acc": acc, "update": size}
                record = {"kind": "train", "step": step, **out, "lr": lr,
                          "tokens": tokens_seen(cfg.batch_size, cfg.length, step), "time": time.time() - t0}
                append_jsonl(metrics_path, record)
                meta["metrics"].update(record)
            if step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0):
                last_eval = held_out_eval(step)
            bar.set_postfix(loss=f"{out['loss']:.3f}", acc=f"{out['acc']:.2f}", upd=f"{out['update']:.2e}",
                            held=f"{last_eval.get('heldout_acc', float('nan')):.2f}")
            if step == cfg.steps or (cfg.save_every and step % cfg.save_every == 0):
                save(step, boundary_rng)
            if stop_after is not None and step >= stop_after:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        if done > saved[0]:
            save(done, boundary_rng)
            print(f"\ninterrupted: checkpoint of step {done} saved in {run_dir}; "
                  f"continue with `python -m train.judge --resume {run_dir}`", file=sys.stderr)
        elif done > 0:
            print(f"\ninterrupted: the checkpoint of step {done} in {run_dir} is up to date", file=sys.stderr)
        else:
            print(f"\ninterrupted before the first step: no checkpoint in {run_dir}", file=sys.stderr)
        if stop_after is None:
            raise
        return run_dir
    bar.close()
    return run_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.judge", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="starting values (see PRESETS)")
    p.add_argument("--model", help="weights-store name or BERT folder (preset: minilm / bert-base-uncased)")
    p.add_argument("--batch-size", type=int, help="windows per batch, half Alice half Edgar")
    p.add_argument("--length", type=int, help="tokens per training window, [CLS] and [SEP] included")
    p.add_argument("--eval-length", type=int, help="tokens per held-out window")
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--lr", type=float, help="AdamW learning rate (the first step's, see --schedule)")
    p.add_argument("--schedule", choices=["constant", "linear"], help="learning rate over the steps")
    p.add_argument("--seed", type=int, help="random seed (head init, dropout, batches)")
    p.add_argument("--eval-every", type=int, help="held-out evaluation every N steps (0: only at the end)")
    p.add_argument("--eval-per-author", type=int, help="held-out windows per author for those evaluations")
    p.add_argument("--save-every", type=int, help="checkpoint every N steps")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--autocast", choices=["off", "bf16"], help="bfloat16 autocast for training")
    p.add_argument("--runs-dir", help=f"runs folder (default ${ckpt.RUNS_ENV} or <repo>/runs)")
    p.add_argument("--resume", nargs="?", const="latest", metavar="RUN",
                   help="continue RUN (default: the latest run) from its last checkpoint")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig) if f.name != "preset"}
    try:
        cfg = preset_config(args.preset, **overrides)
        resume = None
        if args.resume is not None:
            resume = ckpt.find_run(None if args.resume == "latest" else args.resume, args.runs_dir)
            saved = ckpt.read_meta(resume)["train_config"]
            cfg = replace(cfg, steps=args.steps or saved["steps"], device=args.device or saved["device"])
        run_dir = train_judge(cfg, runs_dir=args.runs_dir, resume=resume)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130  # the loop has already said what it saved
    meta = ckpt.read_meta(run_dir)
    m = meta["metrics"]
    print(f"judge saved in {run_dir} (step {meta['step']}): held-out accuracy {m.get('heldout_acc', float('nan')):.3f} "
          f"on {2 * meta['train_config']['eval_per_author']} windows of {meta['train_config']['eval_length']} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
