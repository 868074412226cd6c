"""``bezkit images train | reflow | distill | evaluate``: the methods on digits (CPU) or CIFAR-10
(GPUs, torchrun); the stages are those of ``bezkit.experiments.images``. The options are in
:mod:`bezkit.cli.images_options` (torch-free: ``--help`` and usage errors start fast)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bezkit.cli.common import CLIError, check_finite
from bezkit.cli.images_options import add_parser, no_stage
from bezkit.cli.outputs import check_output, refuse_input_as_output, write_json_atomic
from bezkit.data.cifar10 import CIFAR10_ARCHIVE, read_checksums
from bezkit.experiments.images import (
    data_shape,
    evaluate_images,
    generate_pairs,
    get_preset,
    image_grid,
    sample_images,
    train_from_pairs,
    train_rectified_flow,
)
from bezkit.experiments.images.outputs import check_stage_output
from bezkit.files.run_dir import OutputPathError, RunLocked
from bezkit.methods.bezier_distillation import BezierDistillConfig
from bezkit.training.checkpoint import CheckpointError, checkpoint_files
from bezkit.training.distributed import cleanup, init_distributed
from bezkit.training.model_io import load_model

__all__ = [
    "add_parser",
    "run",
    "run_distill",
    "run_evaluate",
    "run_reflow",
    "run_train",
]


# -- helpers ---------------------------------------------------------------------------------------


class _Session:
    """The process group under torchrun, CPU threads, and who prints."""

    def __init__(self, args: argparse.Namespace, preset: Any) -> None:
        self.ctx = None
        if _world_size() > 1:
            try:
                self.ctx = init_distributed(device=args.device or preset.device)
            except ValueError as err:  # no CUDA, bad torchrun variables
                raise CLIError(str(err)) from None
        if self.ctx is not None:
            self.device: Any = self.ctx.device
        else:
            self.device = args.device or preset.device
        threads = args.threads or preset.cpu_threads
        if threads:
            torch.set_num_threads(threads)
        self.main = self.ctx is None or self.ctx.is_main_process
        self.progress = not args.quiet and self.main

    def say(self, text: str) -> None:
        if self.progress:
            print(text)

    def close(self) -> None:
        if self.ctx is not None:
            cleanup()


def _world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _stage_changes(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    """The training options typed for ``stage`` (``flow``, ``reflow``, ``distill``) as preset
    changes: the stage's optimisation, and the run-wide checkpointing, seed, compile and AMP."""
    fields = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_steps": args.warmup_steps,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    if args.ema_decay is not None:  # < 1: bezkit.cli.images_options.check_stage_options
        fields["ema_decay"] = args.ema_decay or None
    changes: dict[str, Any] = {stage: fields}
    if args.checkpoint_every is not None:
        changes["checkpoint_every"] = args.checkpoint_every
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.compile:
        changes["compile"] = True
    if args.no_amp:
        changes["amp"] = False
    return changes


def _pair_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The pair options a stage's command has and the user typed, as preset changes."""
    names = ("n_pairs", "teacher_steps", "shard_size", "segments", "branches")
    given = {name: getattr(args, name, None) for name in names}
    return {name: value for name, value in given.items() if value is not None}


def _preset(args: argparse.Namespace, stage: str | None, *, name: str | None = None) -> Any:
    """Preset ``name`` (default ``--preset``) with the command line's changes for ``stage``
    (``None``: evaluation, no changes); CIFAR-10 needs ``--data-root``."""
    changes = {} if stage is None else _stage_changes(args, stage)
    changes.update(_pair_changes(args))
    if args.data_checksums is not None:
        try:
            changes["data_checksums"] = read_checksums(args.data_checksums)
        except ValueError as err:
            raise CLIError(f"--data-checksums: {err}") from None
    try:
        preset = get_preset(name or args.preset, **changes)
    except (TypeError, ValueError) as err:
        raise CLIError(str(err)) from None
    if preset.dataset == "cifar10" and args.data_root is None:
        raise CLIError(
            f"--preset {preset.name} needs --data-root (the folder with cifar-10-batches-py/ "
            f"or {CIFAR10_ARCHIVE})"
        )
    return preset


