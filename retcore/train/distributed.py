"""Data-parallel fine-tuning on PyTorch's own engine (``torch.distributed``, launched by ``torchrun``).

``torchrun --nproc-per-node N -m jobs.finetune ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`init_distributed`
joins them into one process group (NCCL on GPUs, gloo on CPUs) and :func:`world` tells every
piece of code which rank it is. Training wraps the model in ``DistributedDataParallel``
(:class:`DataParallelViT`): each rank computes the gradient of its share of the global batch and
DDP averages them, so the update equals one process's on the whole global batch.

The order of the data is the single-process order, shared out: :class:`ShardedOrder` visits
the permutation a ``DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed))``
visits, rank ``r`` taking positions ``r, r + N, r + 2N, ...``, so the i-th batches of the N ranks
(``b`` images each) together hold exactly the i-th batch of one process with batch ``N x b``.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

__all__ = ["DataParallelViT", "ShardedOrder", "World", "all_gather", "barrier", "broadcast", "init_distributed",
           "loader_order", "shutdown", "world", "wrap"]


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes; ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0, the only rank that writes the database and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """The current process group's :class:`World` (rank 0 of 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def init_distributed(device: str = "auto") -> World:
    """Join the process group ``torchrun`` describes in the environment; a no-op (rank 0 of 1)
    when ``WORLD_SIZE`` is unset or 1. Backend NCCL when the processes use CUDA, else gloo;
    each CUDA process takes GPU ``LOCAL_RANK``."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        return world()
    cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return world()


def shutdown() -> None:
    """Leave the process group (when one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world().distributed:
        dist.barrier()


def broadcast(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable objects; a no-op in one process)."""
    if not world().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    w = world()
    if not w.distributed:
        return [obj]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, obj)
    return out


def loader_order(n: int, seed: int) -> list[int]:
    """The indices ``DataLoader(dataset of n, shuffle=True, generator=Generator().manual_seed(seed))``
    yields in one epoch: the loader draws its workers' base seed from the generator first, then the
    random sampler draws ``randperm(n)`` (checked against the DataLoader in the tests)."""
    g = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=g)  # the loader's base seed
    return torch.randperm(n, generator=g).tolist()


class ShardedOrder(Sampler[int]):
    """Rank ``rank``'s share of :func:`loader_order` (``n``, ``seed``): positions ``rank::size``.

    With ``drop_last`` the permutation is first cut to a multiple of ``size x batch_size`` (what one
    process with batch ``size x batch_size`` and ``drop_last`` drops), so every rank runs the same
    number of batches. Without it, the tail is padded by repeating the first indices (like
    ``DistributedSampler``); evaluation uses :func:`all_gather` and drops the repeats by index.
    """

    def __init__(self, n: int, seed: int, rank: int, size: int, batch_size: int, *, drop_last: bool = True,
                 shuffle: bool = True) -> None:
        self.n, self.seed, self.rank, self.size = n, seed, rank, size
        self.batch_size, self.drop_last, self.shuffle = batch_size, drop_last, shuffle

    def _indices(self) -> list[int]:
        order = loader_order(self.n, self.seed) if self.shuffle else list(range(self.n))
        step = self.size * self.batch_size
        if self.drop_last and self.n > step:
            return order[: (self.n // step) * step]
        pad = (-len(order)) % self.size
        return order + order[:pad]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.rank::self.size])

    def __len__(self) -> int:
        return len(self._indices()) // self.size


class DataParallelViT(DistributedDataParallel):
    """``DistributedDataParallel`` that also answers the wrapped ViT's attributes (``blocks``,
    ``patch_embed``, ...), so code that hooks into the model (the guide penalty) takes it as is;
    calling it runs DDP's forward, which arranges the gradient averaging."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` as a :class:`DataParallelViT` when distributed (unchanged in one process)."""
    if not world().distributed:
        return model
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DataParallelViT(model, device_ids=ids)
