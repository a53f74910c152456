"""One writer for every model this project saves: a Hugging Face folder that transformers loads as it is.

    config.json              the model's config (GPTNeoForCausalLM or BertForSequenceClassification)
    model.safetensors        the weights under the Hugging Face names
    tokenizer.json           the tokenizer, as the `tokenizers` library saves it
    tokenizer_config.json    what transformers' AutoTokenizer needs to find the special tokens
    <extra>.json             facts about how the model was made (optional)

The whole folder is written under a temporary name and renamed when complete (weights/atomic.py),
so a half-written model never looks like a model. Our own loaders (`GPTNeo.from_pretrained`,
`BertClassifier.from_pretrained`) read it back; so does `transformers` with no custom code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from model.bert import BertClassifier
from model.gpt_neo import GPTNeo
from tokenizer_bridge.bpe import neo_tokenizer_config
from weights.atomic import atomic_folder

BERT_SPECIALS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                 "mask_token": "[MASK]"}


def tokenizer_config(model: torch.nn.Module, tok: Tokenizer) -> dict:
    """tokenizer_config.json for the model's kind of tokenizer."""
    if isinstance(model, GPTNeo):
        return neo_tokenizer_config(tok, model.config.max_position_embeddings)
    return {"tokenizer_class": "BertTokenizer", "do_lower_case": True, **BERT_SPECIALS,
            "model_max_length": model.bert.config.max_position_embeddings}


def write_model_folder(folder: str | Path, model: GPTNeo | BertClassifier, tok: Tokenizer,
                       extra: dict[str, dict] | None = None, config_extra: dict | None = None) -> Path:
    """Write `model` and `tok` as a complete Hugging Face folder, atomically. Returns the folder.

    extra: file name -> JSON object, written beside (e.g. {"training.json": {...}}).
    config_extra: more keys for config.json (transformers keeps keys it does not know as they are).
    """
    plain = Tokenizer.from_str(tok.to_str())  # a copy: the caller's tokenizer keeps its settings
    plain.no_truncation()
    plain.no_padding()

    def write(tmp: Path) -> None:
        config = dict(model.hf_config(), **(config_extra or {}))
        (tmp / "config.json").write_text(json.dumps(config, indent=2, allow_nan=False), encoding="utf-8")
        save_file(model.hf_state(), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        plain.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(model, tok), indent=2), encoding="utf-8")
        for name, obj in (extra or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2, allow_nan=False), encoding="utf-8")

    return atomic_folder(folder, write)