def _friendly(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a stage; bad input (missing files, clashing folders, wrong settings) -> CLIError."""
    try:
        return fn(*args, **kwargs)
    except (FileNotFoundError, FileExistsError, CheckpointError, ValueError) as err:
        raise CLIError(str(err)) from None
    except (OutputPathError, RunLocked) as err:  # unwritable output, another job on it
        raise CLIError(str(err)) from None
    except FloatingPointError as err:
        raise CLIError(f"training diverged: {err}", code=1) from None


def _summary(session: _Session, result: Any) -> None:
    meta = result.metadata
    resumed = "" if result.resumed_from is None else f", resumed at step {result.resumed_from}"
    loss = meta.get("final_loss")
    session.say(
        f"saved {result.path}: {meta['images']['stage']}, step {meta['step']}, loss "
        f"{loss:.4f}{resumed}, {result.train_seconds:.1f} s on {session.device}"
    )


def _stage_command(
    args: argparse.Namespace, stage: str, body: Callable[[_Session, Any], Any]
) -> int:
    """The pattern of every training command: the preset with the command line's changes, the
    session (process group, threads), the stage's ``body(session, preset)``, its summary line
    (when it returns a ``StageResult``), and the session closed whatever happens. Unwritable
    outputs (``--out``, ``--pairs``) are errors before any work."""
    preset = _preset(args, stage)
    if stage != "flow" and args.out is None and not args.pairs_only:
        raise CLIError("--out is required (unless --pairs-only)")
    if getattr(args, "pairs", None) is not None:
        check_output(args.pairs, option="--pairs", folder=True)
    if args.out is not None:
        try:
            check_stage_output(args.out)
        except OutputPathError as err:
            raise CLIError(f"--out: {err}") from None
    session = _Session(args, preset)
    try:
        result = body(session, preset)
        if result is not None:
            _summary(session, result)
    finally:
        session.close()
    return 0


def _generate(session: _Session, args: argparse.Namespace, preset: Any, teacher: str,
              direction: str, segments: int | None) -> None:  # fmt: skip
    reports = _friendly(
        generate_pairs, teacher, preset, args.pairs, direction=direction, segments=segments,
        data_root=args.data_root, device=session.device, progress=session.progress,
    )  # fmt: skip
    made = sum(len(r.generated) for r in reports)
    kept = sum(len(r.skipped) for r in reports)
    seconds = sum(r.wall_seconds for r in reports)
    session.say(
        f"pairs in {args.pairs}: {reports[0].n_pairs} {direction} pairs, "
        f"{len(reports)} segment(s) x {reports[0].n_shards} shard(s); {made} shard(s) generated, "
        f"{kept} verified and kept, {seconds:.1f} s"
    )


# -- the stages ------------------------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    """``bezkit images train``: the 1-RF."""

    def body(session: _Session, preset: Any) -> Any:
        return _friendly(
            train_rectified_flow, preset, args.out, data_root=args.data_root,
            device=session.device, overwrite=args.overwrite, progress=session.progress,
        )  # fmt: skip

    return _stage_command(args, "flow", body)


def run_reflow(args: argparse.Namespace) -> int:
    """``bezkit images reflow``: the teacher's forward pairs, then the (k+1)-RF."""

    def body(session: _Session, preset: Any) -> Any:
        _generate(session, args, preset, args.teacher, "forward", args.segments)
        if args.pairs_only:
            return None
        return _friendly(
            train_from_pairs, "reflow", args.teacher, args.pairs, preset, args.out,
            init=args.init, device=session.device, overwrite=args.overwrite,
            progress=session.progress,
        )  # fmt: skip

    return _stage_command(args, "reflow", body)


def _bezier_options(args: argparse.Namespace) -> Any:
    bezier = BezierDistillConfig(
        order=args.order,
        placement=args.placement,
        guide_state=args.guide_state,
        endpoint=args.endpoint,
        target=args.target_kind,
        distill_steps=args.distill_steps,
    )
    try:
        bezier.validate(len(args.teacher))
    except ValueError as err:
        raise CLIError(str(err)) from None
    return bezier


def run_distill(args: argparse.Namespace) -> int:
    """``bezkit images distill``: the teacher's pairs, then a distill / Bezier / B-DENSE student
    (one ``--teacher`` but for Bezier: :func:`bezkit.cli.images_options.check_distill_options`)."""
    bezier = _bezier_options(args) if args.method == "bezier" else None
    direction = "reverse" if bezier is not None and args.endpoint == "data" else "forward"

    def body(session: _Session, preset: Any) -> Any:
        segments = args.segments
        if args.method == "bdense" and segments is None and preset.segments % preset.branches:
            segments = preset.branches
        _generate(session, args, preset, args.teacher[0], direction,
                  segments if direction == "forward" else 1)  # fmt: skip
        if args.pairs_only:
            return None
        return _friendly(
            train_from_pairs, args.method, args.teacher, args.pairs, preset, args.out,
            init=args.init, distill_steps=args.distill_steps or 1, bezier=bezier,
            restarts=args.restarts, device=session.device, overwrite=args.overwrite,
            progress=session.progress,
        )  # fmt: skip

    return _stage_command(args, "distill", body)


def _checkpoint_and_preset(
    args: argparse.Namespace, ckpt: str
) -> tuple[torch.nn.Module, dict[str, Any], Any]:
    """A stage output's model and metadata, and the preset to evaluate it with (``--preset``,
    else the one it was trained with)."""
    try:
        model, meta = load_model(ckpt)
    except (FileNotFoundError, CheckpointError) as err:
        raise CLIError(str(err)) from None
    name = args.preset or (meta.get("images") or {}).get("preset")
    if name is None:
        raise CLIError(f"{ckpt} was not written by 'bezkit images'; pass --preset")
    return model, meta, _preset(args, None, name=name)


def run_evaluate(args: argparse.Namespace) -> int:
    """``bezkit images evaluate``: check the outputs, then evaluate every checkpoint (one JSON
    list)."""
    inputs = [f for c in args.checkpoints for f in (c, *checkpoint_files(c))]
    inputs += [args.fid_weights, args.fid_stats]
    if args.out is not None:  # unwritable outputs, or inputs: errors before any sampling
        check_output(args.out, option="--out", folder=False)
        refuse_input_as_output(args.out, inputs, option="--out")
    if args.grid is not None:
        for grid in _grid_paths(Path(args.grid), len(args.checkpoints)):
            check_output(grid, option="--grid", folder=False)
            refuse_input_as_output(grid, [*inputs, args.out], option="--grid")
    reports = []
    session = None
    for ckpt in args.checkpoints:
        model, meta, preset = _checkpoint_and_preset(args, ckpt)
        if session is None:
            session = _Session(args, preset)
        report = _friendly(
            evaluate_images, model, preset, steps=args.steps, n=args.n, seed=args.seed,
            data_root=args.data_root, device=session.device, fid_weights=args.fid_weights,
            fid_stats=args.fid_stats, frechet=not args.no_frechet,
        )  # fmt: skip
        images = meta.get("images") or {}
        report = {
            "checkpoint": str(ckpt),
            "stage": images.get("stage"),
            "k": images.get("k"),
            "preset": preset.name,
            "parameters": meta.get("parameters"),
            **report,
        }
        try:
            check_finite(report)
        except ValueError as err:
            raise CLIError(f"evaluation produced a non-finite number: {err}", code=1) from None
        reports.append(report)
        if args.grid is not None:
            _save_grid(model, preset, args, Path(args.grid), len(args.checkpoints), len(reports))
    out: Any = reports[0] if len(reports) == 1 else reports
    if args.out is not None:
        write_json_atomic(args.out, out)
    print(json.dumps(out, indent=2, allow_nan=False))
    if session is not None:
        session.close()
    return 0


def _grid_paths(path: Path, total: int) -> list[Path]:
    """The PNG files of ``--grid PATH`` for ``total`` checkpoints: PATH itself for one,
    ``PATH-1.png``, ``PATH-2.png``, ... for several."""
    if total == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, total + 1)]


def _save_grid(model: Any, preset: Any, args: argparse.Namespace, path: Path, total: int,
               index: int) -> None:  # fmt: skip
    """One PNG per checkpoint (``grid-2.png`` for the second of several): a row per step count."""
    import matplotlib  # lazy: only --grid draws; Agg is chosen before pyplot is imported

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # lazy: after the backend is chosen

    path = _grid_paths(path, total)[index - 1]
    steps = sorted(set(args.steps or preset.eval_steps))
    fig, axes = plt.subplots(len(steps), 1, figsize=(6, 1.1 * len(steps) + 0.3), squeeze=False)
    for ax, s in zip(axes[:, 0], steps, strict=True):
        x, _ = sample_images(model, 16, shape=data_shape(preset), steps=s, seed=args.seed)
        ax.imshow(image_grid(x, 16), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"{s} step(s)", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"saved {path}", file=sys.stderr)


run = no_stage
