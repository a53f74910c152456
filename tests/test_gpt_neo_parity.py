"""B1: our hand-written GPT-Neo against transformers.GPTNeoForCausalLM: logits and a 30-token
greedy continuation, on tiny random configs and on one shaped like gpt-neo-125M (minGPT-style)."""

from __future__ import annotations

import pytest
import torch

from model.gpt_neo import GPTNeo, KVCache

transformers = pytest.importorskip("transformers")

TINY = {
    "local first, window 8 < 40 tokens": dict(attention_types=[[["local", "global"], 2]], window_size=8),
    "global first": dict(attention_types=[[["global", "local"], 2]], window_size=8),
    "odd stack": dict(attention_types=[[["local"], 1], [["global"], 2], [["local"], 1]], window_size=5),
}


def save_random_reference(folder, **overrides):
    """A random transformers GPT-Neo saved as safetensors in `folder`, and the reloaded reference."""
    torch.manual_seed(0)
    kwargs = dict(vocab_size=211, max_position_embeddings=128, hidden_size=64, num_heads=4,
                  bos_token_id=None, eos_token_id=None, pad_token_id=0)
    kwargs.update(overrides)
    kwargs["num_layers"] = sum(len(kinds) * n for kinds, n in kwargs["attention_types"])
    transformers.GPTNeoForCausalLM(transformers.GPTNeoConfig(**kwargs)).save_pretrained(
        folder, safe_serialization=True
    )
    return transformers.GPTNeoForCausalLM.from_pretrained(str(folder)).eval()


def greedy(model: GPTNeo, ids: torch.Tensor, n: int) -> torch.Tensor:
    """The plainest greedy continuation, with the KV cache: argmax of the last position, n times."""
    cache = KVCache(model.config, ids.shape[0], ids.shape[1] + n)
    logits = model(ids, cache, last_only=True)
    for _ in range(n):
        nxt = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        ids = torch.cat([ids, nxt], dim=1)
        logits = model(nxt, cache, last_only=True)
    return ids


def check_parity(folder, ref, prompt_len: int, seq_len: int, vocab: int) -> None:
    """Logits on seq_len random tokens within 1e-4; greedy 30 tokens after the first prompt_len equal."""
    ours = GPTNeo.from_pretrained(folder)
    torch.manual_seed(1)
    ids = torch.randint(0, vocab, (2, seq_len))
    with torch.no_grad():
        diff = (ours(ids) - ref(ids).logits).abs().max().item()
        assert diff <= 1e-4, diff
        prompt = ids[:, :prompt_len]
        expected = ref.generate(prompt, max_new_tokens=30, do_sample=False,
                                attention_mask=torch.ones_like(prompt))
        assert torch.equal(greedy(ours, prompt, 30), expected)


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_config_logits_and_greedy_match(name, tmp_path):
    ref = save_random_reference(tmp_path, **TINY[name])
    check_parity(tmp_path, ref, prompt_len=10, seq_len=40, vocab=211)


def test_gpt_neo_125m_shaped_random_model_matches(tmp_path):
    """12 layers, width 768, 12 heads, window 256, vocab 50257. Logits on 300 tokens, so the local
    layers cut; greedy from a short prompt (the windowed greedy path is covered by the tiny configs
    and costs minutes in transformers' generate at this size)."""
    ref = save_random_reference(tmp_path, vocab_size=50257, max_position_embeddings=2048,
                                hidden_size=768, num_heads=12, window_size=256,
                                attention_types=[[["global", "local"], 6]])
    check_parity(tmp_path, ref, prompt_len=16, seq_len=300, vocab=50257)


def test_kv_cache_equals_full_forward(tmp_path):
    save_random_reference(tmp_path, **TINY["local first, window 8 < 40 tokens"])
    ours = GPTNeo.from_pretrained(tmp_path)
    ids = torch.randint(0, 211, (3, 40))
    cache = KVCache(ours.config, 3, 40)
    with torch.no_grad():
        steps = [ours(ids[:, :7], cache)] + [ours(ids[:, i : i + 1], cache) for i in range(7, 40)]
        assert (torch.cat(steps, dim=1) - ours(ids)).abs().max().item() <= 1e-5
