"""``bezkit train``: train a 2D rectified flow (linear path) and save it as a checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bezkit.cli.common import (
    CLIError,
    Given,
    check_output,
    data_ref,
    data_sha256,
    dataset,
    given,
    hold_until_done,
    load_sampler,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)

__all__ = ["CHANGEABLE_ON_RESUME", "COUPLINGS", "RUN_SETTINGS", "add_parser", "run"]

COUPLINGS: tuple[str, ...] = ("independent", "minibatch-ot", "sinkhorn", "full-ot")
TARGET_KINDS: tuple[str, ...] = ("tangent", "endpoint")
TIME_SAMPLINGS: tuple[str, ...] = ("uniform", "ushaped", "logitnormal")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
DEFAULT_OUT = "flow"

DESCRIPTION = """\
Train a velocity field v(x, t) that carries --source to --target along straight (linear) paths:
rectified flow / flow matching, METHODS.md sections 1-4.

  pairs (X0, X1) from --coupling      X_t = (1 - t) X0 + t X1,  t ~ --time-sampling
  loss  || v(X_t, t) - target ||^2     target: X1 - X0 (tangent) or (X1 - X_t)/(1 - t) (endpoint;
                                       the same on a linear path, up to the clipping of t near 1)

The path is always linear here: quadratic and cubic Bezier paths need guide points from a
teacher, which the experiment recipes (bezkit experiment) provide.

couplings:
  independent    X0 and X1 drawn independently (1-rectified flow, I-CFM)
  minibatch-ot   each batch paired by its exact OT permutation (OT-CFM)
  sinkhorn       pairs drawn from each batch's entropic OT plan (--sinkhorn-reg)
  full-ot        one exact OT problem on --full-ot-points pairs, solved once; batches are drawn
                 from those pairs (the straight-transport reference)

output: --out PATH writes PATH.safetensors (weights: model.*, ema.*, optimizer.*, and in its
header the metadata: model spec, train_config, the run's settings, data and their SHA-256,
coupling, objective, step, losses, a SHA-256 over all of it) and PATH.json, a copy of the
metadata. Every checkpoint (each --checkpoint-every and the last) is committed in one atomic
step, so a kill at any moment leaves the previous checkpoint or the new one. An existing
checkpoint is never replaced without --overwrite; PATH.lock keeps a second run off the same
--out. The output folder is checked for writing (and free space) before any training.

resuming: --resume CKPT continues the run saved in CKPT (weights, EMA, optimizer, step) up to
--steps. Without --steps it finishes the interrupted run, exactly as if it had not stopped; a
larger --steps extends it (the cosine learning-rate schedule is stretched to the new total). Every
setting of the run (data, coupling, objective, model size, batch size, lr, EMA decay, seed,
--checkpoint-every) comes from the checkpoint; giving one with a different value is an error
(--checkpoint-every may be changed), and so is a data file whose content changed. A checkpoint
that does not record its run is refused. Without --out the checkpoint is updated in place.

