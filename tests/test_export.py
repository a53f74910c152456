"""Keep what you train: Hugging Face folders that transformers loads as they are, and `scripts.generate`."""

from __future__ import annotations

import json

import pytest
import torch

from eval.scoring import classify
from model.bert import Bert, BertClassifier
from model.gpt_neo import GPTNeo
from model.sampler import Sampling, bad_token_mask
from plumbing.generators import sample_texts
from plumbing.hf_folder import write_model_folder
from plumbing.judges import INFO_KEY, load_bert_judge
from scripts import generate as gen_cli
from tokenizer_bridge.load import load_bert_tokenizer, load_neo_tokenizer

transformers = pytest.importorskip("transformers")
TEXT = "'Curiouser and curiouser!' cried Alice (she was so much surprised, that for the moment she quite forgot."


@pytest.fixture(scope="module")
def judge_folder(minilm_folder, tmp_path_factory):
    """The real MiniLM with a seeded random head for three authors, exported as a judge folder."""
    torch.manual_seed(0)
    model = BertClassifier(Bert.from_pretrained(minilm_folder), ("alice", "edgar", "doyle"))
    return write_model_folder(tmp_path_factory.mktemp("judge") / "hf", model, load_bert_tokenizer(minilm_folder),
                              config_extra={INFO_KEY: {"eval_length": 256}})


@pytest.fixture(scope="module")
def mean_judge_folder(minilm_folder, tmp_path_factory):
    """The same with the head reading the mean of the last hidden states (--pooling mean)."""
    torch.manual_seed(0)
    model = BertClassifier(Bert.from_pretrained(minilm_folder), ("alice", "edgar", "doyle"), pooling="mean")
    return write_model_folder(tmp_path_factory.mktemp("mean-judge") / "hf", model, load_bert_tokenizer(minilm_folder),
                              config_extra={INFO_KEY: {"eval_length": 256}})


@pytest.fixture(scope="module")
def neo_folder(tiny_neo_base):
    return tiny_neo_base  # conftest: a tiny random GPT-Neo (window 16 < the 40 tokens below) with its BPE


def test_judge_folder_in_a_transformers_pipeline_gives_our_probabilities(judge_folder):
    ours, tok, info = load_bert_judge(judge_folder)
    assert ours.labels == ["alice", "edgar", "doyle"] and info["eval_length"] == 256
    expected = classify(ours, tok, TEXT, 256, ours.labels)["probs"]
    pipe = transformers.pipeline("text-classification", model=str(judge_folder), top_k=None, device="cpu")
    got = {r["label"]: r["score"] for r in pipe([TEXT])[0]}
    assert set(got) == set(expected)
    for author, p in expected.items():
        assert abs(got[author] - p) <= 1e-5, (author, got[author], p)
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(str(judge_folder))
    assert hf.config.id2label == {0: "alice", 1: "edgar", 2: "doyle"}


def test_a_mean_pooled_judge_folder_is_a_transformers_encoder_and_its_mean_gives_our_probabilities(mean_judge_folder):
    """transformers has no class that pools by the mean: the folder loads as a BertModel (the model card's recipe),
    and the mean of its last hidden states through classifier.* gives our probabilities; ours loads it back mean-pooled."""
    from safetensors.torch import load_file

    ours, tok, _ = load_bert_judge(mean_judge_folder)
    assert ours.pooling == "mean"
    expected = classify(ours, tok, TEXT, 256, ours.labels)["probs"]
    encoder = transformers.AutoModel.from_pretrained(str(mean_judge_folder)).eval()
    assert type(encoder).__name__ == "BertModel"
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(mean_judge_folder))
    inputs = hf_tok([TEXT], return_tensors="pt")
    weights = load_file(str(mean_judge_folder / "model.safetensors"))
    with torch.no_grad():
        hidden = encoder(**inputs).last_hidden_state  # (1, T, d)
        h = hidden.mean(dim=1)  # one text, no padding
        probs = (h @ weights["classifier.weight"].T + weights["classifier.bias"]).softmax(-1)[0]
    for i, author in enumerate(encoder.config.id2label.values()):
        assert abs(probs[i].item() - expected[author]) <= 1e-5, (author, probs[i].item(), expected[author])


def test_generator_folder_loads_in_transformers_with_our_logits(neo_folder):
    ours = GPTNeo.from_pretrained(neo_folder)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(str(neo_folder)).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(ids) - theirs(ids).logits).abs().max().item() <= 1e-5


def test_generate_is_seeded_keeps_the_bad_token_mask_and_its_judge_matches_classify(neo_folder, judge_folder, capsys):
    argv = [str(neo_folder), "--tokens", "40", "--rows", "3", "--seed", "5", "--json"]
    assert gen_cli.main(argv) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert gen_cli.main(argv) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == first  # seeded
    tok, model = load_neo_tokenizer(neo_folder), GPTNeo.from_pretrained(neo_folder)
    mask = bad_token_mask(tok, model.config.vocab_size)
    written = sample_texts(model, tok, None, 3, 40, Sampling(bad_mask=mask), seed=5)  # what the defaults ask for
    assert written.ids.shape == (3, 41) and written.skip == 1 and written.texts == [row["text"] for row in first]
    banned = set(mask.nonzero().flatten().tolist())
    assert not banned & set(written.ids[:, 1:].flatten().tolist())  # no whitespace-only token was sampled (B9)
    assert gen_cli.main(argv + ["--judge", str(judge_folder)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    judge, jtok, _ = load_bert_judge(judge_folder)
    assert rows[0]["probs"] == pytest.approx(classify(judge, jtok, rows[0]["text"], 256, judge.labels)["probs"])
    assert gen_cli.main(argv[:1] + ["--rows", "0"]) == 2


def test_a_llama_generator_folder_generates_and_loads_in_transformers(tiny_llama_base, capsys):
    """scripts.generate takes a Llama folder; transformers' LlamaForCausalLM reads it with our logits."""
    from model.llama import Llama

    ours = Llama.from_pretrained(tiny_llama_base)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_llama_base)).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(ids) - theirs(ids).logits).abs().max().item() <= 1e-5
    assert gen_cli.main([str(tiny_llama_base), "--tokens", "20", "--rows", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(row["text"].strip() for row in rows)
