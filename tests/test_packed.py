"""model/packed.py: weights packed once for the sampler's rows give the plain layers' numbers, and are put back."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import model.packed as packed
from model.config import LlamaConfig
from model.gpt_neo import last_logits
from model.llama import Llama
from model.lora import add_lora, lora_layers
from model.sampler import Sampling, generate
from tests.test_sampler import tiny_model

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="MKL's packed products are not here")]

TINY_LLAMA = LlamaConfig(vocab_size=97, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6,
                         num_key_value_heads=2, max_position_embeddings=64)


@pytest.fixture
def always_pack(monkeypatch):
    """Packing chosen whatever this machine measures, so the packed path is the one tested."""
    monkeypatch.setattr(packed, "packing_pays", lambda model, rows, steps: (True, "packed (the test's choice)"))


def test_a_packed_layer_gives_the_layers_numbers_for_its_rows_and_for_any_other():
    torch.manual_seed(0)
    layer = nn.Linear(64, 96)
    stand_in = packed.PackedLinear(layer, rows=8)
    with torch.no_grad():
        for x in (torch.randn(8, 64), torch.randn(8, 1, 64), torch.randn(3, 64)):
            torch.testing.assert_close(stand_in(x), layer(x), rtol=1e-6, atol=1e-6)
    x = torch.randn(8, 64, requires_grad=True)  # with a gradient wanted: the layer's own product, differentiable
    stand_in(x).sum().backward()
    assert x.grad is not None


def llama_with_lora() -> Llama:
    """LoRA on the attention (its frozen layers are nn.Linear inside LoRALinear), B nonzero so the update counts."""
    model = Llama(TINY_LLAMA).eval()
    add_lora(model, rank=2, alpha=4.0)
    for _, layer in lora_layers(model):
        torch.nn.init.normal_(layer.lora_B, std=0.5)
    return model


def gpt_neo_with_biases():
    """The tiny GPT-Neo with nonzero biases (they start at zero), so a product that dropped them would show."""
    model = tiny_model()
    for layer in packed.linear_layers(model):
        if layer.bias is not None:
            torch.nn.init.normal_(layer.bias, std=0.5)
    return model


@pytest.mark.parametrize("make", [gpt_neo_with_biases, lambda: Llama(TINY_LLAMA).eval(), llama_with_lora],
                         ids=["gpt-neo", "llama", "llama-lora"])
def test_generation_with_packed_weights_gives_the_plain_logits_and_tokens(make, always_pack, monkeypatch):
    torch.manual_seed(1)
    model = make()
    start = torch.randint(0, 40, (5, 3))
    seen = {}

    def run(name):
        logits = []
        ids = generate(model, start, 12, Sampling(top_k=10), torch.Generator().manual_seed(0),
                       watch=lambda lg, scores, nxt: logits.append(lg.clone()))
        seen[name] = (ids, torch.stack(logits))

    run("packed")
    monkeypatch.setattr(packed, "packing_pays", lambda model, rows, steps: (False, "plain (the test's choice)"))
    run("plain")
    assert torch.equal(seen["packed"][0], seen["plain"][0])
    torch.testing.assert_close(seen["packed"][1], seen["plain"][1], rtol=1e-5, atol=1e-6)


def test_packing_swaps_every_linear_layer_and_the_head_while_inside_and_puts_them_back(always_pack):
    model = Llama(TINY_LLAMA).eval()
    layers = {name: m for name, m in model.named_modules() if type(m) is nn.Linear}
    keys = set(model.state_dict())
    head = model.head_weight()
    x = torch.randn(4, TINY_LLAMA.hidden_size)
    with torch.no_grad():
        plain_head = last_logits(x, head)
        with pytest.raises(RuntimeError, match="stop"), packed.packed_weights(model, 4, 100) as why:
            assert why.startswith("packed")
            stand_ins = {name: m for name, m in model.named_modules() if isinstance(m, packed.PackedLinear)}
            assert set(stand_ins) == set(layers)
            assert packed.head_product(x, head) is not None
            torch.testing.assert_close(last_logits(x, head), plain_head, rtol=1e-6, atol=1e-6)
            raise RuntimeError("stop")  # leaving by an error puts everything back too
    assert {name: m for name, m in model.named_modules() if type(m) is nn.Linear} == layers
    assert set(model.state_dict()) == keys
    assert packed.head_product(x, head) is None


def test_nothing_is_packed_under_bfloat16_autocast_or_with_gradients(always_pack):
    model = Llama(TINY_LLAMA).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad(), packed.packed_weights(model, 4, 100) as why:
        assert why.startswith("plain") and not any(isinstance(m, packed.PackedLinear) for m in model.modules())
    with packed.packed_weights(model, 4, 100) as why:  # gradients on
        assert why.startswith("plain")


def test_the_times_are_measured_once_for_the_models_shapes_and_the_choice_counts_the_steps():
    first = packed.packing_seconds(Llama(TINY_LLAMA), 4)
    assert set(first) == {"plain", "packed", "pack"} and all(0 < s < float("inf") for s in first.values())
    assert packed.packing_seconds(Llama(TINY_LLAMA), 4) is first  # once per shapes, rows and threads
    assert packed.packing_seconds(Llama(TINY_LLAMA), 5) is not first
    why = packed.packing_pays(Llama(TINY_LLAMA), 4, 30)[1]
    assert why.startswith(("packed", "plain")) and "of 15 matrices for 4 rows" in why and "for 30 steps" in why


def test_packing_is_chosen_only_where_the_steps_pay_for_it():
    took = {"plain": 0.010, "packed": 0.008, "pack": 0.100}  # 2 ms saved a step, 100 ms to pack
    assert not packed.pays_back(took, 50) and packed.pays_back(took, 51)
    assert not packed.pays_back(dict(took, packed=0.0099), 10_000)  # 1 % faster: under PACKING_MARGIN, never
    assert not packed.pays_back(took, 0)  # a generation of one token packs nothing
