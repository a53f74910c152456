"""Pretrain our own small GPT-Neo from scratch, offline, on the training split of the corpus.

No package ships pretrained GPT-Neo weights, so lecture B's generators start from this one (see the
decisions in the spec). Set-up, loop, save:

    1. split each author's books with the judge's BERT tokenizer (data/), so that the judge and
       the generators hold out exactly the same text;
    2. train a byte-level BPE on the TRAIN text only (tokenizer_bridge/bpe.py);
    3. pretrain GPT-Neo (global + local layers) on windows of `length` tokens, an equal share of
       every batch from each author, AdamW with warm-up then cosine decay, within a time budget
       (B1, B2), in the precision measured best on this machine (plumbing/precision.py);
    4. measure each author's held-out loss every `eval_every` steps and at the end;
    5. save config.json + model.safetensors + tokenizer.json into the weights store as "neo-small",
       written whole or not at all (plumbing/hf_folder.py).

Every position 0..context-1 is trained: the generators later write 4 x 128 = 512 tokens (B8), and
a position embedding that never saw a gradient is noise.

    python -m scripts.pretrain_neo                 # ~11 minutes of training on 2 CPU cores
    python -m scripts.pretrain_neo --steps 300     # a fixed number of steps instead of a time budget
    python -m scripts.pretrain_neo --resume        # continue a stopped run (its checkpoint)

Outputs: the store entry, and runs/pretrain_neo/<time>/ (config.json, metrics.jsonl, summary.json,
sample.txt); `python -m scripts.report` draws its loss curves.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from data.authors import DEFAULT_AUTHORS, select_authors
from data.corpus import SPLITS, author_texts, check_long_enough
from data.windows import balanced_lm_batch, text_ids
from model.config import GPTNeoConfig
from model.gpt_neo import GPTNeo
from model.layers import count_parameters
from model.sampler import Sampling, generate
from plumbing import distributed
from plumbing.atomic import atomic_write_json, atomic_write_text
from plumbing.checkpoint import load_checkpoint, save_checkpoint
from plumbing.cli import run_program
from plumbing.config import ConfigError, as_dict, parse_program, setting
from plumbing.hf_folder import write_model_folder
from plumbing.interrupt import StopRequest
from plumbing.model_card import OWN_LICENCE, TEXTS_LICENCE, ModelCard, authors_line, hf_use
from plumbing.precision import PRECISIONS, Precision, choose_precision, grad_scaler
from plumbing.runs import Run
from tokenizer_bridge.bpe import eos_id, train_bpe
from tokenizer_bridge.load import load_bert_tokenizer
from train.lm import heldout_loss, lm_step
from train.optim import lr_at, make_optimizer, set_lr
from weights.store import folder_for, is_installed, resolve

STORE_NAME = "neo-small"


@dataclass
class PretrainConfig:
    """Tokenizer, model and optimisation settings of a pretraining run."""

    authors: str = setting("authors whose training text the base learns from: a comma list or 'all'", check=select_authors)
    split: str = setting("held-out text (as the judge's): 'tail' or 'book'", choices=SPLITS)
    vocab_size: int = setting("byte-level BPE vocabulary (256 bytes + <|endoftext|> + merges)", min=258)
    hidden_size: int = setting("model width", min=8)
    num_layers: int = setting("layers, alternately global and local attention", min=1)
    num_heads: int = setting("attention heads (hidden_size must divide by it)", min=1)
    window_size: int = setting("a local layer sees the last window_size tokens", min=1)
    context: int = setting("max_position_embeddings: 4 x 128 tokens must fit (B8)", min=2)
    dropout: float = setting("dropout in embeddings, attention and residuals", min=0, max=0.9)
    length: int = setting("tokens per training window (= context: every position is trained)", min=2)
    per_author: int = setting("windows of each author in a step (an equal share of every batch)", min=1)
    lr: float = setting("peak learning rate (higher diverged: GPT-Neo does not scale q.k by 1/sqrt(hs))", above=0, max=1)
    min_lr_ratio: float = setting("the cosine ends at lr x this", min=0, max=1)
    warmup: float = setting("fraction of the run over which lr rises from 0", min=0, max=1)
    beta2: float = setting("Adam's second-moment decay (0.95 adapts faster than 0.999 in a short run)", above=0, max=0.9999)
    weight_decay: float = setting("AdamW weight decay of matrices and embeddings", min=0, max=1)
    grad_clip: float = setting("clip the gradients' joint norm (0: no clipping)", min=0)
    steps: int = setting("a fixed number of steps, or 0: train for `minutes`", min=0)
    minutes: float = setting("time budget of the training loop when steps is 0", above=0)
    eval_every: int = setting("steps between held-out evaluations", min=1)
    eval_windows: int = setting("held-out windows per author in those evaluations (all at the end)", min=1)
    seed: int = setting("random seed", min=0)
    precision: str = setting("auto = measured on this machine, or fp32, bf16, fp16", choices=PRECISIONS)
    device: str = setting("auto, cpu, cuda, cuda:N")


PRESETS = {
    "cpu": PretrainConfig(authors=DEFAULT_AUTHORS, split="tail", vocab_size=4096, hidden_size=256, num_layers=4,
                          num_heads=4, window_size=256, context=512, dropout=0.0, length=512, per_author=4, lr=2e-3,
                          min_lr_ratio=0.1, warmup=0.03, beta2=0.95, weight_decay=0.1, grad_clip=1.0, steps=0,
                          minutes=11.0, eval_every=25, eval_windows=12, seed=0, precision="auto", device="auto"),
}
RESUME_MAY_CHANGE = {"device", "precision"}


def check(cfg: PretrainConfig) -> PretrainConfig:
    """Settings that cannot work together, refused before anything slow happens."""
    if cfg.length > cfg.context:
        raise ConfigError(f"--length {cfg.length} exceeds the context of {cfg.context} positions")
    if cfg.num_layers >= 2 and cfg.window_size >= cfg.context:
        raise ConfigError(f"--window-size {cfg.window_size} must be smaller than --context {cfg.context}, "
                          "or the local layers are global ones")
    if cfg.hidden_size % cfg.num_heads:
        raise ConfigError(f"--hidden-size {cfg.hidden_size} must be a multiple of --num-heads {cfg.num_heads}")
    return cfg


def neo_config(cfg: PretrainConfig, vocab_size: int, eos: int) -> GPTNeoConfig:
    """The GPT-Neo shape: layers alternate global, local; BOS = EOS = <|endoftext|>."""
    kinds = ["global", "local"] * (cfg.num_layers // 2) + ["global"] * (cfg.num_layers % 2)
    return GPTNeoConfig(vocab_size=vocab_size, max_position_embeddings=cfg.context, hidden_size=cfg.hidden_size,
                        num_layers=cfg.num_layers, num_heads=cfg.num_heads, intermediate_size=4 * cfg.hidden_size,
                        window_size=cfg.window_size, attention_layers=kinds, embed_dropout=cfg.dropout,
                        attention_dropout=cfg.dropout, resid_dropout=cfg.dropout, bos_token_id=eos, eos_token_id=eos)


# ----------------------------------------------------------------------------- set-up


@dataclass
class Data:
    tok: object  # the byte-level BPE trained here
    train: dict[str, torch.Tensor]  # author -> GPT-Neo ids of the training split
    heldout: dict[str, torch.Tensor]  # author -> GPT-Neo ids of the held-out split


def load_data(cfg: PretrainConfig) -> Data:
    """1-2. the splits (cut where the judge's tokenizer cuts them), a BPE trained on the training text, the ids."""
    authors = select_authors(cfg.authors)
    bert_tok = load_bert_tokenizer(resolve("minilm"))  # the judge's tokenizer decides where the tail split cuts
    splits = {a: author_texts(a, cfg.split, bert_tok) for a in tqdm(authors, desc="corpus", leave=False)}
    tok = train_bpe([train for train, _ in splits.values()], cfg.vocab_size)  # training text only
    data = Data(tok, {a: text_ids(tok, splits[a][0]) for a in authors}, {a: text_ids(tok, splits[a][1]) for a in authors})
    for a in authors:
        check_long_enough(len(data.train[a]), cfg.length + 1, f"{a} train split")
        check_long_enough(len(data.heldout[a]), cfg.length, f"{a} held-out split")
    return data


def parse_args(argv: list[str] | None) -> tuple[PretrainConfig, Path | None, dict, object]:
    """(checked config, run to resume or None, that run's config.json or {}, the other arguments)."""
    def extra(p):
        p.add_argument("--out", help=f"model folder to write (default: the weights-store entry {STORE_NAME!r})")
        p.add_argument("--force", action="store_true", help="pretrain again even if the model is installed")

    cfg, resume, saved, args = parse_program(PretrainConfig, PRESETS, argv, "pretrain_neo", __doc__, RESUME_MAY_CHANGE,
                                             extra)
    return check(cfg), resume, saved, args


@dataclass
class PretrainLoop:
    """What the pretraining loop works on."""

    cfg: PretrainConfig
    model: GPTNeo
    ddp: torch.nn.Module
    optimizer: torch.optim.Optimizer
    data: Data
    rng: torch.Generator
    run: Run
    precision: Precision
    dist: distributed.Dist
    state: dict  # step, elapsed seconds, tokens, compute seconds

    def progress(self) -> float:
        """How far the run is, 0 -> 1: steps done / steps, or elapsed / budget (the same on every rank)."""
        own = self.state["step"] / self.cfg.steps if self.cfg.steps else self.state["elapsed"] / (60 * self.cfg.minutes)
        return distributed.mean(own, self.dist)


def measure(loop: PretrainLoop, max_windows: int | None) -> dict[str, float]:
    """B2 on each author's held-out text (the first `max_windows` windows, or all)."""
    return {a: heldout_loss(loop.model, ids, loop.cfg.length, loop.precision, max_windows=max_windows)
            for a, ids in loop.data.heldout.items()}


# ----------------------------------------------------------------------------- the loop


def pretrain_loop(loop: PretrainLoop) -> bool:
    """3-4. batch -> B2 -> backward -> clip -> AdamW, until the budget is spent. Returns True if it ran to the end."""
    cfg, streams, scaler = loop.cfg, list(loop.data.train.values()), grad_scaler(loop.precision)
    if loop.state["step"] == 0:
        loop.run.log({"kind": "eval", "step": 0, "heldout": measure(loop, cfg.eval_windows)})
    t_resume = time.time() - loop.state["elapsed"]
    with StopRequest() as stop, tqdm(total=cfg.steps or None, initial=loop.state["step"], desc="pretrain neo",
                                     unit="step", disable=not loop.dist.main) as bar:
        while (progress := loop.progress()) < 1.0:
            lr = set_lr(loop.optimizer, lr_at("cosine", cfg.lr, progress, cfg.warmup, cfg.min_lr_ratio))
            batch = balanced_lm_batch(streams, cfg.per_author * len(streams), cfg.length, loop.rng)  # (B, T), an equal share per author
            batch = distributed.share((batch,), loop.dist, len(streams))[0]
            t_step = time.time()
            loss, norm = lm_step(loop.ddp, loop.optimizer, batch, loop.precision, cfg.grad_clip, scaler=scaler)
            s = loop.state
            s.update(step=s["step"] + 1, compute_s=s["compute_s"] + time.time() - t_step,
                     tokens=s["tokens"] + cfg.per_author * len(streams) * cfg.length, elapsed=time.time() - t_resume)
            loss = distributed.mean(loss, loop.dist)
            loop.run.log({"kind": "train", "step": s["step"], "loss": loss, "lr": lr, "grad_norm": norm, "time": s["elapsed"]})
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}")
            if s["step"] % cfg.eval_every == 0:
                held = measure(loop, cfg.eval_windows)
                loop.run.log({"kind": "eval", "step": s["step"], "heldout": held})
                bar.write("step {}: held-out loss ".format(s["step"]) + ", ".join(f"{a} {v:.3f}" for a, v in held.items()))
            if distributed.any_rank(stop.requested, loop.dist):
                if loop.dist.main:
                    save_checkpoint(loop.run.folder, s["step"], {"neo": loop.model}, {"neo": loop.optimizer},
                                    {"data": loop.rng}, s)
                return False
    return True


