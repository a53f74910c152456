"""model/lora.py and the adapters' files: P1-P4 by hand, separate q/k/v updates, PEFT's layout."""

from __future__ import annotations

import copy

import pytest
import torch

from model.bert import Bert, BertClassifier
from model.config import GPTNeoConfig
from model.gpt_neo import GPTNeo
from model.lora import LoRALinear, adapters_off, add_lora, lora_layers, merge_lora, trainable_parameters
from plumbing.hf_folder import load_adapter_folder, write_adapter_folder, write_model_folder
from tokenizer_bridge.load import load_bert_tokenizer


def _neo() -> GPTNeo:
    torch.manual_seed(0)
    return GPTNeo(GPTNeoConfig(vocab_size=60, max_position_embeddings=32, hidden_size=16, num_layers=2, num_heads=2,
                               window_size=4, attention_layers=["global", "local"])).eval()


def _trained_lora(model: torch.nn.Module) -> torch.nn.Module:
    """Adapters with random B (as if trained), so that the update is not zero."""
    torch.manual_seed(1)
    for _, layer in lora_layers(model):
        layer.lora_B.data.normal_(0, 0.1)
    return model


def test_p1_the_update_is_alpha_over_r_b_a_and_zero_at_the_start():
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 4)
    x = torch.randn(3, 6)
    layer = LoRALinear(copy.deepcopy(base), rank=2, alpha=8.0)
    assert torch.equal(layer(x), base(x))  # B = 0: W' = W before training
    layer.lora_B.data.normal_()
    a, b = layer.lora_A[0], layer.lora_B[0]
    assert torch.allclose(layer(x), x @ base.weight.T + base.bias + (8.0 / 2) * x @ (b @ a).T, atol=1e-6)
    assert not layer.base.weight.requires_grad and layer.lora_A.requires_grad and layer.lora_B.requires_grad


def test_the_fused_qkv_gets_three_separate_updates():
    torch.manual_seed(0)
    layer = LoRALinear(torch.nn.Linear(8, 24, bias=False), rank=2, alpha=2.0, parts=3)
    assert layer.lora_A.shape == (3, 2, 8) and layer.lora_B.shape == (3, 8, 2)
    x = torch.randn(5, 8)
    before = layer(x)
    layer.lora_B.data[1].normal_()  # only the k block's B
    change = layer(x) - before
    assert change[:, :8].abs().max() == 0 and change[:, 16:].abs().max() == 0 and change[:, 8:16].abs().max() > 0


def test_p2_only_adapters_and_head_train_and_the_count_by_hand(tiny_bert_config):
    model = BertClassifier(Bert(tiny_bert_config))
    names = add_lora(model, rank=4, alpha=8.0)
    model.head.requires_grad_(True)
    assert names == [f"bert.blocks.{i}.attn.{m}" for i in range(2) for m in ("qkv", "proj")]
    d = tiny_bert_config.hidden_size  # 32
    per_layer = 3 * 4 * (d + d) + 4 * (d + d)  # q, k, v: r (d + k) each; the output projection too
    info = trainable_parameters(model)
    assert info["lora"] == 2 * per_layer
    assert info["trainable"] == 2 * per_layer + (d * 2 + 2)  # + the head
    assert info["fraction"] == pytest.approx(2 * per_layer / (info["total"] - 2 * per_layer))  # P2: / |theta|
    assert trainable_parameters(BertClassifier(Bert(tiny_bert_config)))["fraction"] == 0.0
    model(torch.randint(1000, 2000, (2, 8))).sum().backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, p in model.named_parameters() if "lora_" in n or n.startswith("head.")}


def test_p3_merged_equals_unmerged_and_p4_off_equals_the_base():
    model = _neo()
    base = copy.deepcopy(model)
    add_lora(model, rank=2, alpha=4.0, targets="attention+mlp")
    _trained_lora(model)
    ids = torch.randint(0, 60, (2, 20))
    with torch.no_grad():
        adapted = model(ids)
        with adapters_off(model):
            assert torch.equal(model(ids), base(ids))  # P4: exactly the base
        merged = merge_lora(copy.deepcopy(model))
        assert not lora_layers(merged)
        assert (merged(ids) - adapted).abs().max() <= 1e-5  # P3
        assert (adapted - base(ids)).abs().max() > 1e-3  # the adapters do something


def test_adapter_files_round_trip_and_merged_export_loads_everywhere(tmp_path, wonderland_text):
    from tokenizer_bridge.bpe import train_bpe

    model = _neo()
    add_lora(model, rank=2, alpha=4.0)
    _trained_lora(model)
    write_adapter_folder(tmp_path / "adapter", model, "base")
    again = load_adapter_folder(_neo(), tmp_path / "adapter")
    ids = torch.randint(0, 60, (2, 12))
    with torch.no_grad():
        assert torch.equal(again(ids), model(ids))
    tok = train_bpe([wonderland_text[:5000]], vocab_size=300)
    merged = merge_lora(copy.deepcopy(model))
    folder = write_model_folder(tmp_path / "merged", merged, tok)
    with torch.no_grad():
        assert (GPTNeo.from_pretrained(folder)(ids) - model(ids)).abs().max() <= 1e-5


