"""What lecture B's programs share (`make coevolve`, `make teach`): the generators, the judge, their data.

Three (or N + 1) models in one process: the trained BERT judge of lecture A, frozen and cast to
half precision (B5), and one copy of a pretrained GPT-Neo per author (B1), plus each author's
training and held-out text in GPT-Neo tokens, split exactly where the judge's split is.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from data.authors import AUTHORS
from data.windows import AuthorIds, load_author_ids
from model.decoder import Decoder, load_decoder
from model.lora import add_lora, has_lora, trainable_parameters
from model.ngram import NgramJudge
from model.sampler import PENALTY_MODES, Sampling, bad_token_mask, generate
from plumbing.config import ConfigError, setting
from plumbing.hf_folder import write_adapter_folder, write_model_folder
from plumbing.judges import load_bert_judge, load_ngram_judge
from plumbing.model_card import TEXTS_LICENCE, ModelCard, authors_line, base_licence, hf_use
from plumbing.precision import Precision
from plumbing.runs import read_jsonl
from tokenizer_bridge.bpe import token_byte_lengths
from tokenizer_bridge.bridge import RowSampling
from tokenizer_bridge.load import load_neo_tokenizer
from train.judgement import Judgement, Judging, prepare_judge, start_tokens
from train.lm import heldout_scores
from train.metrics import optimizer_state_bytes, peak_memory_mib
from weights.store import resolve

SAMPLES_FILE = "samples.jsonl"  # every judged row of a run, with its text and the judge's probabilities


@dataclass
class JudgementSettings:
    """How the generators are judged, alike in `make coevolve` and `make teach` (B5, B7-B10, B16)."""

    eval_every: int = setting("judge the generators every N steps (and at step 0 and the last)", min=1)
    rows: int = setting("rows per generator per judgement (B7: 32)", min=1)
    judge_length: int = setting("L: BERT tokens the judge reads per row (B7: 128)", min=1, max=510)
    overgen: float = setting("k of B8: k L GPT-Neo tokens are sampled per row, then cut after translation", above=1)
    max_rounds: int = setting("extra sampling rounds for rows still short of L BERT tokens", min=0, max=10)
    temperature: float = setting("sampling temperature", above=0, max=100)
    top_k: int = setting("sample among the k most likely tokens (0: all)", min=0)
    repetition_penalty: float = setting("r of B10: > 1 penalises repetition, 1 turns it off (r < 1 would reward it)",
                                         min=1, max=100)
    penalty_mode: str = setting("lecture: B10 on probabilities; hf: the library's rule (course code)",
                                choices=PENALTY_MODES)
    judge_half: bool = setting("B5: cast the judge to 16 bits (half the memory)")
    heldout_windows: int = setting("held-out windows per author for the held-out LM loss", min=1)


# The lecture's judgement: every 10 steps, 32 rows per generator of L = 128 BERT tokens from k L = 512
# sampled GPT-Neo tokens (B7, B8), repetition penalty 1.3 (B10), top-k 50, the judge in 16 bits (B5).
LECTURE_JUDGEMENT = dict(eval_every=10, rows=32, judge_length=128, overgen=4.0, max_rounds=3, temperature=1.0,
                         top_k=50, repetition_penalty=1.3, penalty_mode="lecture", judge_half=True, heldout_windows=16)


@dataclass
class Setup:
    """The models and the data, ready for a loop."""

    generators: dict[str, Decoder]  # one copy of the base per author, in the judge's label order
    judge: torch.nn.Module
    neo_tok: Tokenizer  # the generators' byte-level BPE (T_neo of B6: GPT-Neo's, or SmolLM2's)
    bert_tok: Tokenizer  # the judge's WordPiece
    bad_mask: torch.Tensor  # (V,) B9
    byte_lengths: torch.Tensor  # (V,) UTF-8 bytes each generator token writes (L7)
    ids: dict[str, AuthorIds]  # author -> GPT-Neo ids of its training and held-out split
    ngram_judge: NgramJudge  # N5: the second judge, never trained against
    info: dict  # facts for the run's config.json

    def ngram_log_probs(self, texts: list[str]) -> torch.Tensor:
        """log P(author | text) of the independent n-gram judge (N5): (len(texts), N)."""
        return torch.from_numpy(self.ngram_judge.log_probs(texts)).float()


def check_authors(authors: tuple[str, ...], judge_labels: list[str]) -> None:
    """The generators must be the judge's authors, in its label order, or S(t) reads the wrong class."""
    if list(authors) != judge_labels:
        raise ValueError(f"the judge tells apart {','.join(judge_labels)} but the generators were asked for "
                         f"{','.join(authors)}: give --authors {','.join(judge_labels)}, or train a judge for "
                         f"these authors (`make train-bert ARGS=\"--authors {','.join(authors)}\"`)")


