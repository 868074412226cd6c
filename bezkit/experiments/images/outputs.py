"""What every image training stage shares: its ``TrainConfig`` from the preset, its output files,
resuming an interrupted run, and the final weights.

A stage writing ``OUT`` keeps the resumable training state (weights, EMA, optimizer, step) in
``OUT.train.safetensors`` + ``.json`` and, when done, the final weights (the EMA weights when EMA is
on) in ``OUT.safetensors`` + ``OUT.json``, loadable by ``bezkit.training.model_io.load_model``.
Running a stage again resumes from the state when its settings match (else a clear error), and
refuses to overwrite finished weights unless told to.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bezkit.couplings.pair_shards import teacher_fingerprint
from bezkit.experiments.images.presets import ImagePreset, StageConfig, data_shape
from bezkit.files.run_dir import RunLock, check_output_file
from bezkit.methods.result import RecipeResult
from bezkit.training.checkpoint import load_checkpoint
from bezkit.training.config import TrainConfig
from bezkit.training.distributed import barrier, get_world_size, is_main_process
from bezkit.training.model_io import checkpoint_files, load_model, save_model
from bezkit.training.resume import check_processes, processes_record

__all__ = [
    "Fit",
    "StageResult",
    "as_teacher",
    "check_stage_output",
    "claim",
    "load_stage_model",
    "output_stem",
    "run_stage",
    "stage_config",
    "stage_meta",
    "state_stem",
]

# the TrainConfig fields that must match for an interrupted run to be resumed
RUN_FIELDS = ("steps", "batch_size", "lr", "warmup_steps", "ema_decay", "seed", "weight_decay",
              "schedule", "grad_clip")  # fmt: skip

# a method's recipe as fit(resume_from, checkpoint_metadata) -> RecipeResult
Fit = Callable[[Path | None, dict[str, Any]], RecipeResult]


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


def state_stem(out: Path) -> Path:
    """Where the resumable training state of a stage writing ``out`` lives: ``out.train``."""
    return out.with_name(out.name + ".train")


def output_stem(out: str | Path) -> Path:
    """``out`` without a ``.safetensors``/``.json`` suffix."""
    st, _ = checkpoint_files(out)
    return st.with_name(st.name[: -len(".safetensors")])


def check_stage_output(out: str | Path) -> Path:
    """Check, before any work, that the stage's files ``OUT.safetensors`` (and beside it the
    ``.json`` and the ``OUT.train.*`` state) can be written; returns ``OUT`` (no suffix).
    Raises ``bezkit.files.run_dir.OutputPathError`` naming the path and the reason."""
    stem = output_stem(out)
    for path in (*checkpoint_files(stem), *checkpoint_files(state_stem(stem))):
        check_output_file(path)
    return stem


@contextlib.contextmanager
def claim(path: Path, *, folder: bool, what: str) -> Iterator[None]:
    """Hold ``RunLock(path)`` while the block runs, on the main process only (under torchrun the
    ranks of one job share its outputs); a second job on the same output gets ``RunLocked``."""
    if not is_main_process():
        yield
        return
    with RunLock(path, folder=folder, what=what):
        yield


def load_stage_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``load_model`` for stage outputs (EMA weights when present), in eval mode on the CPU."""
    return load_model(path)


def teacher_info(teacher: nn.Module, path: str | Path | None, meta: dict[str, Any]) -> dict:
    """The bookkeeping of a teacher in a stage's metadata: path, weights fingerprint, k, stage."""
    info = meta.get("images", {}) if meta else {}
    return {
        "path": None if path is None else str(Path(path).resolve()),
        "fingerprint": teacher_fingerprint(teacher),
        "k": int(info.get("k", 1)),
        "stage": info.get("stage"),
    }


