"""Compare teaching arms, or a sweep of beta: `python -m scripts.compare RUN [RUN ...]` (`make teach-compare`).

For each run (a `make teach` run of any arm, or a `make coevolve` run) the numbers of its last
judgement: accuracy with its Wilson interval (B11), S(t) of each generator under the trained judge
(B13) and under the independent n-gram judge (N5, never trained against), the KL per token to the
model it started from (T3; for best-of-N the T7 bound per sequence), held-out loss on each author's real
text in nats per byte (L7) against the base's, distinct-2 (T8) against the base's, the main characters'
names per 1,000 words against the books', the judge calls spent and the wall-clock. Writes, into
runs/compare/<time>/, compare.md (the table, then a text of every arm's generators at their last
judgement), compare.json, compare.png (S(t) against wall-clock time for every run), arms.png (the
last judgement's numbers side by side), for a sweep sweep.png (reward against KL; Gao et al.: the
proxy reward rises with KL), and compare.html: all of it on one self-contained page.
"""

from __future__ import annotations

if __name__ == "__main__":  # a Ctrl-C while the libraries below load (seconds) ends with "interrupted", exit 130
    from plumbing.interrupt import exit_while_importing

    exit_while_importing()

import argparse
import html
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from eval import pages  # noqa: E402
from eval.pages import markdown_table, with_interval  # noqa: E402
from eval.plots import color, legend, save_figure  # noqa: E402
from plumbing.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from plumbing.cli import run_program  # noqa: E402
from plumbing.generators import SAMPLES_FILE  # noqa: E402
from plumbing.runs import Run, runs_root  # noqa: E402


def label_of(config: dict) -> str:
    """A run's name in the table: its arm (and for RL and the adversarial arm: beta, gamma of T9 where real text is in
    its loss, T11's options where they are on)."""
    c = config["config"]
    if config["program"] == "coevolve":
        return "lm (make coevolve)"
    if c["arm"] in ("rl", "adversarial"):
        extras = [f"+ LM, gamma {c['lm_coef']:g}" if c.get("lm_coef") else "",
                  "normalised A" if c.get("advantage_norm") else "",
                  f"adaptive beta, KL target {c['kl_target']:g}" if c.get("kl_target") else ""]
        return ", ".join([c["arm"], f"beta {config['beta_value']:g}"] + [e for e in extras if e]).replace(", +", " +")
    return f"best-of-{c['best_of']}" if c["arm"] == "best-of-n" else "lm"


def summarise(folder: Path) -> dict:
    """The last judgement of a run, in the table's terms, and its judgements over time."""
    run = Run.open(folder, ("teach", "coevolve"), writer=False)
    config, evals = run.config(), [r for r in run.records() if r["kind"] == "eval"]
    if not evals:
        raise ValueError(f"{folder} holds no judgement yet")
    authors, first, last = list(config["train_tokens"]), evals[0], evals[-1]

    def mean(key: str, r: dict) -> float:  # over the generators
        return sum(r[f"{key}_{a}"] for a in authors) / len(authors)

    out = {"run": str(folder), "label": label_of(config), "authors": authors, "step": last["step"],
           "acc": last["acc"], "acc_ci95": [last["acc_low"], last["acc_high"]], "time_s": last.get("time", 0.0),
           "heldout": mean("heldout", last), "judge_calls": last.get("judge_calls", 0),
           "beta": config.get("beta_value"), "curve": [(r.get("time", 0.0), {a: r[f"S_{a}"] for a in authors},
                                                        {a: r.get(f"nb_S_{a}") for a in authors}) for r in evals]}
    for a in authors:
        out[f"S_{a}"], out[f"nb_S_{a}"] = last[f"S_{a}"], last.get(f"nb_S_{a}")
        out[f"own_{a}"], out[f"nb_own_{a}"] = last[f"own_{a}"], last.get(f"nb_own_{a}")  # N6: P(a | a's rows)
    if f"distinct2_{authors[0]}" in last:
        out["distinct2"], out["distinct2_base"] = mean("distinct2", last), mean("distinct2", first)
        out["reward"] = mean("reward", last)
        out["kl"] = mean("kl", last) if f"kl_{authors[0]}" in last else None
        out["kl_bound_per_sequence"] = last.get(f"kl_bound_{authors[0]}")
    for a in authors:  # T8: main characters' names per 1,000 words, and in the author's books (runs from before: none)
        out[f"names_{a}"], out[f"names_books_{a}"] = last.get(f"names_{a}"), last.get(f"names_books_{a}")
        out[f"bytes_{a}"], out[f"bytes_base_{a}"] = (last.get(f"heldout_per_byte_{a}"),
                                                     first.get(f"heldout_per_byte_{a}"))  # L7; step 0 is the base
    first_rows = {s["generator"]: s for s in reversed(run.records(SAMPLES_FILE))
                  if s["step"] == last["step"] and s.get("generator") in authors}  # reversed: each one's first row wins
    out["samples"] = {a: first_rows[a] for a in authors if a in first_rows}
    return out