def judge_of_run(judge: str, saved: dict) -> str | None:
    """The judge a run is judged by: on --resume (`saved`: its config.json) the very folder it was made with,
    never a newer `latest`; else --judge (None for 'latest': runs/judge/latest)."""
    if not saved:
        return None if judge == "latest" else judge
    folder = saved.get("judge_folder")
    if not folder or not Path(folder, "config.json").is_file():
        raise ConfigError(f"the judge this run was made with ({folder}) is gone: a resumed run must be judged by the "
                          "same judge to the end; put that folder back, or start a new run")
    return folder


def load_setup(base: str, judge: str | None, authors: tuple[str, ...], precision: Precision, judge_half: bool,
               length: int, runs_dir: str | Path | None = None) -> Setup:
    """Load the base generator once per author, the judge (frozen, B5), and every author's GPT-Neo ids.

    judge: a judge folder or run folder, None for runs/judge/latest. length: tokens per
    fine-tuning window, checked to fit in every split.
    """
    judge_model, bert_tok, judge_info = load_bert_judge(judge, runs_dir, precision.device)
    check_authors(authors, judge_info["labels"])
    half = prepare_judge(judge_model, precision.half if judge_half else None)  # B5
    base_folder = resolve(base)
    neo_tok, base_model = load_neo_tokenizer(base_folder), load_decoder(base_folder)
    generators = {name: copy.deepcopy(base_model).to(precision.device) for name in authors}  # label order
    print("reading and tokenizing the corpus ...", file=sys.stderr)
    ids = load_author_ids(neo_tok, authors, judge_info.get("split", "tail"), split_tokenizer=bert_tok)
    for a in ids.values():
        for what, stream in (("train", a.train), ("held-out", a.heldout)):
            if stream.numel() < length + 1:
                raise ValueError(f"{a.name} {what} split has {stream.numel()} GPT-Neo tokens, fewer than one window "
                                 f"of {length}: use a shorter --length")
    bad_mask = bad_token_mask(neo_tok, base_model.config.vocab_size)
    byte_lengths = token_byte_lengths(neo_tok, base_model.config.vocab_size)
    ngram, ngram_folder = load_ngram_judge(list(authors), judge_info.get("split", "tail"), bert_tok, runs_dir)
    info = {"independent_judge": str(ngram_folder), "base_folder": str(base_folder),
            "generator_parameters": sum(p.numel() for p in base_model.parameters()),
            "judge_folder": judge_info["folder"], "judge_heldout_acc": judge_info.get("heldout_acc"),
            "judge_half": {k: half[k] for k in ("dtype", "ratio")}, "judge_half_is_fast": precision.half_is_fast,
            "split": judge_info.get("split", "tail"), "banned_ids": int(bad_mask.sum()),
            "train_tokens": {a.name: a.train.numel() for a in ids.values()}}
    return Setup(generators, judge_model, neo_tok, bert_tok, bad_mask, byte_lengths, ids, ngram, info)


def add_adapters(setup: Setup, cfg) -> None:
    """With --lora-rank r, every generator is frozen and gets adapters (model/lora.py, P1); else nothing."""
    if cfg.lora_rank:
        for model in setup.generators.values():
            add_lora(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets, cfg.lora_dropout)


