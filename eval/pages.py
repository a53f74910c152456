"""The report page of a run: one self-contained HTML file (images inline as data URIs, no script, no network).

`render` lays out what scripts/report.py gathered: the configuration, the plots, the lecture's numbers
with their equation numbers, and every judged sample grouped by step and generator. A sample's
background shows P(first author) (P(Alice) in the lectures): orange when the judge is sure it is
Alice, blue when it is sure it is not, white at 0.5; its bar shows P of every author in its colour.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

from eval.plots import AUTHOR_COLORS

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: .9em; } td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
th { background: #f4f4f4; } img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
.samples { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: .6em; }
.sample { font-size: .8em; padding: .4em .6em; border-radius: 4px; border: 1px solid #ccc; white-space: pre-wrap; }
.p { font-weight: bold; display: block; margin-bottom: .2em; } .bar { display: flex; height: 5px; margin-bottom: .3em; }
details { margin: .4em 0; } summary { cursor: pointer; font-weight: bold; }
.explained { white-space: pre-wrap; line-height: 1.7; border: 1px solid #ccc; border-radius: 4px; padding: .5em .7em; }
.explained span[data-score] { border-radius: 3px; padding: 0 1px; }
"""
CSS_COLORS = {"black": "#222", "tab:blue": "#1f77b4", "tab:green": "#2ca02c", "tab:purple": "#9467bd",
              "tab:orange": "#ff7f0e", "tab:brown": "#8c564b"}
SURE_FIRST, SURE_OTHER = (244, 162, 97), (142, 202, 230)  # P(first author) = 1 and 0


def image(path: Path) -> str:
    """An <img> whose PNG is inside the page."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}">'


def table(rows: list[tuple], header: tuple | None = None) -> str:
    """An HTML table of already formatted cells."""
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def markdown_table(rows: list, header) -> str:
    """The same, as a Markdown table (for the terminal and the README)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]) + "\n"


def background(p_first: float) -> str:
    """White at 0.5, orange towards P = 1, blue towards P = 0."""
    end, t = (SURE_FIRST, 2 * p_first - 1) if p_first >= 0.5 else (SURE_OTHER, 1 - 2 * p_first)
    r, g, b = (round(255 + (c - 255) * t) for c in end)
    return f"rgb({r},{g},{b})"


def word_colour(score: float, scale: float) -> str:
    """E1/E2 colours: white at 0, orange towards the explained author, blue away from it, full at |score| = scale."""
    t = min(1.0, abs(score) / scale) if scale > 0 else 0.0
    r, g, b = (round(255 + (c - 255) * t) for c in (SURE_FIRST if score > 0 else SURE_OTHER))
    return f"rgb({r},{g},{b})"


def explained_text(text: str, words: list) -> str:
    """The text with each word coloured by its attribution (eval/attribution.py's Words; what lies between words,
    spaces and line breaks, kept as it is). Each word's span carries its score in data-score and in its tooltip."""
    scale = max((abs(w.score) for w in words), default=0.0)
    parts, at = [], 0
    for w in words:
        parts.append(html.escape(text[at : w.start]))
        parts.append(f'<span data-score="{w.score:.6g}" title="{w.score:+.4f}" style="background:'
                     f'{word_colour(w.score, scale)}">{html.escape(text[w.start : w.end])}</span>')
        at = w.end
    return f'<div class="explained">{"".join(parts)}{html.escape(text[at:])}</div>'


def explanation_div(text: str, ex) -> str:
    """One explained passage: P(author) for every author, the method, completeness for E1, the coloured words."""
    probs = " · ".join(f"P({html.escape(a)})={p:.3f}" for a, p in ex.probs.items())
    how = (f"integrated gradients (E1), m = {ex.steps}: words sum to {ex.attribution_sum:+.4f}, "
           f"z(text) - z(baseline) = {ex.logit_change:+.4f}") if ex.method == "ig" else "occlusion (E2)"
    return (f'<p>{probs}<br>colours: towards {html.escape(ex.author)} (orange) or away from it (blue), by {how}</p>'
            + explained_text(text, ex.words))


