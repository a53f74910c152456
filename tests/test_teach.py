"""The judge as teacher (train/rl.py, scripts/teach.py): T1-T8 by hand, the sampled distribution, tiny runs."""

from __future__ import annotations

import contextlib
import html
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from model.config import GPTNeoConfig
from model.gpt_neo import GPTNeo
from model.sampler import Sampling, generate, token_counts, top_k_filter
from plumbing.config import ConfigError
from plumbing.runs import read_jsonl
from scripts import teach as program
from tokenizer_bridge.bridge import JudgeBatch, RowSampling
from train.adversary import (GENERATED, adversary_batch, full_rows, real_vs_generated_accuracy, replay_rows,
                             with_generated_class)
from train.rl import (adaptive_beta, best_of_n, best_of_n_kl_bound, distinct_n, judge_reward, kl_k3, log_ratio,
                      name_rate, normalised_advantages, policy_gradient_loss, processed_log_probs, rloo_advantages,
                      total_loss, with_real_text)

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- T1-T8 by hand


def test_t1_reward_is_the_log_probability_of_the_target_author():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    r = judge_reward(logits, torch.tensor([0, 0]))
    assert r.tolist() == pytest.approx([2 - math.log(math.exp(2) + 1), -math.log(1 + math.e)])
    assert (r <= 0).all()


def test_t2_t3_k3_by_hand_and_never_negative():
    delta = log_ratio(torch.tensor([[-1.0, -2.0, -0.5]]), torch.tensor([[-1.5, -1.0, -0.5]]))  # 0.5, -1, 0
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    by_hand = ((math.exp(-0.5) - 1 + 0.5) + (math.exp(1) - 1 - 1)) / 2  # the masked third token left out
    assert kl_k3(delta, mask).item() == pytest.approx(by_hand)
    assert (kl_k3(torch.randn(50, 7) * 3, torch.ones(50, 7)) >= 0).all()


def test_t3_k3_is_an_unbiased_estimate_of_the_kl():
    """E_{x ~ pi}[k3] = KL(pi || ref) exactly; the sample mean of 200,000 draws is close."""
    pi, ref = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.5, 0.3])
    x = torch.multinomial(pi, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    delta = (pi.log() - ref.log())[x][None]
    kl = (pi * (pi / ref).log()).sum().item()
    assert kl_k3(delta, torch.ones_like(delta)).item() == pytest.approx(kl, abs=0.005)


def test_t4_rloo_baseline_is_the_mean_of_the_others():
    r = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    a = rloo_advantages(r)
    assert a[0].tolist() == pytest.approx([1 - 4, 2 - 3.5, 6 - 1.5]) and a[1].tolist() == pytest.approx([-1.5, -1.5, 3])
    with pytest.raises(ValueError, match="G >= 2"):
        rloo_advantages(torch.ones(2, 1))


def test_t5_t6_loss_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([2.0, -1.0])
    pg = policy_gradient_loss(logp, mask, adv)
    assert pg.item() == pytest.approx(-(2.0 * -1.5 + -1.0 * -0.5) / 2)  # -(1/G) sum A_i (1/n_i) sum_t log pi
    kl = torch.tensor([0.1, 0.3])
    assert total_loss(pg, kl, 0.05).item() == pytest.approx(pg.item() + 0.05 * 0.2)
    pg.backward()
    assert logp.grad[0].tolist() == pytest.approx([-0.5, -0.5, 0.0])  # -A_i / (G n_i) on kept tokens only


def test_t9_real_text_in_the_loss_by_hand():
    rl = torch.tensor(2.0, requires_grad=True)
    lm = torch.tensor(3.0, requires_grad=True)
    loss = with_real_text(rl, lm, 0.5)  # L_PG + beta KL + gamma L_gen
    loss.backward()
    assert loss.item() == 3.5 and rl.grad.item() == 1.0 and lm.grad.item() == 0.5
    assert with_real_text(rl, lm, 0.0).item() == 2.0  # gamma = 0: RL alone


def test_t11_normalised_advantages_by_hand():
    a = normalised_advantages(torch.tensor([1.0, 3.0, 5.0, 7.0]))  # mean 4, std (1/n) sqrt(5)
    assert a.tolist() == pytest.approx([-3 / math.sqrt(5), -1 / math.sqrt(5), 1 / math.sqrt(5), 3 / math.sqrt(5)])
    assert normalised_advantages(torch.zeros(4)).tolist() == [0.0] * 4  # eps: no division by zero


def test_t11_adaptive_beta_by_hand_and_clipped():
    assert adaptive_beta(0.1, 0.11, 0.1, 0.5) == pytest.approx(0.1 * (1 + 0.5 * 0.1))  # e = +0.1
    assert adaptive_beta(0.1, 0.09, 0.1, 0.5) == pytest.approx(0.1 * (1 - 0.5 * 0.1))  # e = -0.1
    assert adaptive_beta(0.1, 5.0, 0.1, 0.5) == pytest.approx(0.1 * 1.1)  # e clipped to +0.2
    assert adaptive_beta(0.1, 0.0, 0.1, 0.5) == pytest.approx(0.1 * 0.9)  # e clipped to -0.2
    assert adaptive_beta(0.1, 3.0, 0.1, 0.0) == 0.1  # K_beta = 0: fixed


def test_t10_the_generated_class_starts_at_logit_zero_and_keeps_the_authors_logits():
    from model.bert import Bert, BertClassifier
    from model.config import BertConfig

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=16)
    judge = BertClassifier(Bert(cfg), ["alice", "edgar"]).eval()
    x = torch.randint(5, 30, (3, 8))
    before = judge(x)
    with_generated_class(judge)
    after = judge(x)
    assert judge.labels == ["alice", "edgar", GENERATED] and after.shape == (3, 3)
    assert torch.allclose(after[:, :2], before) and (after[:, 2] == 0).all()