examples:
  bezkit train --out flow
  bezkit train --coupling minibatch-ot --target checkerboard --steps 5000 --out otcfm
  bezkit train --target my_points.csv --out mine --checkpoint-every 500
  bezkit train --resume mine --steps 10000
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from bezkit.data import TOY_DATASETS

    names = ", ".join(TOY_DATASETS)
    p = subparsers.add_parser(
        "train", help="train a 2D rectified flow and save a checkpoint", description=DESCRIPTION
    )
    data = p.add_argument_group("data and pairing")
    data.add_argument(
        "--source",
        type=dataset,
        default="8gaussians",
        action=Given,
        metavar="NAME|FILE",
        help=f"source distribution pi0 (t = 0): one of {names}, or a .npy/.csv "
        "file of (n, 2) points",
    )
    data.add_argument(
        "--target",
        type=dataset,
        default="moons",
        action=Given,
        metavar="NAME|FILE",
        help="target distribution pi1 (t = 1): a dataset name as for --source, or "
        "a .npy/.csv file of (n, 2) points",
    )
    data.add_argument(
        "--coupling",
        choices=COUPLINGS,
        default="independent",
        action=Given,
        help="how pairs (X0, X1) are drawn (see above)",
    )
    data.add_argument(
        "--sinkhorn-reg",
        type=positive_float,
        default=0.05,
        action=Given,
        metavar="EPS",
        help="entropic regularisation of --coupling sinkhorn, relative to the "
        "batch's mean squared distance",
    )
    data.add_argument(
        "--full-ot-points",
        type=positive_int,
        default=2048,
        action=Given,
        metavar="N",
        help="number of source and target points of --coupling full-ot (solved "
        "once at the start; seeded by --seed)",
    )
    obj = p.add_argument_group("objective and model")
    obj.add_argument(
        "--target-kind",
        choices=TARGET_KINDS,
        default="tangent",
        action=Given,
        help="what the network regresses: the path's tangent X1 - X0, or the "
        "endpoint velocity (X1 - X_t) / (1 - t)",
    )
    obj.add_argument(
        "--time-sampling",
        choices=TIME_SAMPLINGS,
        default="uniform",
        action=Given,
        help="distribution of training times t: uniform on [0, 1], U-shaped "
        "p(t) ~ e^(4t) + e^(4(1-t)), or logit-normal sigmoid(N(0, 1))",
    )
    obj.add_argument(
        "--hidden",
        type=positive_int,
        default=256,
        action=Given,
        metavar="WIDTH",
        help="width of each hidden layer of the MLP velocity network",
    )
    obj.add_argument(
        "--depth",
        type=positive_int,
        default=3,
        action=Given,
        metavar="LAYERS",
        help="number of hidden layers of the MLP",
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument(
        "--steps",
        type=positive_int,
        default=2000,
        action=Given,
        metavar="N",
        help="total number of optimizer steps (with --resume: default the resumed "
        "run's total; a larger value extends the run)",
    )
    opt.add_argument(
        "--batch-size",
        type=positive_int,
        default=256,
        action=Given,
        metavar="N",
        help="pairs per step",
    )
    opt.add_argument(
        "--lr",
        type=positive_float,
        default=1e-3,
        action=Given,
        metavar="LR",
        help="peak AdamW learning rate (cosine decay to 0 at the last step)",
    )
    opt.add_argument(
        "--ema-decay",
        type=nonnegative_float,
        default=0.99,
        action=Given,
        metavar="D",
        help="decay d of the exponential moving average of the weights, which "
        "averages over about 1/(1-d) steps; 0 turns EMA off",
    )
    opt.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        action=Given,
        metavar="SEED",
        help="seed of every random draw (initial weights, batches, times); the same "
        "seed gives the same run on the same device",
    )
    opt.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where to train: auto picks cuda, then mps, then cpu",
    )
    io = p.add_argument_group("checkpoints and output")
    io.add_argument(
        "--out",
        metavar="PATH",
        default=None,
        help=f"checkpoint to write: PATH.safetensors and PATH.json (a .safetensors or "
        f".json suffix is dropped) (default: {DEFAULT_OUT}, or the --resume "
        f"checkpoint when resuming)",
    )
    io.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out checkpoint (default: refuse)",
    )
    io.add_argument(
        "--resume",
        metavar="PATH",
        default=None,
        help="continue the run saved in this checkpoint (default: start a new run)",
    )
    io.add_argument(
        "--checkpoint-every",
        type=nonnegative_int,
        default=0,
        action=Given,
        metavar="N",
        help="also save a resumable checkpoint to --out every N steps; 0 saves only at the end",
    )
    io.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no summary line (warnings and errors still print)",
    )
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
)
# settings a resume may change: they do not change the weights a step produces
CHANGEABLE_ON_RESUME: tuple[str, ...] = ("steps", "checkpoint_every")


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
    """The settings of the run in ``--resume`` merged with the options given; returns
    ``(settings, step reached)``. Anything that does not fit is a :class:`CLIError`."""
    from bezkit.training import CheckpointError
    from bezkit.training.resume import ResumeError, merge_settings, read_resume_point

    try:
        point = read_resume_point(args.resume, required=RUN_SETTINGS)
        settings = merge_settings(
            point.settings, _settings(args, only_given=True), changeable=CHANGEABLE_ON_RESUME
        )
    except (FileNotFoundError, CheckpointError, ResumeError) as err:
        raise CLIError(f"--resume: {err}") from None
    if settings["steps"] <= point.step:
        what = (
            f"--steps {settings['steps']} must exceed"
            if given(args, "steps")
            else "the resumed run is complete: pass a --steps that exceeds"
        )
        raise CLIError(
            f"{what} the step of the resumed checkpoint ({point.step}); --steps is the new total"
        )
    for role in ("source", "target"):
        recorded = point.settings.get(f"{role}_sha256")
        if recorded is not None and data_sha256(settings[role]) != recorded:
            raise CLIError(
                f"--resume: the {role} data file {settings[role]} changed since the run started "
                f"(its SHA-256 is no longer {recorded[:12]}...); resuming would train on other "
                "data: restore the file or start a new run"
            )
    return settings, point.step


