"""A run's plots, summary and report page: `python -m scripts.report [RUN_FOLDER]`.

For a judge, pretraining, co-evolution or teaching run folder (default: runs/<kind>/latest of
--kind, judge if not given) it draws the run's plots into the folder, prints the lecture's numbers
(eval/lecture.py), and writes <run>/report.html: one self-contained page (images inline, no network,
no JavaScript) with the configuration, the plots, the numbers with their equation numbers and, for
runs that judge generated text, every judged sample grouped by step and generator, its P(author)
shown as a colour. Both kinds of pages also show which words make the judge decide (E1,
eval/attribution.py): on one held-out passage of each author for a judge, on the first row of each
generator at the first and the last judgement for co-evolution and teaching. `make train-bert` and
`make coevolve` end with it.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import json
import sys
from pathlib import Path

from data.corpus import author_texts
from data.windows import Specials, heldout_passages
from eval import pages
from eval.attribution import explain
from eval.lecture import judge_results, lecture_results, summary_lines
from eval.plots import (LECTURE_LOSS, adversary_plot, coevolve_plot, confusion_plot, judge_plot, pretrain_plot,
                        reliability_plot, teach_plot)
from plumbing.cli import run_program
from plumbing.generators import SAMPLES_FILE
from plumbing.judges import HF_FOLDER, REPORT_FILE, load_bert_judge
from plumbing.runs import Run, latest_run

KINDS = ("judge", "pretrain_neo", "coevolve", "teach")
PAGE_FILE = "report.html"


def judge_section(run: Run) -> tuple[dict, list[str]]:
    """Plots and numbers of a judge run (A11-A14, B5, N4)."""
    records, cfg = run.records(), run.config()
    train, evals = [r for r in records if r["kind"] == "train"], [r for r in records if r["kind"] == "eval"]
    c = cfg["config"]
    title = (f"BERT judge ({Path(cfg['base_model']).name}), {', '.join(cfg['labels'])}: {c['per_author']} windows per author x "
             f"{c['length']}, {c['optimizer']} lr {c['lr']:g} ({c['schedule']}), {c['precision']} -> {cfg['precision']}")
    plots = {"A12: loss and accuracy": judge_plot(train, evals, title, run.folder / "judge_plot.png",
                                                  heldout_label=f"held-out accuracy (windows of {c['eval_length']})")}
    if evals:
        plots["N4: held-out confusion matrix"] = confusion_plot(evals[-1]["confusion"], cfg["labels"],
                                                                "held-out windows, last evaluation", run.folder / "confusion.png")
    results, tables = judge_results(train, evals), []
    numbers = pages.judge_numbers(results)
    report = run.folder / REPORT_FILE
    if report.is_file():
        r = json.loads(report.read_text(encoding="utf-8"))
        numbers.update(pages.judge_report_numbers(r))
        tables = pages.authorship_tables(r["authorship"], r["labels"],
                                         r.get("authorship_precision", {}).get("precision", "fp32"))  # older: float32
        if "before" in r.get("calibration", {}):
            plots["N7: reliability of the held-out windows"] = reliability_plot(
                r["calibration"], f"held-out windows, T fitted on {r['calibration']['validation_windows']} validation "
                "windows", run.folder / "reliability.png")
        longest = max((k for k in r["authorship"] if k != pages.CHAPTER), key=int)
        for judge in [j for j in ("bert", "ngram", "probe", "mix") if j in r["authorship"][longest]]:
            plots[f"N4: {judge} on {longest}-token held-out passages"] = confusion_plot(
                r["authorship"][longest][judge]["confusion"], r["labels"], f"{judge}, {longest}-token held-out passages",
                run.folder / f"confusion_{judge}_{longest}.png")
    explanations, lines = judge_explanations(run.folder / HF_FOLDER)
    return {"plots": plots, "numbers": numbers, "tables": tables, "explanations": explanations}, \
        pages.judge_lines(results) + lines


def judge_explanations(folder: Path) -> tuple[list, list[str]]:
    """E1 on one held-out passage of each author: the first of the judge report's evenly spaced windows."""
    try:
        model, tok, info = load_bert_judge(folder)
        length, out = info["eval_length"], []
        for a in info["labels"]:
            heldout = author_texts(a, info.get("split", "tail"), tok)[1]
            text = heldout_passages(tok, heldout, length, Specials.of(tok), 1)[1][0]
            out.append((f"a held-out passage of {a}", text, explain(model, tok, text, length, info["labels"])))
    except (OSError, ValueError) as err:  # the judge or the corpus is gone: the page is written without them
        return [], [f"E1 left out of the page: {err}"]
    return out, []


def sample_explanations(judge: str | None, samples: list[dict], authors: list[str]) -> tuple[list, list[str]]:
    """E1 on the first row of each generator at the first and the last judgement, by the judge of the run."""
    steps = sorted({s["step"] for s in samples})
    if not judge:
        return [], ["E1 left out of the page: the run does not say which judge it had"]
    try:
        model, tok, info = load_bert_judge(judge)
        out = []
        for step in dict.fromkeys((steps[0], steps[-1])):
            for a in authors:
                s = next((s for s in samples if s["step"] == step and s["generator"] == a and s["text"].strip()), None)
                if s is not None:
                    out.append((f"step {step}, the {a} generator (row {s['row']})", s["text"],
                                explain(model, tok, s["text"], info["eval_length"], info["labels"])))
    except (OSError, ValueError) as err:
        return [], [f"E1 left out of the page: {err}"]
    return out, []


