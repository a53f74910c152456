"""One writer for every model this project saves: a Hugging Face folder that transformers loads as it is.

    config.json              the model's config (GPTNeoForCausalLM, LlamaForCausalLM or BertForSequenceClassification)
    model.safetensors        the weights under the Hugging Face names
    tokenizer.json           the tokenizer, as the `tokenizers` library saves it
    tokenizer_config.json    what transformers' AutoTokenizer needs to find the special tokens
    <extra>.json             facts about how the model was made (optional)
    README.md                the model card: what it is, made from what, measured how (plumbing/model_card.py)

The whole folder is written under a temporary name and renamed when complete (plumbing/atomic.py),
so a half-written model never looks like a model. Our own loaders (`GPTNeo.from_pretrained`,
`Llama.from_pretrained`, `BertClassifier.from_pretrained`) read it back; so does `transformers` with no custom code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from model.bert import BertClassifier, classifier_names
from model.gguf import GGUFFile, llama_model
from model.gpt_neo import GPTNeo
from model.gpt_neo import hf_names as gpt_neo_names
from model.llama import Llama
from model.llama import hf_names as llama_names
from model.lora import add_lora, lora_layers, merged_copy
from plumbing.atomic import atomic_folder
from plumbing.model_card import CARD_FILE, ModelCard, card_text
from tokenizer_bridge.bpe import neo_tokenizer_config
from tokenizer_bridge.names import masks_names
from tokenizer_bridge.from_gguf import gguf_tokenizer

BERT_SPECIALS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                 "mask_token": "[MASK]"}


def tokenizer_config(model: torch.nn.Module, tok: Tokenizer) -> dict:
    """tokenizer_config.json for the model's kind of tokenizer."""
    if isinstance(model, GPTNeo):
        return neo_tokenizer_config(tok, model.config.max_position_embeddings)
    if isinstance(model, Llama):  # SmolLM2's ChatML tokens (bos 1, eos 2)
        return {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": tok.id_to_token(model.config.bos_token_id),
                "eos_token": tok.id_to_token(model.config.eos_token_id),
                "pad_token": tok.id_to_token(model.config.eos_token_id), "unk_token": tok.id_to_token(0),
                "model_max_length": model.config.max_position_embeddings}
    # A judge whose tokenizer masks names (tokenizer_bridge/names.py) must be read from its tokenizer.json as it is:
    # BertTokenizer would rebuild the WordPiece from the vocabulary and lose the rule.
    kind = "PreTrainedTokenizerFast" if masks_names(tok) else "BertTokenizer"
    return {"tokenizer_class": kind, "do_lower_case": True, **BERT_SPECIALS,
            "model_max_length": model.bert.config.max_position_embeddings}


def write_model_folder(folder: str | Path, model: GPTNeo | Llama | BertClassifier, tok: Tokenizer,
                       extra: dict[str, dict] | None = None, config_extra: dict | None = None,
                       card: ModelCard | None = None) -> Path:
    """Write `model` and `tok` as a complete Hugging Face folder, atomically. Returns the folder.

    A model with LoRA adapters is written merged (P3): an ordinary folder (`write_adapter_folder` keeps the
    adapters alone). extra: file name -> JSON object, written beside (e.g. {"training.json": {...}}).
    config_extra: more keys for config.json (transformers keeps keys it does not know as they are).
    card: the model card, written as README.md.
    """
    model = merged_copy(model)
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
        if card is not None:
            (tmp / CARD_FILE).write_text(card_text(card), encoding="utf-8")

    return atomic_folder(folder, write)


# ----------------------------------------------------------------------------- LoRA adapters in PEFT's layout

ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


def hf_modules(model: torch.nn.Module) -> dict[str, tuple[str, ...]]:
    """Our linear layer's name -> the Hugging Face module name(s) it is (three for the fused q/k/v)."""
    if isinstance(model, GPTNeo):
        table = {k: tuple(f"transformer.{n}" for n in v) for k, v in gpt_neo_names(model.config).items()}
    elif isinstance(model, Llama):
        table = {k: tuple(f"model.{n}" for n in v) for k, v in llama_names(model.config).items()}
    else:
        table = classifier_names(model.bert.config)
    return {k.removesuffix(".weight"): tuple(n.removesuffix(".weight") for n in v)
            for k, v in table.items() if k.endswith(".weight")}


