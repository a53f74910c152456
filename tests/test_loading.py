"""Strict loading: every broken folder gives the documented error, and nothing loads partially.

The folders are made with our own save code and safetensors, so these tests need no transformers.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import bert as bert_module
from model.bert import Bert
from model.config import BertConfig, ConfigError, GPTNeoConfig
from model.gpt_neo import GPTNeo
from model.loading import CheckpointError, to_hf_state

TINY_NEO = GPTNeoConfig(vocab_size=97, max_position_embeddings=64, hidden_size=32, num_layers=3,
                        num_heads=4, window_size=8, attention_layers=["local", "global", "global"])
TINY_BERT = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=64)


@pytest.fixture
def neo_folder(tmp_path):
    torch.manual_seed(0)
    GPTNeo(TINY_NEO).save_pretrained(tmp_path)
    return tmp_path


def save_bert_folder(folder, transform=lambda name: name) -> Bert:
    """A random tiny BERT saved in the Hugging Face layout, with checkpoint names passed through `transform`."""
    torch.manual_seed(0)
    model = Bert(TINY_BERT).eval()
    tensors = {transform(k): v for k, v in to_hf_state(model, bert_module.hf_names(TINY_BERT), "").items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    cfg = {"model_type": "bert", **TINY_BERT.__dict__}
    (folder / "config.json").write_text(json.dumps(cfg))
    return model


def rewrite(folder, edit) -> None:
    path = str(folder / "model.safetensors")
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def test_round_trip_is_exact(neo_folder):
    torch.manual_seed(0)
    original = GPTNeo(TINY_NEO).eval()
    loaded = GPTNeo.from_pretrained(neo_folder)
    ids = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        assert torch.equal(original(ids), loaded(ids))


def test_truncated_file(neo_folder):
    path = neo_folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        GPTNeo.from_pretrained(neo_folder)


def test_garbage_file(neo_folder):
    (neo_folder / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        GPTNeo.from_pretrained(neo_folder)


def test_missing_unexpected_and_wrong_shape_listed_together(neo_folder):
    def edit(t):
        del t["transformer.h.1.attn.attention.k_proj.weight"]
        t["transformer.h.0.mlp.c_fc.bias"] = torch.zeros(7)
        t["transformer.extra.weight"] = torch.zeros(3)

    rewrite(neo_folder, edit)
    with pytest.raises(CheckpointError) as err:
        GPTNeo.from_pretrained(neo_folder)
    text = str(err.value)
    assert "missing (1): h.1.attn.attention.k_proj.weight" in text
    assert "unexpected (1): extra.weight" in text
    assert "wrong shape (1): h.0.mlp.c_fc.bias" in text and "(7,)" in text


def test_missing_weights_file_refuses_pickles(neo_folder):
    (neo_folder / "model.safetensors").rename(neo_folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="never read"):
        GPTNeo.from_pretrained(neo_folder)


def test_missing_config_and_missing_folder(neo_folder, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        GPTNeo.from_pretrained(tmp_path / "nowhere")
    (neo_folder / "config.json").unlink()
    with pytest.raises(ConfigError, match="config.json is missing"):
        GPTNeo.from_pretrained(neo_folder)


def test_other_architecture_is_named(neo_folder, tmp_path):
    with pytest.raises(ConfigError, match="holds a GPT-Neo generator, not a BERT model.*scripts.generate or --base"):
        Bert.from_pretrained(neo_folder)
    save_bert_folder(tmp_path / "bert")
    with pytest.raises(ConfigError, match="holds a BERT model, not a GPT-Neo generator.*scripts.classify or --judge"):
        GPTNeo.from_pretrained(tmp_path / "bert")


def test_unknown_model_type_and_unsupported_options():
    with pytest.raises(ConfigError, match="'mistral'"):
        BertConfig.from_hf({"model_type": "mistral"})
    with pytest.raises(ConfigError, match="holds a Llama-family decoder, not a BERT model"):
        BertConfig.from_hf({"model_type": "llama"})
    with pytest.raises(ConfigError, match="position_embedding_type='relative_key'"):
        BertConfig.from_hf({"model_type": "bert", "position_embedding_type": "relative_key"})
    with pytest.raises(ConfigError, match="activation_function='relu'"):
        GPTNeoConfig.from_hf({"model_type": "gpt_neo", "activation_function": "relu"})
    with pytest.raises(ConfigError, match="num_layers=3"):
        GPTNeoConfig.from_hf({"model_type": "gpt_neo", "num_layers": 3, "attention_types": [[["global"], 2]]})


def test_attention_types_expand_and_round_trip():
    cfg = GPTNeoConfig.from_hf({"model_type": "gpt_neo", "num_layers": 12,
                                "attention_types": [[["global", "local"], 6]]})
    assert cfg.attention_layers == ["global", "local"] * 6
    assert cfg.to_hf()["attention_types"] == [[["global", "local"], 6]]
    odd = GPTNeoConfig.from_hf(TINY_NEO.to_hf())
    assert odd.attention_layers == ["local", "global", "global"]


def test_bert_prefix_and_legacy_gamma_beta_names(tmp_path):
    def legacy(name: str) -> str:
        name = "bert." + name
        return name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")

    original = save_bert_folder(tmp_path, legacy)
    loaded = Bert.from_pretrained(tmp_path)
    ids = torch.randint(0, 97, (2, 10))
    with torch.no_grad():
        assert torch.equal(original(ids)[0], loaded(ids)[0])


def test_bert_pretraining_heads_are_ignored_but_a_classifier_is_not(tmp_path):
    save_bert_folder(tmp_path, lambda n: "bert." + n)
    rewrite(tmp_path, lambda t: t.update({"cls.predictions.bias": torch.zeros(97)}))
    Bert.from_pretrained(tmp_path)  # MLM head of bert-base-uncased: known, unused
    rewrite(tmp_path, lambda t: t.update({"classifier.weight": torch.zeros(2, 32)}))
    with pytest.raises(CheckpointError, match="unexpected.*classifier.weight"):
        Bert.from_pretrained(tmp_path)


def test_lm_head_must_be_the_tied_embedding(neo_folder):
    rewrite(neo_folder, lambda t: t.update({"lm_head.weight": t["transformer.wte.weight"].clone()}))
    GPTNeo.from_pretrained(neo_folder)
    rewrite(neo_folder, lambda t: t.update({"lm_head.weight": torch.zeros_like(t["transformer.wte.weight"])}))
    with pytest.raises(CheckpointError, match="lm_head.weight differs"):
        GPTNeo.from_pretrained(neo_folder)


def test_half_precision_checkpoint_loads_as_float32(tmp_path, neo_folder):
    rewrite(neo_folder, lambda t: t.update({k: v.half() for k, v in t.items()}))
    model = GPTNeo.from_pretrained(neo_folder)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_copy_of_folder_is_independent(neo_folder, tmp_path):
    """from_pretrained does not keep the file open or share storage with it."""
    copy = tmp_path / "copy"
    shutil.copytree(neo_folder, copy)
    model = GPTNeo.from_pretrained(copy)
    shutil.rmtree(copy)
    with torch.no_grad():
        model(torch.zeros(1, 4, dtype=torch.long))
