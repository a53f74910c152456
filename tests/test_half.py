"""model/half.py: B5 cast to 16 bits, LayerNorm kept float32, memory ratio ~0.5, outputs close."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.bert import Bert, BertClassifier
from model.half import cast_half, default_half_dtype, parameter_bytes
from model.layers import LayerNorm


@pytest.fixture
def tiny_judge(tiny_bert_config):
    def make() -> BertClassifier:
        torch.manual_seed(0)
        return BertClassifier(Bert(tiny_bert_config)).eval()
    return make


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(1000, 20000, (3, 24))
    mask = torch.ones_like(x)
    mask[2, 15:] = 0  # one padded row: the additive mask must work in 16 bits too
    return x, mask


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cast_halves_memory_and_keeps_layernorm_float32(dtype: torch.dtype, tiny_judge, tiny_bert_config) -> None:
    model = tiny_judge()
    x, mask = _inputs()
    with torch.no_grad():
        ref = model(x, mask)
    params = list(model.parameters())
    info = cast_half(model, dtype)
    assert info["ratio"] == pytest.approx(0.5, abs=0.02)  # B5: M_half ~ 1/2 M_fp32
    assert info["bytes_after"] == parameter_bytes(model)
    assert all(a is b for a, b in zip(params, model.parameters()))  # in place, same Parameter objects
    for name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            want = torch.float32 if isinstance(module, nn.LayerNorm) else dtype
            assert p.dtype == want, name
    assert len(info["kept_float32"]) == 2 * (2 * tiny_bert_config.num_hidden_layers + 1)  # weight+bias of every LayerNorm
    with torch.no_grad():
        out = model(x, mask)
    assert out.dtype == dtype
    assert torch.allclose(out.float(), ref, atol=0.05)


def test_default_dtype_and_bad_dtype(tiny_judge) -> None:
    assert default_half_dtype("cpu") == torch.bfloat16 and default_half_dtype("cuda") == torch.float16
    model = tiny_judge()
    assert cast_half(model)["dtype"] == "bfloat16"  # the model is on the CPU
    with pytest.raises(ValueError, match="float16 or torch.bfloat16"):
        cast_half(tiny_judge(), torch.float32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_layernorm_computes_in_float32_inside_the_half_judge(dtype: torch.dtype, tiny_judge) -> None:
    """B5's reason for keeping LayerNorm out of the cast: rows with a large mean lose their digits in 16 bits.

    The output must be the float32 computation rounded once to 16 bits; a LayerNorm computed in
    16 bits (what `.half()` on the whole model gives) differs, and fails here.
    """
    torch.manual_seed(0)
    x = (100.0 + 0.5 * torch.randn(4, 384)).to(dtype)  # a large mean, a small spread
    ln = LayerNorm(384)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.1, 0.1)
    in_float32 = F.layer_norm(x.float(), (384,), ln.weight, ln.bias, ln.eps).to(dtype)
    in_16_bits = F.layer_norm(x, (384,), ln.weight.to(dtype), ln.bias.to(dtype), ln.eps)
    assert not torch.equal(in_float32, in_16_bits)  # the test can tell the two apart
    assert torch.equal(ln(x), in_float32)
    model = tiny_judge()
    cast_half(model, dtype)
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((i[0].dtype, m.weight.dtype, o.dtype)))
             for m in model.modules() if isinstance(m, nn.LayerNorm)]
    with torch.no_grad():
        model(torch.randint(1000, 2000, (2, 8)))
    for h in hooks:
        h.remove()
    assert seen and all(w == torch.float32 and o == i for i, w, o in seen)


def test_minilm_judge_ratio_and_agreement(minilm_folder: Path) -> None:
    model = BertClassifier(Bert.from_pretrained(minilm_folder)).eval()
    half = copy.deepcopy(model)
    info = cast_half(half)
    assert info["ratio"] == pytest.approx(0.5, abs=0.02)
    assert info["bytes_before"] > 80 * 2**20  # 22.7 M float32 parameters
    x, mask = _inputs()
    with torch.no_grad():
        _, pooled32 = model.bert(x, mask)
        _, pooled16 = half.bert(x, mask)
    assert (pooled32 - pooled16.float()).abs().max() < 0.05
