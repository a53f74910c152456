"""Beyond one process: PyTorch's DistributedDataParallel, started with torchrun.

    torchrun --nproc_per_node 2 -m scripts.train_bert          # 2 processes on this machine
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 -m scripts.train_bert

torchrun starts one process per rank and sets RANK, WORLD_SIZE and LOCAL_RANK; without them a
program runs as a single process (rank 0 of 1) and nothing here does anything. Each rank:
- draws the same GLOBAL batch (the same seeded random stream on every rank) and keeps its share
  (`share`): every author's block is cut the same way, so the batch keeps its B/N-per-author
  composition across ranks (A8/N2);
- computes the loss on its share; DDP averages the gradients in backward, so with equal shares
  the update equals one process's update on the whole global batch;
- logs the mean loss of all ranks (`mean`); only rank 0 writes metrics, checkpoints and plots;
- stops at the same step as the others when any of them got Ctrl-C (`any_rank`).
gloo on CPUs, NCCL on GPUs (one GPU per rank: cuda:LOCAL_RANK).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from plumbing.precision import pick_device


@dataclass
class Dist:
    """This process's place: rank `rank` of `world`, computing on `device`."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 writes the run's files; the others only compute."""
        return self.rank == 0


def setup(device_name: str) -> Dist:
    """Join the torchrun group if there is one (gloo on CPU, NCCL on CUDA); else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(0, 1, pick_device(device_name))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, device)


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """The model as DDP sees it (gradients averaged in backward), or the model itself for one process."""
    if d.world == 1:
        return model
    return DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def share(batch: tuple[torch.Tensor, ...], d: Dist, groups: int) -> tuple[torch.Tensor, ...]:
    """This rank's rows of a global batch made of `groups` equal blocks (one per author, label order).

    Each block of B/groups rows is cut into `world` equal parts and rank r keeps part r of every
    block, so each rank holds the same number of rows of every author. ValueError if it does not divide.
    """
    if d.world == 1:
        return batch
    rows = batch[0].shape[0]
    block = rows // groups
    if rows % groups or block % d.world:
        raise ValueError(f"a batch of {rows} rows ({groups} authors) does not split into {d.world} equal ranks per "
                         f"author: use a batch size that is a multiple of {groups * d.world}")
    part = block // d.world
    keep = torch.cat([torch.arange(g * block + d.rank * part, g * block + (d.rank + 1) * part) for g in range(groups)])
    return tuple(t[keep] for t in batch)


def mean(value: float, d: Dist) -> float:
    """The mean of `value` over all ranks (each rank's number for an equal share of the batch)."""
    if d.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=d.device if d.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.item() / d.world


def any_rank(flag: bool, d: Dist) -> bool:
    """True on every rank if it is true on any (so that all ranks stop at the same step)."""
    if d.world == 1:
        return flag
    return mean(float(flag), d) > 0


def teardown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
