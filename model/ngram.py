"""An independent judge: character n-grams with naive Bayes (N5), in plain numpy.

    N5: log P(a | x) = log pi_a + sum_g c_g(x) log theta_{a,g} - log Z,
        theta_{a,g} = (count_a(g) + alpha) / (sum_{h in V} count_a(h) + alpha |V|)

over the character n-grams g of every order n = 1..4 together (one distribution per author, not one
per order) of the training text of author a. c_g(x) is how often g occurs in the text x. V is the
vocabulary of n-grams: those seen at least `min_count` times in all the training text together;
the sum over h runs over V only, and an n-gram of x outside V (unseen, or too rare) gets the alpha
share alpha / (sum_{h in V} count_a(h) + alpha |V|). pi_a is uniform (1/N), as the evaluation is
balanced; log Z = logsumexp over the authors makes the posteriors sum to 1.

Why it is here: published authorship work finds such a model very strong (Valla, Tyo et al. 2022:
it beat BERT on 5 of 7 data sets), and, unlike the BERT judge, nothing is ever optimised against
it, so it stays a fair second opinion on text the generators write (T8).

    nb = train_ngram_judge({"alice": alice_train_text, "edgar": edgar_train_text})
    nb.probabilities(["Curiouser and curiouser!"])   # (1, 2) P(author | text)
    nb.save(folder); NgramJudge.load(folder)

Counting is vectorised: each character is mapped to a small alphabet index, and an n-gram to the
integer sum_i (index_i + 1) 257^i, so that np.unique counts millions of n-grams in a fraction of a second.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

N_MAX = 4
BASE = 257  # an n-gram's digits are alphabet index + 1 (1..256): n-grams of different n never collide
OTHER = 255  # alphabet index of every character outside the 255 most frequent ones
FILES = ("ngram.json", "ngram.safetensors")


def alphabet_of(texts: list[str]) -> str:
    """The (at most 255) most frequent characters of the training texts; any other character is OTHER."""
    counts = Counter()
    for text in texts:
        counts.update(text)
    return "".join(ch for ch, _ in counts.most_common(OTHER))


def gram_keys(text: str, alphabet: str, n_max: int = N_MAX) -> np.ndarray:
    """Every character n-gram of `text` (n = 1..n_max) as an int64 key sum_i (index_i + 1) BASE^i."""
    lookup = {ch: i for i, ch in enumerate(alphabet)}
    idx = np.fromiter((lookup.get(ch, OTHER) for ch in text), dtype=np.int64, count=len(text)) + 1
    keys = []
    for n in range(1, n_max + 1):
        if len(idx) < n:
            break
        key = np.zeros(len(idx) - n + 1, dtype=np.int64)
        for i in range(n):
            key += idx[i : len(idx) - n + 1 + i] * BASE**i
        keys.append(key)
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)


def find_keys(vocab: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each key is in the sorted `vocab`, and whether it is there at all: (positions, found)."""
    pos = np.clip(np.searchsorted(vocab, keys), 0, len(vocab) - 1)
    return pos, vocab[pos] == keys


@dataclass
class NgramJudge:
    """N5's naive Bayes over character n-grams: log theta per author for every n-gram of V."""

    authors: list[str]
    alphabet: str
    vocab: np.ndarray  # (|V|,) sorted n-gram keys
    log_theta: np.ndarray  # (|V|, N) log theta_{a,g}
    log_unseen: np.ndarray  # (N,) log theta of an n-gram outside V: alpha / (sum_h count_a(h) + alpha |V|)
    n_max: int = N_MAX
    source: str = ""  # what it was trained on (a digest of the texts: plumbing/judges.py keys its cache by it)

    def log_posterior(self, text: str) -> np.ndarray:
        """N5: log P(a | x) for every author a, (N,): log pi_a + sum_g c_g(x) log theta_{a,g} - log Z."""
        keys, counts = np.unique(gram_keys(text, self.alphabet, self.n_max), return_counts=True)
        pos, known = find_keys(self.vocab, keys)
        score = counts[known] @ self.log_theta[pos[known]]  # sum over n-grams in V
        score = score + counts[~known].sum() * self.log_unseen  # n-grams outside V: the alpha share
        score = score + np.log(1.0 / len(self.authors))  # log pi_a, uniform
        return score - np.logaddexp.reduce(score)  # - log Z

    def log_probs(self, texts: list[str]) -> np.ndarray:
        """log P(author | text) for each text: (len(texts), N)."""
        return np.stack([self.log_posterior(t) for t in texts])

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """P(author | text) for each text: (len(texts), N)."""
        return np.exp(self.log_probs(texts))

    def save(self, folder: str | Path) -> None:
        """Both files into `folder` (plain writes; plumbing/judges.py writes the cached copy whole or not at all)."""
        meta = {"authors": self.authors, "alphabet": self.alphabet, "n_max": self.n_max, "source": self.source}
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / FILES[0]).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        save_file({"vocab": self.vocab, "log_theta": self.log_theta, "log_unseen": self.log_unseen},
                  str(Path(folder) / FILES[1]))

    @classmethod
    def load(cls, folder: str | Path) -> "NgramJudge":
        meta = json.loads((Path(folder) / FILES[0]).read_text(encoding="utf-8"))
        t = load_file(str(Path(folder) / FILES[1]))
        return cls(meta["authors"], meta["alphabet"], t["vocab"], t["log_theta"], t["log_unseen"], meta["n_max"],
                   meta.get("source", ""))


def train_ngram_judge(texts: dict[str, str], n_max: int = N_MAX, alpha: float = 1.0, min_count: int = 2) -> NgramJudge:
    """Count every author's character n-grams (n = 1..n_max) and turn them into N5's log theta.

    texts: author -> training text (label order). alpha: additive smoothing. min_count: an n-gram
    enters V if it occurs at least this often in all the training text together.
    """
    authors, alphabet = list(texts), alphabet_of(list(texts.values()))
    per_author = [np.unique(gram_keys(texts[a], alphabet, n_max), return_counts=True) for a in authors]
    all_keys = np.unique(np.concatenate([k for k, _ in per_author]))
    totals = np.zeros(len(all_keys), dtype=np.int64)
    for keys, counts in per_author:
        totals[np.searchsorted(all_keys, keys)] += counts
    vocab = all_keys[totals >= min_count]
    counts = np.zeros((len(vocab), len(authors)), dtype=np.float64)
    for a, (keys, c) in enumerate(per_author):
        pos, hit = find_keys(vocab, keys)
        counts[pos[hit], a] = c[hit]
    denom = counts.sum(axis=0) + alpha * len(vocab)  # sum_h count_a(h) + alpha |V|
    return NgramJudge(authors, alphabet, vocab, np.log((counts + alpha) / denom).astype(np.float32),
                      np.log(alpha / denom).astype(np.float32), n_max)
