"""``bezkit train``: train a 2D rectified flow (linear path) and save it as a checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bezkit.cli.common import (
    CLIError,
    Given,
    dataset,
    given,
    load_sampler,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)

__all__ = ["COUPLINGS", "add_parser", "run"]

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

output: --out PATH writes PATH.safetensors (weights: model.*, ema.*, optimizer.*) and PATH.json
(model spec, train_config, data, coupling, objective, step, losses, SHA-256 of the weights).
An existing checkpoint is never replaced without --overwrite.

resuming: --resume CKPT continues the run saved in CKPT (weights, EMA, optimizer, step) up to
--steps. Without --steps it finishes the interrupted run, exactly as if it had not stopped; a
larger --steps extends it (the cosine learning-rate schedule is stretched to the new total). The
run's settings (data, coupling, objective, model size, batch size, lr, EMA decay, seed) come from
the checkpoint; giving one of them with a different value is an error. Without --out the
checkpoint is updated in place.

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


def _data_ref(name: str) -> str:
    """A dataset name as given; a data file as an absolute path (the checkpoint works anywhere)."""
    if name.lower().endswith((".npy", ".csv")):
        return str(Path(name).resolve())
    return name


def _coupling_meta(args: argparse.Namespace) -> dict[str, Any]:
    if args.coupling == "sinkhorn":
        return {"name": "sinkhorn", "reg": args.sinkhorn_reg}
    if args.coupling == "full-ot":
        return {"name": "full-ot", "n_points": args.full_ot_points, "seed": args.seed}
    return {"name": args.coupling}


def _warn(message: str) -> None:
    print(f"bezkit train: warning: {message}", file=sys.stderr)


def _adopt(args: argparse.Namespace, dest: str, value: Any, *, shown: Any = None) -> None:
    """Use the resumed checkpoint's ``value`` for ``dest`` unless the user gave a different one."""
    mine = getattr(args, dest)
    if given(args, dest) and (_data_ref(mine) if dest in ("source", "target") else mine) != value:
        flag = "--" + dest.replace("_", "-")
        raise CLIError(
            f"{flag} {mine} conflicts with the resumed checkpoint, which has "
            f"{value if shown is None else shown}; leave {flag} out to continue "
            "with the checkpoint's value"
        )
    setattr(args, dest, value)