def page(title: str, body: str) -> str:
    """A whole self-contained page around `body`."""
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")


def sample_div(s: dict, authors: list[str]) -> str:
    """One judged sample: P(first author) as text and background, every author's P as a bar."""
    bar = "".join(f'<span style="width:{100 * p:.1f}%;background:{CSS_COLORS.get(AUTHOR_COLORS.get(a, ""), "#999")}">'
                  "</span>" for a, p in zip(authors, s["probs"]))
    label = f"P({authors[0]})={s['probs'][0]:.3f} · judged {s['predicted']}"
    return (f'<div class="sample" style="background:{background(s["probs"][0])}"><span class="p">{html.escape(label)}</span>'
            f'<span class="bar">{bar}</span>{html.escape(s["text"])}</div>')


def samples_section(samples: list[dict], authors: list[str]) -> str:
    """Every judged sample, grouped by step (one <details> each, the first and last open) and generator."""
    steps = sorted({s["step"] for s in samples})
    parts = []
    for step in steps:
        blocks = []
        for a in authors:
            mine = [s for s in samples if s["step"] == step and s["generator"] == a]
            blocks.append(f"<h4>{html.escape(a)} generator ({len(mine)} rows)</h4><div class=\"samples\">"
                          + "".join(sample_div(s, authors) for s in mine) + "</div>")
        opened = " open" if step in (steps[0], steps[-1]) else ""
        parts.append(f'<details{opened} class="step"><summary>step {step}</summary>{"".join(blocks)}</details>')
    return "<h2>Judged samples</h2><p>Background: P(" + html.escape(authors[0]) + ") of the judge, orange = sure, " \
           "blue = sure not, white = 0.5.</p>" + "".join(parts)