def _coupling(settings: dict[str, Any], source: Any, target: Any) -> Any:
    from bezkit.couplings import FullOTCoupling, IndependentCoupling, MinibatchOTCoupling

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
        },
        "command": "bezkit train",
    }


def _check_device(name: str) -> Any:
    import torch

    from bezkit.training import choose_device

    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise CLIError("--device mps requested but Apple's MPS backend is not available")
    try:
        return choose_device(name)
    except RuntimeError as err:
        raise CLIError(str(err)) from None


def _interrupted_step(stem: Path) -> tuple[int, int] | None:
    """``(step, total)`` if the checkpoint ``stem`` holds a run that stopped before its end."""
    from bezkit.training.checkpoint import CheckpointError, read_metadata

    try:
        meta = read_metadata(stem)[2]
    except (OSError, CheckpointError):
        return None
    step = meta.get("step")
    total = (meta.get("run") or {}).get("steps", (meta.get("train_config") or {}).get("steps"))
    if isinstance(step, int) and isinstance(total, int) and step < total:
        return step, total
    return None


def _claim_output(out: str, *, overwrite: bool, resume: str | None) -> tuple[Path, Any]:
    """Check ``--out`` before any work, lock it for this run and refuse to replace a checkpoint
    (saying ``--resume`` when it holds an interrupted run). Returns ``(stem, lock)``."""
    from bezkit.training.checkpoint import checkpoint_files
    from bezkit.training.run_dir import RunLock, RunLocked

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
        stopped = _interrupted_step(stem)
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


# -- the command ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from bezkit.methods import new_mlp
    from bezkit.models.factory import build_model
    from bezkit.paths import LinearPath, make_time_sampler
    from bezkit.training import FlowMatchingLoss, TrainConfig, load_checkpoint, train
    from bezkit.training.memory import (
        MemoryEstimateError,
        check_fits_in_memory,
        estimate_step_bytes,
    )

    step = 0
    if args.resume is not None:
        settings, step = _resume_settings(args)
    else:
        settings = _settings(args, only_given=False)
        for role in ("source", "target"):
            settings[f"{role}_sha256"] = data_sha256(settings[role])
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
        model = new_mlp(
            2, hidden=settings["hidden"], depth=settings["depth"], seed=settings["seed"]
        )
    try:
        config = TrainConfig(
            steps=steps,
            batch_size=settings["batch_size"],
            lr=settings["lr"],
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
    )
    try:
        result = train(
            model,
            loss,
            coupling.sample,
            config,
            resume_from=args.resume,
            checkpoint_metadata=_run_metadata(settings),
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
    return 0
