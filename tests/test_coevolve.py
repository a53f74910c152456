"""Lecture B's loop: B7, B11-B16 and N6 by hand, the frozen judge, and whole runs of scripts/coevolve.py.

The runs use a tiny random GPT-Neo (with a BPE trained here on Wonderland) and a tiny random BERT judge
(conftest: make_tiny_judge) on the first 40,000 characters of each book, so they take seconds; they
check the plumbing (files, steps, seeding, Ctrl-C, resume), not the lecture's results (`make coevolve`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from eval.lecture import lecture_results
from model.gpt_neo import GPTNeo
from plumbing.config import ConfigError
from plumbing.runs import read_jsonl
from scripts import coevolve as program
from scripts.report import write_report
from train.judgement import (coevolution_score, judge_accuracy, judge_labels, judge_loss, mean_mismatch_ratio,
                             score_rows, start_tokens)
from train.metrics import slope, wilson_interval

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def argv(base: Path, runs: Path, *extra: str) -> list[str]:
    """4 fine-tuning steps of 4 x 32 tokens, judged at steps 0, 2, 4 on 2 x 4 rows of 16 BERT tokens."""
    return ["--preset", "neo-small", "--base", str(base), "--runs-dir", str(runs), "--steps", "4", "--batch-size", "4",
            "--length", "32", "--lr", "1e-3", "--eval-every", "2", "--rows", "4", "--judge-length", "16",
            "--overgen", "4", "--heldout-windows", "2", "--seed", "3", "--device", "cpu", "--precision", "fp32", *extra]


# ----------------------------------------------------------------------------- equations on hand examples


def test_wilson_interval_matches_published_values():
    """Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score, no correction)."""
    for (k, n), (lo, hi) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                             (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        got = wilson_interval(k, n)
        assert got[0] == pytest.approx(lo, abs=5e-5) and got[1] == pytest.approx(hi, abs=5e-5), (k, n, got)
    for bad in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)


def test_labels_accuracy_loss_score_ratio_by_hand():
    labels = judge_labels(2)
    assert labels.tolist() == [0, 0, 1, 1]  # B7: y = (0 x R, 1 x R)
    assert judge_labels(2, 3).tolist() == [0, 0, 1, 1, 2, 2]  # N6
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0], [0.5, 0.0]])  # predictions 0, 1, 1, 0
    assert judge_accuracy(logits, labels) == 0.5  # rows 0 and 2 right
    p = torch.softmax(logits, dim=-1)
    by_hand = -(math.log(p[0, 0]) + math.log(p[1, 0]) + math.log(p[2, 1]) + math.log(p[3, 1])) / 4
    assert judge_loss(logits, labels) == pytest.approx(by_hand, rel=1e-6)
    assert coevolution_score(torch.tensor([0.2, 0.4, 0.9])) == pytest.approx(0.5)
    assert mean_mismatch_ratio([1.0, 1.5]) == 1.25
    with pytest.raises(ValueError):
        coevolution_score(torch.tensor([]))


def test_score_rows_b13_and_n6_by_hand():
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]])
    m = score_rows(probs.log(), judge_labels(2, 3), ["alice", "edgar", "austen"])
    assert [int(probs[i].argmax()) for i in range(6)] == [0, 1, 2, 0, 2, 2]  # true labels 0, 0, 1, 1, 2, 2
    assert m["correct"] == 3 and m["acc"] == 0.5  # rows 0, 4 and 5
    assert m["confusion"] == [[1, 1, 0], [1, 0, 1], [0, 0, 2]]
    assert m["S_edgar"] == pytest.approx((0.1 + 0.6) / 2)  # B13: P(Alice) of the edgar rows
    assert m["own_austen"] == pytest.approx((0.4 + 0.6) / 2)  # N6: P(austen) of the austen rows
    assert m["judge_loss"] == pytest.approx(-sum(math.log(p) for p in (0.8, 0.2, 0.1, 0.2, 0.4, 0.6)) / 6, rel=1e-5)


def test_start_tokens_first_half_not_banned_and_seeded():
    bad = torch.zeros(20, dtype=torch.bool)
    bad[[0, 3, 4, 15]] = True
    draw = start_tokens(200, bad, torch.Generator().manual_seed(1))
    assert draw.shape == (200, 1)
    assert set(draw.flatten().tolist()) == {1, 2, 5, 6, 7, 8, 9}  # ids < 10, minus the banned 0, 3, 4
    assert torch.equal(draw, start_tokens(200, bad, torch.Generator().manual_seed(1)))
    bad[:10] = True
    with pytest.raises(ValueError, match="banned"):
        start_tokens(4, bad, torch.Generator())


def test_lecture_results_reads_trends():
    def ev(step, correct, loss, s_a, s_e):
        return {"step": step, "n": 64, "correct": correct, "acc": correct / 64, "judge_loss": loss, "S_alice": s_a,
                "S_edgar": s_e, "own_alice": s_a, "own_edgar": 1 - s_e}

    r = lecture_results([ev(0, 30, 0.70, 0.45, 0.44), ev(10, 45, 0.55, 0.6, 0.3), ev(20, 58, 0.30, 0.8, 0.1)],
                        ["alice", "edgar"])
    assert r["chance_in_start_ci95"] and r["end_target_met"]
    assert r["acc_slope"] > 0 and r["judge_loss_slope"] < 0 and r["S_alice_slope"] > 0 > r["S_edgar_slope"]
    r = lecture_results([ev(0, 60, 0.70, 0.45, 0.44), ev(10, 50, 0.75, 0.4, 0.5)], ["alice", "edgar"])
    assert not r["chance_in_start_ci95"] and not r["end_target_met"]
    assert slope([0, 1, 2], [1.0, 3.0, 5.0]) == pytest.approx(2.0)


def test_presets():
    cpu = program.PRESETS["cpu"]  # the default: SmolLM2 on a CPU, k from B16's 0.92 BERT tokens per token
    assert next(iter(program.PRESETS)) == "cpu" and (cpu.base, cpu.overgen) == ("smollm2-135m", 1.25)
    assert program.PRESETS["neo-small"].base == "neo-small"
    c = program.PRESETS["lecture"]
    assert (c.batch_size, c.length, c.lr, c.steps, c.eval_every) == (64, 128, 1e-5, 121, 10)  # B7, course code
    assert (c.rows, c.judge_length, c.overgen, c.repetition_penalty, c.top_k) == (32, 128, 4, 1.3, 50)  # B7, B8, B10


@pytest.mark.parametrize("flags, match", [(["--temperature", "nan"], "finite"), (["--top-k", "-1"], ">= 0"),
                                          (["--max-rounds", "-1"], ">= 0"), (["--repetition-penalty", "0.5"], ">= 1"),
                                          (["--overgen", "1"], "> 1")])
def test_sampling_settings_are_checked_before_any_set_up(flags, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        program.coevolve(["--runs-dir", str(tmp_path), *flags])
    assert not (tmp_path / "coevolve").exists()  # no run folder, no moved link


# ----------------------------------------------------------------------------- the loop, end to end


def parse_report(page: Path) -> tuple[list[bytes], list[str]]:
    """(the PNG bytes of every inline image, the text of every sample) of a report page."""
    import base64
    from html.parser import HTMLParser

    class Reader(HTMLParser):
        def __init__(self):
            super().__init__()
            self.images, self.texts, self.depth, self.parts = [], [], 0, []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "img" and attrs.get("src", "").startswith("data:image/png;base64,"):
                self.images.append(base64.b64decode(attrs["src"].split(",", 1)[1]))
            if self.depth or (tag == "div" and attrs.get("class") == "sample"):
                self.depth += tag == "div"
            if tag == "span" and self.depth:
                self.parts.append(None)  # the label and the bar are not the text

        def handle_endtag(self, tag):
            if tag == "div" and self.depth:
                self.depth -= 1
                if not self.depth:
                    self.texts.append("".join(p for p in self.parts if p is not None))
                    self.parts = []
            if tag == "span" and self.depth and self.parts and self.parts[-1] is None:
                self.parts.pop()

        def handle_data(self, data):
            if self.depth and not (self.parts and self.parts[-1] is None):
                self.parts.append(data)

    reader = Reader()
    reader.feed(page.read_text(encoding="utf-8"))
    return reader.images, reader.texts


def test_tiny_run_writes_metrics_samples_generators_and_report(tiny_neo_base, judge_runs, small_mirror):
    judge_file = next((judge_runs / "judge").glob("2*/hf/model.safetensors"))
    judge_before = load_file(judge_file)
    run = program.coevolve(argv(tiny_neo_base, judge_runs))
    assert (judge_runs / "coevolve" / "latest").resolve() == run.resolve()
    config = json.loads((run / "config.json").read_text())
    assert config["judge_half"]["dtype"] == "bfloat16"  # B5 on the CPU
    records = read_jsonl(run / "metrics.jsonl")
    train, evals = [r for r in records if r["kind"] == "train"], [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and [r["step"] for r in evals] == [0, 2, 4]
    assert all(math.isfinite(r["loss_alice"]) and math.isfinite(r["loss_edgar"]) for r in train)
    assert train[0]["loss_alice"] != train[0]["loss_edgar"]  # each generator on its own author's text
    samples = read_jsonl(run / "samples.jsonl")
    assert len(samples) == 3 * 2 * 4  # 3 judgements x 2 generators x 4 rows
    for e in evals:
        rows = [s for s in samples if s["step"] == e["step"]]
        assert e["correct"] == sum(s["predicted"] == s["generator"] for s in rows)
        for name in ("alice", "edgar"):
            mine = [s["probs"][0] for s in rows if s["generator"] == name]
            assert e[f"S_{name}"] == pytest.approx(sum(mine) / len(mine), abs=1e-6)  # B13 from the samples
    step0 = [s for s in samples if s["step"] == 0]
    assert [s["start_id"] for s in step0[:4]] == [s["start_id"] for s in step0[4:]]  # shared start tokens
    assert [s["text"] for s in step0[:4]] != [s["text"] for s in step0[4:]]  # same network, two streams
    for name in ("alice", "edgar"):  # the generators are kept as Hugging Face folders
        assert GPTNeo.from_pretrained(run / "generators" / name).config.num_layers == 2
    judge_after = load_file(judge_file)  # B15: the judge only watched
    assert all(torch.equal(judge_before[k], judge_after[k]) for k in judge_before)
    page, _ = write_report(run)
    images, texts = parse_report(page)
    assert len(images) == 2 and all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in images)  # the loop and N6's matrix
    assert sorted(texts) == sorted(s["text"] for s in samples)  # every judged sample, whole
    html = page.read_text(encoding="utf-8")  # E1 on the first row of each generator, first and last judgement
    assert html.count('<div class="explained">') == 4 and "step 0, the alice generator (row 0)" in html
    assert "step 4, the edgar generator" in html and "data-score=" in html
    again = program.coevolve(argv(tiny_neo_base, judge_runs))  # seeded: the same numbers again
    assert read_jsonl(again / "samples.jsonl")[-1]["text"] == samples[-1]["text"]


def test_the_judge_the_loop_is_given_can_carry_no_gradient(tiny_neo_base, judge_runs, small_mirror):
    """The frozen judge: its parameters never require grad, and a backward through it leaves no .grad."""
    from plumbing.generators import load_setup
    from plumbing.precision import choose_precision

    setup = load_setup(str(tiny_neo_base), None, ("alice", "edgar"), choose_precision(torch.device("cpu"), "fp32"),
                       True, 32, judge_runs)
    assert all(not p.requires_grad for p in setup.judge.parameters())
    x = torch.randint(1000, 2000, (2, 10))
    with pytest.raises(RuntimeError):
        setup.judge(x).sum().backward()  # nothing in the judge can carry a gradient


def test_interrupted_run_resumes_to_the_same_numbers(tiny_neo_base, judge_runs, small_mirror):
    whole = program.coevolve(argv(tiny_neo_base, judge_runs, "--judge-half", "--steps", "4"))
    part = program.coevolve(argv(tiny_neo_base, judge_runs, "--steps", "2"))
    program.coevolve(["--resume", str(part), "--steps", "4", "--runs-dir", str(judge_runs)])
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time", "gen_s", "judge_s", "step_s")} for r in rs]
    assert strip(read_jsonl(whole / "metrics.jsonl")) == strip(read_jsonl(part / "metrics.jsonl"))
    assert read_jsonl(whole / "samples.jsonl") == read_jsonl(part / "samples.jsonl")


def test_clear_errors(tiny_neo_base, judge_runs, small_mirror):
    with pytest.raises(ConfigError, match="exceed the base model's context"):
        program.coevolve(argv(tiny_neo_base, judge_runs, "--judge-length", "64"))
    with pytest.raises(ConfigError, match="--length 200 exceeds"):
        program.coevolve(argv(tiny_neo_base, judge_runs, "--length", "200"))
    with pytest.raises(ValueError, match="the judge tells apart alice,edgar"):
        program.coevolve(argv(tiny_neo_base, judge_runs, "--authors", "alice,austen"))
    assert not (judge_runs / "coevolve").exists()


def test_from_the_loop_to_the_b10_penalty_is_five_calls(tiny_neo_base, judge_runs, small_mirror, monkeypatch):
    """coevolve_loop -> judge_generators -> generate_for_judge -> generate -> process_scores -> B10: the calls
    between the loop and the penalty, read from the stack while the penalty runs, for every row of every
    judgement (k = 1.1 leaves rows short, so the extra rounds of B8 are among them)."""
    import inspect

    import model.sampler as sampler

    real, chains = sampler.lecture_repetition_penalty, set()

    def penalty(*args):
        ours = Path(program.__file__).parents[1]  # the project's own frames (not torch's no_grad wrapper)
        names = [f.function for f in inspect.stack()[1:] if Path(f.filename).is_relative_to(ours)
                 and ".venv" not in f.filename]
        chains.add(tuple(reversed(names[: names.index("coevolve_loop") + 1])))
        return real(*args)

    monkeypatch.setattr(sampler, "lecture_repetition_penalty", penalty)
    program.coevolve(argv(tiny_neo_base, judge_runs, "--steps", "2", "--overgen", "1.1"))  # k = 1.1: extra rounds too
    assert chains == {("coevolve_loop", "judge_generators", "generate_for_judge", "generate", "process_scores")}, chains


def test_a_llama_base_runs_the_same_loop(tiny_llama_base, judge_runs, small_mirror):
    """--base takes a Llama folder (SmolLM2's kind): the same loop, its generators saved as LlamaForCausalLM."""
    from model.llama import Llama

    run = program.coevolve(argv(tiny_llama_base, judge_runs, "--steps", "2"))
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2] and all(math.isfinite(r["heldout_alice"]) for r in evals)
    for name in ("alice", "edgar"):
        saved = Llama.from_pretrained(run / "generators" / name)
        assert json.loads((run / "generators" / name / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
        assert saved.config.num_key_value_heads == 1
        card = (run / "generators" / name / "README.md").read_text()  # the model card
        assert str(run) in card and f"L7 held-out loss on {name}, nats per byte" in card and "LlamaForCausalLM" not in card
        assert f"{evals[-1][f'heldout_per_byte_{name}']:.3f}" in card and "Llama" in card
        assert f"| N6 P({name} \\| its rows), step 0 -> 2 |" in card  # the | of P(a | x) escaped in its table
    page, _ = write_report(run)
    assert "L7 held-out nats per byte of the alice generator" in page.read_text()
    with pytest.raises(ValueError, match="not a generator"):  # a judge folder is not a base
        program.coevolve(argv(next((judge_runs / "judge").glob("2*/hf")), judge_runs))