# ----------------------------------------------------------------------------- saving


@torch.no_grad()
def sample_text(model: GPTNeo, tok, n_tokens: int = 200, seed: int = 0) -> str:
    """B1 read forwards: from <|endoftext|>, draw each token among the 50 most likely (no penalty)."""
    n_tokens = min(n_tokens, model.config.max_position_embeddings - 1)
    start = torch.tensor([[model.config.bos_token_id]], device=next(model.parameters()).device)
    ids = generate(model.eval(), start, n_tokens, Sampling(repetition_penalty=1.0), torch.Generator().manual_seed(seed))
    return tok.decode(ids[0, 1:].tolist())


def finish(loop: PretrainLoop, out: Path) -> dict:
    """5. final held-out loss on every window, a sample, the model folder, summary.json."""
    cfg, s = loop.cfg, loop.state
    summary = {"parameters": count_parameters(loop.model), "steps": s["step"], "tokens_trained": s["tokens"],
               "tokens_per_s": s["tokens"] / max(s["compute_s"], 1e-9), "train_s": s["elapsed"],
               "final_heldout_loss": measure(loop, None), **loop.precision.describe()}
    sample = sample_text(loop.model, loop.data.tok, seed=cfg.seed)
    write_model_folder(out, loop.model, loop.data.tok, extra={"pretrain.json": {"config": as_dict(cfg), **summary}},
                       card=base_card(loop, summary, sample))
    atomic_write_json(loop.run.folder / "summary.json", dict(summary, model_folder=str(out)))
    atomic_write_text(loop.run.folder / "sample.txt", sample + "\n")
    loop.run.point_latest()
    return dict(summary, sample=sample)


