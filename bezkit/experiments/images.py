"""Images: bezkit's methods on digits (CPU) and CIFAR-10 (GPUs), stage by stage.

Only the data, the model and the evaluation change from the 2D kit: every stage below builds the
*same* losses, paths, couplings and students as ``bezkit.methods`` (``FlowMatchingLoss``,
``BezierPath``, ``distill_times``, ``student_from``, ``make_bezier_pairs``, ``BDenseLoss``,
``branched_from_teacher``) and hands them to the one trainer, ``bezkit.training.train``. The stages
call ``train`` themselves rather than the one-line recipes (``train_flow``, ``distill``, ...)
because only ``train`` takes ``resume_from``; the tests check that each stage gives exactly the
recipe's result. The stages (``bezkit images train | reflow | distill | evaluate`` call them):

1. ``train_rectified_flow``: the 1-RF on independent pairs (noise, image).
2. ``generate_pairs``: the teacher's ODE pairs, written as resumable shards
   (``bezkit.couplings.pair_shards``) in a folder described by ``pairs.json``:

   - ``direction="forward"``: ``X0 ~ N(0, I)``, ``X1 = ODE_teacher(X0)`` (reflow pairs). With
     ``segments = S > 1`` the trajectory is cut at ``t = j / S`` and segment ``j`` is its own
     shard folder (``segment-j``) whose ``x0`` is segment ``j-1``'s ``x1``, shard for shard: the
     folder then also holds the teacher states that B-DENSE distils. Segment ``j`` integrates the
     time window ``[(j-1)/S, j/S]`` (the teacher re-timed to [0, 1], the same Euler grid up to
     round-off).
   - ``direction="reverse"``: ``X1`` real images, ``X0 = ODE_teacher^-1(X1)`` (data-anchored
     pairs, the default endpoint of Bezier distillation), the teacher integrated from 1 to 0.

   Every shard is a pure function of (teacher, seed, shard index), written atomically and verified,
   so an interrupted run resumes without losing or duplicating a pair; under torchrun each rank
   writes its share of the shards.
3. ``train_from_pairs``: from a pairs folder, the k-RF (``method="reflow"``), one- or N-step
   distillation (``"distill"``), Bezier distillation (``"bezier"``: guides computed batch by batch
   by ``make_bezier_pairs`` from the teachers, so no guide is ever stored) and B-DENSE
   (``"bdense"``: the teacher states come from the segments).
4. ``evaluate_images``: Euler samples at several step counts; exact and sliced W2 in pixel space
   and the digits Frechet distance (digits), or sliced/exact W2 and FID (CIFAR-10), each with its
   noise floor.

Every training stage writes ``OUT.safetensors`` + ``OUT.json`` (the final weights: the EMA weights
when EMA is on, loadable by ``bezkit.training.model_io.load_model``) and keeps the resumable
training state (weights, EMA, optimizer, step) in ``OUT.train.safetensors`` + ``.json``. Running
a stage again after an interruption resumes from that state, exactly as if it had not stopped.

Under ``torchrun`` the trainer wraps the model in ``DistributedDataParallel`` (``batch_size`` is
per process) and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.pair_shards import (
    PairShardDataset,
    ShardGenerationReport,
    generate_pair_shards,
    shard_seed,
    teacher_fingerprint,
)
from bezkit.couplings.pairs import Pairs
from bezkit.methods.bdense import BDenseLoss, branched_from_teacher
from bezkit.methods.bezier_distill import BezierDistillConfig, make_bezier_pairs
from bezkit.methods.flow import student_from
from bezkit.models.branched import BranchedVelocity
from bezkit.models.unet import UNetVelocity
from bezkit.paths.bezier import BezierPath
from bezkit.paths.time_sampling import distill_times
from bezkit.solvers.ode import solve_ode
from bezkit.training.checkpoint import atomic_write_bytes, load_checkpoint
from bezkit.training.config import TrainConfig
from bezkit.training.device import choose_device
from bezkit.training.distributed import barrier, is_main_process
from bezkit.training.model_io import checkpoint_files, load_model, save_model, update_metadata
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import TrainResult, train

__all__ = [
    "PAIRS_FORMAT",
    "PRESETS",
    "ImagePreset",
    "ShardPairs",
    "StageConfig",
    "StageResult",
    "StandardNormal",
    "evaluate_images",
    "generate_pairs",
    "get_preset",
    "image_data",
    "image_grid",
    "load_stage_model",
    "new_unet",
    "sample_images",
    "train_from_pairs",
    "train_rectified_flow",
]

PAIRS_FORMAT = "bezkit-image-pairs/1"
PAIRS_INFO = "pairs.json"
Direction = Literal["forward", "reverse"]
Method = Literal["reflow", "distill", "bezier", "bdense"]
METHODS: tuple[str, ...] = ("reflow", "distill", "bezier", "bdense")


# -- presets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageConfig:
    """The optimisation of one training stage (the rest of ``TrainConfig`` comes from the preset)."""

    steps: int
    batch_size: int
    lr: float
    warmup_steps: int = 0
    ema_decay: float | None = None
    grad_clip: float | None = 1.0
    weight_decay: float = 0.0
    schedule: str = "cosine"


@dataclass(frozen=True)
class ImagePreset:
    """Everything that fixes an image run: data, U-Net, each stage's optimisation, the pairs and
    the evaluation. ``get_preset(name, **overrides)`` returns a modified copy."""

    name: str
    dataset: Literal["digits", "cifar10"]
    unet: dict[str, Any]
    flow: StageConfig  # the 1-RF
    reflow: StageConfig  # the k-RF (k >= 2), from its teacher's weights
    distill: StageConfig  # distill, Bezier distillation and B-DENSE students
    n_pairs: int
    shard_size: int
    teacher_steps: int  # Euler steps of the teacher's ODE when generating pairs
    teacher_solver: str = "euler"
    segments: int = 1  # forward pairs cut into this many time windows (B-DENSE needs branches | it)
    branches: int = 4  # B-DENSE's K
    pair_batch_size: int = 1024
    eval_n: int = 1000
    eval_steps: tuple[int, ...] = (1, 2, 4, 100)
    sample_batch_size: int = 1000
    amp: bool = False  # bf16 autocast (CUDA only)
    compile: bool = False
    prefetch: int = 0
    checkpoint_every: int = 0  # 0: only at the end
    device: str = "auto"
    cpu_threads: int | None = None  # the CLI sets torch.set_num_threads to this
    flip: bool = False  # random horizontal flips of the training images
    seed: int = 0

    def stage(self, name: str) -> StageConfig:
        return {"flow": self.flow, "reflow": self.reflow, "distill": self.distill}[name]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, ImagePreset] = {
    # 8x8 digits on a CPU: a 190k-parameter U-Net, one to two minutes per stage on one thread.
    "digits": ImagePreset(
        name="digits",
        dataset="digits",
        unet={
            "in_channels": 1,
            "base_channels": 16,
            "channel_mults": (1, 2),
            "num_res_blocks": 1,
            "attention_resolutions": (4,),
            "dropout": 0.0,
            "image_size": 8,
        },
        flow=StageConfig(steps=2000, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.995),
        reflow=StageConfig(steps=600, batch_size=128, lr=1e-3, ema_decay=0.99),
        distill=StageConfig(steps=600, batch_size=128, lr=1e-3, ema_decay=0.99),
        n_pairs=5000,
        shard_size=1000,
        teacher_steps=48,
        segments=4,
        branches=4,
        eval_n=1000,
        eval_steps=(1, 2, 4, 48),
        device="cpu",
        cpu_threads=1,
        checkpoint_every=500,
    ),
    # CIFAR-10 on GPUs (DDPM++-like U-Net, 50.7M parameters); batch_size is per process.
    "cifar10": ImagePreset(
        name="cifar10",
        dataset="cifar10",
        unet={
            "in_channels": 3,
            "base_channels": 128,
            "channel_mults": (1, 2, 2, 2),
            "num_res_blocks": 3,
            "attention_resolutions": (16,),
            "dropout": 0.1,
            "image_size": 32,
        },
        flow=StageConfig(
            steps=400_000, batch_size=128, lr=2e-4, warmup_steps=5000, ema_decay=0.9999
        ),
        reflow=StageConfig(
            steps=200_000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9999
        ),
        distill=StageConfig(
            steps=100_000, batch_size=128, lr=1e-4, warmup_steps=1000, ema_decay=0.9999
        ),
        n_pairs=1_000_000,
        shard_size=10_000,
        teacher_steps=100,
        segments=1,
        branches=4,
        pair_batch_size=1000,
        eval_n=50_000,
        eval_steps=(1, 2, 4),
        sample_batch_size=1000,
        amp=True,
        compile=False,
        prefetch=2,
        checkpoint_every=5000,
        device="auto",
        flip=True,
    ),
}


def get_preset(name: str | ImagePreset, **overrides: Any) -> ImagePreset:
    """A preset by name (``digits``, ``cifar10``) with ``overrides`` applied. A stage may be
    overridden field by field: ``get_preset("digits", flow={"steps": 10})``."""
    preset = name if isinstance(name, ImagePreset) else PRESETS.get(name)
    if preset is None:
        raise ValueError(f"unknown image preset {name!r}; known: {', '.join(PRESETS)}")
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in ImagePreset.__dataclass_fields__:
            raise TypeError(f"unknown preset field {key!r}")
        if key in ("flow", "reflow", "distill") and isinstance(value, dict):
            value = dataclasses.replace(getattr(preset, key), **value)
        elif key == "unet":
            value = {**preset.unet, **value}
        changes[key] = value
    return dataclasses.replace(preset, **changes)


# -- data and model -------------------------------------------------------------------------------


class StandardNormal:
    """The source ``pi0 = N(0, I)`` on images of shape ``data_shape``."""

    def __init__(self, data_shape: Sequence[int]) -> None:
        self.data_shape = tuple(int(s) for s in data_shape)
        self.name = "normal"

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, *self.data_shape, generator=generator)

    def __repr__(self) -> str:
        return f"StandardNormal{self.data_shape}"


def image_data(
    preset: ImagePreset,
    split: Literal["train", "test"] = "train",
    *,
    data_root: str | Path | None = None,
    flip: bool | None = None,
) -> Any:
    """The preset's images as a sampler (``sample(n, generator)``, ``data_shape``, ``images``
    or ``data``): ``DigitsDataset`` or ``CIFAR10Dataset`` (its ``data_root`` is required)."""
    flip = preset.flip if flip is None else flip
    if preset.dataset == "digits":
        from bezkit.data.digits import DigitsDataset

        return DigitsDataset(split, flip=flip)
    if data_root is None:
        raise ValueError("CIFAR-10 needs data_root: the folder holding cifar-10-batches-py/")
    from bezkit.data.cifar10 import CIFAR10Dataset

    return CIFAR10Dataset(data_root, split, flip=flip)


def data_shape(preset: ImagePreset) -> tuple[int, int, int]:
    size = preset.unet["image_size"]
    return (preset.unet["in_channels"], size, size)


def new_unet(preset: ImagePreset, *, seed: int = 0) -> UNetVelocity:
    """The preset's U-Net with seeded initial weights (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNetVelocity(**preset.unet)


