"""Model configurations, read from a Hugging Face `config.json`.

Two small dataclasses, one per network. `from_hf` takes the parsed JSON of a
Hugging Face folder, keeps only what our code uses, and rejects anything we do
not implement with a message that says what to do, instead of silently
computing something else. `to_hf` writes the JSON back (used when we save our
own pretrained GPT-Neo so that `transformers` can load it too).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from weights.store import repair_advice


class ConfigError(ValueError):
    """A config.json that is missing, unreadable, or asks for something we do not implement."""


def read_config_json(folder: str | Path) -> dict:
    """Read `folder/config.json`, with a clear error when the folder or the file is missing or broken."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file, but a model folder (config.json, model.safetensors, ...) is needed: "
                          "give the folder that holds it")
    if not folder.is_dir():
        raise ConfigError(
            f"weights folder {folder} does not exist. Fetch weights with `make weights` "
            "or `python -m scripts.weights fetch NAME` (see `python -m scripts.weights list`)."
        )
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing: a Hugging Face model folder needs config.json next to "
            "model.safetensors. Fetch the model again with `python -m scripts.weights fetch NAME`."
        )
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err}): {repair_advice(folder)}.") from err
    if not isinstance(hf, dict):
        raise ConfigError(f"{path} holds a JSON {type(hf).__name__}, not an object of settings: {repair_advice(folder)}.")
    return hf


def typed_fields(cls, hf: dict) -> dict:
    """The keys of `hf` that `cls` has, each checked against the field's type (ConfigError naming it)."""
    kinds = {"int": (int,), "float": (int, float), "str": (str,), "list[str]": (list,), "int | None": (int,)}
    out = {}
    for name, f in cls.__dataclass_fields__.items():
        if name not in hf or hf[name] is None:
            continue
        value, ok = hf[name], kinds.get(str(f.type), (object,))
        if isinstance(value, bool) or not isinstance(value, ok):
            raise ConfigError(f"config.json: {name} must be {f.type}, got {value!r}")
        out[name] = value
    return out


def _check_model_type(hf: dict, expected: str, loader: str) -> None:
    found = hf.get("model_type")
    if found == expected:
        return
    kinds = {"bert": ("a BERT model", "a judge goes to scripts.classify or --judge, an encoder to scripts.train_bert --model"),
             "gpt_neo": ("a GPT-Neo generator", "a generator goes to scripts.generate or --base"),
             "llama": ("a Llama-family decoder", "a decoder is read by model/llama.py:Llama.from_pretrained")}
    if found not in kinds:
        raise ConfigError(f"config.json has model_type={found!r}: this project reads only BERT, GPT-Neo and Llama "
                          f"folders ({loader} needs {expected!r})")
    (have, use), (need, _) = kinds[found], kinds[expected]
    raise ConfigError(f"this folder holds {have}, not {need}: give a folder of {need} here ({use})")


def _reject(condition: bool, message: str) -> None:
    if condition:
        raise ConfigError(message)


