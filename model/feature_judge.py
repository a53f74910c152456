"""A third judge: a linear probe on a pretrained decoder's frozen features (N1 on SmolLM2's residual stream).

The BERT judge is fine-tuned on the training books, and learns them as well as their authors; the n-gram
judge counts their characters. This one changes no pretrained weight. SmolLM2-135M reads a passage, and
the passage's vector is the mean of its residual stream after block BLOCK (model/llama.py:Llama.hidden_states),
over the passage's tokens from the SKIP-th on (a decoder's first positions carry large values that say
little about the text: attention sinks; a passage of SKIP tokens or fewer is read at its last position):

    h(x) = 1/(T - SKIP) sum_{t >= SKIP} x_t^(BLOCK)
    log P(a | x) = log softmax(W (h(x) - m) / s + b)_a                 (N1 on standardised features)

m and s are the mean and spread of the training passages' vectors, W and b a logistic regression fitted on
them (train/probe.py:fit_probe, N1 + A3 with an L2 penalty), as many passages per author, evenly spread
over its training books. A decoder pretrained on trillions of tokens has seen many writers, and its
middle blocks keep how a text is written as well as what it says. Measured with scripts/probe_books.py
(README, "Six authors"): alone, about as good as the fine-tuned BERT judge on a book neither has seen;
added to it (log-probabilities summed), 0.921 -> 0.960, 0.881 -> 0.940 and 0.640 -> 0.698 on three folds of
held-out books at 256 tokens.
BLOCK 16 was the best of blocks 4-20 with the judge on all three folds, chosen on those books.

    judge = train_feature_judge(reader, {"alice": {"#12": text, ...}, ...})    # train/probe.py
    judge.log_probs(["Curiouser and curiouser!"])    # (1, N), read by judge.reader (each text once: its memo)
    judge.save(folder); FeatureJudge.load(folder)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from tqdm import tqdm

from model.bert import mean_pool
from model.half import Precision
from model.llama import Llama

BLOCK = 16  # the block of SmolLM2's 30 whose output is read (see the module docstring); `feature_block`
SKIP = 8  # the first positions, left out of the mean
LONGEST = 2048  # tokens of a text read; a longer one is cut (a passage of the report is at most ~1,100)
BATCH = 16
FILES = ("feature_judge.json", "feature_judge.safetensors")


@dataclass
class Reader:
    """The frozen decoder and its tokenizer, the precision it reads in, and what it has read."""

    decoder: Llama
    tok: Tokenizer
    precision: Precision
    name: str  # where the decoder came from (a weights store name or a folder), saved with the judge
    memo: dict[str, torch.Tensor] = field(default_factory=dict)  # memo_key -> (len(blocks), d): read once, kept


def feature_block(decoder: Llama) -> int:
    """The block read: BLOCK, or the last one of a decoder with fewer (the tests' tiny ones)."""
    return min(BLOCK, decoder.config.num_hidden_layers)


@torch.no_grad()
def read_vectors(reader: Reader, texts: list[str], blocks: Sequence[int], desc: str | None = None) -> torch.Tensor:
    """h(x) after each of `blocks` for each text (module docstring), read by the decoder: (n, len(blocks), d) float32.
    Texts of a batch are padded on the right (a causal model's earlier positions never see the padding), and the mean
    reads each text's own positions SKIP..T-1; a text of SKIP tokens or fewer is read at its last position alone (the
    one that has read all of it). desc: a progress bar's."""
    out, starts = [], range(0, len(texts), BATCH)
    for s in tqdm(starts, desc=desc, leave=False, disable=desc is None or len(starts) < 2):
        ids = [e.ids[:LONGEST] or [0] for e in reader.tok.encode_batch(texts[s:s + BATCH])]
        n = max(map(len, ids))
        x = torch.tensor([i + [0] * (n - len(i)) for i in ids], device=reader.precision.device)
        t = torch.arange(n, device=x.device)
        read = torch.stack([(t >= min(SKIP, len(i) - 1)) & (t < len(i)) for i in ids])  # (b, n)
        with reader.precision.autocast():
            hidden = reader.decoder.hidden_states(x, list(blocks))
        out.append(torch.stack([mean_pool(h.float(), read) for h in hidden], dim=1).cpu())
    return torch.cat(out)


def memo_key(text: str, blocks: Sequence[int]) -> str:
    """What the reader's memo files a text's vectors under: the blocks read and the text's sha256."""
    return f"{'-'.join(map(str, blocks))}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def passage_vectors(reader: Reader, texts: list[str], blocks: Sequence[int] = (BLOCK,), desc: str | None = None
                    ) -> torch.Tensor:
    """`read_vectors` of the texts, each text read once: a text the reader has read before (its memo) is not read
    again. The report reads the same held-out passages for every judge of a split, and the decoder's reading is most
    of its time (plumbing/judges.py keeps the memo on disk beside the probe). (n, len(blocks), d) float32."""
    keys = [memo_key(text, blocks) for text in texts]
    unread = list({key: text for key, text in zip(keys, texts) if key not in reader.memo}.items())
    if unread:
        vectors = read_vectors(reader, [text for _, text in unread], blocks, desc)
        reader.memo.update((key, v.clone()) for (key, _), v in zip(unread, vectors))  # each its own storage
    return torch.stack([reader.memo[key] for key in keys])


@dataclass
class FeatureJudge:
    """The probe: m, s (d,), W (N, d), b (N,), read at `block`, for `authors` in label order."""

    authors: list[str]
    mean: torch.Tensor
    spread: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    block: int = BLOCK
    decoder: str = ""  # the Reader's name
    source: str = ""  # what it was trained on (a digest: plumbing/judges.py keys its cache by it)
    reader: Reader | None = None  # the decoder that reads for it (not saved: plumbing/judges.py gives it one)

    def log_probs_of(self, vectors: torch.Tensor) -> torch.Tensor:
        """N1 on a decoder's features: log P(a | x) = log softmax(W (h - m) / s + b) for each vector h: (n, d) -> (n, N)."""
        return torch.log_softmax(((vectors - self.mean) / self.spread) @ self.weight.T + self.bias, dim=-1)

    def log_probs(self, texts: list[str], desc: str | None = None) -> torch.Tensor:
        """log P(author | text) for each text: (len(texts), N), float64 as the n-gram judge's. desc: a progress bar's."""
        if self.reader is None:
            raise ValueError("the feature judge has no decoder to read with: load it with plumbing/judges.py")
        return self.log_probs_of(passage_vectors(self.reader, texts, (self.block,), desc)[:, 0]).double()

    def save(self, folder: str | Path) -> None:
        """Both files into `folder` (plain writes; plumbing/judges.py writes the cached copy whole or not at all)."""
        meta = {"authors": self.authors, "block": self.block, "decoder": self.decoder, "source": self.source}
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / FILES[0]).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        save_file({"mean": self.mean, "spread": self.spread, "weight": self.weight, "bias": self.bias},
                  str(Path(folder) / FILES[1]))

    @classmethod
    def load(cls, folder: str | Path) -> "FeatureJudge":
        meta = json.loads((Path(folder) / FILES[0]).read_text(encoding="utf-8"))
        t = load_file(str(Path(folder) / FILES[1]))
        return cls(meta["authors"], t["mean"], t["spread"], t["weight"], t["bias"], meta["block"], meta["decoder"],
                   meta.get("source", ""))