def _reference_images(ds: Any, idx: Tensor | None = None) -> Tensor:
    """A dataset's images in [-1, 1] (rows ``idx``, or all), without flips."""
    if hasattr(ds, "images"):
        return ds.images if idx is None else ds.images[idx]
    from bezkit.data.cifar10 import uint8_to_unit_range

    return uint8_to_unit_range(ds.data if idx is None else ds.data[idx])


# -- stage outputs: final weights + resumable training state ---------------------------------------


@dataclass
class StageResult:
    """A finished training stage: the model (final weights, eval mode, on the CPU), where it was
    written, its metadata, and what this call did (``resumed_from``: the step it resumed at)."""

    model: nn.Module
    path: Path
    metadata: dict[str, Any]
    train_seconds: float
    resumed_from: int | None = None
    losses: list[float] = field(default_factory=list)


def _state_stem(out: Path) -> Path:
    return out.with_name(out.name + ".train")


def _stem(out: str | Path) -> Path:
    st, _ = checkpoint_files(out)
    return st.with_name(st.name[: -len(".safetensors")])


def load_stage_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``load_model`` for stage outputs (EMA weights when present), in eval mode on the CPU."""
    return load_model(path)


def _teacher_info(teacher: nn.Module, path: str | Path | None, meta: dict[str, Any]) -> dict:
    info = meta.get("images", {}) if meta else {}
    return {
        "path": None if path is None else str(Path(path).resolve()),
        "fingerprint": teacher_fingerprint(teacher),
        "k": int(info.get("k", 1)),
        "stage": info.get("stage"),
    }


def _as_teacher(teacher: str | Path | nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """A teacher module and its bookkeeping, from a checkpoint path or a module."""
    if isinstance(teacher, nn.Module):
        return teacher.eval(), _teacher_info(teacher, None, {})
    model, meta = load_model(teacher)
    return model, _teacher_info(model, teacher, meta)


_RUN_FIELDS = ("steps", "batch_size", "lr", "warmup_steps", "ema_decay", "seed", "weight_decay",
               "schedule", "grad_clip")  # fmt: skip


def _train_config(
    preset: ImagePreset,
    stage: StageConfig,
    *,
    seed: int,
    device: str | torch.device | None,
    state: Path,
    progress: bool,
    desc: str,
) -> TrainConfig:
    every = preset.checkpoint_every or stage.steps
    return TrainConfig(
        steps=stage.steps,
        batch_size=stage.batch_size,
        lr=stage.lr,
        weight_decay=stage.weight_decay,
        warmup_steps=stage.warmup_steps,
        schedule=stage.schedule,
        grad_clip=stage.grad_clip,
        ema_decay=stage.ema_decay,
        seed=seed,
        device=str(device if device is not None else preset.device),
        amp=preset.amp,
        compile=preset.compile,
        prefetch=preset.prefetch,
        progress=progress,
        desc=desc,
        checkpoint_path=str(state),
        checkpoint_every=min(every, stage.steps),
    )


def _prepare_output(out: Path, overwrite: bool) -> Path | None:
    """Check ``out`` is free (or clear it with ``overwrite``); return the training state to
    resume from, if an interrupted run left one."""
    final = checkpoint_files(out)
    state = checkpoint_files(_state_stem(out))
    if overwrite:
        if is_main_process():
            for p in (*final, *state):
                p.unlink(missing_ok=True)
        barrier()
        return None
    if any(p.exists() for p in final):
        raise FileExistsError(
            f"{final[0]} already exists (the stage is done); pass overwrite=True "
            f"(--overwrite) to train it again"
        )
    if all(p.exists() for p in state):
        return _state_stem(out)
    return None


def _check_resumable(state: Path, config: TrainConfig, spec: dict, stage_meta: dict) -> int:
    """The step of an interrupted run in ``state``; an error if it was another run."""
    meta = load_checkpoint(state).metadata
    old_cfg, new_cfg = meta.get("train_config", {}), config.to_dict()
    differ = [k for k in _RUN_FIELDS if old_cfg.get(k) != new_cfg.get(k)]
    if meta.get("model") != spec:
        differ.append("model")
    old_stage = meta.get("images")
    if old_stage is not None and old_stage != json.loads(json.dumps(stage_meta)):
        differ.append("stage (teacher, pairs or method)")
    if differ:
        raise ValueError(
            f"{state} holds an interrupted run with different settings ({', '.join(differ)}); "
            f"pass overwrite=True (--overwrite) to start again"
        )
    return int(meta["step"])


def _run_stage(
    out: str | Path,
    model: nn.Module,
    loss_fn: Any,
    sample_batch: Any,
    config: TrainConfig,
    stage_meta: dict[str, Any],
    *,
    overwrite: bool,
) -> StageResult:
    """Train (or resume), then write the final weights; returns the finished stage."""
    from bezkit.models.factory import model_spec

    out = _stem(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    resume = _prepare_output(out, overwrite)
    resumed_from = None
    if resume is not None:
        resumed_from = _check_resumable(resume, config, model_spec(model), stage_meta)
    _, state_json = checkpoint_files(_state_stem(out))
    before = state_json.read_bytes() if state_json.exists() else None
    try:
        if resume is not None and resumed_from >= config.steps:  # trained, not yet exported
            result = _result_from_state(resume, model)
        else:
            result = train(model, loss_fn, sample_batch, config, resume_from=resume)
    finally:
        # every state this run wrote gets the stage's metadata, so a resume can check it
        if is_main_process() and state_json.exists() and state_json.read_bytes() != before:
            update_metadata(_state_stem(out), {"images": stage_meta})
    final = result.final_model
    meta = {
        "images": stage_meta,
        "train_config": config.to_dict(),
        "step": config.steps,
        "final_loss": float(np.mean(result.losses[-50:])) if result.losses else None,
        "weights": "ema" if result.ema_model is not None else "model",
        "parameters": sum(p.numel() for p in final.parameters()),
    }
    if is_main_process():
        save_model(out, final, meta, overwrite=True)
    barrier()
    final = final.cpu().eval()
    return StageResult(
        model=final,
        path=checkpoint_files(out)[0],
        metadata=meta,
        train_seconds=result.wall_seconds,
        resumed_from=resumed_from,
        losses=list(result.losses),
    )


def _result_from_state(state: Path, model: nn.Module) -> TrainResult:
    ckpt = load_checkpoint(state)
    model.load_state_dict(ckpt.model_state)
    ema_state = ckpt.section("ema")
    ema = None
    if ema_state:
        import copy

        ema = copy.deepcopy(model)
        ema.load_state_dict(ema_state)
    return TrainResult(model=model, ema_model=ema, losses=list(ckpt.metadata.get("losses", [])))


def _stage_meta(preset: ImagePreset, stage: str, k: int, **extra: Any) -> dict[str, Any]:
    return {
        "preset": preset.name,
        "dataset": preset.dataset,
        "data_shape": list(data_shape(preset)),
        "stage": stage,
        "k": k,
        **extra,
    }


# -- stage 1: the 1-RF ----------------------------------------------------------------------------


def train_rectified_flow(
    preset: ImagePreset,
    out: str | Path,
    *,
    data_root: str | Path | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> StageResult:
    """The 1-RF: ``FlowMatchingLoss`` (linear path, tangent target, uniform t) on independent
    pairs (noise, image), from a fresh seeded U-Net; resumes an interrupted run of ``out``."""
    seed = preset.seed if seed is None else seed
    data = image_data(preset, "train", data_root=data_root)
    coupling = IndependentCoupling(StandardNormal(data_shape(preset)), data)
    out = _stem(out)
    config = _train_config(
        preset, preset.flow, seed=seed, device=device, state=_state_stem(out), progress=progress,
        desc="1-RF",
    )  # fmt: skip
    meta = _stage_meta(preset, "1-RF", 1, seed=seed)
    return _run_stage(
        out, new_unet(preset, seed=seed), FlowMatchingLoss(), coupling.sample, config, meta,
        overwrite=overwrite,
    )  # fmt: skip


# -- stage 2: teacher pairs as resumable shards ----------------------------------------------------


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
    """
    model, tinfo = _as_teacher(teacher)
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")
    segments = (preset.segments if direction == "forward" else 1) if segments is None else segments
    if segments < 1 or (direction == "reverse" and segments != 1):
        raise ValueError(f"segments must be >= 1 (and 1 for reverse pairs), got {segments}")
    n_pairs = preset.n_pairs if n_pairs is None else n_pairs
    steps = preset.teacher_steps if steps is None else steps
    steps = segments * math.ceil(steps / segments)
    seed = preset.seed if seed is None else seed
    dev = choose_device(device if device is not None else preset.device)
    model = model.to(dev).eval()
    out_dir = Path(out_dir)
    info = _pairs_info(
        preset, model, direction=direction, segments=segments, n_pairs=n_pairs,
        shard_size=min(preset.shard_size, n_pairs), steps=steps, seed=seed,
    )  # fmt: skip
    info["teacher_k"] = tinfo["k"]
    _write_or_check_info(out_dir, info)
    reports = []
    shape = data_shape(preset)
    for j in range(1, segments + 1):
        if direction == "forward":
            window = _TimeWindow(model, (j - 1) / segments, j / segments)
            source: Any = (
                StandardNormal(shape) if j == 1 else _ShardChain(out_dir / f"segment-{j - 1}", seed)
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
        atomic_write_bytes(path, (json.dumps(info, indent=2) + "\n").encode())
    barrier()


class ShardPairs:
    """A pairs folder of ``generate_pairs`` as a coupling: ``sample(n, generator) -> Pairs``.

    ``(x0, x1)`` is (noise, teacher endpoint) for forward pairs and (``ODE^-1(image)``, image) for
    reverse pairs. ``states=K`` (forward pairs, K dividing the segment count) adds the teacher's
    states at ``t_j = j / K``, j = 1..K-1, as ``guides``: the layout of
    ``bezkit.methods.bdense.make_trajectory_pool``. Pairs are drawn uniformly with replacement by
    the same ``randint`` as ``PairShardDataset.sample`` and ``PairPool.sample``; a folder smaller
    than ``in_memory_bytes`` is read into memory once, a larger one row by row (memory-mapped).
    """

    def __init__(
        self, root: str | Path, *, states: int | None = None, in_memory_bytes: int = 1 << 30
    ) -> None:
        self.root = Path(root)
        path = self.root / PAIRS_INFO
        if not path.is_file():
            raise FileNotFoundError(f"no {PAIRS_INFO} in {self.root}: not a pairs folder")
        self.info = json.loads(path.read_text())
        if self.info.get("format") != PAIRS_FORMAT:
            raise ValueError(f"{path}: unknown format {self.info.get('format')!r}")
        k = int(self.info["segments"])
        self.reverse = self.info["direction"] == "reverse"
        self.segments = [PairShardDataset(self.root / f"segment-{j}") for j in range(1, k + 1)]
        self.n = len(self.segments[0])
        self.states = states
        # which segment's endpoint is which state: x1 at t = 1 is the last segment's
        ends = [k - 1]
        if states is not None:
            if self.reverse or states < 1 or k % states:
                raise ValueError(
                    f"teacher states at t = j/{states} need forward pairs cut into a multiple of "
                    f"{states} segments; {self.root} has {k} {self.info['direction']} segment(s) "
                    f"(generate them with segments={states})"
                )
            ends = [j * (k // states) - 1 for j in range(1, states + 1)]
        self._ends = ends
        shape = tuple(self.info["data_shape"])
        tensors = 1 + len(ends)
        size = self.n * tensors * int(np.prod(shape)) * 4
        self._memory: list[Tensor] | None = None
        if size <= in_memory_bytes:
            self._memory = self._read_all()

    def _read_all(self) -> list[Tensor]:
        def column(seg: PairShardDataset, name: str) -> Tensor:
            parts = seg.iter_shards()
            return torch.cat([getattr(p, name) for p in parts])

        if self.reverse:
            return [column(self.segments[0], "x1"), column(self.segments[0], "x0")]
        return [column(self.segments[0], "x0")] + [
            column(self.segments[j], "x1") for j in self._ends
        ]

    def __len__(self) -> int:
        return self.n

    def _rows(self, idx: Tensor) -> list[Tensor]:
        if self._memory is not None:
            return [t[idx] for t in self._memory]
        shape = tuple(self.info["data_shape"])
        cols = [torch.empty(len(idx), *shape) for _ in range(1 + len(self._ends))]
        for pos in torch.argsort(idx).tolist():
            i = int(idx[pos])
            a, b = self.segments[0][i]
            if self.reverse:
                cols[0][pos], cols[1][pos] = b, a
                continue
            cols[0][pos] = a
            for c, j in enumerate(self._ends, start=1):
                cols[c][pos] = b if j == 0 else self.segments[j][i][1]
        return cols

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        idx = torch.randint(0, self.n, (n,), generator=generator)
        cols = self._rows(idx)
        return Pairs(cols[0], cols[-1], tuple(cols[1:-1]))

    def all_pairs(self) -> Pairs:
        """Every pair in order (in memory: for small folders and tests)."""
        cols = self._memory if self._memory is not None else self._read_all()
        return Pairs(cols[0], cols[-1], tuple(cols[1:-1]))

    def __repr__(self) -> str:
        return (
            f"ShardPairs({str(self.root)!r}, n={self.n}, {self.info['direction']}, "
            f"segments={len(self.segments)}, states={self.states})"
        )


class _Rows:
    """A sampler that hands back given rows (``make_bezier_pairs`` on one batch of pairs)."""

    name = "rows"

    def __init__(self, x: Tensor) -> None:
        self.x = x
        self.data_shape = tuple(x.shape[1:])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if n != self.x.shape[0]:
            raise ValueError(f"{n} rows requested, {self.x.shape[0]} held")
        return self.x


class BezierShardPairs:
    """Bezier distillation's pairs, batch by batch: pairs from ``pairs`` (a coupling, e.g.
    ``ShardPairs`` of reverse pairs for ``endpoint="data"``), guides computed from the teachers by
    ``make_bezier_pairs`` itself (on the teachers' device). ``make_bezier_pairs`` is called with
    ``endpoint="independent"`` on samplers that return the batch's own ``x0`` and ``x1``, so the
    pairing is the folder's and everything else (guide times, guide state, placement,
    multi-teacher) is the method's own code. The Euler guide state is a deterministic function
    of the pair, so this equals computing every guide once up front."""

    def __init__(
        self,
        pairs: Any,
        teachers: Sequence[nn.Module],
        cfg: BezierDistillConfig,
        *,
        device: torch.device | str = "cpu",
        amp: bool = False,
    ) -> None:
        self.pairs, self.teachers = pairs, list(teachers)
        self.cfg = dataclasses.replace(cfg, endpoint="independent")
        self.cfg.validate(len(self.teachers))
        self.device, self.amp = torch.device(device), amp

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        p = self.pairs.sample(n, generator).to(self.device)
        cfg = dataclasses.replace(self.cfg, n_pairs=n)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.amp and self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        with autocast:
            pool = make_bezier_pairs(self.teachers, _Rows(p.x0), _Rows(p.x1), cfg)
        return Pairs(p.x0, p.x1, tuple(g.float() for g in pool.pairs.guides))


class _TrainBranches(BranchedVelocity):
    """A ``BranchedVelocity`` whose ``forward(x, t, branches=True)`` returns every branch, so
    that B-DENSE's loss reaches the branches through ``DistributedDataParallel.forward`` (which
    synchronises the gradients) instead of a method the wrapper does not know. It saves and
    loads as a plain ``BranchedVelocity``."""

    def forward(self, x: Tensor, t: Tensor, branches: bool = False) -> Tensor:  # type: ignore[override]
        return self.branches(x, t) if branches else super().forward(x, t)


class _ViaForward:
    """What ``BDenseLoss`` calls ``model``: ``branches(x, t)`` through the (wrapped) forward."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def branches(self, x: Tensor, t: Tensor) -> Tensor:
        return self.model(x, t, branches=True)


class _BDenseLossViaForward:
    def __init__(self, loss: BDenseLoss) -> None:
        self.loss = loss

    def __call__(self, model: nn.Module, pairs: Pairs, generator: torch.Generator) -> Tensor:
        return self.loss(_ViaForward(model), pairs, generator)


# -- stage 3: students and k-RF from a pairs folder -----------------------------------------------


def train_from_pairs(
    method: Method,
    teachers: str | Path | nn.Module | Sequence[str | Path | nn.Module],
    pairs_dir: str | Path,
    preset: ImagePreset,
    out: str | Path,
    *,
    init: Literal["teacher", "scratch"] = "teacher",
    distill_steps: int = 1,
    bezier: BezierDistillConfig | None = None,
    branches: int | None = None,
    branch_weights: Sequence[float] | None = None,
    restarts: bool = False,
    seed: int | None = None,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> StageResult:
    """Train a model from the pairs in ``pairs_dir`` (made by ``generate_pairs``):

    - ``"reflow"``: the (k+1)-RF, linear path, tangent target, uniform t (``reflow_round``).
    - ``"distill"``: ``distill_steps``-step distillation, t on ``{0, 1/N, ...}`` (``distill``).
    - ``"bezier"``: Bezier distillation with ``bezier`` (a ``BezierDistillConfig``; its pairing
      is the folder's: reverse pairs for ``endpoint="data"``, forward for ``"teacher"``; its
      ``n_pairs``, ``teacher_steps``, ``pair_seed`` are the folder's); several teachers allowed.
    - ``"bdense"``: B-DENSE with ``branches`` branches on the teacher states of the segments.

    The student starts from the (first / endpoint) teacher, or from scratch (``init``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if isinstance(teachers, str | Path | nn.Module):
        teachers = [teachers]
    loaded = [_as_teacher(t) for t in teachers]
    models = [m for m, _ in loaded]
    infos = [i for _, i in loaded]
    if method != "bezier" and len(models) != 1:
        raise ValueError(f"{method} takes one teacher, got {len(models)}")
    seed = preset.seed if seed is None else seed
    out = _stem(out)
    config = _train_config(
        preset, preset.reflow if method == "reflow" else preset.distill, seed=seed, device=device,
        state=_state_stem(out), progress=progress, desc=method,
    )  # fmt: skip
    dev = choose_device(config.device)
    pairs_dir = Path(pairs_dir)
    if not (pairs_dir / PAIRS_INFO).is_file():
        raise FileNotFoundError(f"no {PAIRS_INFO} in {pairs_dir}: run generate_pairs first")
    folder = json.loads((pairs_dir / PAIRS_INFO).read_text())
    k = infos[0]["k"]
    extra: dict[str, Any] = {
        "method": method,
        "teachers": infos,
        "pairs": {"path": str(pairs_dir.resolve()), **folder},
        "init": init,
        "seed": seed,
    }
    bezier_cfg = bezier
    if method == "bezier":
        bezier_cfg = bezier or BezierDistillConfig()
        bezier_cfg.validate(len(models))
        endpoint_teacher = infos[bezier_cfg.endpoint_teacher]
        want = {"data": "reverse", "teacher": "forward"}.get(bezier_cfg.endpoint)
        if want is None:
            raise ValueError("Bezier distillation from a pairs folder needs endpoint 'data' or "
                             "'teacher' ('independent' needs no teacher pairs)")  # fmt: skip
        _check_folder(folder, pairs_dir, want, endpoint_teacher["fingerprint"])
        bezier_cfg = dataclasses.replace(
            bezier_cfg, n_pairs=folder["n_pairs"], teacher_steps=folder["steps"],
            teacher_solver=folder["method"], pair_seed=folder["seed"], init=init,
        )  # fmt: skip
        extra["bezier"] = dataclasses.asdict(bezier_cfg)
    else:
        _check_folder(folder, pairs_dir, "forward", infos[0]["fingerprint"])

    main = models[bezier_cfg.endpoint_teacher if method == "bezier" else 0]
    if method == "reflow":
        student = student_from(main, init, seed=seed)
        loss: Any = FlowMatchingLoss()
        sampler: Any = ShardPairs(pairs_dir)
        k_out = k + 1
    elif method == "distill":
        student = student_from(main, init, seed=seed)
        loss = FlowMatchingLoss(time_sampler=distill_times(distill_steps))
        sampler = ShardPairs(pairs_dir)
        extra["distill_steps"] = distill_steps
        k_out = k
    elif method == "bezier":
        student = student_from(main, init, seed=seed)
        times = distill_times(bezier_cfg.distill_steps) if bezier_cfg.distill_steps else None
        loss = FlowMatchingLoss(
            BezierPath(bezier_cfg.order), target=bezier_cfg.target, time_sampler=times
        )
        sampler = BezierShardPairs(
            ShardPairs(pairs_dir), [m.to(dev) for m in models], bezier_cfg, device=dev,
            amp=preset.amp,
        )  # fmt: skip
        k_out = k
    else:
        nb = preset.branches if branches is None else branches
        if init != "teacher":
            raise ValueError("B-DENSE students start from the teacher (init='teacher')")
        plain = branched_from_teacher(main, nb)
        student = _TrainBranches(plain.net, nb, channel_dim=plain.channel_dim, times=plain.times)
        loss = _BDenseLossViaForward(BDenseLoss(nb, weights=branch_weights, restarts=restarts))
        sampler = ShardPairs(pairs_dir, states=nb)
        extra.update(branches=nb, branch_weights=branch_weights, restarts=restarts)
        k_out = k
    meta = _stage_meta(preset, {"reflow": f"{k_out}-RF"}.get(method, method), k_out, **extra)
    result = _run_stage(out, student, loss, sampler.sample, config, meta, overwrite=overwrite)
    if isinstance(result.model, _TrainBranches):  # hand back the plain class
        m = result.model
        plain = BranchedVelocity(m.net, m.num_branches, channel_dim=m.channel_dim, times=m.times)
        result.model = plain.eval()
    return result


def _check_folder(folder: dict, path: Path, direction: str, fingerprint: str | None) -> None:
    if folder["direction"] != direction:
        raise ValueError(f"{path} holds {folder['direction']} pairs; this method needs "
                         f"{direction} pairs")  # fmt: skip
    if fingerprint is not None and folder["teacher"] != fingerprint:
        raise ValueError(f"{path} holds the pairs of another teacher (weights fingerprint "
                         f"{folder['teacher'][:12]}..., not {fingerprint[:12]}...)")  # fmt: skip


# -- stage 4: evaluation --------------------------------------------------------------------------


@torch.no_grad()
def sample_images(
    model: nn.Module,
    n: int,
    *,
    shape: Sequence[int],
    steps: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 1000,
    solver: str = "euler",
    x0: Tensor | None = None,
) -> tuple[Tensor, int]:
    """``n`` samples (on the CPU, clamped to [-1, 1]) from seeded noise with ``steps`` solver
    steps, and the NFE per sample."""
    dev = torch.device(device)
    model = model.to(dev).eval()
    if x0 is None:
        x0 = torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))
    outs, nfe = [], 0
    for xb in x0.split(batch_size):
        sol = solve_ode(model, xb.to(dev), method=solver, steps=steps)
        outs.append(sol.x.float().cpu())
        nfe = sol.nfe
    return torch.cat(outs).clamp(-1.0, 1.0), nfe


def evaluate_images(
    model: str | Path | nn.Module,
    preset: ImagePreset,
    *,
    steps: Sequence[int] | None = None,
    n: int | None = None,
    seed: int = 0,
    data_root: str | Path | None = None,
    device: str | torch.device | None = None,
    cache: str | Path | None = None,
    fid_weights: str | Path | None = None,
    fid_stats: str | Path | None = None,
    frechet: bool = True,
    w2_max: int = 2048,
) -> dict[str, Any]:
    """Metrics of a model's Euler samples (seeded noise) against held-out images, with noise floors.

    Digits: ``w2`` exact W2 between the ``n`` samples and the test split (359 images), ``sliced_w2``
    on equal sizes (the first ``m = min(n, 359)`` samples), ``frechet`` in the digits classifier's
    features (``bezkit.metrics.frechet``); ``noise_floor`` holds the same numbers for ``n`` real
    train images in place of the samples (what a perfect generator of the training set scores).
    CIFAR-10: ``w2`` and ``sliced_w2`` on the first ``min(n, w2_max)`` / ``min(n, 10000)``
    samples against the test split, and ``fid`` against the train-split statistics (needs the FID
    Inception weights: ``fid_weights`` or ``$BEZKIT_FID_WEIGHTS``; skipped with a note if absent).
    Every model is sampled by Euler on its velocity ``model(x, t)``; a B-DENSE student's velocity
    is its last branch's, so its one-step sample is branch K (``BranchedVelocity.sample``).
    """
    from bezkit.metrics.wasserstein import sliced_wasserstein2, wasserstein2

    if not isinstance(model, nn.Module):
        model, _ = load_model(model)
    steps = sorted(set(preset.eval_steps if steps is None else steps))
    n = preset.eval_n if n is None else n
    dev = choose_device(device if device is not None else preset.device)
    shape = data_shape(preset)
    test = _reference_images(image_data(preset, "test", data_root=data_root, flip=False))
    train_ds = image_data(preset, "train", data_root=data_root, flip=False)
    perm = torch.randperm(len(train_ds), generator=torch.Generator().manual_seed(seed + 1))
    if preset.dataset == "digits" and n > len(perm):
        raise ValueError(f"n = {n} exceeds the {len(perm)} train images of the noise floor")
    real = _reference_images(train_ds, perm[: n if preset.dataset == "digits" else len(test)])
    m_w2 = min(n, len(test), w2_max)
    m_sliced = min(n, len(test))
    ref_w2, ref_sliced = test[:m_w2], test[:m_sliced]

    fid_fn = None
    out: dict[str, Any] = {"n": n, "steps": steps, "seed": seed, "nfe": {}, "w2": {},
                           "sliced_w2": {}, "n_reference": len(test)}  # fmt: skip
    if preset.dataset == "digits" and frechet:
        from bezkit.metrics.frechet import digits_frechet_distance

        out["frechet"] = {}

        def fid_fn(x: Tensor) -> float:
            return digits_frechet_distance(x, test, cache=cache)

    elif preset.dataset == "cifar10":
        fid_fn = _cifar_fid(fid_weights, fid_stats, data_root, cache, dev, out)

    t0 = time.perf_counter()
    for s in steps:
        x, nfe = sample_images(
            model, n, shape=shape, steps=s, seed=seed, device=dev,
            batch_size=preset.sample_batch_size,
        )  # fmt: skip
        key = str(s)
        out["nfe"][key] = nfe
        out["w2"][key] = wasserstein2(x[:m_w2], ref_w2)
        out["sliced_w2"][key] = sliced_wasserstein2(x[:m_sliced], ref_sliced, seed=seed)
        if fid_fn is not None:
            out["frechet" if preset.dataset == "digits" else "fid"][key] = fid_fn(x)
    out["sample_seconds"] = time.perf_counter() - t0
    floor = {
        "w2": wasserstein2(real[:m_w2], ref_w2),
        "sliced_w2": sliced_wasserstein2(real[:m_sliced], ref_sliced, seed=seed),
    }
    if fid_fn is not None and preset.dataset == "digits":
        floor["frechet"] = fid_fn(real)  # n real train images against the test split
    elif fid_fn is not None:
        floor["fid"] = fid_fn(test)  # the test split against the train statistics
    out["noise_floor"] = floor
    return out


def _cifar_fid(
    weights: str | Path | None,
    stats: str | Path | None,
    data_root: str | Path | None,
    cache: str | Path | None,
    device: torch.device,
    out: dict[str, Any],
) -> Any:
    import os

    from bezkit.metrics.frechet import FID_WEIGHTS_ENV, cifar10_fid

    if weights is None and not os.environ.get(FID_WEIGHTS_ENV):
        out["fid_note"] = (f"FID skipped: no Inception weights (pass --fid-weights or set "
                           f"${FID_WEIGHTS_ENV})")  # fmt: skip
        return None
    out["fid"] = {}

    def fid(x: Tensor) -> float:
        return cifar10_fid(
            x, weights, reference_stats=stats, cifar_root=data_root, cache=cache, device=device
        )

    return fid


def image_grid(images: Tensor, nrow: int = 8, *, pad: int = 1) -> np.ndarray:
    """Images ``(n, C, H, W)`` in [-1, 1] tiled into one ``(rows, cols)`` (grey) or
    ``(rows, cols, 3)`` array in [0, 1] for ``imshow``; ``pad`` pixels of white between tiles."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    grid = np.ones((c, nrows * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)
