"""GPT-Neo, the generators of lecture B, in plain PyTorch.

B1: P(X) = prod_{i=1..n} P(x_i | x_<i; theta_g) -- each logit row only sees the tokens before it.

Read top to bottom: token + position embeddings -> N pre-LayerNorm blocks, each
with global or local causal attention -> final LayerNorm -> logits through the
token embedding itself (tied LM head). Two GPT-Neo details that differ from GPT-2:
attention scores are NOT divided by sqrt(head_dim), and a "local" layer lets a
token see only itself and the previous `window_size - 1` tokens.

`KVCache` keeps every layer's keys and values so that generating one more token
costs one position's work, not a rerun of the whole prefix.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import GPTNeoConfig
from model.layers import MLP, Dropout, LayerNorm, gelu_tanh, init_normal, merge_heads, split_heads
from model.loading import WEIGHTS_FILE, check_head_is_tied, load_with_table, save_hf_folder, to_hf_state
from model.packed import head_product


class KVCache:
    """Preallocated keys and values: per layer two (B, nh, max_len, hs) tensors, filled up to `length`.

    nh: the heads that have keys and values (GPT-Neo's heads; a Llama's key/value groups, L3).
    """

    def __init__(self, cfg, batch: int, max_len: int, device=None, dtype=torch.float32) -> None:
        if max_len > cfg.max_position_embeddings:
            raise ValueError(f"max_len={max_len} exceeds max_position_embeddings={cfg.max_position_embeddings}")
        layers, heads, hs = cfg.kv_layout()
        shape = (batch, heads, max_len, hs)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.max_len = max_len
        self.length = 0  # positions already stored

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's (B, nh, T, hs) keys and values; return all keys and values so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache full: {end} positions needed, {self.max_len} allocated")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


def causal_mask(start: int, T: int, window: int | None, device=None) -> torch.Tensor:
    """(T, start + T) boolean mask, True = may attend. Query i (absolute position start + i) sees key j

    if j <= start + i (causal), and, for a local layer, also j > start + i - window (itself and the
    previous window - 1 tokens).
    """
    i = torch.arange(start, start + T, device=device)[:, None]
    j = torch.arange(start + T, device=device)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= j > i - window
    return allowed


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int = 0,
                        window: int | None = None) -> torch.Tensor:
    """GPT-Neo attention written out: softmax(q k^T + mask) v, with NO 1/sqrt(hs) scale.

    q (B, nh, T, hs) are the queries of absolute positions start .. start+T-1; k, v (B, nh, start+T, hs)
    the keys and values of positions 0 .. start+T-1. Query i may look at key j if j <= i (causal)
    and, in a local layer, j > i - window. The three fast branches of GPTNeoSelfAttention.forward
    compute exactly this (tests/test_layers.py); `use_reference = True` on a layer runs this instead.
    """
    scores = q @ k.transpose(-2, -1)  # (B, nh, T, start+T): q . k, unscaled, as GPT-Neo does
    allowed = causal_mask(start, q.shape[2], window, device=q.device)  # (T, start+T)
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).to(v.dtype)  # each row sums to 1 over the allowed keys
    return weights @ v  # (B, nh, T, hs)


def lm_head(x: torch.Tensor, wte: torch.Tensor) -> torch.Tensor:
    """B1's tied LM head: logits = x W_te^T, the token embedding read backwards. (..., d) -> (..., V)."""
    return x @ wte.T


def last_logits(x: torch.Tensor, wte: torch.Tensor) -> torch.Tensor:
    """The fast twin of lm_head for the few rows of a sampling step: the same x W_te^T, as (W_te x^T)^T. (B, d) -> (B, V).

    The same products and sums; but with B rows against a V x d matrix, CPU BLAS (MKL) runs the
    tall product W_te x^T ~1.6x faster than the flat x W_te^T (bench/: generation). The result is a
    transposed view, not copied: the sampler's steps read it as fast as a contiguous (B, V). While the sampler
    holds the weights packed for its rows (model/packed.py), the product reads the packed copy: the same numbers.
    """
    packed = head_product(x, wte)
    if packed is not None:
        return packed
    return (wte @ x.T).T  # (V, B) -> (B, V)


class GPTNeoSelfAttention(nn.Module):
    """Causal multi-head attention, softmax(q k^T + mask) v: no 1/sqrt(hs) scale, no q/k/v bias."""

    def __init__(self, cfg: GPTNeoConfig, kind: str) -> None:
        super().__init__()
        self.n_head = cfg.num_heads
        self.window = cfg.window_size if kind == "local" else None
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=False)
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=True)
        self.dropout = cfg.attention_dropout
        self.use_reference = False  # True: the plain, written-out attention (no dropout), for reading and tests

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hs)
        start = 0
        if cache is not None:
            start = cache.length
            k, v = cache.append(layer, k, v)  # (B, nh, start + T, hs)
        dropout = self.dropout if self.training else 0.0
        if self.use_reference:
            y = reference_attention(q, k, v, start, self.window)
        elif self.window is None and start == 0:  # a global layer, no cache: causal, PyTorch picks its fastest kernel
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout, scale=1.0)
        elif T == 1:  # one new token (generation): it is the last position, so causality masks nothing
            if self.window is not None:
                k, v = k[:, :, -self.window:], v[:, :, -self.window:]  # a local layer sees the last `window` keys
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=1.0)  # (B, nh, 1, hs)
        else:
            mask = causal_mask(start, T, self.window, device=x.device)  # (T, start + T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=1.0)
        return self.proj(merge_heads(y))  # (B, T, C)