def write_adapter_folder(folder: str | Path, model: torch.nn.Module, base: str) -> Path:
    """P2's trained part on its own, as PEFT saves it: adapter_config.json + adapter_model.safetensors.

    The LoRA matrices under PEFT's names (base_model.model.<module>.lora_A.weight (r, k) and lora_B.weight
    (d, r), one pair per q, k, v of a fused matrix), and the judge's head as a module PEFT saves whole.
    `peft.PeftModel.from_pretrained(transformers_model, folder)` loads it.
    """
    modules, tensors, targets, first = hf_modules(model), {}, [], None
    for name, layer in lora_layers(model):
        first = first or layer
        for part, hf in enumerate(modules[name]):
            tensors[f"base_model.model.{hf}.lora_A.weight"] = layer.lora_A[part].detach().float().contiguous()
            tensors[f"base_model.model.{hf}.lora_B.weight"] = layer.lora_B[part].detach().float().contiguous()
            targets.append(hf)
    judge = isinstance(model, BertClassifier)
    if judge:
        tensors.update({f"base_model.model.classifier.{k}": v.detach().float() for k, v in model.head.state_dict().items()})
    config = {"peft_type": "LORA", "task_type": "SEQ_CLS" if judge else "CAUSAL_LM",
              "r": first.rank, "lora_alpha": first.alpha, "lora_dropout": first.drop.p, "target_modules": sorted(targets),
              "modules_to_save": ["classifier"] if judge else None, "bias": "none",
              "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": "gaussian",
              "base_model_name_or_path": str(base)}

    def write(tmp: Path) -> None:
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})

    return atomic_folder(folder, write)


@torch.no_grad()
def load_adapter_folder(model: torch.nn.Module, folder: str | Path) -> torch.nn.Module:
    """The inverse: add adapters to `model` (our BertClassifier, GPTNeo or Llama) as the folder describes, with its weights."""
    config = json.loads((Path(folder) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    tensors = load_file(str(Path(folder) / ADAPTER_WEIGHTS))
    modules = hf_modules(model)
    ours = [name for name, hf in modules.items() if any(h in config["target_modules"] for h in hf)]
    add_lora(model, config["r"], config["lora_alpha"], targets=tuple(ours), dropout=config.get("lora_dropout", 0.0))
    for name, layer in lora_layers(model):
        for part, hf in enumerate(modules[name]):
            layer.lora_A[part].copy_(tensors[f"base_model.model.{hf}.lora_A.weight"])
            layer.lora_B[part].copy_(tensors[f"base_model.model.{hf}.lora_B.weight"])
    if isinstance(model, BertClassifier):
        model.head.load_state_dict({k: tensors[f"base_model.model.classifier.{k}"] for k in ("weight", "bias")})
    return model


def write_gguf_llama_folder(gguf_path: Path, folder: Path) -> Path:
    """A Llama in a GGUF file as a Hugging Face LlamaForCausalLM folder: float32 weights (L6 undone), the
    tokenizer built from the file's tokens and merges; written whole or not at all."""
    f = GGUFFile(gguf_path)
    print(f"converting {gguf_path.name} (de-quantising its {len(f.tensors)} tensors) ...", file=sys.stderr)
    model, tok = llama_model(f), gguf_tokenizer(f.metadata)
    source = {"gguf_file": gguf_path.name, "general.name": f.metadata.get("general.name"),
              "license": f.metadata.get("general.license")}
    return write_model_folder(folder, model, tok, extra={"source.json": source}, card=gguf_base_card(gguf_path, model,
                                                                                                   source))


def gguf_base_card(gguf_path: Path, model: Llama, source: dict) -> ModelCard:
    """The card of a base converted from a GGUF file (SmolLM2-135M-Instruct)."""
    c = model.config
    n = sum(p.numel() for p in model.parameters())
    return ModelCard(
        title=f"{gguf_path.name.split('.')[0]}, as a Hugging Face LlamaForCausalLM folder",
        summary=(f"A Llama-family decoder of {n / 1e6:.1f} M parameters ({c.num_hidden_layers} layers, width "
                 f"{c.hidden_size}, {c.num_attention_heads} query heads sharing {c.num_key_value_heads} key/value "
                 f"groups, SwiGLU {c.intermediate_size}, RoPE base {c.rope_theta:g}, tied embeddings, a "
                 f"{c.vocab_size}-token byte-level BPE), converted by `python -m scripts.weights fetch` from the GGUF "
                 f"file {gguf_path.name}. It is not GPT-Neo. It is instruction-tuned (ChatML: <|im_start|>, "
                 "<|im_end|>), so untuned it writes modern assistant prose. Its weights were stored 4-bit (Q4_1 "
                 "matrices, Q8_0 embeddings) and are de-quantised here to float32 (L6): they are the file's "
                 "values, not the original bfloat16 ones. Public-domain books such as the authors' are very likely "
                 "in its pretraining data, so its held-out loss on them flatters it."),
        made_from={"GGUF file": f"{gguf_path.name} ({gguf_path.stat().st_size} bytes, in {gguf_path.parent})",
                   "GGUF general.name": source.get("general.name"),
                   "conversion": "model/gguf.py (reader, L6 de-quantisation, RoPE rows un-permuted), "
                                 "tokenizer_bridge/from_gguf.py (tokenizer from the file's tokens and merges)",
                   "parameters": n},
        licence=f"{source.get('license') or 'not given in the file'} (general.license of the GGUF file)",
        use="`transformers.LlamaForCausalLM.from_pretrained(FOLDER)`; here: `python -m scripts.generate FOLDER`, "
            "or `--base FOLDER` of scripts.coevolve and scripts.teach")
