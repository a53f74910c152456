"""What `make explore` answers (scripts/explore.py serves it): the judge and the sampler at work on your own text.

Three questions, each a dict in and a dict out (JSON over HTTP):

    judge(request)     P(author) for every author (A15), each word coloured by its push (E1), each window's P
    generate(request)  texts from a generator under the sampler's settings (B7-B10), each judged (A15), and for
                       the first row each step's top candidates before and after the penalty (B10) and the mask (B9)
    runs()             every run under runs/, with its key numbers and its report page

Every field of a request is checked before anything runs; a bad one raises BadRequest, which the server
answers with its message and a 4xx status. Models load on first use and stay loaded (one judge and one
generator at a time: a 135M generator is half a gigabyte). Nothing here writes a file.
"""

from __future__ import annotations

import json
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from eval import pages
from eval.attribution import explain
from eval.scoring import classify
from model.config import ConfigError
from model.decoder import load_decoder
from model.sampler import PENALTY_MODES, Sampling, bad_token_mask, top_k_filter
from plumbing.generators import sample_texts
from plumbing.judges import judge_folder, load_bert_judge
from plumbing.runs import runs_root
from tokenizer_bridge.load import load_neo_tokenizer
from weights.store import resolve

DEFAULT_GENERATOR = "smollm2-135m"  # the default base of `make coevolve`: it writes English
MAX_TEXT_CHARS = 10_000  # about 10 judge windows: E1 takes about 2 s a window on 2 cores
MAX_TOKENS = 512  # new tokens per row (the lecture's 4 x 128)
MAX_ROWS = 8
CANDIDATES = 8  # candidates shown per step in the step view


