"""A Llama-family decoder (L1-L5), such as SmolLM2-135M, in the Hugging Face layout.

    x = E[ids]                                               (B, T, d)
    for each of the n layers:                                 L5
        h = x + Attn(RMSNorm(x))                              L1, L2 (RoPE on q and k), L3 (grouped-query)
        x = h + FFN(RMSNorm(h))                               L4 (SwiGLU)
    logits = RMSNorm(x) E^T                                   the tied head

No biases anywhere, no dropout (a pretrained 135M model is fine-tuned without it here). Beside the fast
attention (PyTorch's fused kernel) sits `reference_attention`, the plain one, and a test that they agree.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import LlamaConfig
from model.gpt_neo import last_logits, lm_head
from model.layers import merge_heads, split_heads
from model.loading import WEIGHTS_FILE, check_head_is_tied, load_with_table, save_hf_folder, to_hf_state


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """L1: y = x / sqrt(mean(x^2) + eps) * g -- no mean subtracted, no bias; computed in float32."""
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * y.to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def rope_angles(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the L2 angles p theta_j, theta_j = base^(-2j/d_head), for each position: 2 x (T, d_head).

    Each angle appears twice, at j and at j + d_head/2: the Hugging Face layout rotates those two
    dimensions together (see `apply_rope`).
    """
    theta = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))  # (d_head/2,)
    angles = positions.float()[:, None] * theta[None, :]  # (T, d_head/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, d_head)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """L2: rotate each pair of dimensions of a query or key at position p by the angle p theta_j.

    (x_a, x_b) -> (x_a cos - x_b sin, x_a sin + x_b cos). In the Hugging Face layout used here the
    pair is (j, j + d_head/2), the two halves; a GGUF file pairs (2j, 2j+1) instead, with the query
    and key rows permuted to match (model/gguf.py undoes that). x (B, nh, T, d_head).
    """
    x_a, x_b = x.chunk(2, dim=-1)  # the two halves (a chunk's backward is one cat; a slice's fills zeros first)
    rotated = torch.cat([-x_b, x_a], dim=-1)  # (-x_b, x_a) in each pair's slots
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def repeat_kv(kv: torch.Tensor, n_rep: int) -> torch.Tensor:
    """L3: head h of H reads key/value group floor(h G / H): each of the G groups repeated H/G times.

    (B, G, T, d_head) -> (B, H, T, d_head).
    """
    return kv.repeat_interleave(n_rep, dim=1)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
    """L3, the plain line: softmax(q k^T / sqrt(d_head) + M) v, M_ij = -inf where key j comes after query i, else 0;
    queries at positions start.. start+Tq-1.

    q (B, H, Tq, d), k and v (B, H, start + Tq, d) -> (B, H, Tq, d). Three choices for speed that leave the equation as it is:
    q is scaled rather than the scores (fewer numbers); the mask is added rather than filled in (an addition's
    backward is free); the softmax keeps the scores' dtype (PyTorch's kernel sums in float32 inside, and a
    float32 copy of 16-bit scores would cost more than the products).
    """
    scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
    future = torch.full(scores.shape[-2:], float("-inf"), dtype=scores.dtype, device=q.device).triu(start + 1)
    return torch.softmax(scores + future, dim=-1) @ v  # a query sees itself and the keys before it


class LlamaAttention(nn.Module):
    """Grouped-query self-attention with RoPE (L2, L3)."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        d = cfg.hidden_size
        self.q_proj = nn.Linear(d, self.n_head * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, d, bias=False)
        self.kernel = "fused"  # or "plain": the plain line over whole windows too (set_attention_kernel)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache=None, layer: int = 0) -> torch.Tensor:
        """(B, T, d) -> (B, T, d). With a `cache` (model/gpt_neo.py:KVCache), x holds the T tokens after it."""
        T = x.shape[1]
        q = split_heads(self.q_proj(x), self.n_head)  # (B, H, T, d_head)
        k, v = split_heads(self.k_proj(x), self.n_kv), split_heads(self.v_proj(x), self.n_kv)  # (B, G, T, d_head)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        start = 0
        if cache is not None:
            start = cache.length
            k, v = cache.append(layer, k, v)  # (B, G, start + T, d_head)
        if (start != 0 and T > 1) or (cache is None and self.kernel == "plain"):
            # the plain line: each group repeated for its heads (L3), then the causal softmax
            n_rep = self.n_head // self.n_kv
            y = reference_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), start)
        else:  # the fast twin: PyTorch's fused kernel reads each group in place for its heads (enable_gqa),
            # causal over the whole window, or unmasked for one new token, which sees every key before it
            y = F.scaled_dot_product_attention(q, k, v, is_causal=start == 0, enable_gqa=True)
        return self.o_proj(merge_heads(y))  # (B, T, H d_head)