def save_generators(folder: Path, setup: Setup, facts: dict) -> None:
    """Every generator as a Hugging Face folder <folder>/<author>/ (transformers loads it as it is), with its card.

    facts: step, program, run (its folder) and what else decides the run; they go into training.json and the
    card, with the run's last judgement up to that step. A generator with adapters is saved merged (P3), and
    its adapters alone in <author>/adapter/, in PEFT's layout.
    """
    evals = [r for r in read_jsonl(Path(facts["run"]) / "metrics.jsonl")
             if r.get("kind") == "eval" and r["step"] <= facts["step"]]
    for name, model in setup.generators.items():
        card = generator_card(setup, name, facts, evals)
        write_model_folder(folder / name, model, setup.neo_tok, extra={"training.json": dict(facts, author=name)},
                           card=card)
        if has_lora(model):
            write_adapter_folder(folder / name / "adapter", model, setup.info["base_folder"])


def generator_card(setup: Setup, author: str, facts: dict, evals: list[dict]) -> ModelCard:
    """What one fine-tuned generator is: its base, its author's books, its run, and what its judgements measured."""
    model, base = setup.generators[author], setup.info["base_folder"]
    lora = trainable_parameters(model)
    made = {"base": f"{base} ({type(model).__name__}, {setup.info['generator_parameters'] / 1e6:.1f} M parameters)",
            "program": f"python -m scripts.{facts['program']}" + (f" --arm {facts['arm']} --beta {facts['beta']}"
                                                                   if "arm" in facts else ""),
            "author": authors_line([author], setup.info["split"]) + f"; {setup.info['split']} split, {setup.info['train_tokens'][author]} "
                                               "training tokens",
            "judged against": authors_line(list(setup.generators)),
            "steps": facts["step"], "run folder": facts["run"],
            "trained": f"LoRA adapters, {lora['lora']} parameters ({100 * lora['fraction']:.2f} %)"
                       if has_lora(model) else "every weight"}
    results = {}
    if evals:
        first, last = evals[0], evals[-1]
        results = {"judgements (steps)": ", ".join(str(r["step"]) for r in evals),
                   f"B11 judge accuracy at step {first['step']} -> {last['step']}":
                       f"{first['acc']:.3f} -> {last['acc']:.3f}",
                   f"N6 P({author} | its rows), step {first['step']} -> {last['step']}":
                       f"{first[f'own_{author}']:.3f} -> {last[f'own_{author}']:.3f}",
                   f"B2 held-out loss on {author}, nats per token": f"{first[f'heldout_{author}']:.3f} -> "
                                                                    f"{last[f'heldout_{author}']:.3f}"}
        if f"heldout_per_byte_{author}" in last:
            results[f"L7 held-out loss on {author}, nats per byte"] = (f"{first[f'heldout_per_byte_{author}']:.3f} -> "
                                                                       f"{last[f'heldout_per_byte_{author}']:.3f}")
        results["a row it wrote at the last judgement"] = next(
            (r["text"][:300] for r in read_jsonl(Path(facts["run"]) / SAMPLES_FILE)
             if r["step"] == last["step"] and r.get("generator") == author), "")
    return ModelCard(title=f"The {author} generator of run {Path(facts['run']).name}",
                     summary=(f"A {type(model).__name__} decoder fine-tuned towards {AUTHORS[author].writer}'s "
                              f"style by this project's lecture B programs, judged by the BERT judge "
                              f"{setup.info['judge_folder']}."),
                     made_from=made, results=results,
                     licence=f"the base's: {base_licence(base)}; {TEXTS_LICENCE}", use=hf_use("generator"))


# ----------------------------------------------------------------------------- one judgement of the loop


def make_rngs(seed: int, authors: list[str], device: torch.device) -> dict[str, torch.Generator]:
    """Seeded random streams, one per purpose: each generator's batches and samples, the start tokens."""
    rngs = {f"data_{a}": torch.Generator().manual_seed(seed + 1 + i) for i, a in enumerate(authors)}
    rngs.update({f"sample_{a}": torch.Generator(device).manual_seed(seed + 101 + i) for i, a in enumerate(authors)})
    rngs["start"] = torch.Generator().manual_seed(seed + 201)
    return rngs


