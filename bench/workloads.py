"""The benchmarked work, each as a pair of callables (ours, transformers) on the same weights and inputs.

FLOP counts (for the fraction of peak) follow Kaplan et al. 2020: a matrix of N parameters costs
2 N FLOPs per token, attention 4 T d per token and layer (scores and weighted sum over T keys);
a training step costs three forward passes. They count the work the task needs, whoever does
more: the judge's logits read only [CLS], so its last block needs keys and values of every
position but everything else for [CLS] alone; generation needs the LM head for one position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers

from model.bert import Bert, BertClassifier
from model.decoder import Decoder, load_decoder
from model.half import Precision, cast_half, parameter_bytes
from model.llama import Llama
from model.packed import packing_pays
from model.sampler import Sampling, generate
from plumbing.compiling import compiled_twin
from plumbing.kernels import choose_attention_kernel
from train.optim import make_optimizer


@dataclass
class Pair:
    """One workload: what it is, the two callables, and its FLOPs and token count per call."""

    name: str
    dtype: str
    ours: object
    hf: object
    flops: float
    tokens: int
    note: str = ""


def non_embedding_params(model: nn.Module) -> int:
    """N of the FLOP formula: every parameter except embedding tables."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)


class HFClassifier(nn.Module):
    """transformers.BertModel + the same dropout and linear head as our BertClassifier (A2)."""

    def __init__(self, folder: Path, head: nn.Linear) -> None:
        super().__init__()
        self.bert = transformers.BertModel.from_pretrained(str(folder))
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(head.in_features, head.out_features)
        self.head.load_state_dict(head.state_dict())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return self.head(self.drop(pooled))


def row_precision(dtype: str, device: str) -> Precision:
    """The programs' Precision (plumbing/precision.py) for a row's dtype."""
    return Precision(torch.device(device), dtype, torch.bfloat16, None, "a bench row")


def autocast(dtype: str, device: str):
    """The programs' own autocast for a row's dtype: bfloat16 for "bf16", nothing for "fp32"."""
    return row_precision(dtype, device).autocast()


def judge_flops(cfg, batch: int, length: int) -> float:
    """Forward FLOPs of BERT + head on (batch, length) that the logits need (see the module docstring)."""
    d, T, L = cfg.hidden_size, length, cfg.num_hidden_layers
    block = 2 * (4 * d * d + 2 * d * cfg.intermediate_size) + 4 * T * d  # per token: q, k, v, proj, MLP, attention
    last = T * 2 * (2 * d * d) + block  # keys and values of all T positions, the rest for [CLS]
    return batch * ((L - 1) * T * block + last + 2 * d * d + 2 * d * 2)  # + pooler and head on [CLS]


