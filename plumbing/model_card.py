"""The model card: a README.md in every model folder this project writes (judge, generators, bases).

Whoever finds the folder alone (copied off a machine, opened on the hub) reads in it what the model is,
what it was made from and on (base, authors and books, steps, the run folder), what was measured, and
the licence it inherits from its base. `plumbing/hf_folder.py:write_model_folder` writes it beside
config.json; the facts come from the program that trained the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.authors import AUTHORS, book_name, split_books

CARD_FILE = "README.md"
TEXTS_LICENCE = "the training texts are Project Gutenberg books, in the public domain in the USA"
OWN_LICENCE = "trained from scratch by this project (alice-edgar), no pretrained weights inside"


@dataclass
class ModelCard:
    """What a model card says, in four parts."""

    title: str
    summary: str  # what the model is, in a paragraph
    made_from: dict[str, Any]  # base, authors and books, steps, run folder, ...
    results: dict[str, Any] = field(default_factory=dict)  # what was measured, each named with its equation
    licence: str = ""
    use: str = ""  # how to load it


def authors_line(authors: list[str], split: str = "tail") -> str:
    """"alice (Lewis Carroll: #12, #11), edgar (...)": who the model learned from, in which books (Gutenberg ids or
    the files of an author's folder); under the book split, which were trained on and which was held out."""
    def books(a: str) -> str:
        trained, heldout = split_books(a, split)
        listed = ("" if AUTHORS[a].folder else "Gutenberg ") + ", ".join(book_name(b) for b in trained)
        return listed if heldout is None else f"trained on {listed}; held out {book_name(heldout)}"
    return ", ".join(f"{a} ({AUTHORS[a].writer}: {books(a)})" for a in authors if a in AUTHORS)


def shown(value: Any) -> str:
    """A table cell: floats to 4 digits, the table's own | escaped, one line."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def card_text(card: ModelCard) -> str:
    """The card as Markdown."""
    lines = [f"# {card.title}", "", card.summary, "", "## Made from", "", "| | |", "|---|---|"]
    lines += [f"| {shown(k)} | {shown(v)} |" for k, v in card.made_from.items()]
    if card.results:
        lines += ["", "## Measured", "", "| | |", "|---|---|"]
        lines += [f"| {shown(k)} | {shown(v)} |" for k, v in card.results.items()]
    lines += ["", "## Licence", "", card.licence or "not recorded: see the base model's own folder"]
    if card.use:
        lines += ["", "## Use", "", card.use]
    return "\n".join(lines) + "\n"


def base_licence(folder: str | Path) -> str:
    """The licence a model made from `folder` inherits: what the base's card, source.json or LICENSE says."""
    folder = Path(folder)
    for name in ("source.json", "training.json", "pretrain.json"):
        try:
            facts = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(facts, dict) and (facts.get("license") or facts.get("licence")):
            return str(facts.get("license") or facts.get("licence"))
    licence = folder / "LICENSE"
    if licence.is_file():
        first = next((line.strip() for line in licence.read_text(encoding="utf-8", errors="replace").splitlines()
                      if line.strip()), "")
        return f"{first} (the base's LICENSE file)" if first else "see the base's LICENSE file"
    return "not recorded in the base folder"


def hf_use(kind: str) -> str:
    """How to load a folder of this kind, with transformers and with this project."""
    if kind == "judge":
        return ("`transformers.pipeline(\"text-classification\", model=FOLDER, top_k=None)`; here: "
                "`python -m scripts.classify --judge FOLDER \"some text\"`")
    if kind == "mean-pooled judge":  # no transformers class pools by the mean: the encoder, then three lines
        return ("`transformers.AutoModel.from_pretrained(FOLDER)` is the encoder; with `h` the mean of its "
                "`last_hidden_state` over the attention mask, P(author) = softmax(h Wᵀ + b), W and b the "
                "`classifier.weight` and `classifier.bias` of model.safetensors (labels: config.json's id2label); "
                "here: `python -m scripts.classify --judge FOLDER \"some text\"`")
    return ("`transformers.AutoModelForCausalLM.from_pretrained(FOLDER)` and `AutoTokenizer.from_pretrained(FOLDER)`; "
            "here: `python -m scripts.generate FOLDER`")