def make_judging(cfg, setup: Setup, sampling_precision: Precision) -> Judging:
    """What every judgement of the run shares, from a program's config, built once (B7-B10, N5); the generators write
    in `sampling_precision` (plumbing/precision.py:choose_sampling)."""
    sampling = Sampling(temperature=cfg.temperature, top_k=cfg.top_k, repetition_penalty=cfg.repetition_penalty,
                        penalty_mode=cfg.penalty_mode, bad_mask=setup.bad_mask)
    row_sampling = RowSampling(L=cfg.judge_length, overgen=cfg.overgen, max_rounds=cfg.max_rounds, sampling=sampling)
    return Judging(setup.judge, setup.neo_tok, setup.bert_tok, cfg.rows, row_sampling, setup.ngram_log_probs,
                   sampling_precision)


def judgement_record(judgement: Judgement, setup: Setup, cfg, precision: Precision, step: int, seconds: float) -> dict:
    """A judgement's line of metrics.jsonl: what it measured, and each generator's held-out LM loss on its own
    author, per token (B2, heldout_<a>) and per byte (L7, heldout_per_byte_<a>); `cfg` holds length and
    heldout_windows."""
    record = {"kind": "eval", **judgement.metrics}
    for a, model in setup.generators.items():
        held = heldout_scores(model, setup.ids[a].heldout, cfg.length, setup.byte_lengths, precision,
                              max_windows=cfg.heldout_windows)
        record[f"heldout_{a}"], record[f"heldout_per_byte_{a}"] = held["per_token"], held["per_byte"]
    return dict(record, step=step, time=seconds)


def eval_line(r: dict, names: list[str]) -> str:
    """One judgement as a console line."""
    s = " ".join(f"{a} {r[f'S_{a}']:.3f}" for a in names)
    held = " ".join(f"{a} {r[f'heldout_per_byte_{a}']:.3f}" for a in names)
    return (f"step {r['step']:4d}: acc {r['acc']:.3f} [{r['acc_low']:.2f}, {r['acc_high']:.2f}]  L_cls "
            f"{r['judge_loss']:.3f}  S(t) {s}  ratio {r['ratio']:.2f}  held-out nats/byte {held}  "
            f"(generate {r['gen_s']:.0f} s, judge {r['judge_s']:.0f} s)")


def log_judgement(run, step: int, record: dict, judgement: Judgement, extra: str = "") -> None:
    """A judgement into its run: every judged row into samples.jsonl, the record into metrics.jsonl, a console line."""
    for sample in judgement.samples:
        run.log({"step": step, **sample}, SAMPLES_FILE)
    run.log(record)
    tqdm.write(eval_line(record, list(judgement.batches)) + extra, file=sys.stderr)


def run_summary(setup: Setup, optimizers: dict, precision: Precision, step: int, seconds: float) -> dict:
    """The figures of a generators' run that P2's comparison reads: parameters trained, optimizer state, peak memory."""
    first = next(iter(setup.generators.values()))
    return {"step": step, "time_s": seconds, **trainable_parameters(first), "generators": len(setup.generators),
            "optimizer_state_bytes": sum(optimizer_state_bytes(o) for o in optimizers.values()),
            "peak_memory_mib": peak_memory_mib(precision.device)}


# ----------------------------------------------------------------------------- writing with any generator


@dataclass
class Written:
    """What `sample_texts` wrote: every row's ids (prompt included) and its text (without the B7 start token)."""

    ids: torch.Tensor  # (rows, prompt + tokens)
    skip: int  # leading ids that are not text: 1 for the lecture's random start token, 0 after a prompt
    texts: list[str]


def sample_texts(model: Decoder, tok: Tokenizer, prompt: str | None, rows: int, tokens: int, s: Sampling, seed: int,
                 desc: str | None = None, watch=None) -> Written:
    """`rows` texts of `tokens` new tokens each: continuing `prompt`, or (None or "") after one random start token per
    row as the lecture does (B7, drawn among the tokens B9 allows, dropped after). `watch`: see model/sampler.py."""
    rng = torch.Generator().manual_seed(seed)
    if prompt:
        ids = tok.encode(prompt).ids
        if not ids:
            raise ValueError("the prompt gives no tokens")
        start, skip = torch.tensor([ids] * rows), 0
    else:
        start, skip = start_tokens(rows, bad_token_mask(tok, model.config.vocab_size), rng), 1
    out = generate(model, start, tokens, s, rng, desc=desc, watch=watch)
    return Written(out, skip, [tok.decode(row[skip:].tolist()) for row in out])