class GPTNeoBlock(nn.Module):
    """Pre-LN decoder block: x = x + Attn(LN(x)); x = x + MLP(LN(x))."""

    def __init__(self, cfg: GPTNeoConfig, kind: str) -> None:
        super().__init__()
        self.ln1 = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)
        self.attn = GPTNeoSelfAttention(cfg, kind)
        self.ln2 = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg.hidden_size, cfg.intermediate_size, gelu_tanh)
        self.drop = Dropout(cfg.resid_dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cache, layer))
        x = x + self.drop(self.mlp(self.ln2(x)))
        return x


class GPTNeo(nn.Module):
    """B1: the autoregressive decoder. forward(input_ids (B, T)) -> next-token logits (B, T, V)."""

    def __init__(self, cfg: GPTNeoConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.wpe = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.drop = Dropout(cfg.embed_dropout)
        self.blocks = nn.ModuleList(GPTNeoBlock(cfg, kind) for kind in cfg.attention_layers)
        self.ln_f = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_epsilon)
        self.apply(init_normal)

    def forward(
        self, input_ids: torch.Tensor, cache: KVCache | None = None, last_only: bool = False
    ) -> torch.Tensor:
        """B1: logits of P(x_{i+1} | x_<=i). input_ids (B, T) -> (B, T, V), or (B, 1, V) with last_only.

        With a `cache`, input_ids are the next T tokens after the cache's `length` positions.
        """
        B, T = input_ids.shape
        start = 0 if cache is None else cache.length
        if start + T > self.config.max_position_embeddings:
            raise ValueError(f"{start + T} positions exceed max_position_embeddings="
                             f"{self.config.max_position_embeddings}")
        pos = torch.arange(start, start + T, device=input_ids.device)
        x = self.drop(self.wte(input_ids) + self.wpe(pos))  # (B, T, d)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length += T
        if last_only:  # while generating, only the last position's logits are needed
            return last_logits(self.ln_f(x[:, -1]), self.wte.weight)[:, None]  # (B, 1, V)
        return lm_head(self.ln_f(x), self.wte.weight)  # (B, T, V)

    def head_weight(self) -> torch.Tensor:
        """The LM head's matrix (V, d): the token embedding, tied."""
        return self.wte.weight

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "GPTNeo":
        """Load a Hugging Face GPT-Neo folder (config.json + model.safetensors); strict; returned in eval mode."""
        cfg = GPTNeoConfig.from_folder(folder)
        with torch.device("meta"):  # shapes only: no time spent on a random init we overwrite
            model = cls(cfg)
        load_with_table(model, folder, hf_names(cfg), prefix="transformer.", ignored=HF_IGNORED)
        check_head_is_tied(model.wte.weight, Path(folder) / WEIGHTS_FILE)
        return model.eval()

    def hf_config(self) -> dict:
        """config.json of a Hugging Face GPTNeoForCausalLM."""
        return self.config.to_hf()

    def hf_state(self) -> dict[str, torch.Tensor]:
        """Our weights under the Hugging Face names (q, k, v split again; the tied head is implied)."""
        return to_hf_state(self, hf_names(self.config), prefix="transformer.")

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config.json + model.safetensors in the Hugging Face layout (loadable by transformers too)."""
        save_hf_folder(folder, self.hf_state(), self.hf_config())


# Checkpoint names that are not parameters: old causal-mask buffers, and the tied LM head (checked below).
HF_IGNORED = ("h.*.attn.attention.bias", "h.*.attn.attention.masked_bias", "lm_head.weight")


def hf_names(cfg: GPTNeoConfig) -> dict[str, tuple[str, ...]]:
    """Our parameter name -> the Hugging Face GPTNeoModel name(s) (after stripping `transformer.`)."""
    table = {
        "wte.weight": ("wte.weight",),
        "wpe.weight": ("wpe.weight",),
        "ln_f.weight": ("ln_f.weight",),
        "ln_f.bias": ("ln_f.bias",),
    }
    for i in range(cfg.num_layers):
        hf = f"h.{i}."
        table[f"blocks.{i}.attn.qkv.weight"] = tuple(f"{hf}attn.attention.{n}_proj.weight" for n in "qkv")
        for p in ("weight", "bias"):
            table[f"blocks.{i}.attn.proj.{p}"] = (f"{hf}attn.attention.out_proj.{p}",)
            table[f"blocks.{i}.ln1.{p}"] = (f"{hf}ln_1.{p}",)
            table[f"blocks.{i}.ln2.{p}"] = (f"{hf}ln_2.{p}",)
            table[f"blocks.{i}.mlp.fc.{p}"] = (f"{hf}mlp.c_fc.{p}",)
            table[f"blocks.{i}.mlp.proj.{p}"] = (f"{hf}mlp.c_proj.{p}",)
    return table
