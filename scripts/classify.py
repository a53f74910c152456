"""Classify any text with a trained judge (lecture A, equations A14 and A15).

    python -m scripts.classify "Curiouser and curiouser!" "Quoth the Raven, Nevermore."
    python -m scripts.classify --file story.txt
    echo "Once upon a midnight dreary" | python -m scripts.classify --json
    python -m scripts.classify --windows --file story.txt   # A14: P(author) per window and its spread
    python -m scripts.classify --judge runs/judge/<time>/hf "some text"
    python -m scripts.classify --explain "Curiouser and curiouser!"     # E1: the words that push most, each way
    python -m scripts.classify --explain --html why.html --file story.txt  # every word coloured, in a page
    python -m scripts.classify --mix --file story.txt      # BERT, the n-gram judge and the probe together

Prints one line per input, `P(Alice)=0.973  P(Edgar)=0.027` (every author of the judge), or with
--json one JSON object per line, {"author": best, "probs": {author: p, ...}}. A text longer than
one window is cut into consecutive windows and the probabilities are averaged (eval/scoring.py).
The judge is runs/judge/latest unless --judge names a judge folder or run folder.

--mix reads the text with the judges of the judge's report (N5 + A2): BERT, the character n-gram judge and, where
the report mixed it in, the probe on SmolLM2's frozen features (model/feature_judge.py), in the log-linear mix of
eval/authorship.py, with the weights that the report (`python -m scripts.judge_report`) fitted on validation
passages nearest the text's length; it prints each judge's P(author) too.

--explain says why (eval/attribution.py): integrated gradients (E1) of the judge's logit of the author it
picks (--author another), or occlusion (E2, --method occlusion); it prints the words that push most
towards and away from that author, and with --html FILE writes the text with every word coloured.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import json
import sys
from pathlib import Path

import torch

from data.corpus import count_tokens
from eval import pages
from eval.attribution import METHODS, Explanation, explain, strongest
from eval.authorship import JUDGE_NAMES, mix_weights_for, mixed_log_probs
from eval.pages import mix_weights_text
from eval.scoring import classify
from plumbing.cli import run_program
from plumbing.config import ConfigError
from plumbing.judges import judge_report, load_bert_judge, load_ngram_judge, saved_feature_judge
from plumbing.precision import choose_precision


def check_text(text: str, where: str) -> str:
    """The text, or ValueError if it is empty or holds bytes that are not UTF-8 (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{where} is not valid UTF-8 (byte {text[err.start]!r} at character {err.start}): "
                         "give UTF-8 text") from None
    if not text.strip():
        raise ValueError(f"empty text: {where} is empty or only whitespace, nothing to classify")
    return text


def read_file(path: str) -> str:
    """The UTF-8 content of a file; clear errors for a folder, a missing file or bad bytes."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ValueError(f"--file {path} is a folder; give a text file")
    if not p.is_file():
        raise FileNotFoundError(f"--file {path} does not exist")
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--file {path} is not valid UTF-8 (byte offset {err.start}): save it as UTF-8") from None


def read_inputs(texts: list[str], file: str | None) -> list[str]:
    """The texts to classify: the arguments, else the file's content, else standard input (one text each)."""
    if texts and file:
        raise ValueError("give texts as arguments or --file, not both")
    if file:
        return [check_text(read_file(file), f"--file {file}")]
    if texts:
        return [check_text(t, f"text {i + 1} of {len(texts)}" if len(texts) > 1 else "the text")
                for i, t in enumerate(texts)]
    if sys.stdin.isatty():
        raise ValueError("no text: pass it as an argument, with --file, or on standard input")
    raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8")
    try:
        return [check_text(raw.decode("utf-8"), "standard input")]
    except UnicodeDecodeError as err:
        raise ValueError(f"standard input is not valid UTF-8 (byte offset {err.start}): give UTF-8 text") from None


def format_line(result: dict) -> str:
    """`P(Alice)=0.973  P(Edgar)=0.027`"""
    return "  ".join(f"P({name.capitalize()})={p:.3f}" for name, p in result["probs"].items())


def with_mix(r: dict, text: str, tok, ngram, authorship: dict, probe=None) -> dict:
    """--mix: BERT's result `r` with P(author) from the log-linear mix of BERT, the n-gram judge (N5 + A2) and, where
    the report mixed it in, the probe on a decoder's features, with the weights fitted in the judge's report (its
    authorship table) for passages nearest this text's length; each judge's own P(author) kept beside it."""
    labels = list(r["probs"])
    length, weights = mix_weights_for(authorship, count_tokens(text, tok) + 2)  # a window's length counts [CLS], [SEP]
    judges = {"bert": torch.tensor([[r["probs"][a] for a in labels]], dtype=torch.float64).log(),  # (1, N) each
              "ngram": torch.from_numpy(ngram.log_probs([text])).double()}
    if len(weights) == 3:
        judges["probe"] = probe.log_probs([text])
    mixed = mixed_log_probs(list(judges.values()), weights)[0].exp()
    probs = {a: mixed[i].item() for i, a in enumerate(labels)}
    each = {name: {a: log_p[0, i].exp().item() for i, a in enumerate(labels)} for name, log_p in judges.items()}
    return dict(r, author=max(probs, key=probs.get), probs=probs, **each, mix_length=length, mix_weights=list(weights))


