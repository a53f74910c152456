"""plumbing/compiling.py: the compiled twin computes what the eager model does; --compile auto decides by measurement."""

from __future__ import annotations

import pytest
import torch

import plumbing.compiling as compiling
from model.bert import Bert, BertClassifier
from model.config import BertConfig
from model.layers import Dropout
from plumbing.compiling import CompileChoice, compiled_twin, compiler_missing

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def tiny_judge(dropout: float) -> BertClassifier:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=32, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertClassifier(Bert(cfg), dropout=dropout)


def step_numbers(model: torch.nn.Module, eager: BertClassifier, ids, mask, y) -> tuple[torch.Tensor, list]:
    """Logits and every gradient of one cross-entropy step through `model` (the gradients land on `eager`)."""
    eager.zero_grad(set_to_none=True)
    logits = model(ids, mask)
    torch.nn.functional.cross_entropy(logits, y).backward()
    return logits.detach(), [p.grad.clone() for p in eager.parameters()]


@pytest.mark.skipif(compiler_missing() is not None, reason=str(compiler_missing()))
def test_the_compiled_step_gives_the_eager_numbers_dropout_included():
    """With the same seed the compiled twin draws the eager model's dropout masks (model/layers.py:dropout_keep_bits_like),
    so a training step gives the same logits and gradients, padding and all."""
    judge = tiny_judge(dropout=0.1).train()
    ids = torch.randint(5, 100, (4, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # one padded row: the compiled graph always adds the mask, eager only when there is padding
    y = torch.tensor([0, 1, 1, 0])
    torch.manual_seed(7)
    eager_logits, eager_grads = step_numbers(judge, judge, ids, mask, y)
    twin = compiled_twin(judge)
    torch.manual_seed(7)
    twin_logits, twin_grads = step_numbers(twin, judge, ids, mask, y)
    assert torch.allclose(twin_logits, eager_logits, atol=1e-5)
    for a, b in zip(twin_grads, eager_grads):
        assert torch.allclose(a, b, atol=1e-5)
    torch.manual_seed(8)  # another seed, other masks: the test can tell masks apart
    assert not torch.allclose(step_numbers(twin, judge, ids, mask, y)[0], eager_logits, atol=1e-3)
    assert next(twin.parameters()) is next(judge.parameters())  # the same weights: the optimizer needs no change


@pytest.mark.skipif(compiler_missing() is not None, reason=str(compiler_missing()))
def test_compiled_dropout_keeps_its_forward_mask_for_the_backward():
    """The mask is drawn once (`nondeterministic_seeded`): the gradient is 1/(1 - p) exactly where the output was kept."""
    drop = torch.compile(Dropout(0.25).train())
    x = torch.ones(400_000, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    assert abs((y == 0).float().mean().item() - 0.25) < 0.005
    assert torch.equal(x.grad, (y != 0).float() / 0.75)


@pytest.fixture
def remembered(tmp_path, monkeypatch):
    """The remembered compile times in a temporary file; a stand-in twin, so no test here waits for a compile."""
    monkeypatch.setattr(compiling, "compile_times_file", lambda: tmp_path / "seconds.json")
    monkeypatch.setattr(compiling, "compiled_twin", lambda model: "the compiled twin")
    monkeypatch.setattr(compiling, "compiler_missing", lambda: None)
    return tmp_path / "seconds.json"


def run_steps(choice: CompileChoice, seconds: list[float]) -> tuple[list, list]:
    """The model each step ran and the lines the choice printed, for steps that took `seconds`."""
    ran, lines = [], []
    for s in seconds:
        ran.append(choice.model("eager"))
        lines.append(choice.record(s))
    return ran, [line for line in lines if line]


def test_auto_stays_eager_when_the_steps_left_take_less_than_compiling_did(remembered):
    compiling.remember("judge x", compile_s=30.0)
    ran, lines = run_steps(CompileChoice("auto", "judge x", steps=100), [2.0] + [0.2] * 9)
    assert ran == ["eager"] * 10  # 97 steps x 0.2 s = 19 s < 30 s of compiling
    assert len(lines) == 1 and "30 s here last time" in lines[0]
    compiling.remember("judge x", speedup=2.0)  # a compiled step at half the time saves half of each step
    ran, lines = run_steps(CompileChoice("auto", "judge x", steps=250), [2.0] + [0.2] * 3)
    assert ran == ["eager"] * 4 and "could save ~25 s over the 247 steps left" in lines[0]  # 247 x 0.2 x 1/2 < 30


def test_auto_never_compiles_what_was_slower_compiled_here(remembered):
    compiling.remember("judge z", compile_s=30.0, speedup=0.8)
    ran, lines = run_steps(CompileChoice("auto", "judge z", steps=10_000), [2.0] + [1.0] * 3)
    assert ran == ["eager"] * 4 and "1.25x as slow as eager here last time" in lines[0]



def test_auto_tries_compiling_and_keeps_the_faster_step(remembered):
    choice = CompileChoice("auto", "judge x", steps=1000)
    ran, lines = run_steps(choice, [2.0, 1.0, 1.4, 9.0, 0.9, 0.6, 0.6])  # warm-up, 2 eager, compile, 2 compiled
    assert ran == ["eager"] * 3 + ["the compiled twin"] * 4
    assert choice.on and choice.times == {"eager_s": 1.0, "compile_s": 8.0, "compiled_s": 0.6}  # the fastest of each
    assert compiling.remembered("judge x") == {"compile_s": 8.0, "speedup": pytest.approx(1 / 0.6, abs=1e-3)}  # kept
    assert "0.600 s compiled against 1.000 s eager" in lines[0]


def test_auto_goes_back_to_eager_when_the_compiled_step_is_not_faster(remembered):
    choice = CompileChoice("auto", "judge y", steps=1000)
    ran, _ = run_steps(choice, [2.0, 1.4, 1.0, 9.0, 1.2, 1.1, 1.0, 1.0])  # the compiled step's best is the slower
    assert ran == ["eager"] * 3 + ["the compiled twin"] * 3 + ["eager"] * 2
    assert not choice.on and choice.reason.startswith("eager:")


def test_on_and_off_do_as_told(remembered):
    assert run_steps(CompileChoice("on", "k", steps=5), [1.0] * 5)[0] == ["the compiled twin"] * 5
    assert run_steps(CompileChoice("off", "k", steps=5), [1.0] * 5)[0] == ["eager"] * 5
    with pytest.raises(ValueError, match="--compile must be one of"):
        CompileChoice("sometimes", "k", steps=5)


def test_without_a_compiler_the_program_says_so_and_runs_eager(monkeypatch):
    monkeypatch.setattr(compiling, "compiler_names", lambda: ["no-such-compiler-here"])  # (torch's own config is
    # left alone: a patched entry of it is hidden for good once restored)
    choice = CompileChoice("on", "k", steps=5)
    assert "no C++ compiler" in choice.reason and run_steps(choice, [1.0] * 3)[0] == ["eager"] * 3
