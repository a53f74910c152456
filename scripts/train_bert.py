"""Train the BERT judge of lecture A: `python -m scripts.train_bert` (the first half of `make train-bert`).

A6, the procedure: tokenize the authors; load the pretrained BERT; add the classification layer
(dropout + linear, A2); train by back-propagation on cross-entropy (A3) with AdamW or plain SGD
(A7); save the trained model.

    python -m scripts.train_bert                          # preset "cpu": MiniLM, a few minutes on 2 cores
    python -m scripts.train_bert --preset lecture         # the course's set-up (A5), bert-base-uncased, for a GPU
    python -m scripts.train_bert --preset books           # six authors, the last book of each held out (N1-N3)
    python -m scripts.train_bert --authors all --split book   # the same: --split book starts from the preset "books"
    python -m scripts.train_bert --resume                 # continue the latest run from its last checkpoint
    torchrun --nproc_per_node 2 -m scripts.train_bert     # DistributedDataParallel (plumbing/distributed.py)

Output: runs/judge/<time>/ with config.json, metrics.jsonl (loss A3, batch accuracy A11 and update
size A13 every step; held-out evaluations every `eval_every` steps), checkpoints/, and hf/, the
judge as a Hugging Face BertForSequenceClassification folder; runs/judge/latest points to it.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from data.authors import DEFAULT_AUTHORS, authors_spec, select_authors
from data.corpus import SPLITS, check_long_enough
from data.windows import AuthorIds, Specials, balanced_batch, heldout_set, load_author_ids, text_tokens_per_window
from model.bert import POOLINGS, Bert, BertClassifier, is_judge_config
from model.config import BertConfig, read_config_json
from model.lora import add_lora, has_lora, trainable_parameters
from plumbing import distributed
from plumbing.atomic import atomic_write_json
from plumbing.checkpoint import load_checkpoint, save_checkpoint
from plumbing.cli import run_program
from plumbing.compiling import COMPILE_CHOICES, CompileChoice
from plumbing.config import ConfigError, LoraSettings, as_dict, learning_rate, lora_off, parse_program, setting
from plumbing.hf_folder import write_adapter_folder, write_model_folder
from plumbing.interrupt import StopRequest
from plumbing.judges import HF_FOLDER, INFO_KEY
from plumbing.model_card import TEXTS_LICENCE, ModelCard, authors_line, base_licence, hf_use
from plumbing.precision import PRECISIONS, Precision, choose_precision, grad_scaler
from plumbing.runs import Run
from tokenizer_bridge.load import load_bert_tokenizer
from tokenizer_bridge.names import with_names_masked
from train.averaging import WeightAverage
from train.bert_judge import classifier_step, evaluate_heldout
from train.metrics import optimizer_state_bytes, peak_memory_mib, reset_peak_memory, snapshot
from train.optim import OPTIMIZERS, SCHEDULES, lr_at, make_optimizer, set_lr
from train.probe import start_with_probe
from weights.store import resolve


@dataclass
class JudgeConfig(LoraSettings):
    """Everything that decides a judge training run (saved in the run's config.json)."""

    model: str = setting("pretrained BERT: a weights-store name (minilm, bert-base-uncased) or a BERT folder")
    authors: str = setting("authors to tell apart, in label order: a comma list or 'all'", check=select_authors)
    split: str = setting("held-out text: 'tail' = last 10 % of every book; 'book' = each author's last book (N3)",
                         choices=SPLITS)
    mask_names: bool = setting("replace proper nouns by one placeholder token, in training and in the saved judge's "
                               "tokenizer, so the judge must use style (tokenizer_bridge/names.py)")
    per_author: int = setting("windows of each author in a batch (A8: 32 Alice + 32 Edgar; N2: B/N each)", min=1)
    length: int = setting("tokens per training window, [CLS] and [SEP] included", min=3, max=512)
    eval_length: int = setting("tokens per held-out window (the lecture's L, A5)", min=3, max=512)
    steps: int = setting("training steps", min=1)
    optimizer: str = setting("adamw (the course code) or sgd (A7 as written: theta - eta grad)", choices=OPTIMIZERS)
    lr: float = setting("learning rate eta of A7 (the first step's; see --schedule)", above=0, max=10)
    schedule: str = setting("eta over the steps: constant (the course), linear or cosine decay", choices=SCHEDULES)
    weight_decay: float = setting("AdamW weight decay of matrices and embeddings (train/optim.py)", min=0, max=1)
    grad_clip: float = setting("clip the gradients' joint L2 norm to this (0: no clipping)", min=0)
    dropout: float = setting("dropout before the head (A2); BERT keeps its own", min=0, max=0.9)
    pooling: str = setting("what the head reads: cls = BERT's pooled [CLS] (A2, the course code); mean = the mean of "
                           "the last hidden states, the pooling MiniLM was trained with (model/bert.py:mean_pool)",
                           choices=POOLINGS)
    probe: int = setting("windows per author on which the head is first fitted to the frozen pretrained features, "
                         "before every weight trains (LP-FT, train/probe.py); 0: a random head, as the course code",
                         min=0)
    seed: int = setting("random seed: head, dropout, batches", min=0)
    average_from: int = setting("average the judge's weights over every step from this one on (train/averaging.py): "
                                "the evaluations and the saved judge are the mean; 0: the last step's own", min=0)
    eval_every: int = setting("held-out evaluation every N steps, and at step 0 and the last (0: those two only)", min=0)
    eval_per_author: int = setting("held-out windows per author in those evaluations", min=1)
    save_every: int = setting("checkpoint every N steps, and at the last step and on Ctrl-C (0: those only)", min=0)
    precision: str = setting("auto = measured on this machine (plumbing/precision.py), or fp32, bf16, fp16", choices=PRECISIONS)
    compile: str = setting("run the training step through torch.compile: auto = where measured faster over the run "
                           "(plumbing/compiling.py), on, off", choices=COMPILE_CHOICES)
    device: str = setting("auto, cpu, cuda, cuda:N")


# A5: the lecture's set-up, and the one `make train-bert` runs on a 2-core CPU within a few minutes.
PRESETS = {
    "cpu": JudgeConfig(model="minilm", authors=DEFAULT_AUTHORS, split="tail", mask_names=False, per_author=8, length=64,
                       eval_length=256, steps=60, optimizer="adamw", lr=1e-4, schedule="linear", weight_decay=0.01,
                       grad_clip=0.0, dropout=0.1, pooling="cls", probe=0, seed=1234, average_from=0,
                       eval_every=20, eval_per_author=16, save_every=30, precision="auto", compile="auto", device="auto",
                       **lora_off(2e-3)),
    # N1-N3: six authors, each one's last book held out; the head reads the mean of the last hidden states (MiniLM's
    # own pooling) and is first a probe of 64 windows per author (probe.py); 300 steps of 8 x 128 tokens per author,
    # and the judge the mean of its weights from step 40 on, where its held-out accuracy peaks before it learns its
    # books (averaging.py)
    "books": JudgeConfig(model="minilm", authors="all", split="book", mask_names=False, per_author=8, length=128,
                         eval_length=256, steps=300, optimizer="adamw", lr=2e-4, schedule="linear", weight_decay=0.01,
                         grad_clip=0.0, dropout=0.1, pooling="mean", probe=64, seed=1234, average_from=40, eval_every=20,
                         eval_per_author=16, save_every=50, precision="auto", compile="auto", device="auto", **lora_off(2e-3)),
    "lecture": JudgeConfig(model="bert-base-uncased", authors=DEFAULT_AUTHORS, split="tail", mask_names=False, per_author=32,
                           length=256, eval_length=256, steps=150, optimizer="adamw", lr=5e-7, schedule="constant",
                           weight_decay=0.01, grad_clip=0.0, dropout=0.1, pooling="cls", probe=0, seed=1234, average_from=0,
                           eval_every=10, eval_per_author=31, save_every=50, precision="auto", compile="auto", device="auto",
                           **lora_off(5e-4)),
}
RESUME_MAY_CHANGE = {"steps", "device", "precision", "compile"}


def batch_size(cfg: JudgeConfig) -> int:
    """A8/N2: B = N authors x the windows of each."""
    return cfg.per_author * len(select_authors(cfg.authors))


def tokens_seen(batch_size: int, length: int, steps: int) -> int:
    """A5: M = N x L, with N = batch_size x steps windows of L tokens each."""
    return batch_size * steps * length


# ----------------------------------------------------------------------------- set-up


def preset_for_split(argv: list[str]) -> list[str]:
    """argv with `--preset books` in front where --split book is given without --preset.

    Why: a judge that must name the author of a book it has never read needs the books preset (300 steps of
    128 tokens, the mean, the probe, the average): from the cpu preset's 60 steps of 64 tokens the same
    command gave 0.76 macro accuracy at 256 tokens, from the books preset 0.91 (README, six authors).
    `--preset cpu --split book` still gives the quick one.
    """
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset")
    first.add_argument("--split")
    known, _ = first.parse_known_args(argv)
    return ["--preset", "books", *argv] if known.split == "book" and known.preset is None else argv


def parse_args(argv: list[str] | None) -> tuple[JudgeConfig, Path | None, dict, object]:
    """(checked config, run to resume or None, that run's config.json or {}, the other arguments)."""
    return parse_program(JudgeConfig, PRESETS, preset_for_split(sys.argv[1:] if argv is None else list(argv)),
                         "judge", __doc__, RESUME_MAY_CHANGE)


@dataclass
class Data:
    """The tokenized corpus: train ids per author, the fixed held-out windows, the tokenizer."""

    tok: object
    train_ids: dict[str, AuthorIds]  # each author's training books (windows drawn book by book, data/windows.py)
    heldout: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    labels: list[str]


def load_data(cfg: JudgeConfig, base: Path) -> Data:
    """1. tokenize: every author's train and held-out ids (data/), checked to hold the windows asked for."""
    tok = load_bert_tokenizer(base)
    if cfg.mask_names:
        tok = with_names_masked(tok)  # the saved judge carries the rule in its tokenizer.json
    authors = load_author_ids(tok, select_authors(cfg.authors), cfg.split)
    for name, a in authors.items():
        check_long_enough(len(a.train), text_tokens_per_window(cfg.length), f"{name} train split")
        check_long_enough(len(a.heldout), text_tokens_per_window(cfg.eval_length) * cfg.eval_per_author,
                          f"{name} held-out split ({cfg.eval_per_author} windows of {cfg.eval_length})")
    heldout = heldout_set(authors, cfg.eval_length, Specials.of(tok), cfg.eval_per_author)
    return Data(tok, authors, heldout, list(authors))


def build_model(cfg: JudgeConfig, base: Path, labels: list[str], precision: Precision) -> BertClassifier:
    """2-3. the pretrained BERT + a new classification head (seeded); weights stay float32.

    With --lora-rank r, BERT is frozen and gets adapters (P1); the new head stays fully trained.
    """
    torch.manual_seed(cfg.seed)
    model = BertClassifier(Bert.from_pretrained(base), labels, dropout=cfg.dropout, pooling=cfg.pooling)
    if cfg.lora_rank:
        add_lora(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets, cfg.lora_dropout)
        model.head.requires_grad_(True)
    return model.to(precision.device)


def probe_head(cfg: JudgeConfig, model: BertClassifier, data: Data, precision: Precision, main: bool) -> dict:
    """--probe n: the head first fitted to the frozen features of n training windows per author (LP-FT,
    train/probe.py), before the first step. Returns what the run records: windows, the probe's accuracy, seconds."""
    t0 = time.time()
    probed = start_with_probe(model, data.train_ids, cfg.per_author, cfg.probe, cfg.length, Specials.of(data.tok),
                              cfg.seed, precision)
    probed["seconds"] = round(time.time() - t0, 1)
    if main:
        print(f"head: a probe fitted to the pretrained features of {probed['windows']} training windows "
              f"(its accuracy on them {probed['accuracy']:.3f}, {probed['seconds']} s)", file=sys.stderr)
    return probed


@dataclass
class JudgeLoop:
    """What the training loop works on (one object, so that saving and logging need no closures)."""

    cfg: JudgeConfig
    model: BertClassifier
    ddp: torch.nn.Module  # the model as the step sees it (a DDP wrapper when there are several ranks)
    optimizer: torch.optim.Optimizer
    data: Data
    rng: torch.Generator
    precision: Precision
    dist: distributed.Dist
    state: dict  # the latest metrics and the elapsed time, saved with every checkpoint
    compiling: CompileChoice  # which of the eager model and its compiled twin the step runs
    average: WeightAverage  # the mean of the weights from --average-from on: what is evaluated and saved
    run: Run | None = None  # set by open_run


def open_run(loop: JudgeLoop, resume: Path | None, runs_dir, info: dict) -> int:
    """A new run folder, or the resumed one with its newest checkpoint restored into the loop. Returns the start step."""
    if resume is None:
        loop.run = Run.create("judge", runs_dir, {"config": as_dict(loop.cfg), **info}, writer=loop.dist.main)
        return 0
    loop.run = Run(Path(resume).resolve(), writer=loop.dist.main)
    ckpt = load_checkpoint(loop.run.folder)
    if loop.cfg.steps < ckpt.step:
        raise ConfigError(f"{loop.run.folder} is already at step {ckpt.step}; give --steps N with N > {ckpt.step}")
    ckpt.restore({"judge": loop.model, "average": loop.average}, {"judge": loop.optimizer}, {"data": loop.rng})
    loop.run.keep_records_until(ckpt.step)
    loop.state = {"windows_per_book": {}, **ckpt.state}  # a checkpoint from before the count starts it at 0
    print(f"resuming {loop.run.folder} at step {ckpt.step} of {loop.cfg.steps}", file=sys.stderr)
    return ckpt.step


# ----------------------------------------------------------------------------- saving and evaluating


def save_step(loop: JudgeLoop, step: int) -> None:
    """Checkpoint (for --resume), the judge as a Hugging Face folder, and the `latest` link: rank 0 only."""
    if not loop.dist.main:
        return
    save_checkpoint(loop.run.folder, step, {"judge": loop.model, "average": loop.average}, {"judge": loop.optimizer},
                    {"data": loop.rng}, loop.state)
    info = {"eval_length": loop.cfg.eval_length, "split": loop.cfg.split, "authors": authors_spec(loop.data.labels),
            "step": step, "run": str(loop.run.folder),
            "base_model": loop.run.config()["base_model"], "heldout_acc": loop.state["metrics"].get("heldout_acc")}
    with loop.average.swapped_in(loop.model):  # the judge saved is the mean, where there is one
        write_model_folder(loop.run.folder / HF_FOLDER, loop.model, loop.data.tok,  # merged (P3) for a LoRA judge
                           extra={"training.json": {"config": as_dict(loop.cfg), **info}}, config_extra={INFO_KEY: info},
                           card=judge_card(loop, info))
        if has_lora(loop.model):
            write_adapter_folder(loop.run.folder / "adapter", loop.model, info["base_model"])
    loop.run.point_latest()


def judge_card(loop: JudgeLoop, info: dict) -> ModelCard:
    """The judge folder's README.md: its base, its authors and books, its steps and held-out accuracy."""
    cfg, m = loop.cfg, loop.state["metrics"]
    authors = list(select_authors(cfg.authors))
    made = {"base": info["base_model"], "program": "python -m scripts.train_bert (lecture A)",
            "authors (labels 0..N-1)": authors_line(authors, cfg.split),
            "windows trained on, per book": "; ".join(f"{a}: " + ", ".join(f"{b} {n}" for b, n in books.items())
                                                       for a, books in loop.state["windows_per_book"].items()),
            "held-out text": "the last 10 % of every book" if cfg.split == "tail" else "each author's last book (N3)",
            "steps": f"{info['step']} of {cfg.steps}, {cfg.per_author} windows of {cfg.length} tokens per author",
            "weights": (f"the mean of steps {cfg.average_from}-{info['step']} (train/averaging.py)"
                        if loop.average.mean else "the last step's"),
            "run folder": info["run"], "trained": f"LoRA rank {cfg.lora_rank} + head" if cfg.lora_rank else "every weight",
            "pooling": ("the mean of the last hidden states (model/bert.py:mean_pool)" if cfg.pooling == "mean"
                        else "BERT's pooled [CLS] (A2)"),
            "head": (f"first fitted to the frozen pretrained features of {cfg.probe} windows per author (LP-FT)"
                     if cfg.probe else "random at the start"),
            "names": "masked by its tokenizer (tokenizer_bridge/names.py)" if cfg.mask_names else "as written"}
    results = {f"A11 held-out accuracy ({cfg.eval_length}-token windows)": m.get("heldout_acc"),
               "N4 held-out macro accuracy": m.get("heldout_macro_acc"),
               "A3 held-out loss": m.get("heldout_loss")}
    return ModelCard(title=f"A judge of {', '.join(authors)} (run {loop.run.folder.name})",
                     summary=(f"A BERT encoder with a linear head (A2) that reads up to {cfg.eval_length} tokens and "
                              f"gives P(author) for {len(authors)} authors; the judge of lecture B."),
                     made_from=made, results={k: v for k, v in results.items() if v is not None},
                     licence=f"the base's: {base_licence(resolve(info['base_model']))}; {TEXTS_LICENCE}",
                     use=hf_use("judge" if cfg.pooling == "cls" else "mean-pooled judge"))


def heldout_eval(loop: JudgeLoop, step: int) -> dict:
    """Held-out A3, A11, per-author accuracy and confusion (N4) on the fixed windows; logged."""
    with loop.average.swapped_in(loop.model):
        record = {"kind": "eval", "step": step,
                  **evaluate_heldout(loop.model, loop.data.heldout, loop.data.labels, loop.precision)}
    loop.run.log(record)
    loop.state["metrics"].update(record)
    return record


# ----------------------------------------------------------------------------- the loop


def train_loop(loop: JudgeLoop, start: int) -> int:
    """4. train by back-propagation: batch -> A3 -> backward -> A7 -> A13 -> log. Returns the last step done."""
    cfg, before = loop.cfg, snapshot([p for p in loop.model.parameters() if p.requires_grad])
    scaler, n_authors = grad_scaler(loop.precision), len(loop.data.labels)
    t0, done = time.time() - loop.state["time"], start  # a resumed run continues the clock
    if start == 0:
        heldout_eval(loop, 0)  # the judge before any step: about 1/N with a random head, more with a probe
    reset_peak_memory(loop.precision.device)  # the peak of the training steps (P2's comparison)
    steps = range(start + 1, cfg.steps + 1)
    with StopRequest() as stop, tqdm(steps, desc="train judge", initial=start, total=cfg.steps,
                                     disable=not loop.dist.main) as bar:
        for step in bar:
            t_step = time.time()
            batch = balanced_batch(loop.data.train_ids, batch_size(cfg), cfg.length, loop.rng, Specials.of(loop.data.tok),
                                   loop.state["windows_per_book"])
            batch = distributed.share(batch, loop.dist, n_authors)  # this rank's rows (all of them for one process)
            lr = set_lr(loop.optimizer, lr_at(cfg.schedule, learning_rate(cfg), (step - 1) / cfg.steps))
            t_train = time.time()
            out = classifier_step(loop.compiling.model(loop.ddp), loop.optimizer, batch, loop.precision, cfg.grad_clip,
                                  before, scaler)
            decided = loop.compiling.record(time.time() - t_train)
            if cfg.average_from:
                loop.average.update(loop.model, step)
            if decided and loop.dist.main:
                bar.write(decided)
            out["loss"], out["acc"] = distributed.mean(out["loss"], loop.dist), distributed.mean(out["acc"], loop.dist)
            record = {"kind": "train", "step": step, **out, "lr": lr, "tokens": tokens_seen(batch_size(cfg), cfg.length, step),
                      "step_s": time.time() - t_step, "time": time.time() - t0}
            loop.run.log(record)
            loop.state.update(metrics=dict(loop.state["metrics"], **record), time=record["time"])
            done = step
            if step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0):
                heldout_eval(loop, step)
            bar.set_postfix(loss=f"{out['loss']:.3f}", acc=f"{out['acc']:.2f}", upd=f"{out['update']:.2e}",
                            held=f"{loop.state['metrics'].get('heldout_acc', float('nan')):.2f}")
            stopping = distributed.any_rank(stop.requested, loop.dist)
            if step == cfg.steps or stopping or (cfg.save_every and step % cfg.save_every == 0):
                save_step(loop, step)
            if stopping:
                break
    return done


