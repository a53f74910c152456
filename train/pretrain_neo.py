"""Pretrain our own small GPT-Neo from scratch, offline, on the training split of the corpus.

No package ships pretrained GPT-Neo weights, so lecture B's generators start
from this one (see the decisions in the spec). Steps, top to bottom:

    1. split each author's books with the BERT tokenizer (train/corpus.py), so that the
       judge and the generators hold out exactly the same text;
    2. train a byte-level BPE on the TRAIN text of both authors (train/neo_tokenizer.py);
    3. pretrain GPT-Neo (global + local layers) on 512-token windows, half of every
       batch from each author, AdamW with linear warmup then cosine decay (B1, B2);
    4. measure the held-out loss of each author every `eval_every` steps and at the end;
    5. save config.json + model.safetensors + tokenizer.json into the weights store
       as "neo-small": written into a hidden temporary folder, then renamed, so a
       half-finished run never looks installed.

Every position 0..511 is trained: the generators must later write 4 x 128 = 512
tokens (B8), and a position embedding that never saw a gradient is noise.

    python -m train.pretrain_neo                 # ~11 minutes of training on 2 CPU cores
    python -m train.pretrain_neo --steps 300     # a fixed number of steps instead of a time budget

Outputs: the store entry, and runs/pretrain_neo/<time>/ with metrics.json,
loss.png and sample.txt.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from model.config import GPTNeoConfig
from model.gpt_neo import GPTNeo
from model.sampler import generate
from model.layers import count_parameters
from train.lm import heldout_loss, lm_train_step, make_adamw, sample_windows
from train.neo_tokenizer import eos_id, hf_tokenizer_config, train_neo_tokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent
STORE_NAME = "neo-small"


@dataclass
class PretrainConfig:
    """Tokenizer, model and optimisation settings. The defaults are the `make pretrain-neo` run."""

    # tokenizer
    vocab_size: int = 4096
    # model (GPT-Neo: alternate global and local layers)
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4  # head size 64, as in gpt-neo-125M
    window_size: int = 256  # a local layer sees the last 256 tokens; global layers see all 512
    context: int = 512  # max_position_embeddings: 4 x 128 tokens fit (B8)
    dropout: float = 0.0  # roughly one to two passes over the data: too few to overfit
    # optimisation
    seq_len: int = 512  # = context: every position is trained
    batch_size: int = 8  # windows per step, half from each author
    lr: float = 2e-3  # 5e-3 and above diverged early (GPT-Neo does not scale q.k by 1/sqrt(hs))
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_steps: int = 20
    beta2: float = 0.95  # Adam's second-moment decay: 0.95 adapts faster than 0.999 in a short run
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    steps: int | None = None  # a fixed number of steps, or None: train for `minutes`
    minutes: float = 11.0  # time budget of the training loop when steps is None
    # measurement
    eval_every: int = 25  # steps between held-out evaluations
    eval_windows: int = 12  # windows per author in the periodic evaluations (all of them at the end)
    seed: int = 0
    authors: list[str] = field(default_factory=lambda: ["alice", "edgar"])

    def model_config(self, vocab_size: int, eos: int) -> GPTNeoConfig:
        """The GPT-Neo shape: layers alternate global, local; BOS = EOS = <|endoftext|>."""
        kinds = ["global", "local"] * (self.num_layers // 2) + ["global"] * (self.num_layers % 2)
        return GPTNeoConfig(
            vocab_size=vocab_size,
            max_position_embeddings=self.context,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_size=4 * self.hidden_size,
            window_size=self.window_size,
            attention_layers=kinds,
            embed_dropout=self.dropout,
            attention_dropout=self.dropout,
            resid_dropout=self.dropout,
            bos_token_id=eos,
            eos_token_id=eos,
        )

    def check(self) -> None:
        """Reject settings that cannot work, with the reason."""
        if self.seq_len > self.context:
            raise ValueError(f"seq_len={self.seq_len} exceeds the context of {self.context} positions")
        if self.num_layers >= 2 and self.window_size >= self.context:
            raise ValueError(f"window_size={self.window_size} must be smaller than the context {self.context}, "
                             "or the local layers are global ones")
        if self.batch_size % len(self.authors) != 0:
            raise ValueError(f"batch_size={self.batch_size} must split evenly between {len(self.authors)} authors")
        if self.steps is None and self.minutes <= 0:
            raise ValueError("give a positive --minutes, or --steps")


# --------------------------------------------------------------------------------------
# Learning-rate schedule and batches.
# --------------------------------------------------------------------------------------


def lr_at(step: int, progress: float, cfg: PretrainConfig) -> float:
    """Linear warmup over the first `warmup_steps` steps, times a cosine from lr to lr * min_lr_ratio.

    `progress` in [0, 1] is step / steps for a fixed number of steps, or
    elapsed / budget for a time budget (as in "Cramming", Geiping & Goldstein 2022),
    so that the decay ends when the time does, however fast the machine is today.
    """
    warmup = min(1.0, (step + 1) / cfg.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))  # 1 -> 0
    return cfg.lr * warmup * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


def balanced_batch(
    streams: list[torch.Tensor], batch_size: int, seq_len: int, generator: torch.Generator
) -> torch.Tensor:
    """(batch_size, seq_len) windows, an equal share from each token stream (one per author, as B7's 32 + 32).

    Balanced, not proportional to size (Poe's books are 5 x Carroll's): the base
    model should lean towards neither author, so that untuned generators are ~50 % (B11).
    """
    share = batch_size // len(streams)
    return torch.cat([sample_windows(ids, share, seq_len, generator) for ids in streams])  # (B, T)


# --------------------------------------------------------------------------------------
# Data: splits, tokenizer, token streams.
# --------------------------------------------------------------------------------------


def corpus_splits(authors: list[str]) -> dict[str, tuple[str, str]]:
    """author -> (train_text, heldout_text), the split boundary defined by the judge's BERT tokenizer."""
    from tokenizer_bridge.load import load_bert_tokenizer
    from train.corpus import author_splits
    from weights.store import WeightsNotFound, resolve

    try:
        bert_folder = resolve("minilm")
    except WeightsNotFound as err:
        raise SystemExit(f"{err}\nThe held-out split is defined by the judge's BERT tokenizer: run `make weights` first.")
    bert_tok = load_bert_tokenizer(bert_folder)
    return {author: author_splits(author, bert_tok) for author in tqdm(authors, desc="corpus", leave=False)}


def encode(tok: Tokenizer, text: str) -> torch.Tensor:
    """text -> 1-D LongTensor of token ids (no special tokens)."""
    return torch.tensor(tok.encode(text, add_special_tokens=False).ids, dtype=torch.long)


# --------------------------------------------------------------------------------------
# A small inline sampler, only to look at the result (the real one is model/sampler.py).
# --------------------------------------------------------------------------------------


@torch.no_grad()
def sample_text(model: GPTNeo, tok: Tokenizer, n_tokens: int, top_k: int = 50, seed: int = 0) -> str:
    """B1 read forwards: from <|endoftext|>, draw x_t ~ P(x_t | x_<t) among the top_k (no penalty), n_tokens times."""
    model.eval()
    n_tokens = min(n_tokens, model.config.max_position_embeddings - 1)
    start = torch.tensor([[model.config.bos_token_id]])  # (1, 1)
    ids = generate(model, start, n_tokens, top_k=top_k, repetition_penalty=1.0,
                   generator=torch.Generator().manual_seed(seed))  # (1, 1 + n_tokens)
    return tok.decode(ids[0, 1:].tolist())


# --------------------------------------------------------------------------------------
# Saving: a temporary folder, renamed into place at the very end.
# --------------------------------------------------------------------------------------


def save_neo_folder(model: GPTNeo, tok: Tokenizer, folder: Path, extra: dict) -> None:
    """Write a complete Hugging Face folder: config.json, model.safetensors, tokenizer.json (+ tokenizer_config.json)."""
    model.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    config = hf_tokenizer_config(tok, model.config.max_position_embeddings)
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "pretrain.json").write_text(json.dumps(extra, indent=2), encoding="utf-8")


