"""train/checkpoint.py: safetensors + JSON round trip, atomic files, step checks, Ctrl-C held, latest link.

`tiny_bert_folder` and `tiny_judge_run` are shared with the other judge tests:
a 2-layer, 32-wide random BERT saved in the Hugging Face layout with MiniLM's
tokenizer, so that whole training runs take seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from model.bert import Bert, BertClassifier, hf_names
from model.config import BertConfig
from model.loading import save_hf_folder, to_hf_state
from train import checkpoint as ckpt

TINY = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def tiny_bert_folder(folder: Path, tokenizer_folder: Path, seed: int = 0) -> Path:
    """A random tiny BERT in the Hugging Face layout (config.json, model.safetensors, tokenizer.json)."""
    torch.manual_seed(seed)
    bert = Bert(TINY)
    save_hf_folder(folder, to_hf_state(bert, hf_names(TINY), "bert."),
                   {"model_type": "bert", "hidden_act": "gelu", **asdict(TINY)})
    shutil.copy(Path(tokenizer_folder) / "tokenizer.json", folder / "tokenizer.json")
    return folder


def tiny_judge_run(runs_dir: Path, tokenizer_folder: Path, seed: int = 0, eval_length: int = 64) -> Path:
    """A judge run folder with a checkpoint of an untrained tiny classifier, pointed to by `latest`."""
    torch.manual_seed(seed)
    model = BertClassifier(Bert(TINY))
    run = ckpt.new_run_dir(runs_dir)
    shutil.copy(Path(tokenizer_folder) / "tokenizer.json", run / ckpt.TOKENIZER_FILE)
    meta = {"base_model": str(tokenizer_folder), "labels": {"alice": 0, "edgar": 1},
            "train_config": {"eval_length": eval_length}, "metrics": {}}
    ckpt.save_checkpoint(run, model, None, 0, meta)
    ckpt.point_latest(run)
    return run


_CORPUS_CACHE: dict = {}


def corpus_ids(minilm_folder: Path, corpus_mirror: Path):
    """(MiniLM tokenizer, load_author_ids(...)) of the real corpus, tokenized once per test session."""
    key = (str(minilm_folder), str(corpus_mirror))
    if key not in _CORPUS_CACHE:
        from tokenizer_bridge.load import load_bert_tokenizer
        from train.batches import load_author_ids

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ALICE_EDGAR_CORPUS", str(corpus_mirror))
            tok = load_bert_tokenizer(minilm_folder)
            _CORPUS_CACHE[key] = (tok, load_author_ids(tok))
    return _CORPUS_CACHE[key]


def _trained_pair(seed: int = 0) -> tuple[BertClassifier, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = BertClassifier(Bert(TINY))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(1000, 2000, (4, 16))
    for _ in range(2):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    return model, opt


def test_round_trip_weights_optimizer_and_rng(tmp_path: Path) -> None:
    model, opt = _trained_pair()
    gen = torch.Generator().manual_seed(11)
    rng = ckpt.capture_rng(gen)
    expected_draw = torch.randint(0, 10**6, (5,), generator=gen)
    run = ckpt.new_run_dir(tmp_path)
    ckpt.save_checkpoint(run, model, opt, 2, {"base_model": "x", "train_config": {}, "labels": {}}, rng)

    meta = ckpt.read_meta(run)
    assert meta["step"] == 2 and meta["bert_config"]["hidden_size"] == 32 and meta["n_classes"] == 2
    fresh = ckpt.build_judge(meta)  # rebuilt from judge.json alone, no base folder
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    _, saved_rng = ckpt.load_resume(run, fresh, fresh_opt)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    for pa, pb in zip(model.parameters(), fresh.parameters()):
        sa, sb = opt.state[pa], fresh_opt.state[pb]
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
        assert float(sa["step"]) == float(sb["step"]) == 2.0
    assert fresh_opt.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    gen2 = torch.Generator()
    ckpt.restore_rng(saved_rng, gen2)
    assert torch.equal(torch.randint(0, 10**6, (5,), generator=gen2), expected_draw)
    assert not [p for p in run.iterdir() if ".tmp" in p.name]  # no temporary file left behind


def test_load_judge_from_run_file_or_latest(tmp_path: Path, minilm_folder: Path) -> None:
    run = tiny_judge_run(tmp_path, minilm_folder)
    assert (tmp_path / "judge" / "latest").resolve() == run.resolve()
    for where in (run, run / ckpt.WEIGHTS_FILE, None):
        model, tok, meta = ckpt.load_judge(where, runs_dir=tmp_path)
        assert not model.training and meta["run_dir"] == str(run.resolve() if where is None else run)
        assert tok.token_to_id("[CLS]") is not None


def test_files_of_different_steps_are_refused(tmp_path: Path) -> None:
    model, opt = _trained_pair()
    run = ckpt.new_run_dir(tmp_path)
    meta = {"base_model": "x", "train_config": {}, "labels": {}}
    ckpt.save_checkpoint(run, model, opt, 2, meta)
    # a run killed between two files: new weights, old judge.json
    ckpt.atomic_save_tensors(model.state_dict(), run / ckpt.WEIGHTS_FILE, {"format": ckpt.FORMAT, "step": "3"})
    with pytest.raises(ckpt.CheckpointMismatch, match="step 3 but judge.json says step 2"):
        ckpt.load_judge(run)


def test_missing_or_broken_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ckpt.NoCheckpoint, match="make train-bert"):
        ckpt.find_run(None, tmp_path)
    empty = ckpt.new_run_dir(tmp_path)
    with pytest.raises(ckpt.NoCheckpoint, match="before its first checkpoint"):
        ckpt.find_run(empty)
    model, opt = _trained_pair()
    ckpt.save_checkpoint(empty, model, opt, 1, {"base_model": "x", "train_config": {}, "labels": {}})
    (empty / ckpt.WEIGHTS_FILE).write_bytes((empty / ckpt.WEIGHTS_FILE).read_bytes()[:1000])  # truncated
    with pytest.raises(ckpt.CheckpointMismatch, match="truncated or corrupt"):
        ckpt.load_judge(empty)


def test_ctrl_c_is_held_until_the_block_ends() -> None:
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with ckpt.HoldInterrupt():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append(True)  # still runs: the interrupt waits
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    with pytest.raises(KeyboardInterrupt):
        with ckpt.HoldInterrupt():
            with ckpt.HoldInterrupt():  # nested: the outer block decides
                os.kill(os.getpid(), signal.SIGINT)
            finished.append(True)
    assert finished == [True, True]


def test_latest_link_moves_atomically(tmp_path: Path) -> None:
    a, b = ckpt.new_run_dir(tmp_path), ckpt.new_run_dir(tmp_path)
    assert a != b
    ckpt.point_latest(a)
    ckpt.point_latest(b)
    link = tmp_path / "judge" / "latest"
    assert link.is_symlink() and os.readlink(link) == b.name  # relative: the runs folder can move
    assert not [p for p in link.parent.iterdir() if ".tmp" in p.name]
