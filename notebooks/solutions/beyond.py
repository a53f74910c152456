"""Solutions to the exercises of notebooks/beyond.ipynb. tests/test_notebooks.py runs every `exercise_` function;
each checks its answer, so a change to the library that makes an answer wrong fails the suite."""

from __future__ import annotations

import torch

from data.windows import Specials, text_ids, text_windows
from eval.attribution import baseline_windows, integrated_gradients
from model.bert import Bert, BertClassifier
from model.lora import LoRALinear, merge_lora
from tokenizer_bridge.load import load_bert_tokenizer
from train.rl import best_of_n_kl_bound, kl_k3, rloo_advantages
from weights import resolve


def exercise_1_t4_equal_rewards() -> list[float]:
    """Every advantage is 0: each sample is exactly as good as the others' mean, so none is pushed up or down. A
    prompt whose samples all please the judge alike teaches nothing, which is right."""
    a = rloo_advantages(torch.full((1, 4), -0.7))
    assert torch.equal(a, torch.zeros(1, 4))
    return a[0].tolist()


def exercise_2_t3_k3_is_never_negative() -> float:
    """k3 = e^-d - 1 + d >= 0 for every d (e^x >= 1 + x with x = -d), 0 only at d = 0. (In floating point, e^-d - 1
    cancels near d = 0: in float32 a tiny negative number can come out, so this runs in float64.)"""
    delta = torch.linspace(-3, 3, 61, dtype=torch.float64)[:, None]
    k3 = kl_k3(delta, torch.ones(61, 1, dtype=torch.float64))  # one token per row: k3 of each delta
    assert bool((k3 >= -1e-12).all()) and float(k3.min()) < 1e-12 and float(k3[0]) > float(k3[-1]) > 0
    return float(k3.min())


def exercise_3_t7_how_many_samples_for_one_nat() -> int:
    """log N - (N - 1)/N first exceeds 1 at N = 7 (N = 6: 0.958, N = 7: 1.089)."""
    n = next(n for n in range(1, 100) if best_of_n_kl_bound(n) > 1)
    assert n == 7
    return n


def exercise_4_p3_merge() -> float:
    """P3: W <- W + (alpha/r) B A gives the same outputs, and the merged layer is a plain Linear again."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(LoRALinear(torch.nn.Linear(6, 4), rank=2, alpha=8.0))
    with torch.no_grad():
        model[0].lora_B.normal_()
    x = torch.randn(3, 6)
    before = model(x)
    merged = merge_lora(model)
    assert isinstance(merged[0], torch.nn.Linear) and not isinstance(merged[0], LoRALinear)
    gap = float((merged(x) - before).abs().max().detach())
    assert gap < 1e-5
    return gap


def exercise_5_e1_riemann_points() -> int:
    """E1's right Riemann sum needs many more points than Clenshaw-Curtis for the same completeness: double m until the
    words add up to the logit's change within 1e-2."""
    torch.manual_seed(0)
    judge = BertClassifier(Bert.from_pretrained(resolve("minilm")), ["alice", "edgar"]).eval()
    tok = load_bert_tokenizer(resolve("minilm"))
    sp = Specials.of(tok)
    x, mask = text_windows(text_ids(tok, "Quoth the Raven, nevermore."), 64, sp)
    baseline = baseline_windows(x, sp)
    with torch.no_grad():
        change = float(judge(x, mask)[0, 1] - judge(baseline, mask)[0, 1])
    m = 1
    while abs(float(integrated_gradients(judge, x, mask, 1, baseline, m, "riemann").sum()) - change) > 1e-2:
        m *= 2
    assert m > 1 and abs(float(integrated_gradients(judge, x, mask, 1, baseline, 32).sum()) - change) < 1e-3
    return m