def test_t10_labels_real_windows_by_author_and_generated_rows_by_the_extra_class():
    real = (torch.ones(4, 6, dtype=torch.long), torch.ones(4, 6, dtype=torch.long), torch.tensor([0, 0, 1, 1]))
    x, mask, y = adversary_batch(real, torch.full((3, 6), 7), n_authors=2)
    assert x.shape == (7, 6) and mask.all() and y.tolist() == [0, 0, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="length"):
        adversary_batch(real, torch.full((3, 5), 7), n_authors=2)
    rows, m = torch.arange(12).view(3, 4), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1]])
    assert full_rows(rows, m).tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]  # a padded row would give itself away
    assert replay_rows([], 4, torch.Generator()) is None
    assert len(replay_rows([torch.zeros(3, 4), torch.ones(2, 4)], 4, torch.Generator().manual_seed(0))) == 4


def test_t10_real_versus_generated_accuracy_by_hand():
    logits = torch.tensor([[3.0, 0, 0], [0, 0, 3], [0, 3, 0], [0, 0, 3], [3, 0, 0]])  # said: a, gen, e, gen, a
    y = torch.tensor([0, 0, 1, 2, 2])  # real, real, real, generated, generated
    acc = real_vs_generated_accuracy(logits, y, n_authors=2)
    assert acc == pytest.approx({"real": 2 / 3, "generated": 1 / 2, "balanced": (2 / 3 + 1 / 2) / 2})


def test_t8_names_per_thousand_words_by_hand():
    texts = ["Alice said to Alice's cat, alice!", "The end", "Alice\u2019s"]  # 9 words; 3 of them Alice (any apostrophe)
    assert name_rate(texts, ("Alice",)) == pytest.approx(1000 * 3 / 9)
    assert name_rate(texts, ("Dupin", "Usher")) == 0.0 and name_rate([], ("Alice",)) == 0.0


def test_t7_best_of_n_and_its_kl_bound():
    assert best_of_n(torch.tensor([[0.1, -3.0, 0.5], [-1.0, -0.2, -0.9]])).tolist() == [2, 1]
    assert best_of_n_kl_bound(1) == 0.0
    assert best_of_n_kl_bound(4) == pytest.approx(math.log(4) - 3 / 4)


def test_t8_distinct_n_by_hand():
    texts = ["the cat the cat", "a dog"]
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)  # the, cat, a, dog of 6 words
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # (the cat) twice, (cat the), (a dog)
    assert distinct_n([], 2) == 0.0


def _tiny(vocab: int = 40) -> GPTNeo:
    torch.manual_seed(0)
    cfg = GPTNeoConfig(vocab_size=vocab, max_position_embeddings=32, hidden_size=16, num_layers=2, num_heads=2,
                       window_size=4, attention_layers=["global", "local"])
    return GPTNeo(cfg).eval()


