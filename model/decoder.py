"""The generators' two decoders behind one door: a folder's config.json says which one it holds.

    model_type   class                      what it is
    gpt_neo      model/gpt_neo.py:GPTNeo    lecture B's decoder (our neo-small, gpt-neo-125M)
    llama        model/llama.py:Llama       a Llama-family decoder (SmolLM2-135M, L1-L5)

Both take ids (B, T) and return logits (B, T, V), keep their keys and values in the same KV cache
(model/gpt_neo.py:KVCache, shaped by `config.kv_layout()`), tie their head to the token embedding
and save themselves in the Hugging Face layout. So the sampler, the LM loss, LoRA, RL and the
tokenizer bridge never ask which of the two they were given.
"""

from __future__ import annotations

from pathlib import Path

from model.config import ConfigError, GPTNeoConfig, LlamaConfig, read_config_json
from model.gpt_neo import GPTNeo
from model.llama import Llama

Decoder = GPTNeo | Llama
DECODERS = {"gpt_neo": (GPTNeoConfig, GPTNeo), "llama": (LlamaConfig, Llama)}


def decoder_kind(folder: str | Path) -> str:
    """"gpt_neo" or "llama": the model_type of the folder's config.json (ConfigError for anything else)."""
    kind = read_config_json(folder).get("model_type")
    if kind == "bert":
        raise ConfigError(f"{folder} holds a BERT model, not a generator (GPT-Neo or Llama): a judge goes to "
                          "scripts.classify or --judge, an encoder to scripts.train_bert --model")
    if kind not in DECODERS:
        raise ConfigError(f"{folder} has model_type={kind!r}, not a generator: a generator folder holds a GPT-Neo or "
                          "a Llama (config.json model_type gpt_neo or llama), e.g. neo-small or smollm2-135m")
    return kind


def decoder_config(folder: str | Path) -> GPTNeoConfig | LlamaConfig:
    """The folder's decoder shape (context, width, vocabulary), read without loading any weight."""
    config_class, _ = DECODERS[decoder_kind(folder)]
    return config_class.from_folder(folder)


def load_decoder(folder: str | Path) -> Decoder:
    """The folder's GPT-Neo or Llama, loaded by its own strict loader, in eval mode."""
    _, model_class = DECODERS[decoder_kind(folder)]
    return model_class.from_pretrained(folder)