def judge_train_step(folder: Path, batch: int, length: int, dtype: str, device: str, compiled: bool = False) -> Pair:
    """A5: forward + backward + AdamW step of BERT + head on (batch, length), dropout on in both.

    compiled: ours through torch.compile (plumbing/compiling.py; the first, untimed run compiles), against
    transformers as its users run it."""
    torch.manual_seed(0)
    ours = BertClassifier(Bert.from_pretrained(folder)).to(device).train()
    hf = HFClassifier(folder, ours.head).to(device).train()
    ids = torch.randint(1000, 29000, (batch, length), device=device)
    mask = torch.ones_like(ids)
    labels = torch.arange(batch, device=device) % 2

    def step(model: nn.Module, optimizer: torch.optim.Optimizer):
        def run():
            with autocast(dtype, device):
                loss = F.cross_entropy(model(ids, mask), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return run

    flops = 3 * judge_flops(ours.bert.config, batch, length)  # forward + backward (twice the forward)
    return Pair(f"judge train step {batch}x{length}" + (" compiled" if compiled else ""), dtype,
                step(compiled_twin(ours) if compiled else ours, make_optimizer(ours, "adamw", 1e-5)),  # as the programs
                step(hf, torch.optim.AdamW(hf.parameters(), lr=1e-5, fused=True)), flops, batch * length)  # the same update


def judge_inference(folder: Path, batch: int, length: int, half: bool, device: str) -> tuple[Pair, dict]:
    """Judge forward on (batch, length) in float32, or cast to half (ours: cast_half, B5; HF: .to(dtype))."""
    ours = BertClassifier(Bert.from_pretrained(folder)).to(device).eval()
    hf = HFClassifier(folder, ours.head).to(device).eval()
    memory = {"ours_fp32_bytes": parameter_bytes(ours), "hf_fp32_bytes": parameter_bytes(hf)}
    dtype = "fp32"
    if half:
        report = cast_half(ours)
        hf.to(getattr(torch, report["dtype"]))
        dtype = report["dtype"]
        memory.update(ours_half_bytes=report["bytes_after"], hf_half_bytes=parameter_bytes(hf),
                      ours_ratio=report["ratio"])
    ids = torch.randint(1000, 29000, (batch, length), device=device)
    mask = torch.ones_like(ids)

    def forward(model: nn.Module):
        @torch.no_grad()
        def run():
            model(ids, mask)
        return run

    flops = judge_flops(ours.bert.config, batch, length)
    return Pair(f"judge inference {batch}x{length}", dtype, forward(ours), forward(hf), flops,
                batch * length), memory


def attention_keys(config, t: int) -> int:
    """Keys all layers together read for the token at position t: GPT-Neo's local layers see a window."""
    if hasattr(config, "attention_layers"):  # GPT-Neo
        return sum(min(t, config.window_size) if kind == "local" else t for kind in config.attention_layers)
    return config.num_hidden_layers * t  # Llama: every layer global


def token_flops(model: Decoder, t: int) -> float:
    """One token's forward at position t: 2 N for the blocks, 2 d V for the LM head, 4 d per key for attention."""
    cfg = model.config
    head, attention = 2 * cfg.hidden_size * cfg.vocab_size, 4 * attention_keys(cfg, t) * cfg.hidden_size
    return 2 * non_embedding_params(model) + head + attention


def generation_flops(model: Decoder, rows: int, prompt: int, new: int) -> float:
    """Every new token's forward, the LM head for its position alone."""
    return rows * sum(token_flops(model, t) for t in range(prompt, prompt + new))


def generation(folder: Path, rows: int, new_tokens: int, bad_ids: list[int], device: str,
               with_hf: bool = True, dtype: str = "fp32") -> Pair:
    """B8-B10: sample new_tokens after one start token per row; repetition penalty 1.3 (library rule in both),
    the bad-token mask, top-k 50, temperature 1. dtype "bf16": both under bfloat16 autocast, as the programs
    sample where it measured faster (plumbing/precision.py:choose_sampling)."""
    ours = load_decoder(folder).to(device).eval()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder)).to(device).eval() if with_hf else None
    V = ours.config.vocab_size
    start = torch.randint(0, V // 2, (rows, 1), device=device)
    bad_mask = torch.zeros(V, dtype=torch.bool)
    bad_mask[bad_ids] = True

    def run_ours():
        gen = torch.Generator(device=device).manual_seed(0)
        with autocast(dtype, device):
            generate(ours, start, new_tokens, Sampling(top_k=50, repetition_penalty=1.3, penalty_mode="hf",
                                                       bad_mask=bad_mask.to(device)), gen)

    @torch.no_grad()
    def run_hf():
        torch.manual_seed(0)
        with autocast(dtype, device):
            hf.generate(start, attention_mask=torch.ones_like(start), do_sample=True, top_k=50,
                        repetition_penalty=1.3, bad_words_ids=[[i] for i in bad_ids],
                        max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)

    packing = packing_pays(ours, rows, new_tokens - 1)[1] if dtype == "fp32" else "bf16: not packed"
    return Pair(f"generate {rows}x{new_tokens}", dtype, run_ours, run_hf if with_hf else None,
                generation_flops(ours, rows, 1, new_tokens), rows * new_tokens,
                note=f"our weights: {packing}")  # model/packed.py, as the sampler chooses


def lm_train_flops(model: Decoder, batch: int, length: int) -> float:
    """Forward + backward (3 forward passes) of B2 on (batch, length): every position's forward, LM head included."""
    return 3 * batch * sum(token_flops(model, t + 1) for t in range(length))


def lm_train_step(folder: Path, batch: int, length: int, dtype: str, device: str, what: str = "pretrain",
                  compiled: bool = False) -> Pair:
    """One training step of a decoder (forward, B2 loss, backward, AdamW), ours against transformers' class for it
    (GPTNeoForCausalLM, LlamaForCausalLM) on the same weights and ids; compiled: ours through torch.compile."""
    ours = load_decoder(folder).to(device).train()
    kernel, _ = choose_attention_kernel([ours], batch, length, row_precision(dtype, device))  # as the programs do
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder)).to(device).train()
    ids = torch.randint(0, ours.config.vocab_size, (batch, length), device=device)

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, logits_of):
        def run():
            with autocast(dtype, device):
                logits = logits_of(model(ids))
            F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return run

    return Pair(f"{what} step {batch}x{length}" + (" compiled" if compiled else ""), dtype,
                step(compiled_twin(ours) if compiled else ours, make_optimizer(ours, "adamw", 1e-4),
                     lambda out: out),  # what our programs train with
                step(hf, torch.optim.AdamW(hf.parameters(), lr=1e-4, fused=True), lambda out: out.logits),  # the same
                lm_train_flops(ours, batch, length), batch * length,
                note=f"our attention: {kernel}" if isinstance(ours, Llama) else "")