def as_teacher(teacher: str | Path | nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """A teacher module (eval mode) and its bookkeeping, from a checkpoint path or a module."""
    if isinstance(teacher, nn.Module):
        return teacher.eval(), teacher_info(teacher, None, {})
    model, meta = load_model(teacher)
    return model, teacher_info(model, teacher, meta)


def stage_config(
    preset: ImagePreset,
    stage: StageConfig,
    *,
    seed: int,
    device: str | torch.device | None,
    state: Path,
    progress: bool,
    desc: str,
) -> TrainConfig:
    """The ``TrainConfig`` of a stage: its optimisation, the preset's machine settings, and a
    resumable state at ``state`` every ``preset.checkpoint_every`` steps (and at the end)."""
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


def stage_meta(preset: ImagePreset, stage: str, k: int, **extra: Any) -> dict[str, Any]:
    """The ``images`` metadata of a stage's outputs."""
    return {
        "preset": preset.name,
        "dataset": preset.dataset,
        "data_shape": list(data_shape(preset)),
        "stage": stage,
        "k": k,
        **extra,
    }


def _prepare_output(out: Path, overwrite: bool) -> Path | None:
    """Check ``out`` is free (or clear it with ``overwrite``); return the training state to
    resume from, if an interrupted run left one."""
    final = checkpoint_files(out)
    state = checkpoint_files(state_stem(out))
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
    if state[0].exists():  # the .json copy is optional; the safetensors file is the state
        return state_stem(out)
    return None


def _check_resumable(state: Path, config: TrainConfig, spec: dict, meta_now: dict) -> int:
    """The step of an interrupted run in ``state``; an error if it was another run."""
    meta = load_checkpoint(state).metadata
    check_processes(state, meta.get("processes"), _processes(config))
    old_cfg, new_cfg = meta.get("train_config", {}), config.to_dict()
    differ = [k for k in RUN_FIELDS if old_cfg.get(k) != new_cfg.get(k)]
    if meta.get("model") != spec:
        differ.append("model")
    if "images" not in meta:  # e.g. killed before run_stage added it: nothing to check against
        raise ValueError(
            f"{state} holds an interrupted run with no 'images' metadata (teacher, pairs, "
            f"method), so it cannot be checked to be this stage; pass overwrite=True "
            f"(--overwrite) to start again"
        )
    if meta["images"] != json.loads(json.dumps(meta_now)):
        differ.append("stage (teacher, pairs or method)")
    if differ:
        raise ValueError(
            f"{state} holds an interrupted run with different settings ({', '.join(differ)}); "
            f"pass overwrite=True (--overwrite) to start again"
        )
    return int(meta["step"])


def run_stage(
    out: str | Path,
    fit: Fit,
    spec: Callable[[], dict[str, Any]],
    config: TrainConfig,
    meta_now: dict[str, Any],
    *,
    overwrite: bool,
) -> StageResult:
    """Train (or resume) with ``fit(resume_from, checkpoint_metadata)`` (a recipe of
    ``bezkit.methods``; every training state it writes carries ``{"images": meta_now}``), then write
    the final weights; returns the finished stage. ``spec()`` is the student's ``model_spec``
    (checked against an interrupted run's before it is resumed). The output is locked for the
    whole stage: a second process writing the same ``out`` is refused."""
    out = check_stage_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with claim(out, folder=False, what="training stage"):
        resume = _prepare_output(out, overwrite)
        resumed_from = None
        if resume is not None:
            resumed_from = _check_resumable(resume, config, spec(), meta_now)
        # every state the run writes, periodic or final, carries the stage's metadata, so a run
        # killed mid-training can be checked and resumed; a run trained to the end but not yet
        # exported trains no step
        result = fit(resume, {"images": meta_now, "processes": _processes(config)})
        return _export(out, result, config, meta_now, resumed_from)


def _processes(config: TrainConfig) -> dict[str, int]:
    """This run's processes: the world size (torchrun) and the per-process and global batch."""
    return processes_record(get_world_size(), config.batch_size)


def _export(
    out: Path,
    result: RecipeResult,
    config: TrainConfig,
    meta_now: dict[str, Any],
    resumed_from: int | None,
) -> StageResult:
    """Write the trained model (``result.model``) to ``out`` with the stage's metadata (on the main
    process; every process waits), and return the finished stage."""
    final = result.model
    meta = {
        "images": meta_now,
        "processes": _processes(config),
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