def install_atomically(write, target: Path) -> None:
    """Call write(tmp) on a hidden temporary folder beside `target`, then rename it to `target`.

    If write fails, the temporary folder is removed and `target` is untouched:
    a half-finished run never looks installed. An existing `target` is replaced
    only once the new folder is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        if target.exists() or target.is_symlink():
            os.replace(target, old)  # keep the previous install until the new one is in place
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)  # put the previous install back
        raise
    if old.is_symlink():
        old.unlink()
    elif old.exists():
        shutil.rmtree(old)


# --------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------


def pretrain(
    cfg: PretrainConfig,
    splits: dict[str, tuple[str, str]],
    out_folder: Path,
    run_dir: Path | None = None,
    sample_tokens: int = 200,
) -> dict:
    """Train the tokenizer and GPT-Neo on the train texts of `splits`, install into `out_folder`; return the metrics.

    splits: author -> (train_text, heldout_text). Only train texts reach the
    tokenizer trainer and the optimizer; held-out texts are only measured.
    """
    cfg.check()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t_start = time.time()

    # 1-2. tokenizer on the training text only, then the token streams
    tok = train_neo_tokenizer([splits[a][0] for a in cfg.authors], cfg.vocab_size)
    train_ids = {a: encode(tok, splits[a][0]) for a in cfg.authors}  # author -> (n_train,)
    heldout_ids = {a: encode(tok, splits[a][1]) for a in cfg.authors}  # author -> (n_heldout,)
    for a in cfg.authors:
        for what, ids in (("train", train_ids[a]), ("held-out", heldout_ids[a])):
            if ids.numel() < cfg.seq_len + 1:
                raise ValueError(f"{a} {what} text has {ids.numel()} tokens, fewer than one window of {cfg.seq_len}")
    tokenizer_s = time.time() - t_start

    # 3. model and optimizer
    model = GPTNeo(cfg.model_config(tok.get_vocab_size(), eos_id(tok)))
    optimizer = make_adamw(model, cfg.lr, cfg.weight_decay, betas=(0.9, cfg.beta2))
    n_params = count_parameters(model)
    print(f"GPT-Neo {n_params / 1e6:.2f} M parameters, vocab {tok.get_vocab_size()}, "
          f"train tokens {sum(t.numel() for t in train_ids.values())}, torch threads {torch.get_num_threads()}")

    def measure(max_windows: int | None) -> dict[str, float]:
        return {a: heldout_loss(model, heldout_ids[a], cfg.seq_len, max_windows=max_windows, bf16_autocast=False)
                for a in cfg.authors}

    history: list[dict] = []  # one entry per step
    evals: list[dict] = [{"step": 0, "heldout": measure(cfg.eval_windows)}]
    budget_s = None if cfg.steps is not None else 60.0 * cfg.minutes
    t_train = time.time()
    bar = tqdm(total=cfg.steps, desc="pretrain neo", unit="step")
    step, compute_s = 0, 0.0  # compute_s: time in training steps only (no evaluations)
    while True:
        elapsed = time.time() - t_train
        progress = step / cfg.steps if budget_s is None else elapsed / budget_s
        if progress >= 1.0:
            break
        lr = lr_at(step, progress, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t_step = time.time()
        batch = balanced_batch(list(train_ids.values()), cfg.batch_size, cfg.seq_len, gen)  # (B, T)
        loss = lm_train_step(model, optimizer, batch, grad_clip=cfg.grad_clip, bf16_autocast=False)
        compute_s += time.time() - t_step
        step += 1
        history.append({"step": step, "loss": loss, "lr": lr, "time_s": time.time() - t_train})
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}")
        if step % cfg.eval_every == 0:
            evals.append({"step": step, "heldout": measure(cfg.eval_windows)})
            bar.write(f"step {step}: held-out loss " + ", ".join(f"{a} {v:.3f}" for a, v in evals[-1]["heldout"].items()))
    bar.close()
    train_s = time.time() - t_train
    if evals[-1]["step"] != step:
        evals.append({"step": step, "heldout": measure(cfg.eval_windows)})
    n_tokens = step * cfg.batch_size * cfg.seq_len

    # 4. final measurement: every held-out window, and the same number of train windows for comparison
    final_heldout = measure(None)
    final_train = {a: heldout_loss(model, train_ids[a], cfg.seq_len, max_windows=heldout_ids[a].numel() // cfg.seq_len,
                                   bf16_autocast=False) for a in cfg.authors}
    sample = sample_text(model, tok, sample_tokens, seed=cfg.seed)
    metrics = {
        "config": asdict(cfg),
        "model_config": model.config.to_hf(),
        "parameters": n_params,
        "steps": step,
        "tokens_trained": n_tokens,
        "tokens_per_s": n_tokens / compute_s if compute_s > 0 else None,  # forward + backward + AdamW
        "train_s": train_s,  # the training loop, evaluations included
        "tokenizer_s": tokenizer_s,
        "torch_threads": torch.get_num_threads(),
        "train_tokens": {a: train_ids[a].numel() for a in cfg.authors},
        "heldout_tokens": {a: heldout_ids[a].numel() for a in cfg.authors},
        "chars_per_token_heldout": {a: len(splits[a][1]) / heldout_ids[a].numel() for a in cfg.authors},
        "final_train_loss": final_train,
        "final_heldout_loss": final_heldout,
        "last_batch_losses_mean": sum(h["loss"] for h in history[-20:]) / max(1, len(history[-20:])),
        "evals": evals,  # held-out loss on the first eval_windows windows of each author
        "history": history,
        "sample": sample,
    }

    # 5. install, then the run folder
    summary = {k: metrics[k] for k in ("config", "parameters", "steps", "tokens_trained", "tokens_per_s",
                                       "final_train_loss", "final_heldout_loss")}
    install_atomically(lambda tmp: save_neo_folder(model, tok, tmp, summary), Path(out_folder))
    if run_dir is not None:
        write_run(run_dir, metrics)
    return metrics


def write_run(run_dir: Path, metrics: dict) -> None:
    """metrics.json, sample.txt and loss.png (train loss per step, held-out loss per evaluation)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    (run_dir / "sample.txt").write_text(metrics["sample"] + "\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([h["step"] for h in metrics["history"]], [h["loss"] for h in metrics["history"]],
            color="0.6", lw=0.8, label="train batch loss (B2)")
    for author, color in zip(metrics["config"]["authors"], ("black", "tab:blue")):
        ax.plot([e["step"] for e in metrics["evals"]], [e["heldout"][author] for e in metrics["evals"]],
                "o-", color=color, label=f"held-out loss, {author} (first {metrics['config']['eval_windows']} windows)")
        ax.axhline(metrics["final_heldout_loss"][author], color=color, ls=":", lw=1,
                   label=f"final held-out loss, {author} (all windows)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(f"GPT-Neo pretraining: {metrics['parameters'] / 1e6:.2f} M parameters, "
                 f"{metrics['tokens_trained'] / 1e6:.2f} M tokens")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run_dir / "loss.png", dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> tuple[PretrainConfig, argparse.Namespace]:
    """Command-line flags -> PretrainConfig (every field of it can be set) + the other options."""
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(prog="python -m train.pretrain_neo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in asdict(defaults).items():
        if name == "authors":
            continue
        kind = float if isinstance(value, float) else int
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value, metavar=kind.__name__.upper())
    parser.add_argument("--out", type=Path, default=None, help=f"model folder (default: the store entry {STORE_NAME!r})")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--force", action="store_true", help="retrain even if the store entry is installed")
    args = parser.parse_args(argv)
    cfg = PretrainConfig(**{k: getattr(args, k) for k in asdict(defaults) if k != "authors"})
    return cfg, args


def main(argv: list[str] | None = None) -> int:
    """Pretrain neo-small into the weights store (skipped if it is installed, unless --force)."""
    from weights.store import folder_for, is_installed

    cfg, args = parse_args(argv)
    out = args.out if args.out is not None else folder_for(STORE_NAME)
    if is_installed(out) and not args.force:
        print(f"{out} is installed already; pass --force to pretrain it again.")
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    run_dir = REPO_ROOT / "runs" / "pretrain_neo" / time.strftime("%Y%m%d-%H%M%S")
    t0 = time.time()
    metrics = pretrain(cfg, corpus_splits(cfg.authors), out, run_dir)
    print(f"\ninstalled {out}  ({time.time() - t0:.0f} s in all, {metrics['steps']} steps, "
          f"{metrics['tokens_trained']} tokens, {metrics['tokens_per_s']:.0f} tokens/s)")
    for a in cfg.authors:
        print(f"  {a:<6} train loss {metrics['final_train_loss'][a]:.3f}   held-out loss {metrics['final_heldout_loss'][a]:.3f}")
    print(f"run folder: {run_dir}\n--- sample ---\n{metrics['sample']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