def compile_choice(cfg: JudgeConfig, base: Path, precision: Precision) -> CompileChoice:
    """--compile for the training step; auto remembers compile times per model, batch shape and precision."""
    key = f"judge {base.name} {batch_size(cfg)}x{cfg.length} {precision.name} lora{cfg.lora_rank}"
    return CompileChoice(cfg.compile, key, cfg.steps)


def check_encoder(folder: Path) -> None:
    """--model is the pretrained encoder a new head goes on, not a judge that has one already (said before set-up)."""
    if is_judge_config(read_config_json(folder)):
        raise ConfigError(f"--model {folder} is a trained judge (it has its own head): --model takes a BERT encoder "
                          "(minilm, bert-base-uncased, or a BertModel folder). To train a judge further, use "
                          "--resume RUN with its run folder")


def train_judge(argv: list[str] | None = None) -> Path:
    """A6: tokenize, load the pretrained BERT, add the head, train, save. Returns the run folder."""
    cfg, resume, saved, args = parse_args(argv)
    if cfg.lora_rank and cfg.pooling == "mean":  # said before any set-up
        raise ConfigError("--pooling mean with --lora-rank: the adapters are saved for peft on transformers' "
                          "BertForSequenceClassification, which reads [CLS], not the mean; add --pooling cls")
    dist_ = distributed.setup(cfg.device)
    base = resolve(saved.get("base_model", cfg.model))
    check_encoder(base)
    width = BertConfig.from_folder(base).hidden_size
    precision = choose_precision(dist_.device, cfg.precision, (batch_size(cfg) * cfg.length // dist_.world, width, 4 * width),
                                 earlier=saved.get("precision"))
    if dist_.main:
        start_from = "the run's own" if resume else f"preset {args.preset} and the flags given"
        print(f"settings: {start_from}; precision: {precision.name} ({precision.reason})", file=sys.stderr)
        print("tokenizing the corpus ...", file=sys.stderr)
    data = load_data(cfg, base)
    model = build_model(cfg, base, data.labels, precision)
    probed = probe_head(cfg, model, data, precision, dist_.main) if cfg.probe and resume is None else None
    optimizer = make_optimizer(model, cfg.optimizer, learning_rate(cfg), cfg.weight_decay)
    rng = torch.Generator().manual_seed(cfg.seed)
    info = {"program": "judge", "base_model": str(base), "labels": data.labels, **precision.describe(),
            "world_size": dist_.world, **({"probe": probed} if probed else {})}
    loop = JudgeLoop(cfg, model, distributed.wrap(model, dist_), optimizer, data, rng, precision, dist_,
                     {"metrics": {}, "time": 0.0, "windows_per_book": {}}, compile_choice(cfg, base, precision),
                     WeightAverage(cfg.average_from))
    start = open_run(loop, resume, args.runs_dir, info)
    loop.compiling.steps = cfg.steps - start
    if dist_.main:
        print(f"run folder: {loop.run.folder}\ncompile: {loop.compiling.reason}", file=sys.stderr)
    try:
        done = train_loop(loop, start)
    except KeyboardInterrupt:
        loop.run.discard_if_empty()
        raise
    finish(loop, done)
    distributed.teardown(dist_)
    if done < cfg.steps:
        raise KeyboardInterrupt  # stopped by Ctrl-C: exit code 130, after the checkpoint was saved
    return loop.run.folder


def finish(loop: JudgeLoop, done: int) -> None:
    """What the user reads at the end: where the judge is and its held-out accuracy; summary.json."""
    if not loop.dist.main:
        return
    m = loop.state["metrics"]
    atomic_write_json(loop.run.folder / "summary.json", {
        "step": done, "heldout_acc": m.get("heldout_acc"), "time_s": m.get("time"),
        **trainable_parameters(loop.model), "optimizer_state_bytes": optimizer_state_bytes(loop.optimizer),
        **loop.compiling.describe(), "windows_per_book": loop.state["windows_per_book"],
        "peak_memory_mib": peak_memory_mib(loop.precision.device)})
    where = loop.run.folder / HF_FOLDER
    if done < loop.cfg.steps:
        print(f"stopped at step {done}: checkpoint saved; continue with `python -m scripts.train_bert --resume {loop.run.folder}`",
              file=sys.stderr)
    print(f"judge saved in {where} (step {done}): held-out accuracy {m.get('heldout_acc', float('nan')):.3f} "
          f"on {len(loop.data.heldout[2])} windows of {loop.cfg.eval_length} tokens")


def main(argv: list[str] | None = None) -> int:
    return run_program(train_judge, argv)


if __name__ == "__main__":
    sys.exit(main())
