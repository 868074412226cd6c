"""The options of ``bezkit train``: the help text and the option groups (data and pairing,
objective and model, optimisation, checkpoints and output). Every option that defines the run is
stored with :class:`~bezkit.cli.common.Given`, so a resume can tell the options typed from the
defaults."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bezkit.cli.common import (
    COMMAND_HELP,
    Given,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    seed_int,
)
from bezkit.cli.datasets import DATASET_NAMES, MODEL_SHAPE_NAMES, dataset

__all__ = [
    "COUPLINGS",
    "DEFAULT_OUT",
    "DESCRIPTION",
    "DEVICES",
    "LR_SCHEDULES",
    "TARGET_KINDS",
    "TIME_SAMPLINGS",
    "add_parser",
    "add_train_options",
]

COUPLINGS: tuple[str, ...] = ("independent", "minibatch-ot", "sinkhorn", "full-ot")
TARGET_KINDS: tuple[str, ...] = ("tangent", "endpoint")
TIME_SAMPLINGS: tuple[str, ...] = ("uniform", "ushaped", "logitnormal")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
LR_SCHEDULES: tuple[str, ...] = ("cosine", "constant")
DEFAULT_OUT = "flow"

DESCRIPTION = """\
Train a velocity field v(x, t) that carries --source to --target along straight (linear) paths:
rectified flow / flow matching, METHODS.md sections 1-4.

  pairs (X0, X1) from --coupling      X_t = (1 - t) X0 + t X1 (+ sigma eps with --sigma),
                                       t ~ --time-sampling
  loss  || v(X_t, t) - target ||^2     target: X1 - X0 (tangent) or (X1 - X_t)/(1 - t) (endpoint;
                                       the same on a linear path, up to the clipping of t near 1)

--sigma S > 0 trains on I-CFM / OT-CFM's Gaussian path of width S around the line (tangent
target only). The torchcfm 2D benchmark's settings (Tong et al. 2024; 'bezkit benchmark
torchcfm-2d' runs the whole protocol): --sigma 0.1 --model-shape torchcfm --lr-schedule constant
--grad-clip 0 --weight-decay 1e-5 --ema-decay 0 --batch-size 512 --val-every 200.

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
  bezkit train --source gaussian --target torchcfm-moons --coupling minibatch-ot --sigma 0.1 \
      --model-shape torchcfm --lr-schedule constant --grad-clip 0 --weight-decay 1e-5 \
      --ema-decay 0 --val-every 200 --out otcfm   # then: bezkit evaluate otcfm --weights best
"""


def _given(
    group: argparse._ArgumentGroup,
    flag: str,
    kind: Callable[[str], Any],
    default: Any,
    metavar: str,
    text: str,
) -> None:
    """An option that defines the run: parsed by ``kind``, stored with :class:`Given`."""
    group.add_argument(flag, type=kind, default=default, action=Given, metavar=metavar, help=text)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit train`` and its options to ``subparsers`` without importing torch; the
    command runs :func:`bezkit.cli.train.run` (``func="train"``: :func:`bezkit.cli.main` imports
    that module only to run it)."""
    p = subparsers.add_parser("train", help=COMMAND_HELP["train"], description=DESCRIPTION)
    add_train_options(p)
    p.set_defaults(func="train")
    return p


def add_train_options(p: argparse.ArgumentParser) -> None:
    """Add every option of ``bezkit train`` to ``p``, in four groups."""
    names = ", ".join(DATASET_NAMES)
    data = p.add_argument_group("data and pairing")
    _given(
        data,
        "--source",
        dataset,
        "8gaussians",
        "NAME|FILE",
        f"source distribution pi0 (t = 0): one of {names}, or a .npy/.csv file of (n, 2) points",
    )
    _given(
        data,
        "--target",
        dataset,
        "moons",
        "NAME|FILE",
        "target distribution pi1 (t = 1): a dataset name as for --source, or "
        "a .npy/.csv file of (n, 2) points",
    )
    data.add_argument(
        "--coupling",
        choices=COUPLINGS,
        default="independent",
        action=Given,
        help="how pairs (X0, X1) are drawn (see above)",
    )
    _given(
        data,
        "--sinkhorn-reg",
        positive_float,
        0.05,
        "EPS",
        "entropic regularisation of --coupling sinkhorn, relative to the "
        "batch's mean squared distance",
    )
    _given(
        data,
        "--full-ot-points",
        positive_int,
        2048,
        "N",
        "number of source and target points of --coupling full-ot (solved "
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
    _given(
        obj,
        "--hidden",
        positive_int,
        256,
        "WIDTH",
        "width of each hidden layer of the MLP velocity network",
    )
    _given(obj, "--depth", positive_int, 3, "LAYERS", "number of hidden layers of the MLP")
    obj.add_argument(
        "--model-shape",
        choices=MODEL_SHAPE_NAMES,
        default="bezkit",
        action=Given,
        help="the MLP: bezkit's (SiLU, sinusoidal time features, --hidden x --depth) or the "
        "torchcfm runner's (3 hidden layers of width 64, SELU, raw t as an input; --hidden and "
        "--depth do not apply)",
    )
    _given(
        obj,
        "--sigma",
        nonnegative_float,
        0.0,
        "S",
        "width of the Gaussian path around the line, x_t = (1-t) X0 + t X1 + S eps (I-CFM / "
        "OT-CFM); 0 is the line itself",
    )
    opt = p.add_argument_group("optimisation")
    _given(
        opt,
        "--steps",
        positive_int,
        2000,
        "N",
        "total number of optimizer steps (with --resume: default the resumed "
        "run's total; a larger value extends the run)",
    )
    _given(opt, "--batch-size", positive_int, 256, "N", "pairs per step")
    _given(
        opt,
        "--lr",
        positive_float,
        1e-3,
        "LR",
        "peak AdamW learning rate (see --lr-schedule)",
    )
    opt.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="cosine",
        action=Given,
        help="cosine decay of --lr to 0 at the last step, or a constant --lr",
    )
    _given(opt, "--weight-decay", nonnegative_float, 0.0, "WD", "AdamW's weight decay")
    _given(
        opt,
        "--grad-clip",
        nonnegative_float,
        1.0,
        "C",
        "clip the gradient's norm to C at every step; 0 turns clipping off",
    )
    _given(
        opt,
        "--val-every",
        nonnegative_int,
        0,
        "N",
        "every N steps (and at the last) measure the loss on --val-points fixed validation pairs "
        "and keep the weights with the lowest one in the checkpoint (bezkit evaluate --weights "
        "best); 0: no validation",
    )
    _given(
        opt,
        "--val-points",
        positive_int,
        1000,
        "N",
        "validation pairs, drawn once from --coupling with a seed of their own (from a data file "
        "they are drawn from the same points: split the file first for held-out validation)",
    )
    _given(
        opt,
        "--ema-decay",
        nonnegative_float,
        0.99,
        "D",
        "decay d of the exponential moving average of the weights, which "
        "averages over about 1/(1-d) steps; 0 turns EMA off",
    )
    _given(
        opt,
        "--seed",
        seed_int,
        0,
        "SEED",
        "seed of every random draw (initial weights, batches, times); the same "
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
    _given(
        io,
        "--checkpoint-every",
        nonnegative_int,
        0,
        "N",
        "also save a resumable checkpoint to --out every N steps; 0 saves only at the end",
    )
    io.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no summary line (warnings and errors still print)",
    )