def cell(v, digits: int = 3) -> str:
    """A table cell: a float to `digits` decimals, "-" for a missing value."""
    return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def table(rows: list[dict]) -> str:
    """The comparison as a Markdown table."""
    return markdown_table(*reversed(table_cells(rows)))


def table_cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The comparison's header and rows of formatted cells."""
    authors = rows[0]["authors"]
    head = (["arm", "steps", "wall-clock s", "accuracy [95 %]"] + [f"S {a}" for a in authors]
            + [f"S {a} (n-gram)" for a in authors] + ["KL/token to start", "held-out LM loss"]
            + [f"{a} held-out nats/byte (base)" for a in authors] + ["distinct-2 (base)", "judge calls"]
            + [f"{a} names /1k words (books)" for a in authors])
    cells = []
    for r in rows:
        kl = cell(r.get("kl")) if r.get("kl") is not None else (
            f"<= {r['kl_bound_per_sequence']:.2f} per text (T7)" if r.get("kl_bound_per_sequence") is not None else "-")
        cells.append([r["label"], str(r["step"]), f"{r['time_s']:.0f}",
                      with_interval(r["acc"], r["acc_ci95"])]
                     + [cell(r[f"S_{a}"]) for a in authors] + [cell(r[f"nb_S_{a}"]) for a in authors]
                     + [kl, cell(r["heldout"])]
                     + [f"{cell(r.get(f'bytes_{a}'), 4)} ({cell(r.get(f'bytes_base_{a}'), 4)})" for a in authors]
                     + [f"{cell(r.get('distinct2'))} ({cell(r.get('distinct2_base'))})", str(r["judge_calls"])]
                     + [f"{cell(r.get(f'names_{a}'), 1)} ({cell(r.get(f'names_books_{a}'), 1)})" for a in authors])
    return head, cells


def samples_text(rows: list[dict], chars: int = 400) -> str:
    """Markdown: what every arm's generators wrote at their last judgement (the first judged row of each)."""
    out = ["## What each arm writes (the first row of each generator at its last judgement)", ""]
    for r in rows:
        for author, sample in r["samples"].items():
            quoted = " ".join(sample["text"].split())[:chars]
            out += [f"**{r['label']}, the {author} generator:**", "", f"> {quoted}", ""]
    return "\n".join(out)


def compare_page(rows: list[dict], out: Path) -> str:
    """compare.html: the table, the plots of `out` and every arm's judged first row of each generator, coloured by
    the judge's P as on the runs' own pages."""
    head, cells = table_cells(rows)
    plots = "".join(pages.image(out / name) for name in ("compare.png", "arms.png", "sweep.png") if (out / name).is_file())
    samples = "".join(f"<h3>{html.escape(r['label'])}</h3><div class=\"samples\">"
                      + "".join(pages.sample_div(s, r["authors"]) for s in r["samples"].values()) + "</div>"
                      for r in rows)
    runs = "".join(f"<li>{html.escape(r['label'])}: {html.escape(r['run'])}</li>" for r in rows)
    return pages.page("compare", f"<h1>Teaching arms compared</h1><ul>{runs}</ul>{pages.table(cells, head)}{plots}"
                                 "<h2>What each arm writes (its generators' first rows at the last judgement)</h2>"
                                 + samples)


