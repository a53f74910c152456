"""BERT, the judge of lecture A, in plain PyTorch.

A1: h_i = f(x_1, ..., x_n; theta) -- every hidden state sees the whole sequence.
A2: z = W h_CLS + b, y_hat = softmax(z)  -- the classification head (`BertClassifier`).
    or, with pooling="mean", h = sum_i m_i h_i / sum_i m_i  -- the pooling MiniLM was trained with (`mean_pool`).

Read top to bottom: embeddings -> N post-LayerNorm encoder blocks -> tanh pooler.
`Bert.from_pretrained(folder)` loads a Hugging Face BERT folder through the
name table `hf_names`, strictly (see model/loading.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open

from model.config import BertConfig, ConfigError, read_config_json
from model.layers import MLP, Dropout, LayerNorm, apply_dropout, gelu_erf, init_normal, merge_heads, split_heads
from model.loading import WEIGHTS_FILE, load_with_table, to_hf_state


def padding_to_additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) of 1 = real token, 0 = padding  ->  (B, 1, 1, T) of 0 and a very negative number.

    Added to the attention scores before the softmax, so no token attends to padding.
    """
    keep = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - keep) * torch.finfo(dtype).min


def attention_with_dropout(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, p: float
) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs) + mask) v, with dropout p on the attention weights, written out.

    q (B, nh, Tq, hs), k and v (B, nh, T, hs) -> (B, nh, Tq, hs). What F.scaled_dot_product_attention
    computes with dropout_p=p; on a CPU its fused kernels have no dropout and its fallback draws
    float32 noise and makes extra passes over the (B, nh, Tq, T) weights. Here the weights are
    zeroed through a bit mask (model/layers.py:apply_dropout), and the 1/(1 - p) of inverted dropout
    is applied to the small (Tq, hs) result instead of the (Tq, T) weights: the same number, since
    (a W) v = a (W v).
    Everything runs in the inputs' dtype (16 bits under bfloat16 autocast, which a program only
    chooses where it measured 16-bit products to be fast, plumbing/precision.py); PyTorch's softmax
    kernel sums in float32 inside, so its 16-bit weights are the float32 ones rounded once.
    """
    att = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, nh, Tq, T)
    if mask is not None:
        att = att + mask.to(att.dtype)
    weights = torch.softmax(att, dim=-1)  # (B, nh, Tq, T), each row sums to 1
    return (apply_dropout(weights, p) @ v) / (1.0 - p)  # zeroed weights, then the rescale; (B, nh, Tq, hs)


class BertSelfAttention(nn.Module):
    """Bidirectional multi-head attention: softmax(q k^T / sqrt(hs) + mask) v."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.n_head = cfg.num_attention_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)  # query, key, value in one matmul
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout = cfg.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, queries: int | None = None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C). queries=n: only the first n positions ask, -> (B, n, C) (BertBlock.cls_row)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, nh, T, hs)
        if queries is not None:
            q = q[:, :, :queries]  # (B, nh, Tq, hs); every position is still a key and a value
        if self.training and self.dropout > 0:
            y = attention_with_dropout(q, k, v, mask, self.dropout)
        else:  # scale 1/sqrt(hs) is the default; PyTorch picks its fastest kernel
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, Tq, hs)
        return self.proj(merge_heads(y))  # (B, Tq, C)