def base_card(loop: PretrainLoop, summary: dict, sample: str) -> ModelCard:
    """neo-small's README.md: a GPT-Neo pretrained here, from nothing, on the authors' training splits."""
    cfg = loop.cfg
    made = {"program": "python -m scripts.pretrain_neo (make pretrain-neo)", "run folder": str(loop.run.folder),
            "authors": authors_line(list(select_authors(cfg.authors)), cfg.split) + f"; {cfg.split} split, training part only",
            "shape": f"{cfg.num_layers} layers (global and local), width {cfg.hidden_size}, {cfg.num_heads} heads, "
                     f"context {cfg.context}, {cfg.vocab_size}-token byte-level BPE trained on the same text",
            "training": f"{summary['steps']} steps, {summary['tokens_trained']} tokens in {summary['train_s']:.0f} s "
                        f"({summary['precision']})"}
    results = {f"B2 held-out loss on {a}, nats per token": v for a, v in summary["final_heldout_loss"].items()}
    results["a sample (200 tokens, no repetition penalty)"] = sample[:300]
    return ModelCard(title="neo-small: a GPT-Neo pretrained on the authors' books",
                     summary=(f"A GPT-Neo of {summary['parameters'] / 1e6:.1f} M parameters that this project pretrains "
                              "in minutes on a CPU, the fast base of the tests and of --base neo-small. It learned the "
                              "authors' vocabulary, not English: its text does not read as prose."),
                     made_from=made, results=results, licence=f"{OWN_LICENCE}; {TEXTS_LICENCE}", use=hf_use("generator"))