def test_peft_loads_our_adapters_onto_transformers_with_our_outputs(tmp_path, minilm_folder):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    # the judge: real MiniLM, adapters on the attention, a trained head
    torch.manual_seed(0)
    judge = BertClassifier(Bert.from_pretrained(minilm_folder)).eval()
    add_lora(judge, rank=4, alpha=8.0)
    _trained_lora(judge)
    write_adapter_folder(tmp_path / "judge_adapter", judge, str(minilm_folder))
    hf = transformers.BertForSequenceClassification.from_pretrained(str(minilm_folder), num_labels=2)
    hf = peft.PeftModel.from_pretrained(hf, str(tmp_path / "judge_adapter")).eval()
    ids = torch.tensor([load_bert_tokenizer(minilm_folder).encode("Curiouser and curiouser! cried Alice.").ids])
    with torch.no_grad():
        assert (hf(input_ids=ids).logits - judge(ids)).abs().max() <= 1e-5
    # a generator: a tiny GPT-Neo, adapters on attention and MLP
    neo = _neo()
    neo.save_pretrained(tmp_path / "neo")
    add_lora(neo, rank=2, alpha=4.0, targets="attention+mlp")
    _trained_lora(neo)
    write_adapter_folder(tmp_path / "neo_adapter", neo, str(tmp_path / "neo"))
    hf = transformers.GPTNeoForCausalLM.from_pretrained(str(tmp_path / "neo"))
    hf = peft.PeftModel.from_pretrained(hf, str(tmp_path / "neo_adapter")).eval()
    ids = torch.randint(0, 60, (2, 20))
    with torch.no_grad():
        assert (hf(input_ids=ids).logits - neo(ids)).abs().max() <= 1e-5


def test_a_llamas_adapters_sit_on_its_four_attention_matrices_and_load_in_peft(tmp_path):
    """P1 on the Llama: q_proj, k_proj (narrower, grouped-query), v_proj, o_proj, one update each (+ the MLP's
    three with attention+mlp); P3 and P4 hold; PEFT puts our adapters on transformers' LlamaForCausalLM."""
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    from model.config import LlamaConfig
    from model.llama import Llama

    torch.manual_seed(0)
    llama = Llama(LlamaConfig(vocab_size=60, hidden_size=24, intermediate_size=40, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)).eval()
    llama.save_pretrained(tmp_path / "llama")
    ids = torch.randint(0, 60, (2, 20))
    with torch.no_grad():
        before = llama(ids)
    names = add_lora(llama, rank=2, alpha=4.0, targets="attention+mlp")
    assert sorted({n.rsplit(".", 1)[-1] for n in names}) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj",
                                                            "up_proj", "v_proj"]
    assert len(names) == 2 * 7 and all(layer.lora_A.shape[0] == 1 for _, layer in lora_layers(llama))
    _trained_lora(llama)
    with torch.no_grad():
        ours = llama(ids)
        with adapters_off(llama):
            assert torch.equal(llama(ids), before)  # P4
        assert (merge_lora(copy.deepcopy(llama))(ids) - ours).abs().max() <= 1e-5  # P3
    write_adapter_folder(tmp_path / "adapter", llama, str(tmp_path / "llama"))
    hf = transformers.LlamaForCausalLM.from_pretrained(str(tmp_path / "llama"))
    hf = peft.PeftModel.from_pretrained(hf, str(tmp_path / "adapter")).eval()
    with torch.no_grad():
        assert (hf(input_ids=ids).logits - ours).abs().max() <= 1e-5


# ----------------------------------------------------------------------------- the switch in every program


def test_every_training_program_takes_the_lora_switch(make_tiny_bert, make_tiny_judge, small_mirror, tmp_path,
                                                       tiny_neo_base):
    import json

    from safetensors.torch import load_file

    from plumbing.runs import read_jsonl
    from scripts import coevolve, teach
    from scripts import train_bert as judge

    tiny = make_tiny_bert(tmp_path / "tiny")
    run = judge.train_judge(["--model", str(tiny), "--runs-dir", str(tmp_path / "j"), "--per-author", "2", "--length",
                             "32", "--eval-length", "64", "--eval-per-author", "2", "--steps", "2", "--device", "cpu",
                             "--lora-rank", "2"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["fraction"] < 0.2 and summary["lora"] == 2 * (3 * 2 * 64 + 2 * 64)
    start, trained = load_file(tiny / "model.safetensors"), load_file(run / "hf" / "model.safetensors")
    assert torch.equal(start["bert.embeddings.word_embeddings.weight"], trained["bert.embeddings.word_embeddings.weight"])
    assert (run / "adapter" / "adapter_config.json").is_file()  # the adapters alone, PEFT's layout

    base = tiny_neo_base
    make_tiny_judge(tmp_path / "runs")
    common = ["--base", str(base), "--runs-dir", str(tmp_path / "runs"), "--steps", "2", "--eval-every", "2", "--rows",
              "2", "--judge-length", "12", "--length", "32", "--batch-size", "2", "--heldout-windows", "2", "--device",
              "cpu", "--lora-rank", "2"]
    co = coevolve.coevolve(common)
    assert (co / "generators" / "alice" / "adapter" / "adapter_model.safetensors").is_file()
    [rl] = teach.teach(common + ["--prompts", "2", "--samples", "2", "--rl-overgen", "3"])
    evals = [r for r in read_jsonl(rl / "metrics.jsonl") if r["kind"] == "eval"]
    assert evals[0]["kl_alice"] == pytest.approx(0.0, abs=1e-6) and evals[-1]["kl_alice"] > 0  # pi_ref = adapters off

    from scripts import lora_table  # P2's table reads each run's summary.json
    lora_table.run([str(run), str(co), "--runs-dir", str(tmp_path / "runs")])
    md = next((tmp_path / "runs" / "compare").glob("*/lora.md")).read_text()
    judge_row, co_row = md.splitlines()[2:]
    assert judge_row.startswith(f"| judge ({run.name}) | r=2, alpha=16, attention | {summary['trainable']:,} |")
    last = [r for r in read_jsonl(co / "metrics.jsonl") if r["kind"] == "eval"][-1]
    held = (last["heldout_alice"] + last["heldout_edgar"]) / 2
    assert co_row.endswith(f"| held-out LM loss {held:.3f}, judge accuracy {last['acc']:.3f} |")
