"""The attention a Llama trains with (plumbing/kernels.py): the plain line and the fused kernel give the same numbers,
and the faster one on this machine is chosen by measurement."""

from __future__ import annotations

import math

import pytest
import torch

from model.config import LlamaConfig
from model.half import Precision
from model.llama import Llama, set_attention_kernel
from plumbing import kernels as K

CPU = torch.device("cpu")
BF16 = Precision(CPU, "bf16", torch.bfloat16, 4.5, "measured")
FP32 = Precision(CPU, "fp32", torch.bfloat16, 1.0, "measured")


def tiny_llama() -> Llama:
    torch.manual_seed(0)
    return Llama(LlamaConfig(vocab_size=60, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64))


def logits_and_grads(model: Llama, ids: torch.Tensor, precision: Precision):
    model.zero_grad(set_to_none=True)
    with precision.autocast():
        logits = model(ids)
    logits.float().logsumexp(-1).mean().backward()
    return logits.float().detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("precision, tolerance", [(FP32, 1e-5), (BF16, 3e-2)])
def test_the_plain_kernel_trains_like_the_fused_one(precision, tolerance) -> None:
    """Over whole windows the plain line (groups repeated, causal softmax) gives the fused kernel's logits and
    gradients: to float32 rounding, and to bfloat16's under autocast."""
    model, ids = tiny_llama(), torch.randint(0, 60, (3, 20))
    fused = logits_and_grads(model, ids, precision)
    set_attention_kernel(model, "plain")
    assert {m.kernel for m in model.modules() if hasattr(m, "kernel")} == {"plain"}
    plain = logits_and_grads(model, ids, precision)
    torch.testing.assert_close(plain[0], fused[0], atol=tolerance, rtol=tolerance)
    for name in fused[1]:
        scale = fused[1][name].abs().max().item()
        assert (plain[1][name] - fused[1][name]).abs().max().item() <= tolerance * max(scale, 1e-3), name
    with pytest.raises(ValueError, match="one of fused, plain"):
        set_attention_kernel(model, "flash")


@pytest.mark.parametrize("took, chosen", [({"fused": 2.0, "plain": 1.0}, "plain"),
                                          ({"fused": 1.05, "plain": 1.0}, "fused"),
                                          ({"fused": 1.0, "plain": 3.0}, "fused")])
def test_the_plain_line_is_chosen_only_where_measured_faster(took, chosen) -> None:
    """KERNEL_MARGIN faster or the fused kernel; the choice is set on every layer, and the reason gives both times."""
    models, asked = [tiny_llama(), tiny_llama()], []
    kernel, why = K.choose_attention_kernel(models, 8, 128, BF16,
                                            seconds=lambda m, r, t, p: asked.append((m, r, t)) or took)
    assert (kernel, asked) == (chosen, [(models[0], 8, 128)])  # measured on the first
    assert {block.self_attn.kernel for m in models for block in m.layers} == {chosen}  # set on all
    assert f"{took['fused'] * 1e3:.1f} ms" in why and f"{took['plain'] * 1e3:.1f} ms" in why


def test_a_resumed_run_keeps_its_kernel_and_gpt_neo_keeps_its_own() -> None:
    def never(*args):
        raise AssertionError("measured")

    model = tiny_llama()
    assert K.choose_attention_kernel([model], 8, 128, BF16, earlier="plain", seconds=never)[0] == "plain"
    assert model.layers[1].self_attn.kernel == "plain"
    from model.config import GPTNeoConfig
    from model.gpt_neo import GPTNeo

    neo = GPTNeo(GPTNeoConfig(vocab_size=60, hidden_size=32, num_layers=2, num_heads=2, max_position_embeddings=64,
                              attention_layers=["global", "local"], window_size=8))
    assert K.choose_attention_kernel([neo], 8, 128, BF16, seconds=never)[0] == "fused"


def test_the_kernels_are_timed_on_the_model_without_touching_it() -> None:
    """Both kernels timed; the run's random numbers, the layer's kernel and its weights' gradients as they were."""
    model = tiny_llama()
    state = torch.random.get_rng_state()
    took = K.attention_seconds(model, 2, 16, BF16)
    assert set(took) == {"fused", "plain"} and all(0 < t < math.inf for t in took.values())
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model.layers[0].self_attn.kernel == "fused"
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
