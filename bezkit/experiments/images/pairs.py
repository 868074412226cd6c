"""Teacher pairs for the image stages, written as resumable shards in a folder.

``generate_pairs`` writes the teacher's ODE pairs in a folder described by ``pairs.json`` (read
back by ``bezkit.couplings.shard_pairs.ShardPairs``):

- ``direction="forward"``: ``X0 ~ N(0, I)``, ``X1 = ODE_teacher(X0)`` (reflow pairs). With
  ``segments = S > 1`` the trajectory is cut at ``t = j / S`` and segment ``j`` is its own shard
  folder (``segment-j``) whose ``x0`` is segment ``j-1``'s ``x1``, shard for shard: the folder
  then also holds the teacher states that B-DENSE distils. Segment ``j`` integrates the time window
  ``[(j-1)/S, j/S]`` (the teacher re-timed to [0, 1], the same Euler grid up to round-off).
- ``direction="reverse"``: ``X1`` real images, ``X0 = ODE_teacher^-1(X1)`` (data-anchored pairs,
  the default endpoint of Bezier distillation), the teacher integrated from 1 to 0.

Every shard is a pure function of (teacher, seed, shard index), written atomically and verified
(``bezkit.couplings.pair_shards``), so an interrupted run resumes without losing or duplicating a
pair; under torchrun each rank writes its share of the shards.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from bezkit.couplings.pair_shards import (
    PairShardDataset,
    ShardGenerationReport,
    generate_pair_shards,
    shard_seed,
    teacher_fingerprint,
)
from bezkit.couplings.shard_pairs import PAIRS_FORMAT, PAIRS_INFO
from bezkit.experiments.images.outputs import as_teacher, claim
from bezkit.experiments.images.presets import (
    ImagePreset,
    StandardNormal,
    data_shape,
    image_data,
)
from bezkit.files.atomic import write_json
from bezkit.files.run_dir import check_output_dir
from bezkit.training.device import choose_device
from bezkit.training.distributed import barrier, is_main_process

__all__ = ["Direction", "generate_pairs"]

Direction = Literal["forward", "reverse"]


class _TimeWindow(nn.Module):
    """The teacher on the time window ``[a, b]`` re-timed to [0, 1]:
    ``u(x, s) = (b - a) v(x, a + (b - a) s)``. Integrating ``u`` from 0 to 1 integrates ``v``
    from ``a`` to ``b`` (``a > b``: backwards in time)."""

    def __init__(self, teacher: nn.Module, a: float, b: float) -> None:
        super().__init__()
        self.teacher, self.a, self.b = teacher, float(a), float(b)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        span = self.b - self.a
        return span * self.teacher(x, self.a + span * t)


class _ShardChain:
    """The source of segment ``j``: segment ``j-1``'s endpoints, shard for shard.

    ``generate_pair_shards`` draws shard ``i``'s sources from a generator seeded by
    ``shard_seed(seed, i)``; this sampler reads that seed back to hand over shard ``i`` of the
    previous segment, so resuming and multi-process generation stay exact."""

    def __init__(self, previous: Path, seed: int) -> None:
        ds = PairShardDataset(previous)
        self.data_shape = ds.data_shape
        self.name = f"endpoints of {previous.name}"
        self.files = {shard_seed(seed, r["index"]): (previous / r["file"], r["count"])
                      for r in ds.records}  # fmt: skip

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if generator is None or generator.initial_seed() not in self.files:
            raise RuntimeError("segment sources are read shard by shard from generate_pair_shards")
        path, count = self.files[generator.initial_seed()]
        if count != n:
            raise RuntimeError(f"{path} holds {count} pairs, {n} requested")
        return load_file(str(path))["x1"]


def _pairs_info(
    preset: ImagePreset,
    teacher: nn.Module,
    *,
    direction: str,
    segments: int,
    n_pairs: int,
    shard_size: int,
    steps: int,
    seed: int,
) -> dict[str, Any]:
    return {
        "format": PAIRS_FORMAT,
        "direction": direction,
        "segments": segments,
        "n_pairs": n_pairs,
        "shard_size": shard_size,
        "steps": steps,
        "method": preset.teacher_solver,
        "seed": seed,
        "dataset": preset.dataset,
        "data_shape": list(data_shape(preset)),
        "teacher": teacher_fingerprint(teacher),
    }


def generate_pairs(
    teacher: str | Path | nn.Module,
    preset: ImagePreset,
    out_dir: str | Path,
    *,
    direction: Direction = "forward",
    segments: int | None = None,
    n_pairs: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    data_root: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> list[ShardGenerationReport]:
    """Write (or resume, or just verify) the teacher's pairs in ``out_dir`` (see the module doc).

    ``segments`` (forward only, default ``preset.segments``) cuts the trajectory into equal time
    windows; the Euler grid is rounded up to a multiple of it. Returns one report per segment.
    An unwritable ``out_dir`` is an error before any work, and a second process generating into
    the same folder is refused (``bezkit.files.run_dir.RunLocked``).
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")
    out_dir = check_output_dir(out_dir)  # before any work
    model, tinfo = as_teacher(teacher)
    segments = (preset.segments if direction == "forward" else 1) if segments is None else segments
    if segments < 1 or (direction == "reverse" and segments != 1):
        raise ValueError(f"segments must be >= 1 (and 1 for reverse pairs), got {segments}")
    n_pairs = preset.n_pairs if n_pairs is None else n_pairs
    steps = preset.teacher_steps if steps is None else steps
    steps = segments * math.ceil(steps / segments)
    seed = preset.seed if seed is None else seed
    dev = choose_device(device if device is not None else preset.device)
    model = model.to(dev).eval()
    info = _pairs_info(
        preset, model, direction=direction, segments=segments, n_pairs=n_pairs,
        shard_size=min(preset.shard_size, n_pairs), steps=steps, seed=seed,
    )  # fmt: skip
    info["teacher_k"] = tinfo["k"]
    reports = []
    with claim(out_dir, folder=True, what="pair generation"):  # one job per pairs folder
        _write_or_check_info(out_dir, info)
        shape = data_shape(preset)
        for j in range(1, segments + 1):
            if direction == "forward":
                window = _TimeWindow(model, (j - 1) / segments, j / segments)
                source: Any = (
                    StandardNormal(shape)
                    if j == 1
                    else _ShardChain(out_dir / f"segment-{j - 1}", seed)
                )
            else:
                window = _TimeWindow(model, 1.0, 0.0)
                source = image_data(preset, "train", data_root=data_root)
            reports.append(
                generate_pair_shards(
                    window,
                    source,
                    out_dir / f"segment-{j}",
                    n_pairs=n_pairs,
                    shard_size=info["shard_size"],
                    steps=steps // segments,
                    method=preset.teacher_solver,
                    seed=seed,
                    batch_size=preset.pair_batch_size,
                    device=dev,
                    progress=progress,
                    teacher_id=f"{info['teacher']}|{direction}|segment {j} of {segments}",
                )
            )
    return reports


def _write_or_check_info(out_dir: Path, info: dict[str, Any]) -> None:
    path = out_dir / PAIRS_INFO
    if path.is_file():
        old = json.loads(path.read_text())
        differ = sorted(k for k in set(old) | set(info) if old.get(k) != info.get(k))
        if differ:
            details = ", ".join(f"{k}: {old.get(k)!r} -> {info.get(k)!r}" for k in differ)
            raise ValueError(
                f"{out_dir} holds pairs made with other settings ({details}); use another folder"
            )
        return
    barrier()  # every rank has seen the folder without pairs.json before rank 0 writes it
    if is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, info, indent=2)
    barrier()