def arms_plot(rows: list[dict], path: Path) -> Path:
    """The last judgement of every run side by side, one group of bars per run, one bar per generator: S_a under both
    judges, the change of held-out nats per byte from the base (L7), the KL per token (T3) and the name rate / the
    books' (T8; 1 = the books' own rate)."""
    authors = rows[0]["authors"]
    panels = [("S_a = P(own author | its rows), trained judge (N6)", lambda r, a: r[f"own_{a}"]),
              ("S_a, independent n-gram judge (N5)", lambda r, a: r.get(f"nb_own_{a}")),
              ("held-out nats/byte minus the base's (L7)", lambda r, a: diff(r.get(f"bytes_{a}"),
                                                                              r.get(f"bytes_base_{a}"))),
              ("KL per token to the start (T3)", lambda r, a: r.get("kl")),
              ("names per 1k words / the books' (T8)", lambda r, a: ratio(r.get(f"names_{a}"),
                                                                          r.get(f"names_books_{a}")))]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(7, 1.6 * len(rows)), 2.4 * len(panels)), dpi=120,
                             sharex=True)
    width = 0.8 / len(authors)
    for ax, (title, value) in zip(axes, panels):
        for j, a in enumerate(authors):
            ys = [value(r, a) for r in rows]
            xs = [i + (j - (len(authors) - 1) / 2) * width for i in range(len(rows))]
            ax.bar([x for x, y in zip(xs, ys) if y is not None], [y for y in ys if y is not None], width,
                   color=color(a), label=f"{a} generator")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    axes[-1].set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=20, ha="right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def curve_plot(rows: list[dict], path: Path) -> Path:
    """S(t) of every generator against wall-clock time, one colour per run; dotted: the independent judge."""
    fig, ax = plt.subplots(figsize=(9, 6.5), dpi=120)
    palette = ["tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:cyan"]
    for r, c in zip(rows, palette):
        t = [p[0] for p in r["curve"]]
        for a, style in zip(r["authors"], ("o-", "s--", "^-.", "v:", "d-", "x--")):
            ax.plot(t, [p[1][a] for p in r["curve"]], style, color=c, label=f"{r['label']}: S(t) of the {a} generator")
            if r["curve"][0][2][a] is not None:
                ax.plot(t, [p[2][a] for p in r["curve"]], style, color=c, alpha=0.35, linewidth=1)
    ax.set_xlabel("wall-clock seconds")
    ax.set_ylabel(f"S(t) = P({rows[0]['authors'][0]} | text)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("S(t) against wall-clock time (faint: the same texts scored by the independent n-gram judge)", fontsize=9)
    # the legend below the axes: with five arms it would hide the curves
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return save_figure(fig, path)


def sweep_plot(rows: list[dict], path: Path) -> Path:
    """Reward (T1, trained judge) and the held-out LM loss on real text against KL, one point per beta."""
    rows = sorted((r for r in rows if r.get("kl") is not None), key=lambda r: r["kl"])
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.plot([r["kl"] for r in rows], [r["reward"] for r in rows], "o-", color="tab:red", label="mean reward log P (T1)")
    for r in rows:
        ax.annotate(f"beta {r['beta']:g}", (r["kl"], r["reward"]), fontsize=8)
    ax.set_xlabel("KL per token to the start (T3)")
    ax.set_ylabel("reward (trained judge)")
    ax.grid(alpha=0.3)
    held = ax.twinx()  # a measure the judge never sees: how well the generator still predicts its author's real text
    held.plot([r["kl"] for r in rows], [r["heldout"] for r in rows], "s--", color="tab:blue",
              label="held-out LM loss on real text (lower is better)")
    held.set_ylabel("held-out LM loss")
    legend(ax, held, fontsize=8)
    return save_figure(fig, path)


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="teach or coevolve run folders")
    p.add_argument("--runs-dir", help="runs folder (default $ALICE_EDGAR_RUNS or <repo>/runs)")
    args = p.parse_args(argv)
    rows = [summarise(Path(f)) for f in args.runs]
    out = runs_root(args.runs_dir) / "compare" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    md = table(rows)
    atomic_write_text(out / "compare.md", md + "\n\n" + samples_text(rows))
    atomic_write_json(out / "compare.json", rows)
    curve_plot(rows, out / "compare.png")
    arms_plot(rows, out / "arms.png")
    if len({r.get("beta") for r in rows if r.get("beta") is not None}) > 1:
        sweep_plot(rows, out / "sweep.png")
    atomic_write_text(out / "compare.html", compare_page(rows, out))
    print(md + f"\nwritten to {out}")


def main(argv: list[str] | None = None) -> int:
    return run_program(run, argv)


if __name__ == "__main__":
    sys.exit(main())