def print_result(r: dict, args: argparse.Namespace) -> None:
    """One input's result: a JSON line, or the text line (+ each judge's with --mix, + the A14 view with --windows)."""
    if args.json:
        keep = (("author", "probs") + (("bert", "ngram", "probe", "mix_weights", "mix_length") if args.mix else ())
                + (("windows", "per_window", "stability") if args.windows else ()))
        print(json.dumps({k: r[k] for k in keep if k in r}, allow_nan=False))
        return
    print(format_line(r))
    if args.mix:
        each = ", ".join(f"{JUDGE_NAMES[j]} {format_line({'probs': r[j]})}" for j in ("bert", "ngram", "probe") if j in r)
        print(f"  the judges, mixed with the weights of {r['mix_length']}-token passages "
              f"({mix_weights_text({'mix_weights': r['mix_weights']})}): {each}")
    if args.windows:
        per = " ".join(f"{v:.2f}" for v in r["per_window"])
        s = r["stability"]
        print(f"  {r['windows']} windows, P({r['author'].capitalize()}) per window: {per}")
        print(f"  spread: std {s['std']:.3f}, min {s['min']:.3f}, max {s['max']:.3f}, "
              f"{s['agree']:.0%} of windows agree with the whole text")


def explanation_lines(ex: Explanation, top: int) -> list[str]:
    """E1/E2 for the terminal: the strongest words each way, and E1's completeness."""
    towards, away = strongest(ex.words, top)
    show = lambda words: ", ".join(f"{w.text} ({w.score:+.3f})" for w in words) or "none"  # noqa: E731
    lines = [f"  towards {ex.author}: {show(towards)}", f"  away from {ex.author}: {show(away)}"]
    if ex.method == "ig":
        lines.append(f"  integrated gradients (E1), m = {ex.steps}: the words sum to {ex.attribution_sum:+.4f}, "
                     f"z(text) - z(baseline) = {ex.logit_change:+.4f}")
    else:
        lines.append("  occlusion (E2): each word's score is the logit's fall when it is replaced by [MASK]")
    return lines


def explain_all(texts: list[str], model, tok, info: dict, args: argparse.Namespace) -> None:
    """--explain: P(author) and the strongest words of each text; the coloured page with --html."""
    length = args.length or info["eval_length"]
    explained = [(text, explain(model, tok, text, length, info["labels"], args.author, args.method)) for text in texts]
    for text, ex in explained:
        if args.json:
            print(json.dumps({"author": ex.author, "probs": ex.probs, "method": ex.method, "words": [
                {"text": w.text, "start": w.start, "end": w.end, "score": w.score} for w in ex.words]}))
        else:
            print("  ".join(f"P({a.capitalize()})={p:.3f}" for a, p in ex.probs.items()))
            print("\n".join(explanation_lines(ex, args.top)))
    if args.html:
        body = "".join(f"<h2>Text {i + 1}</h2>{pages.explanation_div(text, ex)}" for i, (text, ex) in enumerate(explained))
        Path(args.html).write_text(pages.page("why the judge decides", f"<h1>Why the judge decides</h1>{body}"),
                                   encoding="utf-8")
        print(f"page: {args.html}", file=sys.stderr)


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.classify", description=__doc__.split("\n\n")[0])
    p.add_argument("text", nargs="*", help="texts to classify (one result line each)")
    p.add_argument("--file", help="classify the whole content of this file")
    p.add_argument("--judge", "--checkpoint", dest="judge", help="judge folder or run folder (default: runs/judge/latest)")
    p.add_argument("--runs-dir", help="runs folder (default $ALICE_EDGAR_RUNS or <repo>/runs)")
    p.add_argument("--length", type=int, help="tokens per window (default: the judge's held-out window length)")
    p.add_argument("--json", action="store_true", help='one JSON line per input: {"author": ..., "probs": {...}}')
    p.add_argument("--windows", action="store_true", help="A14: also P(author) per window and its spread (BERT's)")
    p.add_argument("--mix", action="store_true", help="the judges together: BERT, the n-gram judge (N5) and the "
                   "report's probe on SmolLM2's features, in the log-linear mix fitted in the judge's report (run "
                   "scripts.judge_report first)")
    p.add_argument("--explain", action="store_true", help="E1: the words that push the judge most, each way")
    p.add_argument("--method", choices=METHODS, default="ig", help="--explain by integrated gradients (E1, default) "
                   "or occlusion (E2)")
    p.add_argument("--author", help="--explain the judge's logit of this author (default: the one it picks)")
    p.add_argument("--top", type=int, default=5, help="--explain: words shown each way (default 5)")
    p.add_argument("--html", help="--explain: also write the text with every word coloured to this HTML file")
    args = p.parse_args(argv)
    if args.length is not None and not 3 <= args.length <= 512:
        raise ConfigError(f"--length must be between 3 and 512, got {args.length}")
    if not args.explain and (args.html or args.author or args.method != "ig"):
        raise ConfigError("--html, --author and --method go with --explain")
    if args.mix and args.explain:
        raise ConfigError("--explain says why BERT decides; it does not go with --mix")
    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    if args.html and Path(args.html).expanduser().is_dir():
        raise ConfigError(f"--html {args.html} is a folder; give a file name")
    texts = read_inputs(args.text, args.file)
    model, tok, info = load_bert_judge(args.judge, args.runs_dir)
    if args.explain:
        explain_all(texts, model, tok, info, args)
        return
    if args.mix:  # the report's fitted weights first: its absence is the likeliest error, and the quickest to find
        report = judge_report(info["folder"])
        authorship = report["authorship"]
        ngram, _ = load_ngram_judge(info["labels"], info.get("split", "tail"), tok, args.runs_dir)
        probe = saved_feature_judge(report["feature_judge"], choose_precision(torch.device("cpu"), "fp32")) \
            if report.get("feature_judge") else None
    for text in texts:
        r = classify(model, tok, text, args.length or info.get("eval_length", 256), info["labels"])
        print_result(with_mix(r, text, tok, ngram, authorship, probe) if args.mix else r, args)


def main(argv: list[str] | None = None) -> int:
    return run_program(run, argv)


if __name__ == "__main__":
    sys.exit(main())
