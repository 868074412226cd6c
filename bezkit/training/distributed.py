"""Multi-process data parallel training through ``torchrun`` and DDP.

``torchrun --nproc_per_node=P script.py`` starts ``P`` copies of a script and tells each one who it
is through environment variables: ``RANK`` (0 .. WORLD_SIZE-1, unique over all machines),
``WORLD_SIZE`` (the number of processes), ``LOCAL_RANK`` (the index on this machine, which picks
the GPU) and ``MASTER_ADDR`` / ``MASTER_PORT`` (where rank 0 listens). ``init_distributed`` reads
them; without them (a plain ``python script.py``) it returns a single-process context and every
helper below becomes a no-op, so the same script runs unchanged on a laptop.

Data parallelism: every process holds the same model, sees a different shard of each epoch's
indices (``shard_indices``) and DDP averages the gradients over processes after ``backward``, so
one step on ``P`` shards of ``b`` samples equals one step on the full ``P * b`` batch (for a loss
that is a mean over samples). The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler

from bezkit.models.unwrap import unwrap_model  # re-exported: the DDP helpers' counterpart

__all__ = [
    "DistributedContext",
    "ShardSampler",
    "all_reduce_mean",
    "barrier",
    "cleanup",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "shard_indices",
    "unwrap_model",
    "wrap_ddp",
]


@dataclass(frozen=True)
class DistributedContext:
    """Who this process is: ``rank`` of ``world_size`` (``local_rank`` on its machine), the
    communication ``backend`` (None when not distributed) and the ``device`` it should use."""

    rank: int
    world_size: int
    local_rank: int
    backend: str | None
    device: torch.device

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main_process(self) -> bool:
        """Whether this is rank 0 (the process that writes files)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an int, got {value!r}") from None


def init_distributed(
    *, backend: str | None = None, device: str | torch.device | None = None, timeout_s: float = 1800
) -> DistributedContext:
    """Join the process group described by the torchrun environment variables.

    ``backend`` defaults to ``"nccl"`` when CUDA is available and ``"gloo"`` otherwise; ``device``
    defaults to ``cuda:LOCAL_RANK`` (made the current CUDA device) or ``cpu``; ``"auto"`` is the
    default, and a plain ``"cuda"`` (no index) means ``cuda:LOCAL_RANK`` too, so that
    ``--device cuda`` under torchrun gives every process its own GPU. With
    ``WORLD_SIZE`` unset or 1 no process group is created. Calling it again after the group exists
    returns the same context.
    """
    rank, world_size = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid RANK={rank} for WORLD_SIZE={world_size}")
    if isinstance(device, str) and device == "auto":
        device = None
    cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
    if device is None:
        device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # "cuda": this process's own GPU
        device = torch.device("cuda", local_rank)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} requested but CUDA is not available (use --device cpu)"
        )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size == 1:
        return DistributedContext(0, 1, local_rank, None, device)
    backend = backend or ("nccl" if cuda else "gloo")
    if not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise RuntimeError(f"WORLD_SIZE={world_size} but {name} is not set; use torchrun")
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
        )
    return DistributedContext(rank, world_size, local_rank, dist.get_backend(), device)


def get_rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 (and when not distributed): the process that logs and writes files."""
    return get_rank() == 0


def wrap_ddp(model: nn.Module) -> nn.Module:
    """Wrap ``model`` (already on its device) in ``DistributedDataParallel`` when distributed,
    else return it unchanged. DDP broadcasts rank 0's weights at construction, so every process
    starts from the same model."""
    if get_world_size() == 1:
        return model
    device = next(model.parameters()).device
    if device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def all_reduce_mean(value: Tensor) -> Tensor:
    """The mean of ``value`` over all processes (a new tensor; ``value`` itself is unchanged)."""
    out = value.detach().clone()
    if get_world_size() == 1:
        return out
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / get_world_size()


def barrier() -> None:
    """Wait until every process reaches this line (no-op when not distributed)."""
    if get_world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (safe to call when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_indices(
    n: int,
    *,
    rank: int,
    world_size: int,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Tensor:
    """This rank's share of the indices ``0 .. n-1`` for one epoch (``DistributedSampler`` rules).

    All ranks compute the same permutation from ``seed + epoch``; it is padded by repeating its
    start (or truncated, with ``drop_last``) to a multiple of ``world_size``, and rank ``r`` takes
    positions ``r, r + world_size, r + 2 world_size, ...``. Every rank gets the same number of
    indices, and without padding the shards are disjoint and cover all indices.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid rank {rank} for world_size {world_size}")
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
    else:
        order = torch.arange(n)
    if drop_last:
        order = order[: n - n % world_size]
    else:
        padding = (-n) % world_size
        order = torch.cat([order, order.repeat(padding // n + 1)[:padding]])
    return order[rank::world_size]


class ShardSampler(Sampler[int]):
    """A DataLoader sampler over ``shard_indices``; call ``set_epoch(e)`` before each epoch to
    reshuffle. Rank and world size default to those of the process group."""

    def __init__(
        self,
        n: int,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        self.n = n
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the shuffle (every rank the same value)."""
        self.epoch = epoch

    def _indices(self) -> Tensor:
        return shard_indices(
            self.n,
            rank=self.rank,
            world_size=self.world_size,
            seed=self.seed,
            epoch=self.epoch,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices().tolist())

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.world_size
        return -(-self.n // self.world_size)  # ceil(n / world_size)