def with_interval(acc: float, ci: list[float]) -> str:
    """An accuracy with its 95 % interval: "0.969 [0.89, 0.99]"."""
    return f"{acc:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def fmt(v) -> str:
    """A number as the page shows it: 3-4 significant digits, intervals as [low, high]."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


def numbers_rows(numbers: dict, prefix: str = "") -> list[tuple]:
    """Flatten a numbers dict into (name, value) rows."""
    rows = []
    for k, v in numbers.items():
        if isinstance(v, dict):
            rows += numbers_rows(v, f"{prefix}{k}: ")
        else:
            rows.append((prefix + k, fmt(v)))
    return rows


def loop_numbers(r: dict, authors: list[str], last: dict, config: dict) -> dict:
    """Lecture B's numbers of a coevolve or teach run, named with their equations (r: eval/lecture.py's results)."""
    def span(key: str) -> str:  # first -> last judgement
        return f"{fmt(r[f'{key}_start'])} -> {fmt(r[f'{key}_end'])}"

    n = {f"B11 judge accuracy at step {r['first_step']} [Wilson 95 %]": f"{fmt(r['acc_start'])} {fmt(r['acc_start_ci95'])}",
         f"B11 judge accuracy at step {r['last_step']} [Wilson 95 %]": f"{fmt(r['acc_end'])} {fmt(r['acc_end_ci95'])}",
         "B11 chance inside the step-0 interval": r["chance_in_start_ci95"],
         "B12 L_cls, first -> last judgement (slope per step)": f"{span('judge_loss')} ({fmt(r['judge_loss_slope'])})"}
    for a in authors:
        n[f"B13 S(t) = P({authors[0]}) of the {a} generator"] = span(f"S_{a}")
        if len(authors) > 2:
            n[f"N6 S_a(t) = P({a}) of the {a} generator"] = span(f"own_{a}")
        if f"heldout_per_byte_{a}" in last:  # runs from before L7 have none
            n[f"L7 held-out nats per byte of the {a} generator on {a}, first -> last"] = span(f"heldout_per_byte_{a}")
    n["B14 accuracy >= 0.85 and every generator towards its author"] = r["end_target_met"]
    n["B16 |T_neo(x)| / |T_bert(x)|, last judgement"] = last["ratio"]
    n["B5 the judge in 16 bits: dtype, memory ratio"] = f"{config['judge_half']['dtype']}, {fmt(config['judge_half']['ratio'])}"
    if "independent" in r:
        i = r["independent"]
        n["N5 independent n-gram judge: accuracy, first -> last"] = f"{fmt(i['acc_start'])} -> {fmt(i['acc_end'])}"
        for a in authors:
            n[f"N5 independent judge: S(t) of the {a} generator"] = f"{fmt(i[f'S_{a}_start'])} -> {fmt(i[f'S_{a}_end'])}"
    for a in authors:
        for key, label in (("reward", "T1 mean reward log P"), ("kl", "T3 KL per token to the start"),
                           ("distinct2", "T8 distinct-2"), ("heldout", "B2 held-out LM loss")):
            if f"{key}_{a}" in last:
                n[f"{label}, {a} generator, last judgement"] = last[f"{key}_{a}"]
    return n


def judge_numbers(n: dict) -> dict:
    """Lecture A's numbers of a judge run (eval/lecture.py's judge_results), named with their equations."""
    out = {}
    if "heldout_acc_end" in n:
        out["A11 held-out accuracy, step 0 -> last (evaluation windows)"] = f"{fmt(n['heldout_acc_start'])} -> {fmt(n['heldout_acc_end'])}"
    if "convergence" in n:
        c = n["convergence"]
        out["A12 L_initial -> L_final, dL/dt per step"] = f"{fmt(c['loss_initial'])} -> {fmt(c['loss_final'])}, {fmt(c['slope'])}"
    if "update_first" in n:
        out["A13 update size |theta_t+1 - theta_t|, first / last / largest"] = \
            f"{fmt(n['update_first'])} / {fmt(n['update_last'])} / {fmt(n['update_max'])}"
    return out


def render(kind: str, folder: Path, config: dict, section: dict) -> str:
    """The whole page."""
    settings = table(sorted((k, v) for k, v in config.get("config", {}).items()), ("setting", "value"))
    facts = table([(k, v) for k, v in config.items() if k != "config" and not isinstance(v, (dict, list))], ("fact", "value"))
    plots = "".join(f"<h3>{html.escape(name)}</h3>{image(path)}" for name, path in section["plots"].items())
    extra = "".join(f"<h3>{html.escape(title)}</h3>{table(rows, header)}" for title, rows, header in section.get("tables", []))
    body = [f"<h1>{html.escape(kind)} run {html.escape(folder.name)}</h1>",
            f"<p>{html.escape(str(folder))} · page written {time.strftime('%Y-%m-%d %H:%M')}</p>",
            "<h2>The lecture's numbers</h2>", table(numbers_rows(section["numbers"]), ("number (equation)", "value")),
            extra, "<h2>Plots</h2>", plots, "<h2>Configuration</h2>", settings, facts]
    if section.get("explanations"):
        body.append(explanations_section(section["explanations"]))
    if section.get("samples"):
        body.append(samples_section(section["samples"], section["authors"]))
    return page(f"{kind} {folder.name}", "".join(body))


def explanations_section(explanations: list[tuple[str, str, object]]) -> str:
    """E1: (title, text, Explanation) of a few passages, each with its coloured words."""
    parts = [f"<h3>{html.escape(title)}</h3>{explanation_div(text, ex)}" for title, text, ex in explanations]
    return ("<h2>E1: which words make the judge decide</h2><p>Integrated gradients of the judge's logit of the "
            "author it picks, baseline: every word replaced by [PAD]. Hover a word for its number.</p>" + "".join(parts))


def judge_lines(n: dict) -> list[str]:
    """A judge run's numbers as console lines, with their equation numbers."""
    lines = []
    if "convergence" in n:
        c = n["convergence"]
        lines.append(f"A12 convergence: L_initial {c['loss_initial']:.3f} -> L_final {c['loss_final']:.3f}, "
                     f"dL/dt {c['slope']:.2e} per step ({'converged' if c['converged'] else 'NOT converged'})")
    if "heldout_acc_end" in n:
        lines.append(f"A11 held-out accuracy: {n['heldout_acc_start']:.3f} at step 0 -> {n['heldout_acc_end']:.3f}")
    if "update_first" in n:
        lines.append(f"A13 update size |theta_t+1 - theta_t|: first {n['update_first']:.2e}, last {n['update_last']:.2e}")
    return lines