class BertBlock(nn.Module):
    """Post-LN encoder block: x = LN(x + Attn(x)); x = LN(x + MLP(x))."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.attn = BertSelfAttention(cfg)
        self.ln1 = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg.hidden_size, cfg.intermediate_size, gelu_erf)
        self.ln2 = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.drop = Dropout(cfg.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(B, T, d) -> (B, T, d)"""
        x = self.ln1(x + self.drop(self.attn(x, mask)))
        return self.ln2(x + self.drop(self.mlp(x)))

    def cls_row(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The fast twin of forward(x, mask)[:, :1] for the last block: the [CLS] row alone, (B, 1, d).

        Only position 0 asks; every position is still a key and a value. ~1/4 of a full block's cost.
        """
        x = self.ln1(x[:, :1] + self.drop(self.attn(x, mask, queries=1)))
        return self.ln2(x + self.drop(self.mlp(x)))


class Bert(nn.Module):
    """A1: the bidirectional encoder. forward -> (hidden states (B, T, d), pooled [CLS] vector (B, d))."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.config = cfg
        d = cfg.hidden_size
        self.word_emb = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_token_id)
        self.pos_emb = nn.Embedding(cfg.max_position_embeddings, d)
        self.type_emb = nn.Embedding(cfg.type_vocab_size, d)
        self.emb_ln = LayerNorm(d, eps=cfg.layer_norm_eps)
        self.drop = Dropout(cfg.hidden_dropout_prob)
        self.blocks = nn.ModuleList(BertBlock(cfg) for _ in range(cfg.num_hidden_layers))
        self.pooler = nn.Linear(d, d)
        self.apply(init_normal)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        word_vectors: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A1: h_i = f(x_1, ..., x_n; theta). input_ids (B, T) -> (hidden (B, T, d), pooled (B, d)).
        word_vectors: see `embed`."""
        x, mask = self.embed(input_ids, attention_mask, token_type_ids, word_vectors)
        for block in self.blocks:
            x = block(x, mask)
        return x, self.pool(x)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               word_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """The fast twin of forward(input_ids, attention_mask)[1]: the same pooled [CLS] vector (B, d), with
        the last block computing the [CLS] row alone (A2 reads nothing else). word_vectors: see `embed`."""
        x, mask = self.embed(input_ids, attention_mask, word_vectors=word_vectors)
        for block in self.blocks[:-1]:
            x = block(x, mask)
        return self.pool(self.blocks[-1].cls_row(x, mask))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None,
              word_vectors: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token + position + type embeddings, LayerNorm, dropout: (B, T, d); and the padding mask (None: no padding).

        word_vectors (B, T, d), if given, stand in for the token embeddings word_emb(input_ids): integrated
        gradients (E1, eval/attribution.py) walk them from a baseline to the text's and differentiate with
        respect to them.
        """
        B, T = input_ids.shape
        if T > self.config.max_position_embeddings:
            raise ValueError(f"sequence of {T} tokens is longer than max_position_embeddings="
                             f"{self.config.max_position_embeddings}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        pos = torch.arange(T, device=input_ids.device)
        if word_vectors is None:
            word_vectors = self.word_emb(input_ids)  # (B, T, d)
        x = word_vectors + self.pos_emb(pos) + self.type_emb(token_type_ids)  # (B, T, d)
        x = self.drop(self.emb_ln(x))
        mask = None  # no padding: no mask, and PyTorch may use its faster unmasked attention kernel
        # A compiled graph cannot branch on the data: it always adds the mask (zeros where nothing is padded).
        if attention_mask is not None and (torch.compiler.is_compiling() or not bool(attention_mask.all())):
            mask = padding_to_additive_mask(attention_mask, x.dtype)
        return x, mask

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The [CLS] position through dense + tanh: (B, T, d) -> (B, d)."""
        return torch.tanh(self.pooler(x[:, 0]))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "Bert":
        """Load a Hugging Face BERT folder (config.json + model.safetensors); strict; returned in eval mode."""
        cfg = BertConfig.from_folder(folder)
        with torch.device("meta"):  # shapes only: no time spent on a random init we overwrite
            model = cls(cfg)
        load_with_table(model, folder, hf_names(cfg), prefix="bert.", ignored=HF_IGNORED)
        return model.eval()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """N1, mean-pooled: h = sum_i m_i h_i / sum_i m_i, the mean of the last hidden states over the real tokens
    (m_i = 1; padding m_i = 0). (B, T, d) -> (B, d).

    The sentence vector all-MiniLM-L6-v2 was trained to produce (sentence-transformers' pooling: its folder's
    1_Pooling/config.json): its [CLS] row and pooler were never trained to summarise a text, its mean was.
    """
    if attention_mask is None:
        return hidden.mean(dim=1)
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1)


POOLINGS = ("cls", "mean")  # what the head reads: A2's pooled [CLS] (the course code) or mean_pool


def is_judge_config(hf: dict) -> bool:
    """Is this config.json a judge's (an encoder with a head): transformers' classifier, or our mean-pooled one?"""
    return ("BertForSequenceClassification" in hf.get("architectures", [])
            or hf.get("classifier_pooling") in POOLINGS)


def head_rows(path: Path) -> int | None:
    """The number of classes of a saved classification head (rows of classifier.weight), read from the header."""
    try:
        with safe_open(str(path), "pt") as f:
            return f.get_slice("classifier.weight").get_shape()[0] if "classifier.weight" in f.keys() else None
    except (OSError, SafetensorError):
        return None  # the loader that follows says what is wrong with the file


class BertClassifier(nn.Module):
    """A2/N1: z = W h + b with h = tanh(W_p h_CLS + b_p), BERT's pooler on [CLS], as the course code (and
    BertForSequenceClassification) reads it; dropout before W. softmax(z) gives P(author) per label.
    pooling="mean": h = `mean_pool` of the last hidden states instead (the pooler is then unused and frozen).

    `labels` names the classes in label order (("alice", "edgar") in the lectures). Saved and loaded
    as a Hugging Face BertForSequenceClassification folder: the pooler and the head under the names
    transformers expects, the author names as id2label, so `transformers.pipeline` reads it too. No class
    of transformers reads a BERT through a mean, so a mean-pooled judge is saved as a BertModel folder (the same
    weights under the same names, `classifier.*` beside them, "classifier_pooling": "mean"); its card says how.
    """

    def __init__(self, bert: Bert, labels: Sequence[str] = ("alice", "edgar"), dropout: float = 0.1,
                 pooling: str = "cls") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.bert = bert
        self.labels = list(labels)
        self.pooling = pooling
        self.drop = Dropout(dropout)
        self.head = nn.Linear(bert.config.hidden_size, len(self.labels))
        nn.init.xavier_uniform_(self.head.weight)  # as the course code does
        nn.init.zeros_(self.head.bias)
        if pooling == "mean":
            bert.pooler.requires_grad_(False)  # read by nothing: no gradient, and DDP would wait for one

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 word_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """A2 or N1, mean-pooled: h, the vector the head reads (B, d): A2's pooled [CLS], or the mean of the last hidden
        states."""
        if self.pooling == "mean":
            return mean_pool(self.bert(input_ids, attention_mask, word_vectors=word_vectors)[0], attention_mask)
        return self.bert.pooled(input_ids, attention_mask, word_vectors)  # = self.bert(...)[1], faster

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                word_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """A2: z = W h + b. input_ids (B, T) -> logits z (B, n_classes). word_vectors: see `Bert.embed`."""
        return self.head(self.drop(self.features(input_ids, attention_mask, word_vectors)))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "BertClassifier":
        """Load a BertForSequenceClassification folder (ours or transformers') or our mean-pooled judge; strict;
        in eval mode."""
        hf = read_config_json(folder)
        if not is_judge_config(hf):
            raise ConfigError(f"{Path(folder) / 'config.json'} is not a judge (BertForSequenceClassification): "
                              f"architectures={hf.get('architectures')}. Train one with `make train-bert`.")
        cfg = BertConfig.from_hf(hf)
        id2label = hf.get("id2label") or {}
        # without id2label (an edited or foreign config.json) as transformers reads it: num_labels, else
        # the head's own size, LABEL_0 ..
        n = len(id2label) or hf.get("num_labels") or head_rows(Path(folder) / WEIGHTS_FILE) or 2
        labels = [id2label.get(str(i), id2label.get(i, f"LABEL_{i}")) for i in range(n)]
        with torch.device("meta"):
            model = cls(Bert(cfg), labels, dropout=hf.get("classifier_dropout") or cfg.hidden_dropout_prob,
                        pooling=hf.get("classifier_pooling", "cls"))
        ignored = tuple(f"bert.{name}" for name in HF_IGNORED)
        load_with_table(model, folder, classifier_names(cfg), prefix="", ignored=ignored)
        return model.eval()

    def hf_config(self) -> dict:
        """config.json of a Hugging Face BertForSequenceClassification with our author names (a BertModel where
        the judge is mean-pooled: see the class)."""
        architecture = "BertForSequenceClassification" if self.pooling == "cls" else "BertModel"
        return dict(self.bert.config.to_hf(), architectures=[architecture],
                    id2label={str(i): name for i, name in enumerate(self.labels)},
                    label2id={name: i for i, name in enumerate(self.labels)}, classifier_dropout=self.drop.p,
                    classifier_pooling=self.pooling)

    def hf_state(self) -> dict[str, torch.Tensor]:
        """Our weights under the Hugging Face names (q, k, v split again)."""
        return to_hf_state(self, classifier_names(self.bert.config), prefix="")


# Hugging Face checkpoint names we read on purpose as nothing: a buffer, and pretraining heads.
HF_IGNORED = ("embeddings.position_ids", "embeddings.token_type_ids", "cls.*")


def classifier_names(cfg: BertConfig) -> dict[str, tuple[str, ...]]:
    """BertClassifier's parameter name -> BertForSequenceClassification's (A2's W, b are `classifier`)."""
    table = {f"bert.{ours}": tuple(f"bert.{n}" for n in theirs) for ours, theirs in hf_names(cfg).items()}
    return dict(table, **{"head.weight": ("classifier.weight",), "head.bias": ("classifier.bias",)})


def hf_names(cfg: BertConfig) -> dict[str, tuple[str, ...]]:
    """Our parameter name -> the Hugging Face BertModel name(s) (after stripping `bert.`)."""
    table = {
        "word_emb.weight": ("embeddings.word_embeddings.weight",),
        "pos_emb.weight": ("embeddings.position_embeddings.weight",),
        "type_emb.weight": ("embeddings.token_type_embeddings.weight",),
        "emb_ln.weight": ("embeddings.LayerNorm.weight",),
        "emb_ln.bias": ("embeddings.LayerNorm.bias",),
        "pooler.weight": ("pooler.dense.weight",),
        "pooler.bias": ("pooler.dense.bias",),
    }
    for i in range(cfg.num_hidden_layers):
        hf = f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            table[f"blocks.{i}.attn.qkv.{p}"] = tuple(
                f"{hf}attention.self.{name}.{p}" for name in ("query", "key", "value")
            )
            table[f"blocks.{i}.attn.proj.{p}"] = (f"{hf}attention.output.dense.{p}",)
            table[f"blocks.{i}.ln1.{p}"] = (f"{hf}attention.output.LayerNorm.{p}",)
            table[f"blocks.{i}.mlp.fc.{p}"] = (f"{hf}intermediate.dense.{p}",)
            table[f"blocks.{i}.mlp.proj.{p}"] = (f"{hf}output.dense.{p}",)
            table[f"blocks.{i}.ln2.{p}"] = (f"{hf}output.LayerNorm.{p}",)
    return table
