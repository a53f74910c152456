"""The judge as teacher: `python -m scripts.teach` (`make teach`), reinforcement learning from the judge (T1-T11).

Lecture B's loop lets the judge only watch. Here its score is the reward: each generator is moved to
raise log P_judge(its author | what it writes) (T1), with RLOO advantages (T4), a policy-gradient
loss (T5) and a KL penalty to the model it started from (T3, T6), under the very distribution the
lecture's sampler draws from (train/rl.py). Four arms, judged alike (train/judgement.py:judge_generators):

    --arm rl          reinforcement learning from the judge (this program's point); --lm-coef adds real text (T9),
                      --advantage-norm and --kl-target steady it (T11)
    --arm adversarial RL from a copy of the judge that keeps learning, with a class "generated" (T10,
                      train/adversary.py); the lecture's judge and the n-gram judge still do the judging
    --arm lm          the lecture's LM fine-tuning on each author's text (what `make coevolve` does)
    --arm best-of-n   no training: each judged row is the best of N samples by the judge (T7)

Every `eval_every` steps and at step 0: the lecture's judgement (accuracy with its Wilson interval,
L_cls, S(t)) and, against reward hacking (T8), the independent n-gram judge's S(t), the mean KL per
token to the starting model, distinct-1/2/3 of the texts and the held-out LM loss on real text.

    python -m scripts.teach                              # RL, beta 0.05, from neo-small (minutes on 2 cores)
    python -m scripts.teach --preset smollm2             # from SmolLM2-135M (over 20 minutes on 2 cores)
    python -m scripts.teach --arm lm --minutes 10        # an arm within a wall-clock budget
    python -m scripts.teach --arm adversarial --lm-coef 1   # T10 with T9's real text in the loss
    python -m scripts.teach --beta 0,0.02,0.05,0.2       # a sweep: one run per beta
    python -m scripts.teach --start-from runs/coevolve/latest   # from the generators a coevolve run fine-tuned

Output: runs/teach/<time>/ as runs/coevolve/ (metrics.jsonl, samples.jsonl, checkpoints/, generators/).
`python -m scripts.report` draws and summarises a run, `python -m scripts.compare` compares runs.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import contextlib
import copy
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from data.authors import AUTHORS, DEFAULT_AUTHORS, select_authors
from data.windows import AuthorIds, Specials, balanced_batch, load_author_ids, lm_windows
from model.bert import BertClassifier
from model.decoder import Decoder, load_decoder
from model.lora import adapters_off
from plumbing.atomic import atomic_write_json
from plumbing.checkpoint import load_checkpoint, save_checkpoint
from plumbing.cli import run_program
from plumbing.config import ConfigError, LoraSettings, as_dict, learning_rate, lora_off, parse_program, setting
from plumbing.generators import (LECTURE_JUDGEMENT, SAMPLES_FILE, JudgementSettings, Setup, add_adapters, judge_of_run,
                                 judgement_record, load_setup, log_judgement, make_judging, make_rngs, run_summary,
                                 save_generators)
from plumbing.interrupt import StopRequest, stop_was_asked
from plumbing.judges import load_bert_judge
from plumbing.kernels import choose_attention_kernel
from plumbing.precision import PRECISIONS, Precision, choose_precision, choose_sampling, pick_device
from plumbing.runs import Run
from tokenizer_bridge.bridge import JudgeBatch, RowSampling, generate_for_judge
from train.adversary import (adversary_batch, full_rows, real_vs_generated_accuracy, replay_rows,
                             with_generated_class)
from train.bert_judge import classifier_step, predict_logits
from train.judgement import Judgement, Judging, judge_generators, start_tokens
from train.lm import lm_loss, lm_step
from train.metrics import reset_peak_memory
from train.optim import OPTIMIZERS, apply_update, check_finite_loss, make_optimizer
from train.rl import (adaptive_beta, best_of_n, best_of_n_kl_bound, distinct_n, judge_reward, kl_k3, log_ratio,
                      name_rate, normalised_advantages, policy_gradient_loss, processed_log_probs, rloo_advantages,
                      total_loss, with_real_text)

ARM_NAMES = ("rl", "adversarial", "lm", "best-of-n")  # each arm is one entry of ARMS, below its pieces
LEARNS_FROM_A_JUDGE = ("rl", "adversarial")  # the arms whose step is rl_step


def check_betas(text: str) -> None:
    values = [float(v) for v in text.split(",")]
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"every beta must be a finite number >= 0, got {text}")
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ValueError(f"{', '.join(f'{v:g}' for v in twice)} given more than once in {text}: a sweep runs each "
                         "beta once")


@dataclass
class TeachConfig(JudgementSettings, LoraSettings):
    """Everything that decides a teaching run (saved in the run's config.json)."""

    arm: str = setting("rl: learn from the judge; adversarial: from a judge that learns too (T10); lm: the lecture's "
                       "LM fine-tuning; best-of-n: no training (T7)", choices=ARM_NAMES)
    base: str = setting("the pretrained generator: a weights-store name or a GPT-Neo folder")
    start_from: str = setting("'' = the base; or a coevolve run folder: start from its fine-tuned generators")
    judge: str = setting("the judge: 'latest' (runs/judge/latest), a judge run folder or its hf/ folder")
    authors: str = setting("one generator per author, in the judge's label order", check=select_authors)
    minutes: float = setting("wall-clock budget of the loop (0: no budget, --steps decides)", min=0)
    steps: int = setting("the most optimisation steps (0: as many as the budget allows)", min=0)
    prompts: int = setting("P: prompts (random start tokens, B7) per RL step", min=1)
    samples: int = setting("G: samples per prompt (RLOO needs G >= 2, T4)", min=2)
    rl_overgen: float = setting("k of B8 for the rows RL learns from (short rows are continued)", above=1)
    beta: str = setting("T6's KL coefficient; a comma list runs a sweep, one run per value", check=check_betas)
    lm_coef: float = setting("gamma of T9: --arm rl or adversarial adds gamma x the LM loss (B2) on a batch of the "
                             "author's real windows (--batch-size x --length) to every step; 0: RL alone",
                             min=0, max=100)
    advantage_norm: bool = setting("T11: divide the RLOO advantages by their std over the step's rows")
    kl_target: float = setting("T11: adapt each generator's beta towards this KL per token (T3) after every step; "
                               "0: beta stays fixed", min=0)
    kl_gain: float = setting("K_beta of T11: beta changes by at most a factor 1 +- 0.2 K_beta per step", min=0, max=5)
    adversary_every: int = setting("T10: the adversarial judge trains after every E-th step", min=1)
    adversary_steps: int = setting("T10: its training steps each time (A3, A7)", min=1)
    adversary_replay: int = setting("T10: rows of older steps replayed in each of its batches, beside the newest", min=0)
    adversary_lr: float = setting("T10: its AdamW learning rate", above=0, max=1)
    best_of: int = setting("N of best-of-N (T7): candidates per judged row", min=1)
    optimizer: str = setting("adamw or sgd", choices=OPTIMIZERS)
    lr: float = setting("learning rate of the generators", above=0, max=1)
    weight_decay: float = setting("AdamW weight decay of matrices and embeddings", min=0, max=1)
    grad_clip: float = setting("clip the gradients' joint norm (0: no clipping)", min=0)
    batch_size: int = setting("--arm lm: windows per fine-tuning step", min=1)
    length: int = setting("--arm lm: tokens per window; held-out LM loss windows", min=2)
    seed: int = setting("random seed", min=0)
    precision: str = setting("auto = measured on this machine, or fp32, bf16, fp16", choices=PRECISIONS)
    device: str = setting("auto, cpu, cuda, cuda:N")


SHARED = dict(start_from="", judge="latest", authors=DEFAULT_AUTHORS, samples=4, rl_overgen=1.5, best_of=16,
              lm_coef=0.0, advantage_norm=False, kl_target=0.0, kl_gain=0.1, adversary_every=1, adversary_steps=2,
              adversary_replay=16, adversary_lr=5e-5, optimizer="adamw", weight_decay=0.0, grad_clip=1.0,
              batch_size=16, length=128, seed=0, precision="auto", device="auto", **LECTURE_JUDGEMENT, **lora_off(2e-3))
# T10: the adversarial judge learns after every step, 2 AdamW steps at 5e-5 on (newest rows + 16 replayed) and as
# many real windows; at 2e-5 its real-versus-generated accuracy on neo-small's rows took 10 steps to leave 0.5-0.6.
# "cpu" (the default): neo-small; lr 3e-4 moved S(t) to >= 0.95 / <= 0.05 within 10 steps (1e-4 needed > 40).
# "smollm2": SmolLM2-135M on 2 CPU cores, not the default: an RL step samples P x G rows per generator and runs
# them forward and backward, about 100 s for both generators here, and in 10 steps (AdamW 1e-4, beta 0.05) RL
# did not move P(alice) of the Alice generator's rows (0.098 at step 0, 0.095 at step 5; README). Its rows are
# short: L = 64 BERT tokens from k = 1.25 L tokens (B16: 0.92 BERT tokens per token of this BPE); P 4 x G 4 (a
# sampling step costs about the same for 8 rows as for 16: the weights are read once per step either way);
# r = 1.0, as scripts/coevolve.py measured for this base. "lecture": TRL's gpt2-sentiment learning rate for 125M.
SMOLLM2 = dict(SHARED, samples=4, rl_overgen=1.25, **dict(LECTURE_JUDGEMENT, eval_every=5, rows=16, judge_length=64,
                                                          overgen=1.25, repetition_penalty=1.0))
PRESETS = {
    "cpu": TeachConfig(arm="rl", base="neo-small", minutes=0.0, steps=30, prompts=4, beta="0.05", lr=3e-4, **SHARED),
    "smollm2": TeachConfig(arm="rl", base="smollm2-135m", minutes=0.0, steps=10, prompts=4, beta="0.05", lr=1e-4,
                           **SMOLLM2),
    "lecture": TeachConfig(arm="rl", base="gpt-neo-125M", minutes=0.0, steps=121, prompts=16, beta="0.05",
                           lr=1.41e-5, **SHARED),
}
RESUME_MAY_CHANGE = {"steps", "minutes", "device", "precision"}


@dataclass
class Adversary:
    """T10's judge that keeps learning (train/adversary.py), and what it learns from."""

    judge: BertClassifier  # the trained judge with a class "generated", float32, trained by its own optimizer
    optimizer: torch.optim.Optimizer
    real: dict[str, AuthorIds]  # every author's training text in the judge's tokens: its real windows
    specials: Specials
    newest: dict[str, torch.Tensor] = field(default_factory=dict)  # author -> full rows written at the last step
    older: list[torch.Tensor] = field(default_factory=list)  # rows of earlier rounds (REPLAY_ROUNDS), for the replay


REPLAY_ROUNDS = 8  # the replay draws from the rows of the last 8 rounds (a --resume starts it empty again)


@dataclass
class TeachLoop:
    """What the teaching loop works on."""

    cfg: TeachConfig
    beta: float
    setup: Setup
    judging: Judging  # the judgements' judge, R rows and how they are written (B7-B10), as in make coevolve
    rl_rows: RowSampling  # how RL's own rows are written: the judgement's, with k = rl_overgen
    refs: dict[str, Decoder]  # pi_ref of T2: each generator as it started, frozen (none with LoRA: P4)
    optimizers: dict[str, torch.optim.Optimizer]
    rngs: dict[str, torch.Generator]
    run: Run
    precision: Precision
    t0: float
    judge_calls: int = 0  # texts the judge scored for the optimisation (the judgements not counted)
    book_name_rates: dict[str, float] = field(default_factory=dict)  # T8's reference, per author
    betas: dict[str, float] = field(default_factory=dict)  # T6's beta per generator (T11 adapts it; else `beta`)
    adversary: Adversary | None = None  # T10's learning judge (--arm adversarial), else None

    def elapsed(self) -> float:
        return time.time() - self.t0

    @contextlib.contextmanager
    def reference(self, author: str):
        """pi_ref of T2: the frozen copy, or with LoRA the same network with its adapters off (P4)."""
        if author in self.refs:
            yield self.refs[author]
        else:
            with adapters_off(self.setup.generators[author]) as model:
                yield model


# ----------------------------------------------------------------------------- the pieces of a step


def kept_batch(batch: JudgeBatch, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The GPT-Neo tokens each row needed for what the judge read: (B, 1 + n) ids (start token first), (B, n) mask.

    Tokens sampled beyond the kept span never reached the judge, so they get no credit (n_i of T5: the
    bridge says how many it kept).
    """
    n = batch.kept
    ids = torch.full((len(n), 1 + max(n)), pad_id, dtype=torch.long)
    mask = torch.zeros(len(n), max(n))
    for i, (row, k) in enumerate(zip(batch.rows, n)):
        ids[i, : 1 + k] = row[: 1 + k]
        mask[i, :k] = 1.0
    return ids, mask


def sequence_log_probs(model: Decoder, ids: torch.Tensor, mask: torch.Tensor, loop: TeachLoop) -> torch.Tensor:
    """log pi(x_t | x_<t) of every kept token under the sampler's processed distribution: (B, n), 0 where masked."""
    with loop.precision.autocast():
        logits = model(ids.to(loop.precision.device))  # (B, 1 + n, V)
    logp = processed_log_probs(logits.float(), ids.to(logits.device), 1, loop.rl_rows.sampling)  # (B, n)
    return torch.where(mask.bool().to(logp.device), logp, torch.zeros_like(logp))


def kl_to_start(loop: TeachLoop, author: str, logp: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """T2, T3: the KL per row from the generator (its log-probs `logp`) to pi_ref, over the kept tokens. (B,)"""
    with torch.no_grad(), loop.reference(author) as ref:
        logp_ref = sequence_log_probs(ref, ids, mask, loop)  # 0 where masked, as logp: delta = 0 there
    return kl_k3(log_ratio(logp, logp_ref), mask)


def rl_step(loop: TeachLoop, author: str, label: int) -> dict:
    """One RL step of one generator: sample P x G rows -> T1 reward -> T4 advantages -> T2/T3 KL -> T5 + T6 -> update.

    The reward's judge is the lecture's frozen one, or with --arm adversarial the learning (N+1)-way judge (T10).
    """
    cfg, s = loop.cfg, loop.setup
    model, beta = s.generators[author], loop.betas[author]
    prompts = start_tokens(cfg.prompts, s.bad_mask, loop.rngs["prompts"]).repeat_interleave(cfg.samples, 0)  # (P G, 1)
    model.eval()  # no dropout: the loss sees the distribution that was sampled
    with loop.judging.writing():
        batch = generate_for_judge(model, prompts.to(loop.precision.device), s.neo_tok, s.bert_tok, loop.rl_rows,
                                   loop.rngs[f"sample_{author}"])
    rewards = judge_reward(reward_logits(loop, batch), torch.full((len(batch.input_ids),), label))  # T1 / T10: (P G,)
    advantages = rloo_advantages(rewards.view(cfg.prompts, cfg.samples)).flatten()  # T4
    if cfg.advantage_norm:
        advantages = normalised_advantages(advantages)  # T11
    ids, mask = kept_batch(batch, pad_id=int(prompts[0, 0]))
    logp = sequence_log_probs(model, ids, mask, loop)  # with gradient
    kl = kl_to_start(loop, author, logp, ids, mask)
    loss = total_loss(policy_gradient_loss(logp, mask, advantages), kl, beta)  # T5 + T6
    real = real_text_loss(loop, author, model) if cfg.lm_coef > 0 else torch.zeros(())
    loss = with_real_text(loss, real, cfg.lm_coef)  # T9
    value = check_finite_loss(loss, f"the {author} generator's RL loss")
    loss.backward()
    norm, _ = apply_update(model, loop.optimizers[author], cfg.grad_clip)
    loop.judge_calls += len(rewards)
    if cfg.kl_target > 0:  # T11: the next step's beta
        loop.betas[author] = adaptive_beta(beta, kl.mean().item(), cfg.kl_target, cfg.kl_gain)
    if loop.adversary is not None:  # T10: what the adversarial judge learns from next
        loop.adversary.newest[author] = full_rows(batch.input_ids, batch.attention_mask)
    return {f"reward_{author}": rewards.mean().item(), f"kl_{author}": kl.mean().item(), f"loss_{author}": value,
            f"p_{author}": rewards.exp().mean().item(), f"tokens_{author}": int(mask.sum()), f"grad_norm_{author}": norm,
            f"beta_{author}": beta, **({f"lm_loss_{author}": real.item()} if cfg.lm_coef > 0 else {})}


def reward_logits(loop: TeachLoop, batch: JudgeBatch) -> torch.Tensor:
    """The reward's judge on RL's rows: the lecture's frozen judge (N logits; already in 16 bits, B5, so run as it is),
    or the adversarial one (N + 1; float32, so under the run's precision)."""
    if loop.adversary is None:
        return predict_logits(loop.setup.judge, batch.input_ids, batch.attention_mask, batch_size=len(batch.input_ids))
    return predict_logits(loop.adversary.judge, batch.input_ids, batch.attention_mask, batch_size=len(batch.input_ids),
                          precision=loop.precision)


def adversary_round(loop: TeachLoop, step: int) -> dict:
    """T10, after every E-th step: the adversarial judge trains for a few steps on real windows of every author and
    on the generators' newest full rows (+ a replay of older ones), labelled "generated". Before it learns, its
    real-versus-generated accuracy on the first batch (rows it has not seen yet): the game's score."""
    adv, cfg = loop.adversary, loop.cfg
    if step % cfg.adversary_every or not adv.newest:
        return {}
    newest = torch.cat(list(adv.newest.values()))
    if not len(newest):
        return {"adv_skipped": 1}  # no full row this time: nothing "generated" to learn from without padding tells
    n_authors, record = len(adv.real), {}
    for k in range(cfg.adversary_steps):
        replay = replay_rows(adv.older, cfg.adversary_replay, loop.rngs["adversary"])
        generated = newest if replay is None else torch.cat([newest, replay])
        per_author = max(1, -(-len(generated) // n_authors))  # as many real windows as generated rows, or a few more
        real = balanced_batch(adv.real, per_author * n_authors, newest.shape[1], loop.rngs["adversary"], adv.specials)
        x, mask, y = adversary_batch(real, generated, n_authors)
        if k == 0:
            game = real_vs_generated_accuracy(predict_logits(adv.judge, x, mask, batch_size=32,
                                                             precision=loop.precision), y, n_authors)
            record.update(adv_acc=game["balanced"], adv_acc_real=game["real"], adv_acc_generated=game["generated"])
        record["adv_loss"] = classifier_step(adv.judge, adv.optimizer, (x, mask, y), loop.precision, cfg.grad_clip)["loss"]
    adv.older = (adv.older + [newest])[-REPLAY_ROUNDS:]
    adv.newest = {}
    return record


def real_text_loss(loop: TeachLoop, author: str, model: Decoder) -> torch.Tensor:
    """B2's loss on a batch of the author's real training windows, with gradient (T9's L_gen)."""
    cfg = loop.cfg
    batch = lm_windows(loop.setup.ids[author].train, cfg.batch_size, cfg.length, loop.rngs[f"data_{author}"])
    batch = batch.to(loop.precision.device)
    with loop.precision.autocast():
        return lm_loss(model(batch), batch)


def lm_arm_step(loop: TeachLoop, author: str, label: int) -> dict:
    """The lecture's step (B2) for comparison: one LM fine-tuning step on the author's own text."""
    cfg, model = loop.cfg, loop.setup.generators[author]
    batch = lm_windows(loop.setup.ids[author].train, cfg.batch_size, cfg.length, loop.rngs[f"data_{author}"])
    loss, norm = lm_step(model, loop.optimizers[author], batch, loop.precision, cfg.grad_clip)
    return {f"loss_{author}": loss, f"grad_norm_{author}": norm}


def best_of_n_writer(loop: TeachLoop):
    """T7 as a judgement's writer: each generator samples N candidates per start token; the judge keeps the best."""
    s, N = loop.setup, loop.cfg.best_of

    def write(start: torch.Tensor) -> dict[str, JudgeBatch]:
        batches = {}
        for label, (author, model) in enumerate(s.generators.items()):
            with loop.judging.writing():
                cand = generate_for_judge(model.eval(), start.repeat_interleave(N, 0).to(loop.precision.device),
                                          s.neo_tok, s.bert_tok, loop.judging.row_sampling,
                                          loop.rngs[f"sample_{author}"])
            logits = predict_logits(s.judge, cand.input_ids, cand.attention_mask, batch_size=len(cand.input_ids))
            rewards = judge_reward(logits, torch.full((len(logits),), label)).view(len(start), N)  # T1
            batches[author] = cand.select((torch.arange(len(start)) * N + best_of_n(rewards)).tolist())
            loop.judge_calls += len(logits)
        return batches

    return write


@dataclass(frozen=True)
class Arm:
    """One arm of the comparison, whole: how it moves a generator, and who writes the rows it is judged on."""

    step: Callable[[TeachLoop, str, int], dict] | None  # one optimisation step of one generator; None: no training
    writer: Callable[[TeachLoop], Callable[[torch.Tensor], dict[str, JudgeBatch]]] | None  # None: the generators
    after_step: Callable[[TeachLoop, int], dict] | None = None  # once per step, after every generator's step


ARMS = {"rl": Arm(step=rl_step, writer=None),  # T1-T6 (T9, T11)
        "adversarial": Arm(step=rl_step, writer=None, after_step=adversary_round),  # T10: the reward's judge learns
        "lm": Arm(step=lm_arm_step, writer=None),  # B2, the lecture's fine-tuning
        "best-of-n": Arm(step=None, writer=best_of_n_writer)}  # T7: no training, the judge picks


@torch.no_grad()
def judgement_extras(loop: TeachLoop, judgement: Judgement) -> dict:
    """T8 beside the lecture's numbers: mean reward (T1), KL per token to the start (T3), distinct-1/2/3 and the main
    characters' names per 1,000 words (against the author's training books) per generator."""
    out, names = {}, list(loop.setup.generators)
    R = len(judgement.log_probs) // len(names)
    for g, a in enumerate(names):
        out[f"reward_{a}"] = judgement.log_probs[g * R : (g + 1) * R, g].mean().item()  # T1 on the judged rows
        batch = judgement.batches[a]
        for n in (1, 2, 3):
            out[f"distinct{n}_{a}"] = distinct_n(batch.texts, n)
        if a in AUTHORS and AUTHORS[a].names:  # an author from a folder has none
            out[f"names_{a}"] = name_rate(batch.texts, AUTHORS[a].names)
            out[f"names_books_{a}"] = books_name_rate(loop, a)
        if ARMS[loop.cfg.arm].step is None:  # no model was moved: T7's bound, per sequence
            out[f"kl_bound_{a}"] = best_of_n_kl_bound(loop.cfg.best_of)
            continue
        ids, mask = kept_batch(batch, pad_id=int(batch.rows[0][0]))
        logp = sequence_log_probs(loop.setup.generators[a], ids, mask, loop)
        out[f"kl_{a}"] = kl_to_start(loop, a, logp, ids, mask).mean().item()
        if loop.adversary is not None:  # T10: how the learning judge reads the same rows
            p = torch.softmax(reward_logits(loop, batch), dim=-1)  # (R, N + 1)
            out[f"adv_p_generated_{a}"], out[f"adv_p_own_{a}"] = p[:, -1].mean().item(), p[:, g].mean().item()
    return out


def books_name_rate(loop: TeachLoop, author: str) -> float:
    """T8's reference: the names per 1,000 words of the author's own training text (computed once per run)."""
    if author not in loop.book_name_rates:
        text = loop.setup.neo_tok.decode(loop.setup.ids[author].train.tolist())
        loop.book_name_rates[author] = name_rate([text], AUTHORS[author].names)
    return loop.book_name_rates[author]


def record_judgement(loop: TeachLoop, step: int, judgement: Judgement) -> None:
    """A judgement into the run: the lecture's numbers, the held-out LM losses (B2) and T8's."""
    record = judgement_record(judgement, loop.setup, loop.cfg, loop.precision, step, loop.elapsed())
    record.update(**judgement_extras(loop, judgement), judge_calls=loop.judge_calls, time=loop.elapsed())
    rewards = " ".join(f"{a} {record[f'reward_{a}']:.2f}" for a in loop.setup.generators)
    log_judgement(loop.run, step, record, judgement, extra=f"  reward {rewards}")


def save_step(loop: TeachLoop, step: int) -> None:
    """A checkpoint for --resume: what `checkpointed` names, the random streams, T11's betas."""
    save_checkpoint(loop.run.folder, step, *checkpointed(loop), loop.rngs,
                    {"t": loop.elapsed(), "judge_calls": loop.judge_calls, "betas": loop.betas})


def checkpointed(loop: TeachLoop) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
    """The models and optimizers a checkpoint holds: the generators', and T10's learning judge's if there is one."""
    models, optimizers = dict(loop.setup.generators), dict(loop.optimizers)
    if loop.adversary is not None:
        models[ADVERSARY], optimizers[ADVERSARY] = loop.adversary.judge, loop.adversary.optimizer
    return models, optimizers


ADVERSARY = "adversarial-judge"  # its name in a checkpoint, beside the authors' (make_adversary refuses an author so named)


# ----------------------------------------------------------------------------- the loop


def finished(loop: TeachLoop, step: int) -> bool:
    """The step limit or the wall-clock budget is reached."""
    cfg = loop.cfg
    return bool((cfg.steps and step >= cfg.steps) or (cfg.minutes and loop.elapsed() >= 60 * cfg.minutes))


def teach_loop(loop: TeachLoop, start: int) -> int:
    """judge -> (each generator: its arm's step) x eval_every -> judge ... Returns the last step."""
    arm, generators = ARMS[loop.cfg.arm], loop.setup.generators
    writer = arm.writer(loop) if arm.writer else None  # who writes the judged rows (None: the generators)
    if start == 0:
        record_judgement(loop, 0, judge_generators(generators, loop.judging, loop.rngs, writer))  # Generate -> Classify
        loop.run.point_latest()
    reset_peak_memory(loop.precision.device)
    step, last_eval = start, start
    with StopRequest() as stop, tqdm(desc=f"teach ({loop.cfg.arm})", unit="step", initial=start,
                                     total=loop.cfg.steps or None) as bar:
        while not finished(loop, step) and not stop.requested:
            step += 1 if arm.step else loop.cfg.eval_every  # best-of-N only judges
            record, t_step = {"kind": "train", "step": step}, time.time()
            for label, author in enumerate(generators):
                record.update(arm.step(loop, author, label) if arm.step else {})
            if arm.after_step:
                record.update(arm.after_step(loop, step))
            if arm.step:
                loop.run.log(dict(record, judge_calls=loop.judge_calls, step_s=time.time() - t_step, time=loop.elapsed()))
            bar.update(step - bar.n)
            if step % loop.cfg.eval_every == 0 or finished(loop, step) or stop.requested:
                record_judgement(loop, step, judge_generators(generators, loop.judging, loop.rngs, writer))
                last_eval = step
                save_step(loop, step)
    if last_eval != step:
        record_judgement(loop, step, judge_generators(generators, loop.judging, loop.rngs, writer))
    return step


# ----------------------------------------------------------------------------- set-up and the run


def parse_args(argv: list[str] | None) -> tuple[TeachConfig, Path | None, dict, object]:
    """(checked config, run to resume or None, that run's config.json or {}, the other arguments)."""
    def extra(p):
        p.add_argument("--match-judge-calls", metavar="RUN", help="best-of-n: choose N so that one judgement spends "
                       "as many judge calls per generator as the RL run RUN did")

    cfg, resume, saved, args = parse_program(TeachConfig, PRESETS, argv, "teach", __doc__, RESUME_MAY_CHANGE, extra)
    if not cfg.steps and not cfg.minutes:
        raise ConfigError("give --steps N or --minutes M: the loop needs an end")
    check_start_from(cfg)
    if args.match_judge_calls:
        cfg = replace(cfg, best_of=matched_best_of(cfg, args.match_judge_calls, sys.argv[1:] if argv is None else argv))
    return cfg, resume, saved, args


def matched_best_of(cfg: TeachConfig, rl_run: str, argv: list[str]) -> int:
    """T7's N for --match-judge-calls RUN: one judgement of best-of-N spends what RUN's RL steps spent, per generator."""
    if cfg.arm != "best-of-n":
        raise ConfigError(f"--match-judge-calls sets best-of-N's N: it goes with --arm best-of-n, not --arm {cfg.arm}")
    if any(a == "--best-of" or a.startswith("--best-of=") for a in argv):
        raise ConfigError("give --best-of N or --match-judge-calls RUN, not both: the second chooses N")
    run = Run.open(rl_run, "teach", writer=False)
    arm = run.config()["config"].get("arm")
    calls = max((r.get("judge_calls", 0) for r in run.records()), default=0)
    if arm not in LEARNS_FROM_A_JUDGE or not calls:
        raise ConfigError(f"--match-judge-calls {rl_run}: that is a teach run of arm {arm!r} with {calls} judge calls; "
                          "it takes an RL run (--arm rl or adversarial) that made at least one step")
    return max(1, math.ceil(calls // len(select_authors(cfg.authors)) / cfg.rows))


def check_start_from(cfg: TeachConfig) -> None:
    """--start-from must hold a fine-tuned generator for every author: said before the set-up, not after it."""
    if not cfg.start_from:
        return
    folder = Path(cfg.start_from)
    missing = [a for a in select_authors(cfg.authors) if not (folder / "generators" / a / "config.json").is_file()]
    if missing:
        raise ConfigError(f"--start-from {folder} must be a coevolve (or teach) run folder with generators/<author>/ "
                          f"for every author; it has none for {', '.join(missing)}")


def start_models(cfg: TeachConfig, setup: Setup) -> None:
    """--start-from a coevolve run: its fine-tuned generators replace the copies of the base."""
    if not cfg.start_from:
        return
    for author in setup.generators:
        folder = Path(cfg.start_from) / "generators" / author
        setup.generators[author] = load_decoder(folder).to(next(setup.judge.parameters()).device)


def build_loop(cfg: TeachConfig, beta: float, resume: Path | None, runs_dir, saved: dict
               ) -> tuple[TeachLoop, int]:
    """The models, the frozen references, the optimizers and the run folder (new, or resumed at its checkpoint)."""
    precision = choose_precision(pick_device(cfg.device), cfg.precision, earlier=saved.get("precision"))
    print(f"precision: {precision.name} ({precision.reason})", file=sys.stderr)
    torch.manual_seed(cfg.seed)
    setup = load_setup(cfg.base, judge_of_run(cfg.judge, saved), select_authors(cfg.authors), precision,
                       cfg.judge_half, cfg.length, runs_dir)
    start_models(cfg, setup)
    refs = {} if cfg.lora_rank else {a: copy.deepcopy(m).eval().requires_grad_(False)  # pi_ref of T2
                                     for a, m in setup.generators.items()}
    add_adapters(setup, cfg)
    optimizers = {a: make_optimizer(m, cfg.optimizer, learning_rate(cfg), cfg.weight_decay)
                  for a, m in setup.generators.items()}
    rngs = dict(make_rngs(cfg.seed, list(setup.generators), precision.device),
                prompts=torch.Generator().manual_seed(cfg.seed + 301))
    adversary = None
    if cfg.arm == "adversarial":
        adversary = make_adversary(cfg, setup, precision)
        rngs["adversary"] = torch.Generator().manual_seed(cfg.seed + 302)
    sampling_precision = choose_sampling(next(iter(setup.generators.values())), cfg.rows, precision,
                                         saved.get("sampling_precision"))
    print(f"sampling: {sampling_precision.reason}", file=sys.stderr)
    rows, length = ((cfg.batch_size, cfg.length) if cfg.arm == "lm"  # the windows it trains on; else RL's rows (B8)
                    else (cfg.prompts * cfg.samples, math.ceil(cfg.judge_length * cfg.rl_overgen)))
    kernel, why = choose_attention_kernel([*setup.generators.values(), *refs.values()], rows, length, precision,
                                          saved.get("attention_kernel"))
    print(f"attention: {why}", file=sys.stderr)
    info = {"program": "teach", **setup.info, **precision.describe(), "sampling_precision": sampling_precision.name,
            "attention_kernel": kernel, "beta_value": beta}
    run = Run.create("teach", runs_dir, {"config": dict(as_dict(cfg), beta=str(beta)), **info}) if resume is None \
        else Run(Path(resume).resolve())
    judging = make_judging(cfg, setup, sampling_precision)
    rl_rows = replace(judging.row_sampling, overgen=cfg.rl_overgen)
    loop = TeachLoop(cfg, beta, setup, judging, rl_rows, refs, optimizers, rngs, run, precision, time.time(),
                     betas={a: beta for a in setup.generators}, adversary=adversary)
    start = 0
    if resume is not None:
        ckpt = load_checkpoint(run.folder)
        ckpt.restore(*checkpointed(loop), rngs)
        start, loop.t0, loop.judge_calls = ckpt.step, time.time() - ckpt.state["t"], ckpt.state["judge_calls"]
        loop.betas.update(ckpt.state.get("betas", {}))
        run.keep_records_until(start)
        run.keep_records_until(start, SAMPLES_FILE)
    return loop, start


def make_adversary(cfg: TeachConfig, setup: Setup, precision: Precision) -> Adversary:
    """T10's judge: a float32 copy of the run's judge with a class "generated", its optimizer, every author's real
    text in its tokens (names masked where the judge masks them: its tokenizer does)."""
    if ADVERSARY in setup.generators:
        raise ConfigError(f"an author from a folder named {ADVERSARY!r} would share its name with the adversarial "
                          "judge in the checkpoint: rename that folder")
    judge, _, _ = load_bert_judge(setup.info["judge_folder"], device=precision.device)
    judge = with_generated_class(judge)  # its steps put it in training mode (train/bert_judge.py:classifier_step)
    real = load_author_ids(setup.bert_tok, list(setup.generators), setup.info["split"])
    return Adversary(judge, make_optimizer(judge, "adamw", cfg.adversary_lr, 0.0), real, Specials.of(setup.bert_tok))


def teach_one(cfg: TeachConfig, beta: float, resume: Path | None, runs_dir, saved: dict) -> Path:
    """One run of one arm at one beta: set-up, the loop, the generators saved. Returns the run folder."""
    loop, start = build_loop(cfg, beta, resume, runs_dir, saved)
    print(f"run folder: {loop.run.folder} (arm {cfg.arm}, beta {beta})", file=sys.stderr)
    try:
        step = teach_loop(loop, start)
    except KeyboardInterrupt:
        loop.run.discard_if_empty()
        raise
    save_generators(loop.run.folder / "generators", loop.setup,
                    {"step": step, "program": "teach", "arm": cfg.arm, "beta": beta, "run": str(loop.run.folder)})
    atomic_write_json(loop.run.folder / "summary.json",
                      run_summary(loop.setup, loop.optimizers, loop.precision, step, loop.elapsed()))
    print(f"generators saved in {loop.run.folder / 'generators'}; summary: python -m scripts.report {loop.run.folder}")
    return loop.run.folder


def teach(argv: list[str] | None = None) -> list[Path]:
    """Every beta of --beta in turn (one value: one run). Returns the run folders."""
    cfg, resume, saved, args = parse_args(argv)
    betas = [float(b) for b in cfg.beta.split(",")]
    if resume is not None and len(betas) > 1:
        raise ConfigError("--resume continues one run: it cannot resume a sweep of several betas")
    folders = []
    for beta in betas:
        folders.append(teach_one(cfg, beta, resume, args.runs_dir, saved))
        if stop_was_asked():  # Ctrl-C ends the sweep too, after this run's generators are saved
            print(f"stopped: continue with `python -m scripts.teach --resume {folders[-1]}`", file=sys.stderr)
            raise KeyboardInterrupt
    if len(folders) > 1:
        print("sweep done; compare with: python -m scripts.compare " + " ".join(str(f) for f in folders))
    return folders


def main(argv: list[str] | None = None) -> int:
    return run_program(teach, argv)


if __name__ == "__main__":
    sys.exit(main())