@dataclass
class BertConfig:
    """Shape and regularisation of a BERT encoder (lecture A1)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0

    @classmethod
    def from_hf(cls, hf: dict) -> "BertConfig":
        """Build from a Hugging Face BERT config.json dict; reject options we do not implement."""
        _check_model_type(hf, "bert", "Bert.from_pretrained")
        pos = hf.get("position_embedding_type", "absolute")
        _reject(pos != "absolute", f"position_embedding_type={pos!r} is not supported; only 'absolute' is.")
        act = hf.get("hidden_act", "gelu")
        _reject(act != "gelu", f"hidden_act={act!r} is not supported; BERT here uses the exact (erf) 'gelu'.")
        _reject(bool(hf.get("is_decoder")), "is_decoder=true is not supported: this BERT is an encoder only.")
        _reject(bool(hf.get("add_cross_attention")), "add_cross_attention=true is not supported.")
        cfg = cls(**typed_fields(cls, hf))
        _reject(
            cfg.hidden_size % cfg.num_attention_heads != 0,
            f"hidden_size={cfg.hidden_size} is not a multiple of num_attention_heads={cfg.num_attention_heads}.",
        )
        return cfg

    @classmethod
    def from_folder(cls, folder: str | Path) -> "BertConfig":
        """Read `folder/config.json` into a BertConfig."""
        return cls.from_hf(read_config_json(folder))

    def to_hf(self) -> dict:
        """The config.json that Hugging Face `BertModel.from_pretrained` reads."""
        return dict(asdict(self), model_type="bert", architectures=["BertModel"], hidden_act="gelu",
                    position_embedding_type="absolute")


@dataclass
class GPTNeoConfig:
    """Shape of a GPT-Neo decoder (lecture B1). `attention_layers` holds one kind per layer."""

    vocab_size: int = 50257
    max_position_embeddings: int = 2048
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int | None = None  # None means 4 * hidden_size, as in Hugging Face
    window_size: int = 256
    attention_layers: list[str] = field(default_factory=lambda: ["global", "local"] * 6)
    layer_norm_epsilon: float = 1e-5
    embed_dropout: float = 0.0
    attention_dropout: float = 0.0
    resid_dropout: float = 0.0
    bos_token_id: int = 50256
    eos_token_id: int = 50256

    def __post_init__(self) -> None:
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        _reject(
            len(self.attention_layers) != self.num_layers,
            f"attention_types expand to {len(self.attention_layers)} layers but num_layers={self.num_layers}.",
        )
        bad = sorted(set(self.attention_layers) - {"global", "local"})
        _reject(bool(bad), f"unknown attention type(s) {bad}; GPT-Neo layers are 'global' or 'local'.")
        _reject(
            self.hidden_size % self.num_heads != 0,
            f"hidden_size={self.hidden_size} is not a multiple of num_heads={self.num_heads}.",
        )

    def kv_layout(self) -> tuple[int, int, int]:
        """(layers, heads with keys and values, head width): the shape of a KV cache (model/gpt_neo.py:KVCache)."""
        return self.num_layers, self.num_heads, self.hidden_size // self.num_heads

    @staticmethod
    def expand_attention_types(attention_types: list) -> list[str]:
        """[[["global", "local"], 6]] -> ["global", "local", "global", "local", ...] (12 entries)."""
        layers: list[str] = []
        for kinds, repeat in attention_types:
            layers.extend(list(kinds) * int(repeat))
        return layers

    @classmethod
    def from_hf(cls, hf: dict) -> "GPTNeoConfig":
        """Build from a Hugging Face GPT-Neo config.json dict; reject options we do not implement."""
        _check_model_type(hf, "gpt_neo", "GPTNeo.from_pretrained")
        act = hf.get("activation_function", "gelu_new")
        _reject(act != "gelu_new", f"activation_function={act!r} is not supported; GPT-Neo uses 'gelu_new'.")
        _reject(
            hf.get("tie_word_embeddings", True) is False,
            "tie_word_embeddings=false is not supported: the LM head is the token embedding here.",
        )
        keys = typed_fields(cls, hf)
        keys.pop("attention_layers", None)  # always derived from attention_types, as Hugging Face does
        try:
            layers = cls.expand_attention_types(hf.get("attention_types", [[["global", "local"], 12]]))
        except (TypeError, ValueError):
            raise ConfigError(f"config.json: attention_types must look like [[['global', 'local'], 6]], "
                              f"got {hf.get('attention_types')!r}") from None
        return cls(attention_layers=layers, **keys)

    @classmethod
    def from_folder(cls, folder: str | Path) -> "GPTNeoConfig":
        """Read `folder/config.json` into a GPTNeoConfig."""
        return cls.from_hf(read_config_json(folder))

    def to_hf(self) -> dict:
        """The config.json that Hugging Face `GPTNeoForCausalLM.from_pretrained` reads."""
        hf = asdict(self)
        layers = hf.pop("attention_layers")
        # Write the compact form when the stack is a repeated pattern, else one entry per layer.
        hf["attention_types"] = [[[kind], 1] for kind in layers]
        for period in (1, 2):
            pattern = layers[:period]
            if len(layers) % period == 0 and pattern * (len(layers) // period) == layers:
                hf["attention_types"] = [[pattern, len(layers) // period]]
                break
        hf.update(
            model_type="gpt_neo",
            architectures=["GPTNeoForCausalLM"],
            activation_function="gelu_new",
            tie_word_embeddings=True,
        )
        return hf


@dataclass
class LlamaConfig:
    """Shape of a Llama-family decoder (L1-L5), such as SmolLM2-135M: RMSNorm, RoPE, grouped-query
    attention, SwiGLU, tied embeddings, no biases."""

    vocab_size: int = 49152
    hidden_size: int = 576
    intermediate_size: int = 1536
    num_hidden_layers: int = 30
    num_attention_heads: int = 9
    num_key_value_heads: int = 3
    max_position_embeddings: int = 8192
    rms_norm_eps: float = 1e-5
    rope_theta: float = 100000.0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2

    def __post_init__(self) -> None:
        _reject(self.hidden_size % self.num_attention_heads != 0,
                f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={self.num_attention_heads}.")
        _reject(self.num_attention_heads % self.num_key_value_heads != 0,
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}: L3 gives each group the same number of heads.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def kv_layout(self) -> tuple[int, int, int]:
        """(layers, key/value groups, head width): the shape of a KV cache (model/gpt_neo.py:KVCache)."""
        return self.num_hidden_layers, self.num_key_value_heads, self.head_dim

    @classmethod
    def from_hf(cls, hf: dict) -> "LlamaConfig":
        """Build from a Hugging Face Llama config.json dict; reject options we do not implement."""
        _check_model_type(hf, "llama", "Llama.from_pretrained")
        _reject(hf.get("hidden_act", "silu") != "silu", f"hidden_act={hf.get('hidden_act')!r}: L4 uses SiLU.")
        _reject(hf.get("tie_word_embeddings", True) is False,
                "tie_word_embeddings=false is not supported: the LM head is the token embedding here.")
        _reject(bool(hf.get("attention_bias") or hf.get("mlp_bias")), "biases in attention or MLP are not supported.")
        _reject(hf.get("rope_scaling") is not None, f"rope_scaling={hf.get('rope_scaling')!r} is not supported.")
        rope = hf.get("rope_parameters") or {}  # transformers 5 keeps rope_theta there; older files at the top
        _reject(rope.get("rope_type", "default") != "default", f"rope_type={rope.get('rope_type')!r} is not supported.")
        head_dim = hf.get("head_dim")
        _reject(head_dim is not None and head_dim != hf["hidden_size"] // hf["num_attention_heads"],
                f"head_dim={head_dim} differs from hidden_size / num_attention_heads: not supported.")
        return cls(**typed_fields(cls, dict(hf, rope_theta=rope.get("rope_theta", hf.get("rope_theta")))))

    @classmethod
    def from_folder(cls, folder: str | Path) -> "LlamaConfig":
        return cls.from_hf(read_config_json(folder))

    def to_hf(self) -> dict:
        """The config.json that Hugging Face `LlamaForCausalLM.from_pretrained` reads."""
        return dict(asdict(self), model_type="llama", architectures=["LlamaForCausalLM"], hidden_act="silu",
                    tie_word_embeddings=True, attention_bias=False, mlp_bias=False, head_dim=self.head_dim,
                    rope_parameters={"rope_theta": self.rope_theta, "rope_type": "default"})