def check_out(out: Path) -> None:
    """The model folder is written whole at the end, over what is there: refuse, before any work, a path
    that holds anything but a model this program wrote (a file, a folder of the user's own files)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a model folder: give a new folder (nothing was changed)")
    theirs = sorted(p.name for p in out.iterdir())
    if theirs and not (out / "pretrain.json").is_file():
        raise ConfigError(f"--out {out} holds files this program did not write ({', '.join(theirs[:5])}"
                          f"{' ...' if len(theirs) > 5 else ''}): give a new or empty folder (nothing was changed)")


def pretrain(argv: list[str] | None = None) -> Path:
    """Pretrain neo-small (or --out) from scratch; skipped if it is installed, unless --force."""
    cfg, resume, saved, args = parse_args(argv)
    out = Path(saved.get("out") or args.out or folder_for(STORE_NAME))
    if is_installed(out) and not args.force and resume is None:
        print(f"{out} is installed already; pass --force to pretrain it again.")
        return out
    check_out(out)
    dist_ = distributed.setup(cfg.device)
    rows = cfg.per_author * len(select_authors(cfg.authors)) // dist_.world
    precision = choose_precision(dist_.device, cfg.precision, (rows * cfg.length, cfg.hidden_size, 4 * cfg.hidden_size),
                                 earlier=saved.get("precision"))
    print(f"precision: {precision.name} ({precision.reason})", file=sys.stderr)
    data = load_data(cfg)
    torch.manual_seed(cfg.seed)
    model = GPTNeo(neo_config(cfg, data.tok.get_vocab_size(), eos_id(data.tok))).to(dist_.device)
    optimizer = make_optimizer(model, "adamw", cfg.lr, cfg.weight_decay, betas=(0.9, cfg.beta2))
    rng = torch.Generator().manual_seed(cfg.seed)
    state = {"step": 0, "elapsed": 0.0, "tokens": 0, "compute_s": 0.0}
    if resume is None:
        info = {"program": "pretrain_neo", "out": str(out), **precision.describe(), "world_size": dist_.world}
        run = Run.create("pretrain_neo", args.runs_dir, {"config": as_dict(cfg), **info}, writer=dist_.main)
    else:
        run = Run(Path(resume).resolve(), writer=dist_.main)
        ckpt = load_checkpoint(run.folder)
        ckpt.restore({"neo": model}, {"neo": optimizer}, {"data": rng})
        state = ckpt.state
        run.keep_records_until(ckpt.step)
    print(f"GPT-Neo {count_parameters(model) / 1e6:.2f} M parameters, vocab {data.tok.get_vocab_size()}, "
          f"run folder {run.folder}", file=sys.stderr)
    loop = PretrainLoop(cfg, model, distributed.wrap(model, dist_), optimizer, data, rng, run, precision, dist_, state)
    try:
        complete = pretrain_loop(loop)
    except KeyboardInterrupt:
        run.discard_if_empty()
        raise
    if not complete:
        print(f"stopped at step {state['step']}: continue with `python -m scripts.pretrain_neo --resume {run.folder}`",
              file=sys.stderr)
        raise KeyboardInterrupt
    if dist_.main:
        report(finish(loop, out), out, run.folder)
    distributed.teardown(dist_)
    return out


def report(summary: dict, out: Path, run_dir: Path) -> None:
    print(f"\ninstalled {out} ({summary['steps']} steps, {summary['tokens_trained']} tokens, "
          f"{summary['tokens_per_s']:.0f} tokens/s, {summary['precision']})")
    for a, v in summary["final_heldout_loss"].items():
        print(f"  {a:<8} held-out loss {v:.3f}")
    print(f"run folder: {run_dir}\n--- sample ---\n{summary['sample']}")


def main(argv: list[str] | None = None) -> int:
    return run_program(pretrain, argv)


if __name__ == "__main__":
    sys.exit(main())