class BadRequest(Exception):
    """A request that cannot be answered as asked: `message` says why, `status` is the HTTP status (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------- reading a request


def number(request: dict, name: str, default, low: float, high: float, whole: bool = False):
    """request[name] (or the default when absent or empty) as a number in [low, high]; BadRequest otherwise."""
    value = request.get(name, default)
    if value is None or value == "":
        value = default
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a number, got {request.get(name)!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"{name} must lie between {low:g} and {high:g}, got {request.get(name)!r}")
    if whole and value != int(value):
        raise BadRequest(f"{name} must be a whole number, got {request.get(name)!r}")
    return int(value) if whole else value


def text_field(request: dict, name: str, required: bool) -> str:
    """request[name] as text of at most MAX_TEXT_CHARS characters; BadRequest (413 when too long) otherwise."""
    value = request.get(name) or ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be text, got {type(value).__name__}")
    if len(value) > MAX_TEXT_CHARS:
        raise BadRequest(f"the {name} is {len(value):,} characters long; the explorer takes at most {MAX_TEXT_CHARS:,} "
                         "(about ten judge windows): cut it, or use `python -m scripts.classify --file`", 413)
    if required and not value.strip():
        raise BadRequest(f"the {name} is empty: paste some text first")
    return value


def sampling(request: dict, vocab_size: int, banned: torch.Tensor) -> Sampling:
    """The sampler's settings of a request (the lecture's defaults, B7-B10)."""
    mode, mask = request.get("penalty_mode") or "lecture", request.get("mask", True)
    if not isinstance(mask, bool):
        raise BadRequest(f"mask must be true or false, got {mask!r}")
    if mode not in PENALTY_MODES:
        raise BadRequest(f"penalty_mode must be one of {', '.join(PENALTY_MODES)}, got {mode!r}")
    return Sampling(temperature=number(request, "temperature", 1.0, 0.01, 100),
                    top_k=number(request, "top_k", 50, 0, vocab_size, whole=True),
                    repetition_penalty=number(request, "repetition_penalty", 1.3, 1, 100),
                    penalty_mode=mode, bad_mask=banned if mask else None)


# ----------------------------------------------------------------------------- the step view


def shown(token: str) -> str:
    """A token as the step view prints it: spaces, line breaks and tabs as signs, other control bytes as \\xNN, the
    empty token as an empty set."""
    token = token.replace(" ", "\u2423").replace("\n", "\u23ce").replace("\t", "\u21e5")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in token) or "\u2205"


class StepView:
    """The sampler's `watch` for the first row: each step's CANDIDATES most likely tokens under the model alone
    (before) and under the distribution the token is drawn from (after B10, B9, temperature and top-k), and the
    token drawn."""

    def __init__(self, tok: Tokenizer, s: Sampling) -> None:
        self.tok, self.s, self.steps = tok, s, []

    def top(self, probs: torch.Tensor) -> list[tuple[str, float]]:
        p, ids = probs.topk(CANDIDATES)
        return [(shown(self.tok.decode([int(i)])), float(q)) for q, i in zip(p, ids)]

    def __call__(self, logits: torch.Tensor, scores: torch.Tensor, drawn: torch.Tensor) -> None:
        before = torch.softmax(logits[0].float(), dim=-1)
        final = top_k_filter(scores[:1], self.s.top_k)[0] if self.s.do_sample and self.s.top_k else scores[0]
        after = torch.softmax(final, dim=-1)
        token = int(drawn[0, 0])
        self.steps.append({"drawn": shown(self.tok.decode([token])), "p_before": float(before[token]),
                           "p_after": float(after[token]), "before": self.top(before), "after": self.top(after)})


# ----------------------------------------------------------------------------- the explorer


@dataclass
class Loaded:
    """One loaded model and where it came from."""

    folder: Path
    model: torch.nn.Module
    tok: Tokenizer
    info: dict


class Explorer:
    """The judge and generator of the page, loaded on first use; one question at a time (`busy`)."""

    def __init__(self, runs_dir: str | Path | None = None, judge: str | None = None,
                 generator: str = DEFAULT_GENERATOR) -> None:
        self.runs_dir = runs_root(runs_dir)
        self.default_judge, self.default_generator = judge, generator
        self.judge_model: Loaded | None = None
        self.generator_model: Loaded | None = None
        self.lock, self.doing = threading.Lock(), ""

    @contextmanager
    def busy(self, what: str):
        """One question at a time: a second one, while a model loads or the first is answered, gets a 429."""
        if not self.lock.acquire(blocking=False):
            raise BadRequest(f"busy {self.doing}: try again in a moment", 429)
        self.doing = what
        try:
            yield
        finally:
            self.doing = ""
            self.lock.release()

    def judge_of(self, name: str | None) -> Loaded:
        """The judge of a folder or run (the latest judge run when empty), loaded once."""
        name = (name or "").strip() or self.default_judge
        try:
            folder = judge_folder(name, self.runs_dir)
            if self.judge_model is None or self.judge_model.folder != folder:
                self.doing = f"loading the judge {folder}"
                self.judge_model = None  # the old one goes before the new one comes
                model, tok, info = load_bert_judge(folder)
                self.judge_model = Loaded(folder, model, tok, info)
        except FileNotFoundError as err:
            raise BadRequest(str(err), 404) from None
        except (ConfigError, ValueError, OSError) as err:
            raise BadRequest(f"{name or 'the latest judge'} is not a judge: {err}", 422) from None
        return self.judge_model

    def generator_of(self, name: str | None) -> Loaded:
        """A generator (weights-store name or folder), loaded once."""
        name = (name or "").strip() or self.default_generator
        try:
            folder = resolve(name)
            if self.generator_model is None or self.generator_model.folder != folder:
                self.doing = f"loading the generator {name}"
                self.generator_model = None
                self.generator_model = Loaded(folder, load_decoder(folder).eval(), load_neo_tokenizer(folder), {})
        except FileNotFoundError as err:
            raise BadRequest(str(err), 404) from None
        except (ConfigError, ValueError, OSError, KeyError) as err:
            raise BadRequest(f"{name} is not a generator (a GPT-Neo or Llama folder, or a weights-store name): {err}",
                             422) from None
        return self.generator_model

    def judge(self, request: dict) -> dict:
        """P(author) of the text, its words coloured (E1), and each window's P(author)."""
        text = text_field(request, "text", required=True)
        with self.busy("judging a text"):
            j = self.judge_of(request.get("judge"))
            self.doing = "judging a text"
            started = time.perf_counter()
            try:
                ex = explain(j.model, j.tok, text, j.info["eval_length"], j.info["labels"])
            except ValueError as err:  # all [UNK], and the like
                raise BadRequest(str(err), 422) from None
            return {"judge": str(j.folder), "author": ex.author, "probs": ex.probs, "windows": ex.window_probs,
                    "window_length": j.info["eval_length"], "steps": ex.steps, "attribution_sum": ex.attribution_sum,
                    "logit_change": ex.logit_change, "html": pages.explained_text(text, ex.words),
                    "seconds": time.perf_counter() - started}

    def generate(self, request: dict) -> dict:
        """Texts of a generator under the request's sampler settings, each judged; the first row's step view."""
        prompt = text_field(request, "prompt", required=False)
        rows = number(request, "rows", 2, 1, MAX_ROWS, whole=True)
        tokens = number(request, "tokens", 64, 1, MAX_TOKENS, whole=True)
        seed = number(request, "seed", 0, 0, 2**31 - 1, whole=True)
        with self.busy("writing"):
            g = self.generator_of(request.get("generator"))
            j = self.judge_of(request.get("judge"))
            self.doing = "writing"
            vocab = g.model.config.vocab_size
            s = sampling(request, vocab, bad_token_mask(g.tok, vocab))
            view = StepView(g.tok, s)
            started = time.perf_counter()
            try:
                written = sample_texts(g.model, g.tok, prompt, rows, tokens, s, seed, watch=view)
            except ValueError as err:  # a prompt longer than the context, and the like
                raise BadRequest(str(err), 422) from None
            seconds = time.perf_counter() - started
            texts = [{"text": t, "probs": classify(j.model, j.tok, t, j.info["eval_length"], j.info["labels"])["probs"]}
                     if t.strip() else {"text": t, "probs": {}} for t in written.texts]
            return {"generator": str(g.folder), "judge": str(j.folder), "texts": texts, "steps": view.steps,
                    "seconds": seconds, "judge_seconds": time.perf_counter() - started - seconds}

    def runs(self) -> list[dict]:
        """Every run under the runs folder, newest first: its kind, name, key numbers and report page (if written)."""
        rows = []
        for config in sorted(self.runs_dir.glob("*/*/config.json"), key=lambda p: p.parent.name, reverse=True):
            folder = config.parent
            if folder.is_symlink():
                continue  # `latest`
            report = folder / "report.html"
            rows.append({"kind": folder.parent.name, "name": folder.name, "numbers": key_numbers(folder),
                         "report": f"/runs/{folder.parent.name}/{folder.name}/report.html" if report.is_file() else None})
        return rows

    def report_page(self, kind: str, name: str) -> Path:
        """The report page of one run (nothing else under runs/ is served); BadRequest 404 if there is none."""
        path = (self.runs_dir / kind / name / "report.html").resolve()
        if not path.is_file() or self.runs_dir.resolve() not in path.parents:
            raise BadRequest(f"no report page for the run {kind}/{name}", 404)
        return path


def key_numbers(folder: Path) -> dict:
    """The few numbers that say what a run gave: held-out accuracy of a judge, the last judgement of a loop, the
    held-out loss of a pretraining."""
    out = {}
    summary = read_json(folder / "summary.json")
    for key in ("step", "heldout_acc", "time_s"):
        if isinstance(summary.get(key), (int, float)):
            out[key] = summary[key]
    metrics = folder / "metrics.jsonl"
    if metrics.is_file():
        evals = [line for line in metrics.read_text(encoding="utf-8").splitlines() if '"kind": "eval"' in line]
        if evals:
            last = json.loads(evals[-1])
            for key in ("acc", "nb_acc", "heldout_macro_acc"):
                if isinstance(last.get(key), (int, float)):
                    out[f"last {key}"] = last[key]
    return out


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
