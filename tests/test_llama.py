"""L1-L5: the hand-written Llama-family decoder against transformers.LlamaForCausalLM on tiny random configs
(grouped-query attention with several group sizes), each equation by hand, and the fast attention against
the plain one."""

from __future__ import annotations

import math

import pytest
import torch

from model.config import ConfigError, LlamaConfig
from model.gpt_neo import KVCache
from model.llama import Llama, apply_rope, reference_attention, repeat_kv, rms_norm, rope_angles
from model.sampler import Sampling, generate

transformers = pytest.importorskip("transformers")

GROUPS = {"GQA 6 heads / 2 groups": (6, 2), "MQA 4 / 1": (4, 1), "MHA 4 / 4": (4, 4), "SmolLM2's 9 / 3": (9, 3)}


def save_random_reference(folder, heads: int, groups: int):
    """A random transformers Llama with tied embeddings saved in `folder`, and the reloaded reference."""
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=151, hidden_size=heads * 8, intermediate_size=40, num_hidden_layers=3,
                                   num_attention_heads=heads, num_key_value_heads=groups, max_position_embeddings=96,
                                   rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                                   bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():  # random norm weights, so that a wrong g would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(folder, safe_serialization=True)
    return transformers.LlamaForCausalLM.from_pretrained(str(folder)).eval()


@pytest.mark.parametrize("name", list(GROUPS))
def test_tiny_llama_logits_and_greedy_continuation_match_transformers(name, tmp_path):
    ref = save_random_reference(tmp_path, *GROUPS[name])
    ours = Llama.from_pretrained(tmp_path)
    torch.manual_seed(1)
    ids = torch.randint(3, 151, (2, 40))
    with torch.no_grad():
        diff = (ours(ids) - ref(ids).logits).abs().max().item()
        assert diff <= 1e-4, diff
        prompt = ids[:, :7]
        expected = ref.generate(prompt, max_new_tokens=30, do_sample=False, attention_mask=torch.ones_like(prompt),
                                eos_token_id=None)
        greedy = Sampling(do_sample=False, repetition_penalty=1.0, top_k=None)
        assert torch.equal(generate(ours, prompt, 30, greedy), expected)


def test_our_saved_folder_is_what_transformers_loads(tmp_path):
    ref = save_random_reference(tmp_path / "a", 6, 2)
    Llama.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "b")
    again = transformers.LlamaForCausalLM.from_pretrained(str(tmp_path / "b")).eval()
    ids = torch.randint(3, 151, (1, 12))
    with torch.no_grad():
        assert torch.equal(again(ids).logits, ref(ids).logits)


def test_the_kv_cache_gives_the_logits_of_the_whole_sequence():
    model = Llama(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)).eval()
    ids = torch.randint(0, 50, (2, 12))
    cache = KVCache(model.config, 2, 12)
    with torch.no_grad():
        full = model(ids)
        steps = [model(ids[:, :5], cache)] + [model(ids[:, t : t + 1], cache) for t in range(5, 9)]
        steps.append(model(ids[:, 9:], cache))  # three tokens at once after the cache: the masked branch
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_l1_rms_norm_by_hand():
    x, g = torch.tensor([[3.0, -4.0]]), torch.tensor([2.0, 0.5])
    rms = math.sqrt((9 + 16) / 2 + 1e-5)
    assert rms_norm(x, g, 1e-5)[0].tolist() == pytest.approx([2 * 3 / rms, 0.5 * -4 / rms])


def test_l2_rope_rotates_each_pair_by_p_theta_j_and_the_gguf_layout_is_a_permutation_of_it():
    d, base, p = 8, 100.0, 3
    cos, sin = rope_angles(torch.tensor([p]), d, base)
    x = torch.randn(1, 1, 1, d)
    y = apply_rope(x, cos, sin)
    for j in range(d // 2):  # the Hugging Face layout pairs (j, j + d/2)
        a, b, angle = x[..., j].item(), x[..., j + d // 2].item(), p * base ** (-2 * j / d)
        assert y[..., j].item() == pytest.approx(a * math.cos(angle) - b * math.sin(angle), abs=1e-5)
        assert y[..., j + d // 2].item() == pytest.approx(a * math.sin(angle) + b * math.cos(angle), abs=1e-5)
    # The same rotation on adjacent pairs (2j, 2j+1), as GGUF files store them, is this one up to the
    # permutation that interleaves the halves.
    interleave = torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], dim=1).flatten()
    xa, ya = x[..., interleave], y[..., interleave]
    for j in range(d // 2):
        angle = p * base ** (-2 * j / d)
        assert ya[..., 2 * j].item() == pytest.approx(xa[..., 2 * j].item() * math.cos(angle)
                                                      - xa[..., 2 * j + 1].item() * math.sin(angle), abs=1e-5)


def test_l3_head_h_reads_group_h_g_over_h():
    kv = torch.arange(3.0).view(1, 3, 1, 1)  # 3 groups
    assert repeat_kv(kv, 3).flatten().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # 9 heads: floor(h * 3 / 9)


def test_the_fused_attention_equals_the_plain_one():
    """The fused kernel with its groups read in place (enable_gqa) = L3's plain line: groups repeated, causal softmax;
    over a whole window, and for one new token after a cache."""
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 6, 9, 8), torch.randn(2, 2, 9, 8), torch.randn(2, 2, 9, 8)
    plain = reference_attention(q, repeat_kv(k, 3), repeat_kv(v, 3), 0)
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(plain, fused, atol=1e-5, rtol=1e-5)
    last = torch.nn.functional.scaled_dot_product_attention(q[:, :, -1:], k, v, enable_gqa=True)
    torch.testing.assert_close(reference_attention(q[:, :, -1:], repeat_kv(k, 3), repeat_kv(v, 3), 8), last,
                               atol=1e-5, rtol=1e-5)


def test_a_config_we_do_not_implement_is_refused():
    good = LlamaConfig().to_hf()
    for change in ({"num_key_value_heads": 2}, {"hidden_act": "gelu"}, {"tie_word_embeddings": False},
                   {"rope_scaling": {"type": "linear", "factor": 2.0}},
                   {"rope_parameters": {"rope_theta": 1e4, "rope_type": "linear"}}):
        with pytest.raises(ConfigError):
            LlamaConfig.from_hf(dict(good, **change))
    assert LlamaConfig.from_hf(good) == LlamaConfig()
    assert LlamaConfig.from_hf(dict(good, rope_parameters=None, rope_theta=5.0)).rope_theta == 5.0  # the older place


def test_hidden_states_are_the_residual_stream_of_the_full_forward_and_stop_at_the_last_block_asked_for():
    model = Llama(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)).eval()
    ids = torch.randint(0, 50, (2, 10))
    seen, calls = {}, []
    for i, block in enumerate(model.layers, start=1):
        block.register_forward_hook(lambda _m, _inp, out, i=i: seen.__setitem__(i, out))
        block.register_forward_pre_hook(lambda _m, _inp, i=i: calls.append(i))
    with torch.no_grad():
        model(ids)
        calls.clear()
        first, second = model.hidden_states(ids, [1, 2])
    assert torch.equal(first, seen[1]) and torch.equal(second, seen[2])
    assert calls == [1, 2]  # the third block is not run
