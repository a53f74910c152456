"""plumbing/checkpoint.py and plumbing/runs.py: one consistent set per step, resume state, locks, Ctrl-C, JSONL."""

from __future__ import annotations

import errno
import json
import os
import signal

import pytest
import torch

from plumbing import checkpoint as ck
from plumbing.interrupt import StopRequest
from plumbing.runs import Run, RunError, point_latest, read_jsonl


def _trained_pair(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
    return model, opt


def test_round_trip_weights_optimizer_and_every_random_stream(tmp_path) -> None:
    model, opt = _trained_pair()
    rng = torch.Generator().manual_seed(11)
    run = Run.create("judge", tmp_path, {"program": "judge"})
    ck.save_checkpoint(run.folder, 2, {"m": model}, {"m": opt}, {"data": rng}, {"metrics": {"loss": 0.5}})
    expected_data, expected_torch = torch.randint(0, 10**6, (5,), generator=rng), torch.rand(3)

    fresh, fresh_opt = _trained_pair(seed=1)  # other weights, other moments
    fresh_rng = torch.Generator().manual_seed(99)
    torch.manual_seed(1234)
    loaded = ck.load_checkpoint(run.folder)
    loaded.restore({"m": fresh}, {"m": fresh_opt}, {"data": fresh_rng})
    assert loaded.step == 2 and loaded.state == {"metrics": {"loss": 0.5}}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    for pa, pb in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(opt.state[pa]["exp_avg_sq"], fresh_opt.state[pb]["exp_avg_sq"])
    assert fresh_opt.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    assert torch.equal(torch.randint(0, 10**6, (5,), generator=fresh_rng), expected_data)
    assert torch.equal(torch.rand(3), expected_torch)  # dropout's stream too


def test_only_the_newest_complete_set_is_kept_and_stale_temporaries_go(tmp_path) -> None:
    model, opt = _trained_pair()
    run = Run.create("judge", tmp_path, {"program": "judge"})
    for step in (1, 2):
        ck.save_checkpoint(run.folder, step, {"m": model}, {"m": opt}, {}, {})
    assert [p.name for p in (run.folder / ck.CHECKPOINTS).iterdir()] == ["step-000002"]
    # a process killed while writing step 3 leaves a hidden temporary folder, never taken for a checkpoint
    stale = run.folder / ck.CHECKPOINTS / ".step-000003.tmp-424242"
    stale.mkdir()
    (stale / ck.MODELS_FILE).write_bytes(b"half a file")
    assert ck.load_checkpoint(run.folder).step == 2
    run.close()
    Run(run.folder).close()  # the next start removes what the killed writer left
    assert not stale.exists()


def test_disk_full_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch) -> None:
    model, opt = _trained_pair()
    run = Run.create("judge", tmp_path, {"program": "judge"})
    ck.save_checkpoint(run.folder, 1, {"m": model}, {"m": opt}, {}, {})

    def full(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "save_file", full)
    with pytest.raises(OSError, match=r"no space left.*step 2.*step-000001 is intact"):
        ck.save_checkpoint(run.folder, 2, {"m": model}, {"m": opt}, {}, {})
    assert [p.name for p in (run.folder / ck.CHECKPOINTS).iterdir()] == ["step-000001"]  # nothing partial left
    assert ck.load_checkpoint(run.folder).step == 1


def test_no_checkpoint_is_a_clear_error(tmp_path) -> None:
    run = Run.create("judge", tmp_path, {"program": "judge"})
    with pytest.raises(ck.CheckpointError, match="stopped before its first"):
        ck.load_checkpoint(run.folder)


def test_a_run_folder_is_locked_by_its_process(tmp_path) -> None:
    run = Run.create("judge", tmp_path, {"program": "judge"})
    with pytest.raises(RunError, match="in use by another process"):
        Run(run.folder)
    run.close()
    Run(run.folder).close()  # free again


def test_runs_dir_that_is_a_file_is_refused(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file"):
        Run.create("judge", tmp_path / "file", {})


def test_stop_request_waits_for_the_step_then_a_second_ctrl_c_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested  # the loop sees it at its next step boundary
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_jsonl_tolerates_a_cut_last_line_only_and_names_the_file(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl, line 2"):
        read_jsonl(path)


def test_resumed_run_keeps_the_records_up_to_its_checkpoint(tmp_path) -> None:
    run = Run.create("judge", tmp_path, {"program": "judge"})
    for step in (1, 2, 3):
        run.log({"kind": "train", "step": step})
    with open(run.folder / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "st')  # the line being written when the process was killed
    run.keep_records_until(2)
    assert [r["step"] for r in run.records()] == [1, 2]
    assert json.loads((run.folder / "config.json").read_text()) == {"program": "judge"}


def test_latest_link_moves_atomically_and_is_relative(tmp_path) -> None:
    a, b = Run.create("judge", tmp_path, {}), Run.create("judge", tmp_path, {})
    point_latest(a.folder)
    point_latest(b.folder)
    link = tmp_path / "judge" / "latest"
    assert link.is_symlink() and os.readlink(link) == b.folder.name
    assert not [p for p in link.parent.iterdir() if ".tmp" in p.name]


def test_a_run_stopped_before_it_wrote_anything_leaves_no_folder(tmp_path) -> None:
    run = Run.create("judge", tmp_path, {})
    assert run.discard_if_empty() and not run.folder.exists()
    kept = Run.create("judge", tmp_path, {})
    kept.log({"step": 0})
    assert not kept.discard_if_empty() and kept.folder.exists()
