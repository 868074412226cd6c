"""``bezkit train``: train a 2D rectified flow (linear path) and save it as a checkpoint."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bezkit.cli.common import (
    CLIError,
    given,
    hold_until_done,
)
from bezkit.cli.inputs import data_ref, data_sha256, load_sampler
from bezkit.cli.outputs import check_output
from bezkit.cli.train_options import DEFAULT_OUT
from bezkit.cli.train_options import add_parser as add_parser_without_torch
from bezkit.couplings import Coupling, FullOTCoupling, IndependentCoupling, MinibatchOTCoupling
from bezkit.data import Sampler
from bezkit.files.run_dir import RunLock, RunLocked
from bezkit.methods import new_mlp
from bezkit.models.factory import build_model
from bezkit.models.mlp import MODEL_SHAPES
from bezkit.paths import LinearPath, make_time_sampler
from bezkit.training import (
    CheckpointError,
    FlowMatchingLoss,
    TrainConfig,
    choose_device,
    load_checkpoint,
    train,
)
from bezkit.training.checkpoint import checkpoint_files
from bezkit.training.memory import (
    MemoryEstimateError,
    check_fits_in_memory,
    largest_part,
    step_bytes_by_part,
)
from bezkit.training.resume import ResumeError, interrupted_at, resume_run

__all__ = ["CHANGEABLE_ON_RESUME", "LATER_SETTINGS", "RUN_SETTINGS", "add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit train`` and its options to ``subparsers``."""
    p = add_parser_without_torch(subparsers)
    p.set_defaults(func=run)
    return p


# -- settings ------------------------------------------------------------------------------------

# every setting that defines a run; recorded in each checkpoint under "run"
RUN_SETTINGS: tuple[str, ...] = (
    "source",
    "target",
    "coupling",
    "sinkhorn_reg",
    "full_ot_points",
    "target_kind",
    "time_sampling",
    "hidden",
    "depth",
    "steps",
    "batch_size",
    "lr",
    "ema_decay",
    "seed",
    "checkpoint_every",
    "sigma",
    "model_shape",
    "lr_schedule",
    "weight_decay",
    "grad_clip",
    "val_every",
    "val_points",
)
# settings added after the first release: a checkpoint without them ran with these values
LATER_SETTINGS: dict[str, Any] = {
    "sigma": 0.0,
    "model_shape": "bezkit",
    "lr_schedule": "cosine",
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "val_every": 0,
    "val_points": 1000,
}
# settings a resume may change: they do not change the weights a step produces
CHANGEABLE_ON_RESUME: tuple[str, ...] = ("steps", "checkpoint_every")
VALIDATION_SEED_OFFSET = 7_919  # the validation pairs' seed: --seed + this


def _warn(message: str) -> None:
    print(f"bezkit train: warning: {message}", file=sys.stderr)


def _settings(args: argparse.Namespace, *, only_given: bool) -> dict[str, Any]:
    """The run settings from the command line (data files as absolute paths)."""
    out = {}
    for name in RUN_SETTINGS:
        if only_given and not given(args, name):
            continue
        value = getattr(args, name)
        out[name] = data_ref(value) if name in ("source", "target") else value
    return out