def pretrain_section(run: Run) -> tuple[dict, list[str]]:
    """Plots and numbers of a pretraining run."""
    records, cfg = run.records(), run.config()
    summary_path = run.folder / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    train, evals = [r for r in records if r["kind"] == "train"], [r for r in records if r["kind"] == "eval"]
    final = summary.get("final_heldout_loss") or (evals[-1]["heldout"] if evals else {})
    title = f"GPT-Neo pretraining ({cfg.get('precision')}): {len(train)} steps"
    plots = {"B2: pretraining loss": pretrain_plot(train, evals, final, title, run.folder / "loss.png")}
    lines = [f"held-out loss {a}: {v:.3f}" for a, v in final.items()]
    return {"plots": plots, "numbers": summary}, lines


def coevolve_section(run: Run) -> tuple[dict, list[str]]:
    """Plots, numbers (B11-B16, N6) and samples of a co-evolution or teaching run."""
    records, cfg = run.records(), run.config()
    authors = list(cfg["train_tokens"])
    train, evals = [r for r in records if r["kind"] == "train"], [r for r in records if r["kind"] == "eval"]
    if not evals:
        raise ValueError(f"{run.folder} holds no judgement yet: nothing to report")
    c = cfg["config"]
    title = (f"{cfg['program']}: {Path(cfg['base_folder']).name} x {len(authors)}, judged on "
             f"{len(authors) * c['rows']} x {c['judge_length']} tokens, judge {cfg['judge_half']['dtype']}")
    lm_loss, step_loss = losses_of(cfg)
    plots = {"B11-B13: the loop": coevolve_plot(train, evals, authors, title, run.folder / "coevolve.png", lm_loss),
             "N6: generated text at the last judgement": confusion_plot(
                 evals[-1]["confusion"], authors, f"generated rows, step {evals[-1]['step']}", run.folder / "confusion.png")}
    if cfg["program"] == "teach":
        plots["T1-T8: reward, KL, both judges, held-out loss, distinct-2"] = teach_plot(
            train, evals, authors, title, run.folder / "teach.png", step_loss)
    if c.get("arm") == "adversarial":
        plots["T10: the game, real versus generated"] = adversary_plot(train, evals, authors, title,
                                                                        run.folder / "adversary.png")
    results = lecture_results(evals, authors)
    if "nb_acc" in evals[-1]:
        results["independent"] = lecture_results(evals, authors, prefix="nb_")
    numbers = pages.loop_numbers(results, authors, evals[-1], cfg)
    samples = run.records(SAMPLES_FILE)
    explanations, lines = sample_explanations(cfg.get("judge_folder"), samples, authors) if samples else ([], [])
    return {"plots": plots, "numbers": numbers, "samples": samples, "authors": authors, "explanations": explanations}, \
        summary_lines(results, authors) + lines


def losses_of(config: dict) -> tuple[tuple[str, str] | None, str | None]:
    """What a run's steps minimised, for its plots: (the LM loss among them, as key prefix and legend, drawn beside
    the held-out LM loss; the whole loss of a step that is not an LM loss, by name). None where there is none."""
    c = config["config"]
    if config["program"] == "coevolve" or c["arm"] == "lm":
        return LECTURE_LOSS, None
    if c["arm"] == "best-of-n":  # no training
        return None, None
    real_text = ("lm_loss", "LM loss on its author's real windows in the RL step (T9's L_gen)") if c.get("lm_coef") \
        else None
    return real_text, "RL loss L_PG + beta KL" + (f" + {c['lm_coef']:g} L_gen (T6, T9)" if real_text else " (T6)")


SECTIONS = {"judge": judge_section, "pretrain_neo": pretrain_section, "coevolve": coevolve_section,
            "teach": coevolve_section}


def write_report(folder: Path) -> tuple[Path, list[str]]:
    """Plots, console lines and report.html of a run folder."""
    run = Run.open(folder, tuple(SECTIONS), writer=False)
    kind = run.config()["program"]
    section, lines = SECTIONS[kind](run)
    page = pages.render(kind, run.folder, run.config(), section)
    path = run.folder / PAGE_FILE
    path.write_text(page, encoding="utf-8")
    return path, lines


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.report", description=__doc__.split("\n\n")[0])
    p.add_argument("run", nargs="?", help="run folder (default: runs/<kind>/latest)")
    p.add_argument("--kind", default="judge", choices=KINDS, help="which latest run, when no folder is given")
    p.add_argument("--runs-dir", help="runs folder (default $ALICE_EDGAR_RUNS or <repo>/runs)")
    args = p.parse_args(argv)
    folder = Path(args.run) if args.run else latest_run(args.kind, args.runs_dir)
    path, lines = write_report(folder)
    for line in lines:
        print(line)
    print(f"report page: {path}")


def main(argv: list[str] | None = None) -> int:
    return run_program(run, argv)


if __name__ == "__main__":
    sys.exit(main())