def _apply_resume(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    """Fill the run-defining options from a checkpoint's metadata (in place)."""
    cfg = meta.get("train_config") or {}
    for dest in ("batch_size", "lr", "seed"):
        if dest in cfg:
            _adopt(args, dest, cfg[dest])
    if "ema_decay" in cfg:
        _adopt(args, "ema_decay", cfg["ema_decay"] or 0.0, shown=cfg["ema_decay"] or "0 (no EMA)")
    model_cfg = (meta.get("model") or {}).get("config", {})
    if meta.get("model", {}).get("class") == "MLPVelocity":
        for dest in ("hidden", "depth"):
            _adopt(args, dest, model_cfg[dest])
    data, coupling, objective = meta.get("data"), meta.get("coupling"), meta.get("objective")
    if data is None or coupling is None or objective is None:
        _warn(
            "the checkpoint has no data/coupling/objective metadata (it was not completed by "
            "'bezkit train'); using --source, --target, --coupling, --target-kind and "
            "--time-sampling from the command line"
        )
        return
    _adopt(args, "source", data["source"])
    _adopt(args, "target", data["target"])
    _adopt(args, "coupling", coupling["name"])
    if "reg" in coupling:
        _adopt(args, "sinkhorn_reg", coupling["reg"])
    if "n_points" in coupling:
        _adopt(args, "full_ot_points", coupling["n_points"])
    _adopt(args, "target_kind", objective["target_kind"])
    _adopt(args, "time_sampling", objective["time_sampling"])


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


def _coupling(args: argparse.Namespace, source: Any, target: Any) -> Any:
    from bezkit.couplings import FullOTCoupling, IndependentCoupling, MinibatchOTCoupling

    if args.coupling == "independent":
        return IndependentCoupling(source, target)
    if args.coupling == "minibatch-ot":
        return MinibatchOTCoupling(source, target, method="exact")
    if args.coupling == "sinkhorn":
        return MinibatchOTCoupling(source, target, method="sinkhorn", reg=args.sinkhorn_reg)
    if args.full_ot_points < 2:
        raise CLIError(f"--full-ot-points must be >= 2, got {args.full_ot_points}")
    return FullOTCoupling(source, target, n_points=args.full_ot_points, seed=args.seed)


def _snapshot(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


# -- the command ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    import torch

    from bezkit.models import MLPVelocity
    from bezkit.models.factory import build_model
    from bezkit.paths import LinearPath, make_time_sampler
    from bezkit.training import (
        CheckpointError,
        FlowMatchingLoss,
        TrainConfig,
        load_checkpoint,
        train,
    )
    from bezkit.training.model_io import checkpoint_files, update_metadata

    prior: dict[str, Any] | None = None
    if args.resume is not None:
        try:
            prior = load_checkpoint(args.resume).metadata
        except (FileNotFoundError, CheckpointError) as err:
            raise CLIError(f"--resume: {err}") from None
        if not isinstance(prior.get("step"), int) or "train_config" not in prior:
            raise CLIError(
                f"--resume: {args.resume} is not a training checkpoint (no step or "
                "train_config in its metadata)"
            )
        if not given(args, "steps"):
            args.steps = int(prior["train_config"].get("steps", args.steps))
        if args.steps <= prior["step"]:
            what = (
                f"--steps {args.steps} must exceed"
                if given(args, "steps")
                else "the resumed run is complete: pass a --steps that exceeds"
            )
            raise CLIError(
                f"{what} the step of the resumed checkpoint ({prior['step']}); "
                "--steps is the new total"
            )
        _apply_resume(args, prior)

    out = args.out if args.out is not None else (args.resume or DEFAULT_OUT)
    st_path, js_path = checkpoint_files(out)
    in_place = args.resume is not None and tuple(
        p.resolve() for p in checkpoint_files(args.resume)
    ) == (st_path.resolve(), js_path.resolve())
    if not (args.overwrite or in_place) and (st_path.exists() or js_path.exists()):
        existing = st_path if st_path.exists() else js_path
        raise CLIError(
            f"checkpoint {existing} already exists; pass --overwrite to replace it "
            "or choose another --out"
        )

    device = _check_device(args.device)
    source, target = load_sampler(args.source, "source"), load_sampler(args.target, "target")
    ema_decay = args.ema_decay or None
    if ema_decay is not None and not ema_decay < 1.0:
        raise CLIError(f"--ema-decay must be < 1 (0 turns EMA off), got {args.ema_decay}")
    if ema_decay is not None and ema_decay**args.steps > 0.05 and prior is None:
        _warn(
            f"with --ema-decay {ema_decay} and {args.steps} steps the EMA weights still hold "
            f"{100 * ema_decay**args.steps:.0f}% of the initial weights; train longer, lower "
            "--ema-decay, or evaluate with --weights model"
        )

    if prior is not None:
        try:
            model = build_model(prior["model"])
        except (KeyError, TypeError, ValueError) as err:
            raise CLIError(f"--resume: cannot rebuild the model of {args.resume}: {err}") from None
    else:
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG untouched
            torch.manual_seed(args.seed)
            model = MLPVelocity(2, hidden=args.hidden, depth=args.depth)

    base = dict(prior["train_config"]) if prior is not None else {}
    known = TrainConfig.__dataclass_fields__
    base = {k: v for k, v in base.items() if k in known}
    base.update(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        ema_decay=ema_decay,
        seed=args.seed,
        device=str(device),
        progress=not args.quiet,
        desc="bezkit train",
        checkpoint_path=str(st_path.with_suffix("")),
        checkpoint_every=args.checkpoint_every or args.steps,
        prefetch=2 if args.coupling in ("minibatch-ot", "sinkhorn") else 0,
    )
    try:
        config = TrainConfig(**base)
    except ValueError as err:
        raise CLIError(str(err)) from None
    coupling = _coupling(args, source, target)
    loss = FlowMatchingLoss(
        LinearPath(), target=args.target_kind, time_sampler=make_time_sampler(args.time_sampling)
    )
    extra = {
        "data": {"source": _data_ref(args.source), "target": _data_ref(args.target)},
        "coupling": _coupling_meta(args),
        "objective": {
            "path": "linear",
            "target_kind": args.target_kind,
            "time_sampling": args.time_sampling,
        },
        "command": "bezkit train",
    }

    before = _snapshot(js_path)
    try:
        result = train(model, loss, coupling.sample, config, resume_from=args.resume)
    except FloatingPointError as err:
        raise CLIError(f"training diverged: {err}", code=1) from None
    finally:
        # every checkpoint this run wrote (also one left by an interrupted run) gets the data,
        # coupling and objective it was trained with, so it can be evaluated and resumed
        if _snapshot(js_path) not in (before, None):
            update_metadata(st_path, extra)

    if not args.quiet:
        tail = result.losses[-50:]
        final = sum(tail) / len(tail) if tail else float("nan")
        print(
            f"saved {st_path} and {js_path.name}: step {config.steps}, loss {final:.4f} "
            f"(mean of the last {len(tail)} steps), {result.wall_seconds:.1f} s on {device}"
        )
    return 0