@pytest.mark.parametrize("mode, r", [("lecture", 1.5), ("hf", 1.5), ("lecture", 1.0)])  # 1.0: no penalty (SmolLM2's)
def test_processed_log_probs_are_the_distribution_the_sampler_draws_from(mode, r):
    """Frequencies of 40,000 sampled second tokens match exp(processed log-prob) (top-k, penalty, ban, temperature)."""
    model, bad = _tiny(), torch.zeros(40, dtype=torch.bool)
    bad[[3, 7]] = True
    settings = Sampling(temperature=0.8, top_k=6, repetition_penalty=r, penalty_mode=mode, bad_mask=bad)
    prompt = torch.tensor([[5, 9]]).repeat(40_000, 1)  # token 5 and 9 already seen: penalised
    ids = generate(model, prompt, 1, settings, torch.Generator().manual_seed(1))
    counts = torch.bincount(ids[:, -1], minlength=40).float() / 40_000
    every = torch.cat([prompt[:40], torch.arange(40)[:, None]], dim=1)  # each possible third token
    with torch.no_grad():
        logp = processed_log_probs(model(every), every, 2, settings)[:, 0]
    p = logp.exp()
    top = p.topk(6).indices  # the sampler's support; a token outside it is scored on its support plus itself
    assert p[top].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert counts.sum() - counts[top].sum() == 0 and counts[[3, 7]].sum() == 0  # nothing drawn outside, nothing banned
    assert torch.allclose(counts[top], p[top], atol=0.01)