class SwiGLU(nn.Module):
    """L4: FFN(x) = W_down (SiLU(W_gate x) * W_up x), SiLU(z) = z sigmoid(z)."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """L4: W_down (SiLU(W_gate x) * W_up x), (..., d) -> (..., d)."""
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    """L5: h = x + Attn(RMSNorm(x)); out = h + FFN(RMSNorm(h))."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = LlamaAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache=None, layer: int = 0) -> torch.Tensor:
        """L5: h = x + Attn(RMSNorm(x)); out = h + FFN(RMSNorm(h)). (B, T, d) -> (B, T, d)."""
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer)
        return h + self.mlp(self.post_attention_layernorm(h))


class Llama(nn.Module):
    """The decoder: logits of P(x_{i+1} | x_<=i). input_ids (B, T) -> (B, T, V), or (B, 1, V) with last_only."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(LlamaBlock(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        for module in self.modules():  # N(0, 0.02), as Hugging Face initialises a Llama
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, input_ids: torch.Tensor, cache=None, last_only: bool = False) -> torch.Tensor:
        """L5 for every block, then logits = RMSNorm(h_L) E^T. With a `cache` (model/gpt_neo.py:KVCache), input_ids
        are the T tokens after the cache's `length` positions."""
        T = input_ids.shape[1]
        start = 0 if cache is None else cache.length
        cos, sin = rope_angles(torch.arange(start, start + T, device=input_ids.device), self.config.head_dim,
                               self.config.rope_theta)  # (T, d_head) each
        x = self.embed_tokens(input_ids)  # (B, T, d)
        for layer, block in enumerate(self.layers):
            x = block(x, cos, sin, cache, layer)
        if cache is not None:
            cache.length += T
        if last_only:  # while generating, only the last position's logits are needed
            return last_logits(self.norm(x[:, -1]), self.embed_tokens.weight)[:, None]  # (B, 1, V)
        return lm_head(self.norm(x), self.embed_tokens.weight)  # tied: logits = RMSNorm(x) E^T

    def hidden_states(self, input_ids: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """x after block l (1..n) for each l of `layers`, (B, T, d) each: the residual stream as `forward` computes
        it, read on the way (the blocks after the last one asked for are not run). Features for a probe."""
        if not all(1 <= layer <= len(self.layers) for layer in layers):
            raise ValueError(f"blocks {layers} asked for: this decoder has blocks 1 to {len(self.layers)}")
        T = input_ids.shape[1]
        cos, sin = rope_angles(torch.arange(T, device=input_ids.device), self.config.head_dim, self.config.rope_theta)
        x, out = self.embed_tokens(input_ids), []
        for layer, block in enumerate(self.layers[:max(layers)], start=1):
            x = block(x, cos, sin)
            if layer in layers:
                out.append(x)
        return out

    def head_weight(self) -> torch.Tensor:
        """The LM head's matrix (V, d): the token embedding, tied."""
        return self.embed_tokens.weight

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "Llama":
        """Load a Hugging Face LlamaForCausalLM folder (config.json + model.safetensors); strict; in eval mode."""
        cfg = LlamaConfig.from_folder(folder)
        with torch.device("meta"):
            model = cls(cfg)
        load_with_table(model, folder, hf_names(cfg), prefix="model.", ignored=("lm_head.weight",))
        check_head_is_tied(model.embed_tokens.weight, Path(folder) / WEIGHTS_FILE)
        return model.eval()

    def hf_config(self) -> dict:
        return self.config.to_hf()

    def hf_state(self) -> dict[str, torch.Tensor]:
        """Our weights under the Hugging Face names (the tied head is implied)."""
        return to_hf_state(self, hf_names(self.config), prefix="model.")

    def save_pretrained(self, folder: str | Path) -> None:
        """config.json + model.safetensors in the Hugging Face layout (transformers loads it as it is)."""
        save_hf_folder(folder, self.hf_state(), self.hf_config())


ATTENTION_KERNELS = ("fused", "plain")


def set_attention_kernel(model: nn.Module, kernel: str) -> None:
    """Which attention every Llama layer of `model` runs over whole windows (training, scoring): PyTorch's fused
    kernel, or the plain line (`reference_attention`), which is faster on some machines and shapes (its backward is
    two more products, the fused one's is a loop over blocks); plumbing/kernels.py measures which. Generation with
    a cache is unchanged."""
    if kernel not in ATTENTION_KERNELS:
        raise ValueError(f"attention kernel {kernel!r}: one of {', '.join(ATTENTION_KERNELS)}")
    for module in model.modules():
        if isinstance(module, LlamaAttention):
            module.kernel = kernel


def hf_names(cfg: LlamaConfig) -> dict[str, tuple[str, ...]]:
    """Our parameter name -> the Hugging Face LlamaModel name (after stripping `model.`): the same names."""
    names = ["embed_tokens.weight", "norm.weight"]
    for i in range(cfg.num_hidden_layers):
        names += [f"layers.{i}.{n}.weight" for n in ("input_layernorm", "post_attention_layernorm",
                                                    *(f"self_attn.{p}_proj" for p in "qkvo"),
                                                    *(f"mlp.{p}_proj" for p in ("gate", "up", "down")))]
    return {n: (n,) for n in names}
