"""What a finished run shows, in the lectures' terms: the summaries of A12 and B14, read off its records.

Both work on the metrics.jsonl records of a run (plumbing/runs.py), so they can be recomputed for any
run, also one stopped with Ctrl-C.
"""

from __future__ import annotations

from train.metrics import convergence, slope, wilson_interval


def judge_results(train: list[dict], evals: list[dict]) -> dict:
    """A11-A13 of a judge run: held-out accuracy at the start and the end, convergence, update sizes."""
    out: dict = {"steps": train[-1]["step"] if train else 0}
    if len(train) > 1:
        out["convergence"] = convergence([r["loss"] for r in train])  # A12
    if evals:
        out["heldout_acc_start"], out["heldout_acc_end"] = evals[0]["heldout_acc"], evals[-1]["heldout_acc"]  # A11
        out["heldout_macro_acc_end"] = evals[-1].get("heldout_macro_acc")
    updates = [r["update"] for r in train if r.get("update") is not None]
    if updates:
        out["update_first"], out["update_last"], out["update_max"] = updates[0], updates[-1], max(updates)  # A13
    return out


def lecture_results(evals: list[dict], authors: list[str], prefix: str = "") -> dict:
    """B14: untuned Acc ~ 1/N; accuracy rises with fine-tuning; dL_cls/dt < 0; S(t) up for Alice, down for the others.

    Read off the judgement records (the first one is step 0). Slopes are least-squares fits per step
    over all judgements; accuracies come with their Wilson 95 % interval. `prefix` "nb_" reads the
    independent judge's numbers instead of the trained judge's.
    """
    if not evals:
        raise ValueError("no judgement records")
    p, first, last = prefix, evals[0], evals[-1]
    steps = [r["step"] for r in evals]
    out = {"judgements": len(evals), "first_step": first["step"], "last_step": last["step"], "chance": 1 / len(authors)}
    for tag, r in (("start", first), ("end", last)):
        out[f"acc_{tag}"] = r[f"{p}acc"]
        out[f"acc_{tag}_ci95"] = list(wilson_interval(r[f"{p}correct"], r[f"{p}n"]))
        out[f"judge_loss_{tag}"] = r[f"{p}judge_loss"]
        for a in authors:
            out[f"S_{a}_{tag}"] = r[f"{p}S_{a}"]
            out[f"own_{a}_{tag}"] = r[f"{p}own_{a}"]
            if f"heldout_per_byte_{a}" in r:  # L7 (the generator's, whichever judge reads its rows)
                out[f"heldout_per_byte_{a}_{tag}"] = r[f"heldout_per_byte_{a}"]
    out["chance_in_start_ci95"] = out["acc_start_ci95"][0] <= out["chance"] <= out["acc_start_ci95"][1]
    out["acc_slope"] = slope(steps, [r[f"{p}acc"] for r in evals])
    out["judge_loss_slope"] = slope(steps, [r[f"{p}judge_loss"] for r in evals])  # B12/B14: < 0 expected
    for a in authors:
        out[f"S_{a}_slope"] = slope(steps, [r[f"{p}S_{a}"] for r in evals])
    moved = all(out[f"own_{a}_end"] > out[f"own_{a}_start"] for a in authors)  # every generator towards its author
    out["end_target_met"] = bool(out["acc_end"] >= 0.85 and moved)
    return out


def summary_lines(r: dict, authors: list[str]) -> list[str]:
    """The numbers a student checks first, as console lines."""
    lo, hi = r["acc_start_ci95"]
    lines = [f"step {r['first_step']}: judge accuracy {r['acc_start']:.3f} (95 % CI {lo:.3f}-{hi:.3f}; chance "
             f"{r['chance']:.2f} {'inside' if r['chance_in_start_ci95'] else 'OUTSIDE'})"]
    lo, hi = r["acc_end_ci95"]
    lines.append(f"step {r['last_step']}: judge accuracy {r['acc_end']:.3f} (95 % CI {lo:.3f}-{hi:.3f}), "
                 f"L_cls {r['judge_loss_start']:.3f} -> {r['judge_loss_end']:.3f}")
    for a in authors:
        lines.append(f"S(t) = P({authors[0]}) of the {a} generator: {r[f'S_{a}_start']:.3f} -> {r[f'S_{a}_end']:.3f}; "
                     f"P({a}) of its own rows {r[f'own_{a}_start']:.3f} -> {r[f'own_{a}_end']:.3f}")
    lines.append(f"target (acc >= 0.85, every generator towards its author): {'met' if r['end_target_met'] else 'NOT met'}")
    return lines