def _resume_settings(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """The settings of the run in ``--resume`` merged with the options given
    (:func:`bezkit.training.resume.resume_run`); returns ``(settings, step reached)``. Anything
    that does not fit is a :class:`CLIError`."""
    try:
        resumed = resume_run(
            args.resume,
            _settings(args, only_given=True),
            required=[name for name in RUN_SETTINGS if name not in LATER_SETTINGS],
            changeable=CHANGEABLE_ON_RESUME,
            fingerprint=data_sha256,
        )
    except (FileNotFoundError, CheckpointError, ResumeError) as err:
        raise CLIError(f"--resume: {err}") from None
    return {**LATER_SETTINGS, **resumed.settings}, resumed.step


def _coupling(settings: dict[str, Any], source: Sampler, target: Sampler) -> Coupling:
    name = settings["coupling"]
    if name == "independent":
        return IndependentCoupling(source, target)
    if name == "minibatch-ot":
        return MinibatchOTCoupling(source, target, method="exact")
    if name == "sinkhorn":
        return MinibatchOTCoupling(source, target, method="sinkhorn", reg=settings["sinkhorn_reg"])
    if settings["full_ot_points"] < 2:
        raise CLIError(f"--full-ot-points must be >= 2, got {settings['full_ot_points']}")
    return FullOTCoupling(
        source, target, n_points=settings["full_ot_points"], seed=settings["seed"]
    )


def _run_metadata(settings: dict[str, Any]) -> dict[str, Any]:
    """What every checkpoint of the run carries beside the training state."""
    name = settings["coupling"]
    coupling: dict[str, Any] = {"name": name}
    if name == "sinkhorn":
        coupling["reg"] = settings["sinkhorn_reg"]
    if name == "full-ot":
        coupling.update(n_points=settings["full_ot_points"], seed=settings["seed"])
    return {
        "run": settings,
        "data": {
            key: settings[key]
            for key in ("source", "target", "source_sha256", "target_sha256")
            if settings[key] is not None  # a named dataset has no file to hash
        },
        "coupling": coupling,
        "objective": {
            "path": "linear",
            "target_kind": settings["target_kind"],
            "time_sampling": settings["time_sampling"],
            **({"sigma": settings["sigma"]} if settings["sigma"] else {}),
        },
        "command": "bezkit train",
    }


def _check_memory(settings: dict[str, Any]) -> None:
    """Refuse a run whose estimated memory exceeds what the machine has, naming the option that
    dominates the estimate (the batch, the model's width, or the full-OT problem)."""
    parts = step_bytes_by_part(
        batch_size=settings["batch_size"],
        hidden=settings["hidden"],
        depth=settings["depth"],
        coupling=settings["coupling"],
        full_ot_points=settings["full_ot_points"],
    )
    big = largest_part(parts)
    value = {
        "--batch-size": "batch_size",
        "--hidden": "hidden",
        "--full-ot-points": "full_ot_points",
    }
    what = f"{big} {settings[value[big]]}"
    if big == "--batch-size":
        what += f" with --coupling {settings['coupling']}"
    if big == "--hidden":
        what += f" and --depth {settings['depth']}"
    try:
        check_fits_in_memory(sum(parts.values()), what=what, advice=f"use a smaller {big}")
    except MemoryEstimateError as err:
        raise CLIError(str(err)) from None


def _scale_hint(source: Sampler, target: Sampler) -> str:
    """When a point file's coordinates are far from unit scale, the likely cause of a diverged
    run, say so (the MLP and the default lr expect coordinates of order 1)."""
    hints = []
    for role, sampler in (("source", source), ("target", target)):
        points = getattr(sampler, "points", None)
        if points is None or not len(points):
            continue
        scale = float(points.double().abs().max())
        if scale > 1e3 or 0 < scale < 1e-3:
            hints.append(f"--{role} {getattr(sampler, 'name', role)} has |x| up to {scale:.3g}")
    if not hints:
        return ""
    return (
        "; more likely the data scale is the cause: "
        + ", ".join(hints)
        + " (coordinates of order 1 are expected): standardise the data (subtract the mean, "
        "divide by the standard deviation) before training"
    )


def _check_device(name: str) -> torch.device:
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise CLIError("--device mps requested but Apple's MPS backend is not available")
    try:
        return choose_device(name)
    except RuntimeError as err:
        raise CLIError(str(err)) from None


def _refuse_existing(
    st_path: Path, js_path: Path, stem: Path, *, overwrite: bool, resume: str | None
) -> None:
    """Refuse to replace a checkpoint (saying ``--resume`` when it holds an interrupted run)."""
    in_place = resume is not None and checkpoint_files(resume)[0].resolve() == st_path.resolve()
    if not (overwrite or in_place) and (st_path.exists() or js_path.exists()):
        existing = st_path if st_path.exists() else js_path
        stopped = interrupted_at(stem)
        if stopped is not None:
            raise CLIError(
                f"{existing} holds an interrupted run (step {stopped[0]} of {stopped[1]}): "
                f"continue it with --resume {stem}; --overwrite would throw that progress away"
            )
        raise CLIError(
            f"checkpoint {existing} already exists; pass --overwrite to replace it "
            "or choose another --out"
        )


def _check_checkpoint_prefix(out: str) -> None:
    """``--out`` names a checkpoint prefix (``flow`` -> ``flow.safetensors``, ``flow.json``):
    not empty, not a folder such as ``/`` or ``.``, not a special file such as ``/dev/full``."""
    if not out.strip():
        raise CLIError("--out is empty; give a checkpoint path such as --out flow")
    path = Path(out)
    if path.name in ("", ".", "..") or out.endswith(("/", os.sep)):
        raise CLIError(
            f"--out {out} names a folder; give a checkpoint path such as --out {path / 'flow'}"
        )
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise CLIError(
            f"--out {out} is a device, FIFO or socket; give a checkpoint path in a folder of "
            "your own (the checkpoint is written as PATH.safetensors and PATH.json)"
        )


def _claim_output(out: str, *, overwrite: bool, resume: str | None) -> tuple[Path, Any]:
    """Check ``--out`` before any work, lock it for this run and refuse to replace a checkpoint
    (saying ``--resume`` when it holds an interrupted run). Returns ``(stem, lock)``.

    The lock is taken on the files that will be written: through a symbolic link
    (``lnk.safetensors -> c1.safetensors``) that is the link's target, ``c1.lock``, so a link
    cannot bypass the lock of the run writing ``c1``. A refused ``--out`` creates nothing (no
    folder, no lock file)."""
    _check_checkpoint_prefix(out)
    st_path, js_path = checkpoint_files(out)
    written = [check_output(path, option="--out", folder=False) for path in (st_path, js_path)]
    stem = st_path.with_suffix("")
    _refuse_existing(st_path, js_path, stem, overwrite=overwrite, resume=resume)
    # one lock per distinct checkpoint prefix that is written (the links' targets, resolved)
    prefixes = {(p.parent.resolve() / p.name).with_suffix("") for p in written} | {
        stem.parent.resolve() / stem.name
    }
    locks = []
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        for prefix in sorted(prefixes):
            locks.append(
                hold_until_done(RunLock(prefix, folder=False, what="'bezkit train'").acquire())
            )
    except RunLocked as err:
        raise CLIError(f"--out: {err}") from None
    except OSError as err:
        raise CLIError(f"--out: cannot create {stem.parent}: {err.strerror or err}") from None
    # again under the lock: another process may have written the checkpoint meanwhile
    _refuse_existing(st_path, js_path, stem, overwrite=overwrite, resume=resume)
    return stem, locks


def _apply_model_shape(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """A named shape fixes the width and depth it names (torchcfm: 64 x 3); giving --hidden or
    --depth with it is an error rather than an option silently ignored."""
    fixed = MODEL_SHAPES[settings["model_shape"]]
    for name in ("hidden", "depth"):
        if name in fixed:
            if given(args, name) and settings[name] != fixed[name]:
                raise CLIError(
                    f"--model-shape {settings['model_shape']} has --{name} {fixed[name]}; "
                    f"leave --{name} out (got {settings[name]})"
                )
            settings[name] = fixed[name]


def _validation(
    settings: dict[str, Any], coupling: Coupling, loss: FlowMatchingLoss
) -> Callable[[nn.Module], float] | None:
    """With --val-every: the loss on --val-points pairs drawn once from the coupling (seed
    --seed + VALIDATION_SEED_OFFSET), its times and noise drawn the same way every time."""
    if not settings["val_every"]:
        return None
    seed = settings["seed"] + VALIDATION_SEED_OFFSET
    pairs = coupling.sample(settings["val_points"], torch.Generator().manual_seed(seed))

    def validation(model: nn.Module) -> float:
        device = next(model.parameters()).device
        return float(loss(model, pairs.to(device), torch.Generator().manual_seed(seed + 1)))

    return validation


# -- the command ---------------------------------------------------------------------------------


def _refuse_torchrun() -> None:
    """The 2D trainer is one process: under torchrun (``WORLD_SIZE`` > 1) every rank would train
    the same run and fight over ``--out``, so refuse before any work."""
    world = os.environ.get("WORLD_SIZE", "1")
    if world.strip() not in ("", "0", "1"):
        raise CLIError(
            f"'bezkit train' (the 2D trainer) is single-process, but it was started by torchrun "
            f"(WORLD_SIZE={world}); run it as plain 'bezkit train'. Multi-process training is "
            f"'bezkit images' (see docs/IMAGES.md)"
        )


def _model(resume: str | None, settings: dict[str, Any]) -> nn.Module:
    """The network to train: the resumed run's, or a new MLP of the settings' shape."""
    if resume is not None:
        return build_model(load_checkpoint(resume, verify=False).metadata["model"])
    shape = MODEL_SHAPES[settings["model_shape"]]
    return new_mlp(
        2,
        hidden=settings["hidden"],
        depth=settings["depth"],
        seed=settings["seed"],
        activation=str(shape["activation"]),
        time_input=str(shape["time_input"]),
    )


def _report_interrupt(stem: Path) -> None:
    """After Ctrl-C: where the run stopped and how to continue it (on stderr)."""
    stopped = interrupted_at(stem)
    if stopped is None:
        print("bezkit train: interrupted before the first step ended", file=sys.stderr)
    else:
        print(
            f"bezkit train: interrupted at step {stopped[0]} of {stopped[1]}; saved "
            f"{stem}.safetensors; continue with: bezkit train --resume {shlex.quote(str(stem))}",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    """``bezkit train``: settle the run's settings (new, or from ``--resume``), train, save the
    checkpoint."""
    _refuse_torchrun()
    step = 0
    if args.resume is not None:
        settings, step = _resume_settings(args)
    else:
        settings = _settings(args, only_given=False)
        for role in ("source", "target"):
            settings[f"{role}_sha256"] = data_sha256(settings[role])
        _apply_model_shape(args, settings)
    if settings["sigma"] > 0 and settings["target_kind"] != "tangent":
        raise CLIError("--sigma > 0 needs --target-kind tangent (the noise would enter the target)")
    ema_decay = settings["ema_decay"] or None
    if ema_decay is not None and not ema_decay < 1.0:
        raise CLIError(f"--ema-decay must be < 1 (0 turns EMA off), got {settings['ema_decay']}")
    _check_memory(settings)

    out = args.out if args.out is not None else (args.resume or DEFAULT_OUT)
    stem, _lock = _claim_output(out, overwrite=args.overwrite, resume=args.resume)

    device = _check_device(args.device)
    source = load_sampler(settings["source"], "source")
    target = load_sampler(settings["target"], "target")
    steps = settings["steps"]
    if ema_decay is not None and ema_decay**steps > 0.05 and args.resume is None:
        _warn(
            f"with --ema-decay {ema_decay} and {steps} steps the EMA weights still hold "
            f"{100 * ema_decay**steps:.0f}% of the initial weights; train longer, lower "
            "--ema-decay, or evaluate with --weights model"
        )
    model = _model(args.resume, settings)
    try:
        config = TrainConfig(
            steps=steps,
            batch_size=settings["batch_size"],
            lr=settings["lr"],
            schedule=settings["lr_schedule"],
            weight_decay=settings["weight_decay"],
            grad_clip=settings["grad_clip"] or None,
            val_every=settings["val_every"],
            ema_decay=ema_decay,
            seed=settings["seed"],
            device=str(device),
            progress=not args.quiet,
            desc="bezkit train",
            checkpoint_path=str(stem),
            checkpoint_every=settings["checkpoint_every"] or steps,
            prefetch=2 if settings["coupling"] in ("minibatch-ot", "sinkhorn") else 0,
        )
    except ValueError as err:
        raise CLIError(str(err)) from None
    coupling = _coupling(settings, source, target)
    loss = FlowMatchingLoss(
        LinearPath(),
        target=settings["target_kind"],
        time_sampler=make_time_sampler(settings["time_sampling"]),
        sigma=settings["sigma"],
    )
    try:
        result = train(
            model,
            loss,
            coupling.sample,
            config,
            resume_from=args.resume,
            checkpoint_metadata=_run_metadata(settings),
            validation=_validation(settings, coupling, loss),
        )
    except FloatingPointError as err:
        raise CLIError(f"training diverged: {err}{_scale_hint(source, target)}", code=1) from None
    except KeyboardInterrupt:
        _report_interrupt(stem)
        return 130

    if not args.quiet:
        tail = result.losses[-50:]
        final = sum(tail) / len(tail) if tail else float("nan")
        print(
            f"saved {stem}.safetensors and {stem.name}.json: step {steps} (from {step}), loss "
            f"{final:.4f} (mean of the last {len(tail)} steps), {result.wall_seconds:.1f} s on "
            f"{device}"
        )
        if result.best_step is not None:
            print(
                f"lowest validation loss at step {result.best_step}: its weights are in the "
                f"checkpoint too (bezkit evaluate {stem} --weights best)"
            )
    return 0
