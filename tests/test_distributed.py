"""torchrun: two processes of gloo give one process's run on the same global batch (plumbing/distributed.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from data.windows import Specials, balanced_batch
from model.bert import Bert, hf_names
from model.config import BertConfig
from model.loading import save_hf_folder, to_hf_state
from plumbing.distributed import Dist, share

REPO = Path(__file__).resolve().parent.parent


def test_each_rank_keeps_its_share_of_every_author():
    ids = {"alice": torch.arange(1000, 2000), "edgar": torch.arange(5000, 6000)}
    x, mask, y = balanced_batch(ids, 8, 16, torch.Generator().manual_seed(0), Specials(101, 102, 0))
    parts = [share((x, mask, y), Dist(r, 2, torch.device("cpu")), 2) for r in range(2)]
    for px, _, py in parts:
        assert py.tolist() == [0, 0, 1, 1]  # 2 Alice + 2 Edgar on every rank
    assert torch.equal(torch.cat([parts[0][0][:2], parts[1][0][:2], parts[0][0][2:], parts[1][0][2:]]), x)
    with pytest.raises(ValueError, match="multiple of 4"):  # 3 rows per author cannot split into 2 ranks
        share((x[:6], mask[:6], y[:6]), Dist(0, 2, torch.device("cpu")), 2)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_two_gloo_processes_give_the_same_losses_and_weights_as_one(minilm_folder, small_mirror, tmp_path):
    cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # no dropout: the runs can match
    torch.manual_seed(0)
    folder = tmp_path / "tiny"
    save_hf_folder(folder, to_hf_state(Bert(cfg), hf_names(cfg), "bert."), cfg.to_hf())
    shutil.copy(minilm_folder / "tokenizer.json", folder / "tokenizer.json")
    args = ["--model", str(folder), "--per-author", "4", "--length", "32", "--eval-length", "64", "--eval-per-author",
            "2", "--steps", "4", "--eval-every", "2", "--dropout", "0", "--precision", "fp32", "--device", "cpu",
            "--lr", "1e-3"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "scripts.train_bert", *args, "--runs-dir", str(tmp_path / "one")], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "scripts.train_bert", *args, "--runs-dir", str(tmp_path / "two")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    runs = [next((tmp_path / name / "judge").glob("2*")) for name in ("one", "two")]
    assert len(list((tmp_path / "two" / "judge").glob("2*"))) == 1  # only rank 0 writes
    losses = [[json.loads(x)["loss"] for x in (r / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
              for r in runs]
    assert len(losses[0]) == 4 and max(abs(a - b) for a, b in zip(*losses)) <= 1e-5
    w1, w2 = (load_file(r / "hf" / "model.safetensors") for r in runs)
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) <= 1e-5
    assert json.loads((runs[1] / "config.json").read_text())["world_size"] == 2