def test_the_kl_of_a_model_to_itself_is_zero_under_top_k():
    """The TRL failure (negative KL with top-k): here both models share the sampled support, so KL(pi || pi) = 0."""
    model = _tiny()
    s = Sampling(temperature=1.0, top_k=5, repetition_penalty=1.3, penalty_mode="lecture", bad_mask=None)
    ids = generate(model, torch.tensor([[1], [2]]), 10, s, torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = processed_log_probs(model(ids), ids, 1, s)
        b = processed_log_probs(model(ids), ids, 1, s)
    assert torch.isfinite(a).all() and kl_k3(log_ratio(a, b), torch.ones_like(a)).abs().max() == 0


# ----------------------------------------------------------------------------- tiny runs of the three arms


def argv(base: Path, runs: Path, *extra: str) -> list[str]:
    return ["--base", str(base), "--runs-dir", str(runs), "--steps", "2", "--eval-every", "1",
            "--rows", "2", "--prompts", "2", "--samples", "2", "--judge-length", "12", "--overgen", "4", "--rl-overgen", "3",
            "--length", "32", "--batch-size", "2", "--heldout-windows", "2", "--lr", "1e-3", "--device", "cpu", *extra]


def test_rl_run_logs_t8_numbers_saves_generators_and_leaves_the_judge_alone(tiny_neo_base, judge_runs, small_mirror):
    judge_file = next((judge_runs / "judge").glob("2*/hf/model.safetensors"))
    before = load_file(judge_file)
    [run] = program.teach(argv(tiny_neo_base, judge_runs))
    records = read_jsonl(run / "metrics.jsonl")
    train, evals = [r for r in records if r["kind"] == "train"], [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [1, 2] and [r["step"] for r in evals] == [0, 1, 2]
    for r in train:
        assert r["reward_alice"] <= 0 and r["kl_alice"] >= 0 and r["tokens_alice"] > 0
    assert train[-1]["judge_calls"] == 2 * 2 * 2 * 2  # steps x authors x P x G
    assert evals[0]["kl_alice"] == pytest.approx(0.0, abs=1e-6)  # at step 0 the generator is its reference
    assert evals[-1]["kl_alice"] > 0  # it moved
    for key in ("nb_acc", "nb_S_alice", "distinct2_edgar", "reward_edgar", "heldout_alice", "acc_low", "names_alice"):
        assert key in evals[-1]
    assert evals[-1]["names_books_alice"] > 5  # Carroll names Alice about 15 times per 1,000 words
    assert len(read_jsonl(run / "samples.jsonl")) == 3 * 2 * 2
    assert GPTNeo.from_pretrained(run / "generators" / "alice").config.num_layers == 2
    after = load_file(judge_file)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_t9_adds_gamma_times_the_lm_loss_on_real_windows_to_the_rl_step(tiny_neo_base, judge_runs, small_mirror):
    """The same seed gives the same rows and RL loss; --lm-coef adds gamma x the LM loss of a real batch, logged.
    Both runs in float32: with `auto` each measures its precision (and, in bfloat16, its sampling precision on a few
    tokens), which a busy machine can tip either way; a CI run beside two busy loops saw the rewards differ in the
    7th digit."""
    first = lambda run: [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"][0]  # noqa: E731
    [plain] = program.teach(argv(tiny_neo_base, judge_runs, "--steps", "1", "--precision", "fp32"))
    [mixed] = program.teach(argv(tiny_neo_base, judge_runs, "--steps", "1", "--precision", "fp32", "--lm-coef", "0.5"))
    a, b = first(plain), first(mixed)
    assert "lm_loss_alice" not in a and b["lm_loss_alice"] > 0
    assert b["reward_alice"] == pytest.approx(a["reward_alice"], abs=1e-6)  # the same rows, the same reward
    for author in ("alice", "edgar"):
        assert b[f"loss_{author}"] == pytest.approx(a[f"loss_{author}"] + 0.5 * b[f"lm_loss_{author}"], abs=1e-5)


def test_t10_adversarial_arm_trains_its_own_judge_logs_the_game_and_resumes(tiny_neo_base, judge_runs, small_mirror):
    judge_file = next((judge_runs / "judge").glob("2*/hf/model.safetensors"))
    before = load_file(judge_file)
    [run] = program.teach(argv(tiny_neo_base, judge_runs, "--arm", "adversarial", "--adversary-steps", "2",
                               "--rl-overgen", "6"))
    records = read_jsonl(run / "metrics.jsonl")
    train, evals = [r for r in records if r["kind"] == "train"], [r for r in records if r["kind"] == "eval"]
    assert all(0 <= r["adv_acc"] <= 1 and r["adv_loss"] > 0 for r in train)  # every step: E = 1
    assert all(0 < r["adv_p_generated_alice"] < 1 and "S_alice" in r for r in evals)  # the lecture's numbers too
    head = load_file(str(next((run / "checkpoints").glob("step-*")) / "models.safetensors"))
    assert head[f"{program.ADVERSARY}/head.weight"].shape[0] == 3  # alice, edgar, generated
    assert head[f"{program.ADVERSARY}/head.weight"][2].abs().sum() > 0  # the new class learnt
    after = load_file(judge_file)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the lecture's judge is never trained
    [again] = program.teach(["--resume", str(run), "--steps", "3", "--runs-dir", str(judge_runs)])
    assert again == run and [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"] == [1, 2, 3]
    from scripts.report import write_report

    page, _ = write_report(run)
    html = page.read_text()
    assert "T10: the game" in html and (run / "adversary.png").is_file()


def test_t11_adaptive_beta_moves_each_generators_beta_and_is_kept_in_the_checkpoint(tiny_neo_base, judge_runs,
                                                                                  small_mirror):
    [run] = program.teach(argv(tiny_neo_base, judge_runs, "--kl-target", "1e-6", "--kl-gain", "1",
                               "--advantage-norm", "--beta", "0.1"))
    train = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    assert train[0]["kl_alice"] == 0 and train[1]["kl_alice"] > 1e-6  # the first step starts at the reference
    assert train[0]["beta_alice"] == 0.1 and train[1]["beta_alice"] == pytest.approx(0.08)  # KL < target: -20 %
    state = json.loads(next((run / "checkpoints").glob("step-*/state.json")).read_text())["state"]
    assert state["betas"]["edgar"] == pytest.approx(0.08 * 1.2)  # then KL > target: +20 %


def test_lm_and_best_of_n_arms(tiny_neo_base, judge_runs, small_mirror):
    [lm] = program.teach(argv(tiny_neo_base, judge_runs, "--arm", "lm"))
    assert "loss_alice" in read_jsonl(lm / "metrics.jsonl")[1]
    [bon] = program.teach(argv(tiny_neo_base, judge_runs, "--arm", "best-of-n", "--best-of", "3"))
    evals = [r for r in read_jsonl(bon / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["judge_calls"] for r in evals] == [2 * 2 * 3, 2 * 2 * 3 * 2, 2 * 2 * 3 * 3]  # rows x authors x N
    assert evals[0]["kl_bound_alice"] == pytest.approx(math.log(3) - 2 / 3)
    [rl] = program.teach(argv(tiny_neo_base, judge_runs))  # 2 steps x 2 authors x P 2 x G 2 = 16 judge calls
    [matched] = program.teach(argv(tiny_neo_base, judge_runs, "--arm", "best-of-n", "--steps", "1",
                                   "--match-judge-calls", str(rl)))
    assert json.loads((matched / "config.json").read_text())["config"]["best_of"] == 4  # 16 calls / 2 authors / 2 rows
    for wrong, says in ((["--match-judge-calls", str(bon)], "arm 'best-of-n' with 36 judge calls"),
                        (["--match-judge-calls", str(rl), "--best-of", "3"], "not both"),
                        (["--match-judge-calls", str(judge_runs / "judge" / "latest")], "is a judge run")):
        with pytest.raises(ValueError, match=says):
            program.teach(argv(tiny_neo_base, judge_runs, "--arm", "best-of-n", "--steps", "1", *wrong))
    with pytest.raises(ConfigError, match="goes with --arm best-of-n, not --arm rl"):
        program.teach(argv(tiny_neo_base, judge_runs, "--match-judge-calls", str(rl)))


def test_the_lecture_preset_runs_on_a_tiny_random_model(tiny_neo_base, judge_runs, small_mirror):
    """The gpt-neo-125M preset is for a GPU; here its settings run one step with the tiny base and small sizes."""
    c = program.PRESETS["lecture"]
    assert (c.base, c.steps, c.prompts, c.samples, c.lr, c.beta) == ("gpt-neo-125M", 121, 16, 4, 1.41e-5, "0.05")
    flags = argv(tiny_neo_base, judge_runs, "--preset", "lecture", "--steps", "1")
    at = flags.index("--lr")
    [run] = program.teach(flags[:at] + flags[at + 2:])  # the lecture's learning rate kept
    saved = json.loads((run / "config.json").read_text())["config"]
    assert (saved["lr"], saved["base"]) == (1.41e-5, str(tiny_neo_base))
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "eval"] == [0, 1]


def test_compare_tables_each_run_by_its_last_judgement(tiny_neo_base, judge_runs, small_mirror):
    from scripts import compare

    sweep = program.teach(argv(tiny_neo_base, judge_runs, "--beta", "0,0.2", "--steps", "1"))
    [lm] = program.teach(argv(tiny_neo_base, judge_runs, "--arm", "lm", "--steps", "1"))
    compare.run([*map(str, sweep), str(lm), "--runs-dir", str(judge_runs)])
    [out] = (judge_runs / "compare").iterdir()
    rows = json.loads((out / "compare.json").read_text())
    assert [r["label"] for r in rows] == ["rl, beta 0", "rl, beta 0.2", "lm"]
    last = [r for r in read_jsonl(lm / "metrics.jsonl") if r["kind"] == "eval"][-1]
    assert (rows[2]["acc"], rows[2]["S_alice"], rows[2]["nb_S_edgar"]) == (last["acc"], last["S_alice"],
                                                                          last["nb_S_edgar"])
    assert rows[2]["heldout"] == pytest.approx((last["heldout_alice"] + last["heldout_edgar"]) / 2)
    text = (out / "compare.md").read_text()
    md = text.split("\n\n")[0].splitlines()  # the table; then what every arm writes
    assert len(md) == 2 + 3 and md[3].startswith("| rl, beta 0.2 | 1 |")
    first = [r for r in read_jsonl(lm / "metrics.jsonl") if r["kind"] == "eval"][0]
    assert f"| {last['heldout_per_byte_edgar']:.4f} ({first['heldout_per_byte_edgar']:.4f}) |" in md[4]  # L7, base
    row = next(s for s in read_jsonl(lm / "samples.jsonl") if s["step"] == last["step"] and s["generator"] == "alice")
    assert f"**lm, the alice generator:**\n\n> {' '.join(row['text'].split())[:400]}" in text
    assert (out / "arms.png").is_file()
    page = (out / "compare.html").read_text()
    assert "<h3>rl, beta 0.2</h3>" in page and html.escape(row["text"]) in page and page.count("<img") == 3
    assert md[0].endswith("| alice names /1k words (books) | edgar names /1k words (books) |")
    assert md[4].endswith(f"| {last['names_alice']:.1f} ({last['names_books_alice']:.1f}) | "
                          f"{last['names_edgar']:.1f} ({last['names_books_edgar']:.1f}) |")
    assert (out / "compare.png").is_file() and (out / "sweep.png").is_file()  # two betas: reward against KL too


def test_a_beta_sweep_makes_one_run_per_value_and_bad_values_are_refused(tiny_neo_base, judge_runs, small_mirror):
    runs = program.teach(argv(tiny_neo_base, judge_runs, "--beta", "0,0.2", "--steps", "1"))
    assert [json.loads((r / "config.json").read_text())["beta_value"] for r in runs] == [0.0, 0.2]
    with pytest.raises(ConfigError, match="finite number >= 0"):
        program.teach(argv(tiny_neo_base, judge_runs, "--beta", "0,-1"))
    with pytest.raises(ConfigError, match="needs an end"):
        program.teach(argv(tiny_neo_base, judge_runs, "--steps", "0"))


@pytest.mark.parametrize("mode", ["lecture", "hf"])
def test_all_positions_at_once_equal_the_sampler_step_by_step(mode):
    """processed_log_probs computes every position at once; step by step with process_scores it is the same."""
    from model.sampler import process_scores, top_k_filter

    model = _tiny()
    bad = torch.zeros(40, dtype=torch.bool)
    bad[0] = True
    s = Sampling(temperature=0.9, top_k=5, repetition_penalty=1.4, penalty_mode=mode, bad_mask=bad)
    ids = generate(model, torch.tensor([[1], [2], [3]]), 12, s, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids)
        fast = processed_log_probs(logits, ids, 1, s)
        plain = []
        for t in range(ids.shape[1] - 1):  # logits at t predict ids[:, t + 1], given ids[:, :t + 1]
            scores = top_k_filter(process_scores(logits[:, t], ids[:, : t + 1], s), 5)
            plain.append(torch.log_softmax(scores, -1).gather(1, ids[:, t + 1 : t + 2]))
    assert torch.allclose(fast, torch.cat(plain, 1), atol=1e-5)


# ----------------------------------------------------------------------------- the pieces of a step, by hand


def _scores_judge(score_of_row):
    """A stand-in for predict_logits: row i of a batch gets the logits (s_i, 0), so P(alice) = sigmoid(s_i)."""
    def predict(judge, input_ids, attention_mask, batch_size=None):
        s = torch.tensor([score_of_row(i) for i in range(len(input_ids))], dtype=torch.float32)
        return torch.stack([s, torch.zeros_like(s)], dim=1)

    return predict


def test_t1_t4_each_generator_rewarded_for_its_own_author_and_rloo_within_each_prompt(tiny_neo_base, judge_runs,
                                                                                       small_mirror, monkeypatch):
    """P = 2 prompts x G = 3 samples; row i of a step's batch scores s_i = i / 2 (rows come prompt by prompt).

    T1: alice's rewards are log sigmoid(s_i), edgar's log sigmoid(-s_i). T4: the baseline of a row is the
    mean of the other two rows of its own prompt, never of the other prompt's."""
    seen = []
    monkeypatch.setattr(program, "predict_logits", _scores_judge(lambda i: i / 2))
    real_loss = program.policy_gradient_loss
    monkeypatch.setattr(program, "policy_gradient_loss",
                        lambda logp, mask, adv: seen.append(adv.clone()) or real_loss(logp, mask, adv))
    [run] = program.teach(argv(tiny_neo_base, judge_runs, "--steps", "1", "--prompts", "2", "--samples", "3"))
    s = [i / 2 for i in range(6)]
    assert len(seen) == 2  # one policy-gradient loss per generator
    for label, (author, advantages) in enumerate(zip(["alice", "edgar"], seen)):
        R = [-math.log1p(math.exp(-x if label == 0 else x)) for x in s]  # log sigmoid(+-s_i)
        by_hand = [R[i] - (sum(R[g : g + 3]) - R[i]) / 2 for g in (0, 3) for i in range(g, g + 3)]
        assert advantages.tolist() == pytest.approx(by_hand, abs=1e-5)
        [train] = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
        assert train[f"reward_{author}"] == pytest.approx(sum(R) / 6, abs=1e-5)
        assert train[f"p_{author}"] == pytest.approx(sum(math.exp(r) for r in R) / 6, abs=1e-5)


def _fake_rows(n: int) -> JudgeBatch:
    """n judge rows whose texts say which candidate they are."""
    return JudgeBatch(torch.arange(n)[:, None], torch.ones(n, 1), [f"candidate {i}" for i in range(n)], [1.0] * n,
                      [0] * n, [torch.tensor([0, i]) for i in range(n)], [1] * n, [0] * n)


def test_t7_best_of_n_picks_within_each_rows_own_group(monkeypatch):
    """2 rows x N = 3 candidates, scores s = (0.1, 0.9, 0.2 | 0.3, 0.1, 0.5): alice (P = sigmoid(s)) keeps
    candidates 1 and 5, edgar (P = sigmoid(-s)) keeps 0 and 4; the best of all six (1) is not row 1's."""
    s = [0.1, 0.9, 0.2, 0.3, 0.1, 0.5]
    monkeypatch.setattr(program, "predict_logits", _scores_judge(lambda i: s[i]))
    monkeypatch.setattr(program, "generate_for_judge", lambda model, start, *args, **kw: _fake_rows(len(start)))
    model = _tiny()
    setup = SimpleNamespace(generators={"alice": model, "edgar": model}, judge=None, neo_tok=None, bert_tok=None)
    judging = SimpleNamespace(row_sampling=RowSampling(L=8, overgen=2, max_rounds=1, sampling=Sampling(top_k=None)),
                              writing=contextlib.nullcontext)
    loop = SimpleNamespace(cfg=SimpleNamespace(best_of=3), setup=setup, judging=judging, judge_calls=0,
                           rngs={"sample_alice": None, "sample_edgar": None}, precision=SimpleNamespace(device="cpu"))
    batches = program.best_of_n_writer(loop)(torch.tensor([[4], [7]]))
    assert batches["alice"].texts == ["candidate 1", "candidate 5"]
    assert batches["edgar"].texts == ["candidate 0", "candidate 4"]
    assert loop.judge_calls == 2 * 6


def test_t8_rewards_logged_per_generator_read_each_ones_own_author():
    """A judgement of 2 rows per generator: P(alice) of alice's rows 0.5, 0.25; P(edgar) of edgar's 0.8, 0.1."""
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.2, 0.8], [0.9, 0.1]])
    texts = SimpleNamespace(texts=["Alice b a", "c d"])
    judgement = SimpleNamespace(log_probs=probs.log(), batches={"alice": texts, "edgar": texts})
    loop = SimpleNamespace(setup=SimpleNamespace(generators={"alice": None, "edgar": None}),
                           cfg=SimpleNamespace(arm="best-of-n", best_of=4), book_name_rates={"alice": 15.0, "edgar": 0.5})
    out = program.judgement_extras(loop, judgement)
    assert out["reward_alice"] == pytest.approx((math.log(0.5) + math.log(0.25)) / 2)
    assert out["reward_edgar"] == pytest.approx((math.log(0.8) + math.log(0.1)) / 2)
    assert (out["names_alice"], out["names_books_alice"]) == (200.0, 15.0)  # T8: 1 name in 5 words; the books' rate
    assert (out["names_edgar"], out["names_books_edgar"]) == (0.0, 0.5)


def _teach_loop(model: GPTNeo, ref: GPTNeo, bad: torch.Tensor | None, **sampler) -> program.TeachLoop:
    """A TeachLoop with just what sequence_log_probs and kl_to_start read: the sampler settings, pi_ref, fp32."""
    from model.half import Precision

    setup = SimpleNamespace(generators={"alice": model})
    rl_rows = RowSampling(sampling=Sampling(bad_mask=bad, **sampler))
    precision = Precision(torch.device("cpu"), "fp32", torch.bfloat16, None, "test")
    return program.TeachLoop(None, 0.1, setup, None, rl_rows, {"alice": ref}, {}, {}, None, precision, 0.0)


def test_the_rl_losss_log_probs_are_those_of_the_distribution_the_sampler_drew_from():
    """teach's sequence_log_probs (the loss's and the KL's) against the sampler's own steps, written out here
    with the run's settings: B10, B9, temperature, top-k, one position at a time."""
    model, bad = _tiny(), torch.zeros(40, dtype=torch.bool)
    bad[[2, 11]] = True
    settings = dict(temperature=0.7, top_k=4, repetition_penalty=1.6, penalty_mode="lecture")
    ids = generate(model, torch.tensor([[1], [5]]), 8, Sampling(bad_mask=bad, **settings), torch.Generator().manual_seed(3))
    mask = torch.ones(2, 8)
    mask[1, 6:] = 0  # row 1 kept 6 tokens
    with torch.no_grad():
        got = program.sequence_log_probs(model, ids, mask, _teach_loop(model, model, bad, **settings))
        logits = model(ids)
    for t in range(8):  # token t + 1 given ids[:, : t + 1]
        log_p = torch.log_softmax(logits[:, t], -1)
        log_p = torch.log_softmax(log_p - token_counts(ids[:, : t + 1], 40) * math.log(1.6), -1)  # B10
        scores = torch.where(bad, float("-inf"), log_p) / 0.7  # B9, temperature
        scores = top_k_filter(scores, 4)
        want = torch.log_softmax(scores, -1).gather(1, ids[:, t + 1 : t + 2])[:, 0] * mask[:, t]
        torch.testing.assert_close(got[:, t], want, atol=1e-5, rtol=1e-5)


def _constant(logits: list[float]) -> GPTNeo:
    """A GPT-Neo whose next-token logits are `logits` whatever the input: ln_f's weight 0, its bias b, and
    W_te = [I; 0], so that logits = W_te b = (b_1, .., b_d, 0, ..)."""
    model = _tiny(vocab=3)
    d = model.config.hidden_size
    with torch.no_grad():
        model.ln_f.weight.zero_()
        model.ln_f.bias.zero_()
        model.ln_f.bias[: len(logits)] = torch.tensor(logits)
        model.wte.weight.zero_()
        model.wte.weight[: min(3, d), : min(3, d)] = torch.eye(min(3, d))
    return model


def test_t2_t3_the_kl_of_a_changed_model_to_its_start_by_hand():
    """pi = softmax(log 2, 0, 0) = (1/2, 1/4, 1/4), pi_ref uniform; a row writes tokens 0 then 1:
    delta = log(3/2), log(3/4); k3 = exp(-delta) - 1 + delta; KL = their mean = 0.05889."""
    pi, ref = _constant([math.log(2), 0.0, 0.0]), _constant([0.0, 0.0, 0.0])
    loop = _teach_loop(pi, ref, None, temperature=1.0, top_k=None, repetition_penalty=1.0, penalty_mode="lecture")
    ids, mask = torch.tensor([[2, 0, 1]]), torch.ones(1, 2)
    with torch.no_grad():
        logp = program.sequence_log_probs(pi, ids, mask, loop)
        kl = program.kl_to_start(loop, "alice", logp, ids, mask)
    k3 = [math.exp(-d) - 1 + d for d in (math.log(1.5), math.log(0.75))]
    assert logp.tolist() == [pytest.approx([math.log(0.5), math.log(0.25)], abs=1e-6)]
    assert kl.item() == pytest.approx(sum(k3) / 2, abs=1e-6) and kl.item() == pytest.approx(0.05889, abs=1e-5)


def test_rl_with_lora_on_a_llama_base_keeps_its_start_as_the_reference(tiny_llama_base, judge_runs, small_mirror):
    """RL from the judge on a Llama with adapters on its q, k, v, o (P1): the reference is the adapters off (P4),
    so the KL at step 0 is 0; the adapters are saved in PEFT's layout beside the merged generator."""
    from model.llama import Llama

    [run] = program.teach(argv(tiny_llama_base, judge_runs, "--lora-rank", "2", "--lora-lr", "1e-2"))
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"]
    assert evals[0]["kl_alice"] == pytest.approx(0.0, abs=1e-6) and evals[-1]["kl_alice"] > 0
    adapter = json.loads((run / "generators" / "alice" / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "CAUSAL_LM"
    assert sorted({m.rsplit(".", 1)[-1] for m in adapter["target_modules"]}) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert Llama.from_pretrained(run / "generators" / "alice").config.num_hidden_layers == 2


def test_generators_write_in_the_sampling_precision_and_the_judges_read_in_their_own(tiny_neo_base, judge_runs,
                                                                                     small_mirror, monkeypatch):
    """Where choose_sampling picks 16 bits, every row is written under its autocast (the RL rows and the judgement's)
    and no judge reads under it; the choice is in the run's config and a resumed run keeps it without measuring."""
    import dataclasses

    import train.judgement as judgement

    seen = {"write": set(), "read": set()}

    def spy(name, real):
        def call(*args, **kwargs):
            seen[name].add(torch.is_autocast_enabled("cpu"))
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(program, "generate_for_judge", spy("write", program.generate_for_judge))
    monkeypatch.setattr(judgement, "generate_for_judge", spy("write", judgement.generate_for_judge))
    monkeypatch.setattr(program, "predict_logits", spy("read", program.predict_logits))
    monkeypatch.setattr(judgement, "predict_logits", spy("read", judgement.predict_logits))
    measured = []
    monkeypatch.setattr(program, "choose_sampling", lambda model, rows, precision, earlier: measured.append(earlier)
                        or dataclasses.replace(precision, name=earlier or "bf16", reason="test"))
    [run] = program.teach(argv(tiny_neo_base, judge_runs, "--steps", "1", "--precision", "bf16"))
    assert seen == {"write": {True}, "read": {False}}
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["sampling_precision"] == "bf16"
    program.teach(["--resume", str(run), "--steps", "2", "--runs-dir", str(judge_runs)])
    assert measured == [None, "bf16"]  # the resumed run is handed its start's choice