def judge_report_numbers(r: dict) -> dict:
    """The headline numbers of scripts/judge_report.py's report.json, named with their equations."""
    s = r["prompt_sensitivity"]
    return {"A11 held-out accuracy float32 (all windows)": r["float32"]["heldout_acc"],
            f"A11 held-out accuracy {r['half']['dtype']}": r["half"]["heldout_acc"],
            "N4 held-out macro accuracy float32": r["float32"]["heldout_macro_acc"],
            "B5 memory ratio half / float32": r["memory"]["ratio"],
            "B5 agreement float32 vs half": r["agreement"],
            "A14 mean |dP| passage cut in half": s["mean_abs_dp_cut"],
            "A14 mean |dP| shifted by a few words": s["mean_abs_dp_shift"],
            "A14 mean |dP| neutral prefix": s["mean_abs_dp_prefix"], **calibration_numbers(r.get("calibration", {}))}


def calibration_numbers(c: dict) -> dict:
    """N7's numbers, where the report measured them (older reports did not)."""
    if "before" not in c:
        return {}
    bound = " (at its bound: every validation window was right)" if c.get("at_bound") else ""
    return {"N7 ECE of the held-out windows": c["before"]["ece"], f"N7 temperature T (fitted on validation){bound}":
            c["temperature"], "N7 ECE after temperature scaling": c["after"]["ece"]}


CHAPTER = "chapter"  # the authorship table's key for whole chapters (eval/authorship.py), beside the lengths


def passages_name(key: str) -> str:
    """How a row of the authorship table names its passages: "256-token passages" or "whole chapters"."""
    return "whole chapters" if key == CHAPTER else f"{key}-token passages"


def mix_weights_of(r: dict) -> tuple[float, ...]:
    """The mix's weights of one row of a report's authorship table: (alpha, lambda) or (alpha, lambda, mu) (a report
    written before alpha was fitted has lambda alone, and alpha 1)."""
    return tuple(r.get("mix_weights") or (1.0, r["mix_weight"]))


def mix_weights_text(r: dict) -> str:
    """The mix's fitted weights of one row: "alpha 0.67, lambda 0.0008" (", mu 0.9" with the probe)."""
    return ", ".join(f"{name} {w:.3g}" for name, w in zip(("alpha", "lambda", "mu"), mix_weights_of(r)))


def authorship_tables(result: dict, authors: list[str], precision: str = "fp32") -> list[tuple]:
    """One table per window length, and one of whole chapters: each author's accuracy [Wilson 95 %] under BERT (read
    in `precision`), the n-gram baseline, the probe on the decoder's features and the mix (where the report has them)."""
    tables = []
    for length, r in result.items():
        mix = f"{'all three' if 'probe' in r else 'both'}, log-linear ({mix_weights_text(r)}: each 1 / its T on validation)" \
            if "mix" in r else ""
        heads = {"bert": f"BERT judge ({precision})", "ngram": "n-gram naive Bayes (N5)",
                 "probe": "probe on SmolLM2's features", "mix": mix}
        judges = [j for j in heads if j in r]
        rows = [(a, *(with_interval(r[j]["per_author"][a]["acc"], r[j]["per_author"][a]["ci95"]) for j in judges))
                for a in authors]
        rows.append(("macro accuracy (N4)", *(f"{r[j]['macro_acc']:.3f}" for j in judges)))
        tables.append((f"N3-N5: held-out {passages_name(length)} ({r['passages']}), chance {1 / len(authors):.3f}",
                       rows, ("author", *(heads[j] for j in judges))))
    return tables
