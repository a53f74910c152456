"""Reading a GGUF file (llama.cpp's format) and de-quantising its tensors (L6), in numpy.

The file, as version 3 writes it (all little-endian):

    "GGUF"  uint32 version  uint64 n_tensors  uint64 n_metadata
    n_metadata x (string key, uint32 type, value)       a string is uint64 length + UTF-8 bytes;
                                                         an array is uint32 item type + uint64 count + items
    n_tensors  x (string name, uint32 n_dims, n_dims x uint64 dims, uint32 ggml type, uint64 offset)
    padding to `general.alignment` (32), then the tensor data; each offset counts from there

Dimensions are listed innermost first (ne[0] is the row length), so a tensor of dims (576, 1536) is a
(1536, 576) matrix in PyTorch's order. Quantised types store blocks of 32 consecutive values of a row:

    Q8_0  34 bytes: float16 d, 32 x int8 q                       x = d q
    Q4_1  20 bytes: float16 d, float16 m, 16 bytes of nibbles    x = d q + m, the low nibble of byte j
                                                                 is element j, the high one element j + 16
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"GGUF"
QUANT_BLOCK = 32  # values per quantised block
F32, F16, Q4_1, Q8_0 = 0, 1, 3, 8  # the ggml types this reader knows
QUANT_BLOCK_BYTES = {Q8_0: 2 + QUANT_BLOCK, Q4_1: 2 + 2 + QUANT_BLOCK // 2}
SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<?", 10: "<u8", 11: "<i8",
           12: "<f8"}  # metadata value types; 8 is a string, 9 an array


class GGUFError(ValueError):
    """A file that is not the GGUF this reader understands (the message names the file and what is wrong)."""


def dequantize_q8_0(blocks: np.ndarray) -> np.ndarray:
    """L6: Q8_0, x = d q for the 32 int8 q of each block. blocks (n, 34) uint8 -> (n * 32,) float32."""
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n, 1)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)  # (n, 32)
    return (d * q).reshape(-1)


def dequantize_q4_1(blocks: np.ndarray) -> np.ndarray:
    """L6: Q4_1, x = d q + m for 32 4-bit q (low nibbles: elements 0-15, high: 16-31). (n, 20) uint8 -> (n * 32,)."""
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)  # (n, 1)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)  # (n, 1)
    nibbles = blocks[:, 4:]  # (n, 16)
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32)  # (n, 32)
    return (d * q + m).reshape(-1)


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # PyTorch order (outermost first)
    ggml_type: int
    offset: int  # from the start of the data section


class GGUFFile:
    """A GGUF file's metadata and tensors; tensors are read (and de-quantised to float32) on request."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data = np.memmap(self.path, dtype=np.uint8, mode="r")
        self.pos = 0
        if self.read(4).tobytes() != MAGIC:
            raise GGUFError(f"{self.path} is not a GGUF file (it does not start with 'GGUF')")
        version = self.scalar("<u4")
        if version != 3:
            raise GGUFError(f"{self.path} is GGUF version {version}; this reader knows version 3")
        n_tensors, n_meta = self.scalar("<u8"), self.scalar("<u8")
        self.metadata = {}
        for _ in range(n_meta):
            key = self.string()
            self.metadata[key] = self.value(self.scalar("<u4"))
        self.tensors = {}
        for _ in range(n_tensors):
            name, n_dims = self.string(), self.scalar("<u4")
            dims = [self.scalar("<u8") for _ in range(n_dims)]
            ggml_type, offset = self.scalar("<u4"), self.scalar("<u8")
            self.tensors[name] = TensorInfo(name, tuple(reversed(dims)), ggml_type, offset)
        alignment = int(self.metadata.get("general.alignment", 32))
        self.data_start = -(-self.pos // alignment) * alignment  # the next multiple of the alignment

    # ------------------------------------------------------------------ the header, field by field

    def read(self, n: int) -> np.ndarray:
        if self.pos + n > len(self.data):
            raise GGUFError(f"{self.path} ends inside its header (at byte {self.pos}): a cut or broken file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def scalar(self, dtype: str):
        size = np.dtype(dtype).itemsize
        return self.read(size).view(dtype)[0].item()

    def string(self) -> str:
        return self.read(self.scalar("<u8")).tobytes().decode("utf-8", errors="replace")

    def value(self, value_type: int):
        if value_type == 8:
            return self.string()
        if value_type == 9:
            item, count = self.scalar("<u4"), self.scalar("<u8")
            if item in SCALARS:  # a numeric array in one read
                dtype = np.dtype(SCALARS[item])
                return self.read(count * dtype.itemsize).view(dtype).tolist()
            return [self.value(item) for _ in range(count)]
        if value_type not in SCALARS:
            raise GGUFError(f"{self.path}: metadata value of unknown type {value_type} at byte {self.pos}")
        return self.scalar(SCALARS[value_type])

    # ------------------------------------------------------------------ tensors

    def tensor(self, name: str) -> np.ndarray:
        """The tensor `name` as float32, in PyTorch's shape (quantised types de-quantised, L6)."""
        info = self.tensors[name]
        n = int(np.prod(info.shape))
        start = self.data_start + info.offset
        if info.ggml_type == F32:
            flat = self.data[start : start + 4 * n].view(np.float32)
        elif info.ggml_type == F16:
            flat = self.data[start : start + 2 * n].view(np.float16).astype(np.float32)
        elif info.ggml_type in QUANT_BLOCK_BYTES:
            if n % QUANT_BLOCK:
                raise GGUFError(f"{self.path}: {name} has {n} values, not a multiple of the block of {QUANT_BLOCK}")
            size = QUANT_BLOCK_BYTES[info.ggml_type]
            blocks = np.asarray(self.data[start : start + n // QUANT_BLOCK * size]).reshape(-1, size)
            flat = (dequantize_q8_0 if info.ggml_type == Q8_0 else dequantize_q4_1)(blocks)
        else:
            raise GGUFError(f"{self.path}: {name} is of ggml type {info.ggml_type}; this reader knows F32, F16, Q8_0, Q4_1")
        if flat.size != n:
            raise GGUFError(f"{self.path}: {name} runs past the end of the file: a cut or broken file")
        return np.array(flat, dtype=np.float32).reshape(info.shape)


def unpermute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's permutation of the query or key rows (L2): a GGUF file rotates adjacent pairs
    (2j, 2j+1) of each head, the Hugging Face layout the halves (j, j + d_head/2).

    (n_head d_head, d) -> the same shape, each head's rows put back in the order of the halves.
    """
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


# ----------------------------------------------------------------------------- a Llama in a GGUF file

LLAMA_NAMES = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
               "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def llama_config(f: GGUFFile) -> dict:
    """The Hugging Face LlamaConfig fields that a GGUF file's llama.* metadata gives."""
    m = f.metadata
    if m.get("general.architecture") != "llama":
        raise GGUFError(f"{f.path} holds a {m.get('general.architecture')!r} model, not a llama")
    return {"vocab_size": len(m["tokenizer.ggml.tokens"]), "hidden_size": m["llama.embedding_length"],
            "intermediate_size": m["llama.feed_forward_length"], "num_hidden_layers": m["llama.block_count"],
            "num_attention_heads": m["llama.attention.head_count"],
            "num_key_value_heads": m.get("llama.attention.head_count_kv", m["llama.attention.head_count"]),
            "max_position_embeddings": m["llama.context_length"],
            "rms_norm_eps": float(np.float32(m["llama.attention.layer_norm_rms_epsilon"])),
            "rope_theta": m.get("llama.rope.freq_base", 10000.0),
            "bos_token_id": m.get("tokenizer.ggml.bos_token_id"), "eos_token_id": m.get("tokenizer.ggml.eos_token_id")}


def llama_state(f: GGUFFile, config: dict) -> dict[str, np.ndarray]:
    """Every tensor under its Hugging Face LlamaForCausalLM name (model.*), float32, query and key rows back in
    the layout of halves (`unpermute_rope_rows`)."""
    if "output.weight" in f.tensors:
        raise GGUFError(f"{f.path} has its own output.weight: an untied LM head, which model/llama.py does not have")
    state = {"model.embed_tokens.weight": f.tensor("token_embd.weight"), "model.norm.weight": f.tensor("output_norm.weight")}
    for name in f.tensors:
        parts = name.split(".")
        if parts[0] != "blk":
            continue
        w = f.tensor(name)
        if parts[2] == "attn_q":
            w = unpermute_rope_rows(w, config["num_attention_heads"])
        elif parts[2] == "attn_k":
            w = unpermute_rope_rows(w, config["num_key_value_heads"])
        state[f"model.layers.{parts[1]}.{LLAMA_NAMES[parts[2]]}.weight"] = w
    return state


def llama_model(f: GGUFFile):
    """model/llama.py's Llama holding a GGUF file's weights, de-quantised to float32, in eval mode."""
    import torch

    from model.config import LlamaConfig
    from model.llama import Llama

    config = llama_config(f)
    with torch.device("meta"):
        model = Llama(LlamaConfig(**config))
    state = {k.removeprefix("model."): torch.from_numpy(v) for k, v in llama_state(f, config).items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
