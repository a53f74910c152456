"""model/half.py: B5 cast to 16 bits, LayerNorm kept float32, memory ratio ~0.5, outputs close."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from model.bert import Bert, BertClassifier
from model.half import cast_half, default_half_dtype, parameter_bytes
from test_checkpoint import TINY


def _tiny_judge() -> BertClassifier:
    torch.manual_seed(0)
    return BertClassifier(Bert(TINY)).eval()


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(1000, 20000, (3, 24))
    mask = torch.ones_like(x)
    mask[2, 15:] = 0  # one padded row: the additive mask must work in 16 bits too
    return x, mask


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cast_halves_memory_and_keeps_layernorm_float32(dtype: torch.dtype) -> None:
    model = _tiny_judge()
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
    assert len(info["kept_float32"]) == 2 * (2 * TINY.num_hidden_layers + 1)  # weight+bias of every LayerNorm
    with torch.no_grad():
        out = model(x, mask)
    assert out.dtype == dtype
    assert torch.allclose(out.float(), ref, atol=0.05)


def test_default_dtype_and_bad_dtype() -> None:
    assert default_half_dtype("cpu") == torch.bfloat16 and default_half_dtype("cuda") == torch.float16
    model = _tiny_judge()
    assert cast_half(model)["dtype"] == "bfloat16"  # the model is on the CPU
    with pytest.raises(ValueError, match="float16 or torch.bfloat16"):
        cast_half(_tiny_judge(), torch.float32)


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
