"""Reflow pairs at scale: sharded on-disk generation that resumes, and a lazy reader.

A reflow round needs millions of pairs ``(X0, X1 = ODE_teacher(X0))`` (METHODS.md section 3).
``generate_pair_shards`` writes them to a folder, shard by shard, so that an interrupted run
(a crash, a pre-empted job) picks up where it stopped without losing or duplicating a pair:

- Shard ``i`` holds pairs ``i * shard_size`` .. (the last shard may be shorter). Its noise ``X0`` is
  drawn from a generator seeded by ``(seed, i)`` alone, so every shard is a pure function of the
  configuration: regenerating a missing shard gives the same pairs an uninterrupted run would have.
- Each shard is written atomically (a temporary file, then ``os.replace``) as
  ``pairs-00000.safetensors`` holding tensors ``x0`` and ``x1`` of shape ``(count, *data_shape)``;
  then a small record ``pairs-00000.json`` (``index``, ``file``, ``count``, ``sha256`` of the
  shard file) is written the same way. A shard counts as done only when its record exists and the
  file matches it, so a crash at any moment leaves either a complete shard or none.
- ``manifest.json`` holds the configuration (``n_pairs``, ``shard_size``, ``steps``, ``method``,
  ``seed``, ``data_shape``, a fingerprint of the teacher's weights, the format version) and, once
  every shard is done, ``complete: true`` and the list of shard records. Running again on a folder
  made with a different configuration is an error: nothing is silently overwritten.
- Under torchrun, rank ``r`` of ``W`` generates the shards ``i`` with ``i % W == r``.
- Each rank holds a lock on the folder (``generator-rank<r>.lock``) while it generates: a second
  generator started on the same folder gets :class:`bezkit.files.run_dir.RunLocked` at once
  instead of racing the first. The kernel drops the lock when a process dies.
- Shard files have a deterministic header, so identical shards are identical bytes (same
  SHA-256) and a resumed run can tell a good shard from a stale one.

``PairShardDataset`` reads a complete folder lazily: shards are memory-mapped on demand (at most
``max_open`` at a time) and only the requested rows are read, so memory stays bounded however many
pairs there are. ``sample(n, generator)`` returns ``bezkit.couplings.pairs.Pairs`` like every
coupling.

The pairs do not depend on ``batch_size`` or on the number of processes; they may differ in the
last bits between devices (CPU vs CUDA arithmetic).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from bezkit.couplings.pairs import Pairs
from bezkit.data.toy2d import Sampler
from bezkit.files.atomic import atomic_write, sha256_file, write_json
from bezkit.files.run_dir import RunLock
from bezkit.solvers.fixed_step import Velocity
from bezkit.solvers.ode import solve_ode

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "PairShardDataset",
    "ShardGenerationReport",
    "generate_pair_shards",
    "shard_file_name",
    "shard_seed",
    "teacher_fingerprint",
]

FORMAT = "bezkit-pair-shards/1"
MANIFEST_NAME = "manifest.json"


def shard_file_name(index: int) -> str:
    """``pairs-00042.safetensors`` for shard 42."""
    return f"pairs-{index:05d}.safetensors"


def _record_name(index: int) -> str:
    return f"pairs-{index:05d}.json"


def shard_seed(seed: int, index: int) -> int:
    """The seed of shard ``index``'s noise generator: a hash of ``(seed, index)`` (numpy's
    ``SeedSequence``), so that shards draw independent, reproducible streams."""
    hi, lo = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return (int(hi) << 31) ^ int(lo)  # fits in the int64 that torch.Generator takes


def teacher_fingerprint(teacher: Velocity) -> str | None:
    """sha256 of an ``nn.Module`` teacher's state dict (names, dtypes, shapes and values), or None
    for a plain function (whose identity cannot be checked)."""
    if not isinstance(teacher, nn.Module):
        return None
    digest = hashlib.sha256()
    for name, value in sorted(teacher.state_dict().items()):
        t = value.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _write_json(target: Path, obj: dict[str, Any]) -> None:
    write_json(target, obj, sort_keys=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err


def _shard_counts(n_pairs: int, shard_size: int) -> list[int]:
    n_shards = math.ceil(n_pairs / shard_size)
    return [min(shard_size, n_pairs - i * shard_size) for i in range(n_shards)]


@dataclass(frozen=True)
class ShardGenerationReport:
    """What one call of ``generate_pair_shards`` did (on this rank)."""

    out_dir: Path
    n_pairs: int
    n_shards: int
    generated: tuple[int, ...]  # shard indices written by this call
    skipped: tuple[int, ...]  # shard indices found complete and verified
    complete: bool  # every shard of the folder is done (all ranks)
    nfe: int  # teacher evaluations per pair, times pairs generated by this call
    wall_seconds: float


def _check_config_args(n_pairs: int, shard_size: int, steps: int, batch_size: int) -> None:
    for name, value in (("n_pairs", n_pairs), ("shard_size", shard_size), ("steps", steps),
                        ("batch_size", batch_size)):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_folder(out_dir: Path, config: dict[str, Any]) -> bool:
    """Read-only: True if ``out_dir`` already has a manifest with this configuration, False if it
    is fresh; an error for a different configuration or for shard files without a manifest."""
    path = out_dir / MANIFEST_NAME
    if path.is_file():
        existing = _read_json(path).get("config", {})
        differ = sorted(k for k in set(existing) | set(config) if existing.get(k) != config.get(k))
        if differ:
            details = ", ".join(f"{k}: {existing.get(k)!r} -> {config.get(k)!r}" for k in differ)
            raise ValueError(
                f"{out_dir} holds pair shards made with a different configuration ({details}); "
                f"use a new folder or delete it"
            )
        return True
    strays = sorted(p.name for p in out_dir.glob("pairs-*"))
    if strays:
        raise ValueError(
            f"{out_dir} has shard files ({strays[0]}, ...) but no {MANIFEST_NAME}; refusing to "
            f"overwrite them: use a new folder or delete them"
        )
    return False


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _verified_record(out_dir: Path, index: int, count: int) -> dict[str, Any] | None:
    """The shard's record if the shard is complete and its file matches it; None if the shard
    is missing or unfinished; a warning (and None, so it is regenerated) if it is corrupted."""
    record_path, shard_path = out_dir / _record_name(index), out_dir / shard_file_name(index)
    if not record_path.is_file() or not shard_path.is_file():
        return None
    record = _read_json(record_path)
    if record.get("count") != count or record.get("sha256") != sha256_file(shard_path):
        warnings.warn(
            f"{shard_path} does not match its record (count or sha256); regenerating it",
            stacklevel=3,
        )
        return None
    return record


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    if rank is None:
        rank = torch.distributed.get_rank() if initialized else 0
    if world_size is None:
        world_size = torch.distributed.get_world_size() if initialized else 1
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid rank {rank} for world_size {world_size}")
    return rank, world_size


def _generate_shard(
    teacher: Velocity,
    source_sampler: Sampler,
    count: int,
    generator: torch.Generator,
    *,
    steps: int,
    method: str,
    batch_size: int,
    device: torch.device,
) -> tuple[Tensor, Tensor, int]:
    """All of a shard's noise in one draw (so batching does not change it), then the teacher's
    forward ODE batch by batch. Returns ``(x0, x1, nfe)`` on the CPU."""
    x0 = source_sampler.sample(count, generator).float().cpu()
    x1_parts, nfe = [], 0
    for xb in x0.split(batch_size):
        solution = solve_ode(teacher, xb.to(device), method=method, steps=steps)
        x1_parts.append(solution.x.float().cpu())
        nfe += solution.nfe * xb.shape[0]
    return x0, torch.cat(x1_parts), nfe


def _write_shard(out_dir: Path, index: int, x0: Tensor, x1: Tensor) -> None:
    """The shard file first, then its record: the record is the proof the shard is complete."""
    shard_path = out_dir / shard_file_name(index)
    tensors = {"x0": x0.contiguous(), "x1": x1.contiguous()}
    # one header key: safetensors writes several metadata keys in a random order, which made
    # identical shards differ in their bytes and their SHA-256
    meta = {"bezkit": json.dumps({"count": x0.shape[0], "index": index}, sort_keys=True)}
    atomic_write(shard_path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    record = {
        "index": index,
        "file": shard_path.name,
        "count": x0.shape[0],
        "sha256": sha256_file(shard_path),
    }
    _write_json(out_dir / _record_name(index), record)


def generate_pair_shards(
    teacher: Velocity,
    source_sampler: Sampler,
    out_dir: str | Path,
    *,
    n_pairs: int,
    shard_size: int = 10_000,
    steps: int = 100,
    method: str = "euler",
    seed: int = 0,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    progress: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    teacher_id: str | None = None,
) -> ShardGenerationReport:
    """Write ``n_pairs`` reflow pairs ``(X0, ODE_teacher(X0))`` as shards in ``out_dir``,
    resuming any earlier run with the same configuration (see the module docstring).

    Args:
        teacher: the velocity field ``teacher(x, t)`` (put in eval mode while generating).
        source_sampler: draws ``X0``: ``sample(n, generator) -> (n, *data_shape)``.
        n_pairs, shard_size: how many pairs in all and per shard.
        steps, method: the teacher's ODE solver (``bezkit.solvers.solve_ode``).
        seed: shard ``i`` draws its noise from a generator seeded by ``shard_seed(seed, i)``.
        batch_size: ODE batch size (memory only: it does not change the pairs).
        device: where the teacher runs; shards are stored from the CPU.
        progress: a tqdm bar of pairs (on rank 0).
        rank, world_size: which shards this process makes (``i % world_size == rank``); default
            from the torch.distributed process group, else 0 of 1.
        teacher_id: a name for the teacher in the manifest, replacing the fingerprint of its
            weights (required for a teacher that is not an ``nn.Module`` to be checked at all).
    """
    start = time.perf_counter()
    _check_config_args(n_pairs, shard_size, steps, batch_size)
    rank, world_size = _resolve_rank(rank, world_size)
    device = torch.device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # one generator per rank and folder: a second job on the same folder is refused, not raced
    lock = RunLock(out_dir / f"generator-rank{rank}", folder=False, what="pair generator")
    lock.acquire()
    try:
        data_shape = getattr(source_sampler, "data_shape", None)
        if data_shape is None:  # probe one sample; the shards use their own generators
            data_shape = source_sampler.sample(1, torch.Generator().manual_seed(0)).shape[1:]
        config = {
            "format": FORMAT,
            "n_pairs": n_pairs,
            "shard_size": shard_size,
            "steps": steps,
            "method": method,
            "seed": seed,
            "data_shape": list(data_shape),
            "teacher": teacher_id if teacher_id is not None else teacher_fingerprint(teacher),
        }
        manifest_exists = _check_folder(out_dir, config)
        _barrier()  # under torchrun: every rank has checked the folder before any rank writes to it
        if not manifest_exists and not (out_dir / MANIFEST_NAME).is_file():
            manifest = {"format": FORMAT, "config": config, "complete": False, "shards": []}
            _write_json(out_dir / MANIFEST_NAME, manifest)  # identical content from every rank

        counts = _shard_counts(n_pairs, shard_size)
        mine = [i for i in range(len(counts)) if i % world_size == rank]
        generated, skipped, nfe_total = [], [], 0
        show = progress and (rank == 0)
        bar = tqdm(
            total=sum(counts[i] for i in mine), unit="pair", desc="reflow pairs", disable=not show
        )
        was_training = bool(getattr(teacher, "training", False))
        if isinstance(teacher, nn.Module):
            teacher.eval()
        try:
            for index in mine:
                if _verified_record(out_dir, index, counts[index]) is not None:
                    skipped.append(index)
                    bar.update(counts[index])
                    continue
                generator = torch.Generator().manual_seed(shard_seed(seed, index))
                x0, x1, nfe = _generate_shard(
                    teacher, source_sampler, counts[index], generator,
                    steps=steps, method=method, batch_size=batch_size, device=device,
                )  # fmt: skip
                if not torch.isfinite(x1).all():
                    raise ValueError(f"the teacher produced NaN or inf in shard {index}")
                _write_shard(out_dir, index, x0, x1)
                generated.append(index)
                nfe_total += nfe
                bar.update(counts[index])
        finally:
            bar.close()
            if was_training and isinstance(teacher, nn.Module):
                teacher.train()

        _barrier()  # under torchrun: every rank returns with the folder complete
        complete = _finalize_manifest(out_dir, config, counts)
        return ShardGenerationReport(
            out_dir=out_dir,
            n_pairs=n_pairs,
            n_shards=len(counts),
            generated=tuple(generated),
            skipped=tuple(skipped),
            complete=complete,
            nfe=nfe_total,
            wall_seconds=time.perf_counter() - start,
        )
    finally:
        lock.release()


def _finalize_manifest(out_dir: Path, config: dict[str, Any], counts: list[int]) -> bool:
    """Mark the manifest complete once every shard has its record (any rank may do it: all
    write the same content)."""
    records = []
    for index in range(len(counts)):
        path = out_dir / _record_name(index)
        if not path.is_file():
            return False
        records.append(_read_json(path))
    if sum(r["count"] for r in records) != config["n_pairs"]:
        raise ValueError(f"{out_dir}: shard records do not add up to {config['n_pairs']} pairs")
    _write_json(
        out_dir / MANIFEST_NAME,
        {"format": FORMAT, "config": config, "complete": True, "shards": records},
    )
    return True


class PairShardDataset(Dataset[tuple[Tensor, Tensor]]):
    """Lazy reader of a complete pair-shard folder.

    ``sample(n, generator)`` draws ``n`` pairs uniformly with replacement and returns ``Pairs``;
    ``ds[i]`` is the pair ``(x0, x1)`` number ``i`` (for a DataLoader); ``iter_shards()`` yields
    one shard at a time. Shards are memory-mapped when first touched and at most ``max_open`` are
    kept open (least recently used are closed). ``verify=True`` checks every shard's sha256 first
    (reading the files one at a time).
    """

    def __init__(self, out_dir: str | Path, *, verify: bool = False, max_open: int = 8) -> None:
        self.out_dir = Path(out_dir)
        manifest_path = self.out_dir / MANIFEST_NAME
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no pair-shard manifest at {manifest_path}")
        manifest = _read_json(manifest_path)
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_path}: unknown format {manifest.get('format')!r}")
        if not manifest.get("complete"):
            raise ValueError(
                f"{self.out_dir} is incomplete (generation was interrupted or other ranks have "
                f"not finished); run generate_pair_shards again with the same arguments to resume"
            )
        if max_open < 1:
            raise ValueError(f"max_open must be >= 1, got {max_open}")
        self.config: dict[str, Any] = manifest["config"]
        self.records: list[dict[str, Any]] = sorted(manifest["shards"], key=lambda r: r["index"])
        self.data_shape: tuple[int, ...] = tuple(self.config["data_shape"])
        self.offsets = np.cumsum([0] + [r["count"] for r in self.records]).tolist()
        self.max_open = max_open
        self._handles: OrderedDict[int, Any] = OrderedDict()
        if verify:
            for r in self.records:
                path = self.out_dir / r["file"]
                if not path.is_file():
                    raise FileNotFoundError(f"pair shard missing: {path}")
                if sha256_file(path) != r["sha256"]:
                    raise ValueError(f"pair shard {path} does not match its sha256 in the manifest")

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getstate__(self) -> dict[str, Any]:
        """Open shard handles are not picklable (DataLoader workers): each copy reopens its own."""
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()
        return state

    def _handle(self, shard: int) -> Any:
        if shard in self._handles:
            self._handles.move_to_end(shard)
            return self._handles[shard]
        path = self.out_dir / self.records[shard]["file"]
        if not path.is_file():
            raise FileNotFoundError(f"pair shard missing: {path}")
        handle = safe_open(str(path), framework="pt")
        self._handles[shard] = handle
        if len(self._handles) > self.max_open:
            self._handles.popitem(last=False)
        return handle

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"pair index {index} out of range for {len(self)} pairs")
        shard = bisect.bisect_right(self.offsets, index) - 1
        return shard, index - self.offsets[shard]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        shard, row = self._locate(int(index))
        handle = self._handle(shard)
        return (
            handle.get_slice("x0")[row : row + 1][0],
            handle.get_slice("x1")[row : row + 1][0],
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        """``n`` pairs drawn uniformly with replacement, reading only those rows."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"number of samples n must be a positive int, got {n!r}")
        idx = torch.randint(0, len(self), (n,), generator=generator)
        x0 = torch.empty(n, *self.data_shape)
        x1 = torch.empty(n, *self.data_shape)
        for pos in torch.argsort(idx).tolist():  # sorted: one shard after another
            x0[pos], x1[pos] = self[int(idx[pos])]
        return Pairs(x0, x1)

    def iter_shards(self) -> Iterator[Pairs]:
        """Every shard in order, one in memory at a time."""
        for shard in range(len(self.records)):
            handle = self._handle(shard)
            yield Pairs(handle.get_tensor("x0"), handle.get_tensor("x1"))

    def __repr__(self) -> str:
        return (
            f"PairShardDataset({str(self.out_dir)!r}, n={len(self)}, shards={len(self.records)}, "
            f"data_shape={self.data_shape})"
        )
