"""``bezkit train``: train a 2D rectified flow (linear path) and save it as a checkpoint."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bezkit.cli.common import (
    COMMAND_HELP,
    CLIError,
    given,
    hold_until_done,
)
from bezkit.cli.inputs import data_ref, data_sha256, load_sampler
from bezkit.cli.outputs import check_output
from bezkit.cli.train_options import DEFAULT_OUT, DESCRIPTION, add_train_options
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
from bezkit.training.memory import MemoryEstimateError, check_fits_in_memory, estimate_step_bytes
from bezkit.training.resume import ResumeError, interrupted_at, resume_run

__all__ = ["CHANGEABLE_ON_RESUME", "LATER_SETTINGS", "RUN_SETTINGS", "add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit train`` and its options to ``subparsers``."""
    p = subparsers.add_parser("train", help=COMMAND_HELP["train"], description=DESCRIPTION)
    add_train_options(p)
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


def _check_device(name: str) -> torch.device:
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise CLIError("--device mps requested but Apple's MPS backend is not available")
    try:
        return choose_device(name)
    except RuntimeError as err:
        raise CLIError(str(err)) from None


def _claim_output(out: str, *, overwrite: bool, resume: str | None) -> tuple[Path, Any]:
    """Check ``--out`` before any work, lock it for this run and refuse to replace a checkpoint
    (saying ``--resume`` when it holds an interrupted run). Returns ``(stem, lock)``."""
    st_path, js_path = checkpoint_files(out)
    for path in (st_path, js_path):
        check_output(path, option="--out", folder=False)
    stem = st_path.with_suffix("")
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        lock = hold_until_done(RunLock(stem, folder=False, what="'bezkit train'").acquire())
    except RunLocked as err:
        raise CLIError(f"--out: {err}") from None
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
    return stem, lock


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
    try:
        check_fits_in_memory(
            estimate_step_bytes(
                batch_size=settings["batch_size"],
                hidden=settings["hidden"],
                depth=settings["depth"],
                coupling=settings["coupling"],
            ),
            what=f"--batch-size {settings['batch_size']} with --coupling {settings['coupling']}",
        )
    except MemoryEstimateError as err:
        raise CLIError(str(err)) from None

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
    if args.resume is not None:
        model = build_model(load_checkpoint(args.resume, verify=False).metadata["model"])
    else:
        shape = MODEL_SHAPES[settings["model_shape"]]
        model = new_mlp(
            2,
            hidden=settings["hidden"],
            depth=settings["depth"],
            seed=settings["seed"],
            activation=str(shape["activation"]),
            time_input=str(shape["time_input"]),
        )
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
        raise CLIError(f"training diverged: {err}", code=1) from None

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
