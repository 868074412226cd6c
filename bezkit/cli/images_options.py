"""The options of ``bezkit images``, without torch: the help text, the preset/machine/optimisation/
output options every stage shares, the teacher-pair options of ``reflow`` and ``distill``, and the
parser of every stage (built for ``--help`` and usage errors before torch is imported; the stages
run in :mod:`bezkit.cli.images`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bezkit.cli.common import (
    COMMAND_HELP,
    CLIError,
    Parser,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    seed_int,
)

__all__ = [
    "DESCRIPTION",
    "OPTIMISATION_OVERRIDES",
    "PAIR_OVERRIDES",
    "PRESET_NAMES",
    "add_machine_options",
    "add_optimisation_options",
    "add_output_options",
    "add_pair_options",
    "add_parser",
    "add_preset_options",
    "check_distill_options",
    "check_stage_options",
    "no_stage",
]

PRESET_NAMES = ("digits", "cifar10", "cifar10-tiny")

DESCRIPTION = """\
Rectified flows, reflow, distillation, Bezier distillation and B-DENSE on images. The methods are
the 2D ones (docs/METHODS.md); only the data, the U-Net and the evaluation change.

presets:
  digits    scikit-learn's 8x8 digits (offline), a 190k-parameter U-Net, CPU, minutes per stage
  cifar10   CIFAR-10 32x32 (--data-root), a 50.7M-parameter DDPM++-like U-Net, GPUs: bf16
            autocast, EMA, warm-up, checkpoints every 5000 steps; run it under torchrun
  cifar10-tiny  cifar10's data and code path with a 49k-parameter U-Net and a few steps and
            pairs: every stage in seconds on a CPU (tests, dry runs); its numbers mean nothing

stages (each resumes after an interruption: run the same command again):
  train     the 1-RF on independent (noise, image) pairs                 -> OUT.safetensors
  reflow    the teacher's ODE pairs as resumable shards in --pairs, then the (k+1)-RF trained
            on them from the teacher's weights
  distill   a student from the teacher's pairs in --pairs (generated first if missing):
            --method distill (one/N-step), bezier (Bezier distillation), bdense (B-DENSE)
  evaluate  Euler samples at several step counts: W2, sliced W2 and the digits Frechet
            distance (digits) or FID (CIFAR-10), with noise floors, as JSON

A typical digits session (a few minutes on one CPU thread):

  bezkit images train    --preset digits --out runs/digits/1rf
  bezkit images reflow   --preset digits --teacher runs/digits/1rf --pairs runs/digits/pairs-1rf \\
                         --out runs/digits/2rf
  bezkit images distill  --preset digits --method distill --teacher runs/digits/2rf \\
                         --pairs runs/digits/pairs-2rf --out runs/digits/2rf-distill
  bezkit images distill  --preset digits --method bezier --teacher runs/digits/1rf \\
                         --pairs runs/digits/reverse-1rf --out runs/digits/bezier
  bezkit images evaluate runs/digits/1rf runs/digits/2rf-distill runs/digits/bezier

On GPUs: torchrun --nproc_per_node=8 -m bezkit images train --preset cifar10 --data-root DATA ...
(see docs/IMAGES.md for every command and the expected cost).
"""


# Options that change one setting of the preset (default ``None``: the preset's value), by group:
# (flag, argparse type, metavar, help).
_Override = tuple[str, Callable[[str], Any], str, str]

OPTIMISATION_OVERRIDES: tuple[_Override, ...] = (
    ("--steps", positive_int, "N", "optimizer steps"),
    ("--batch-size", positive_int, "N", "pairs per step and per process"),
    ("--lr", positive_float, "LR", "peak AdamW lr"),
    ("--warmup-steps", nonnegative_int, "N", "linear warm-up"),
    (
        "--ema-decay",
        nonnegative_float,
        "D",
        "EMA decay of the weights (0: no EMA; the final weights are the EMA ones)",
    ),
    ("--seed", seed_int, "SEED", "run seed"),
    (
        "--checkpoint-every",
        nonnegative_int,
        "N",
        "save the resumable training state OUT.train every N steps (0: at the end only)",
    ),
)

PAIR_OVERRIDES: tuple[_Override, ...] = (
    ("--n-pairs", positive_int, "N", "pairs"),
    ("--teacher-steps", positive_int, "N", "Euler steps of the teacher's ODE"),
    ("--shard-size", positive_int, "N", "pairs per shard file"),
    (
        "--segments",
        positive_int,
        "S",
        "forward pairs: also keep the teacher's states at t = j/S (B-DENSE needs its "
        "--branches to divide S)",
    ),
)


def _add_overrides(group: argparse._ArgumentGroup, overrides: tuple[_Override, ...]) -> None:
    for flag, kind, metavar, text in overrides:
        group.add_argument(flag, type=kind, default=None, metavar=metavar, help=text)


def add_machine_options(p: argparse.ArgumentParser, *, stage: str | None) -> None:
    """``--preset`` (for a training ``stage``; for evaluation, ``None``: the checkpoint's),
    ``--data-root``, ``--device``, ``--threads``, ``--quiet``."""
    g = p.add_argument_group("preset and machine")
    if stage is None:
        g.add_argument(
            "--preset",
            choices=PRESET_NAMES,
            default=None,
            help="data and evaluation settings (default: the checkpoint's preset)",
        )
    else:
        g.add_argument(
            "--preset", choices=PRESET_NAMES, default="digits", help="data, model and settings"
        )
    g.add_argument(
        "--data-root",
        metavar="DIR",
        default=None,
        help="CIFAR-10: the folder holding cifar-10-batches-py/ (digits need none)",
    )
    g.add_argument(
        "--data-checksums",
        metavar="JSON",
        default=None,
        help="CIFAR-10: md5 per file from this JSON instead of the official ones (the "
        "checksums.json of a test fixture; real data needs none)",
    )
    g.add_argument(
        "--device",
        default=None,
        metavar="DEV",
        help="cpu, cuda, cuda:1, mps or auto (default: the preset's; under torchrun each "
        "process uses cuda:LOCAL_RANK)",
    )
    g.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: the preset's, 1 for digits)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars and no summary line")


def add_optimisation_options(p: argparse.ArgumentParser, *, stage: str) -> None:
    """The preset's optimisation of ``stage``, overridable, and ``--compile`` / ``--no-amp``."""
    t = p.add_argument_group(f"optimisation (default: the preset's {stage} stage)")
    _add_overrides(t, OPTIMISATION_OVERRIDES)
    t.add_argument(
        "--compile", action="store_true", help="torch.compile the model (default: the preset's)"
    )
    t.add_argument(
        "--no-amp", action="store_true", help="no bf16 autocast on CUDA (default: the preset's)"
    )


def add_output_options(p: argparse.ArgumentParser, *, stage: str) -> None:
    """``--out`` (required for the 1-RF, ``stage == "flow"``) and ``--overwrite``."""
    o = p.add_argument_group("output")
    o.add_argument(
        "--out",
        required=stage == "flow",
        metavar="PATH",
        help="writes PATH.safetensors + PATH.json (final weights) and PATH.train.* (the "
        "resumable training state)" + ("" if stage == "flow" else "; required unless --pairs-only"),
    )
    o.add_argument(
        "--overwrite",
        action="store_true",
        help="train again even if PATH exists (default: refuse; an interrupted run resumes)",
    )


def add_preset_options(p: argparse.ArgumentParser, *, stage: str | None) -> None:
    """Every option a stage's command shares: the machine, and for a training ``stage`` its
    optimisation and output (``stage=None``: ``evaluate``, the machine options only)."""
    add_machine_options(p, stage=stage)
    if stage is not None:
        add_optimisation_options(p, stage=stage)
        add_output_options(p, stage=stage)


def add_pair_options(p: argparse.ArgumentParser) -> None:
    """The teacher pairs of ``reflow`` and ``distill``: the folder, the preset's pair settings
    (overridable), ``--pairs-only`` and the student's ``--init``."""
    g = p.add_argument_group("teacher pairs (default: the preset's)")
    g.add_argument(
        "--pairs",
        required=True,
        metavar="DIR",
        help="folder of the teacher's pairs: generated, resumed or just verified here",
    )
    _add_overrides(g, PAIR_OVERRIDES)
    g.add_argument(
        "--pairs-only", action="store_true", help="stop once the pairs are complete (no training)"
    )
    g.add_argument(
        "--init",
        choices=("teacher", "scratch"),
        default="teacher",
        help="the student starts from the teacher's weights or from scratch",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bezkit images`` and its stages (train, reflow, distill, evaluate) to ``subparsers``
    without importing torch; each stage runs its function of :mod:`bezkit.cli.images`
    (``func="images:run_train"``, ...: :func:`bezkit.cli.main` imports that module only to run
    it)."""
    p = subparsers.add_parser(
        "images",
        help=COMMAND_HELP["images"],
        description=DESCRIPTION,
    )
    sub = p.add_subparsers(dest="images_command", metavar="STAGE", parser_class=Parser)

    tr = sub.add_parser(
        "train", help="train the 1-RF", description="Train the 1-RF on (noise, image) pairs."
    )
    add_preset_options(tr, stage="flow")
    tr.set_defaults(func="images:run_train", check_args=check_stage_options)

    rf = sub.add_parser(
        "reflow",
        help="teacher pairs as shards, then the (k+1)-RF",
        description="Generate (or resume) the teacher's forward ODE pairs in --pairs, then train "
        "the (k+1)-RF on them from the teacher's weights.",
    )
    add_preset_options(rf, stage="reflow")
    rf.add_argument("--teacher", required=True, metavar="CKPT", help="the k-RF checkpoint")
    add_pair_options(rf)
    rf.set_defaults(func="images:run_reflow", check_args=check_stage_options)

    ds = sub.add_parser(
        "distill",
        help="distill / Bezier-distill / B-DENSE from teacher pairs",
        description="Train a few-step student from the teacher's pairs in --pairs (generated "
        "first when missing): forward pairs for distill and bdense, reverse (data-anchored) "
        "pairs for Bezier distillation with --endpoint data.",
    )
    add_preset_options(ds, stage="distill")
    ds.add_argument(
        "--method", choices=("distill", "bezier", "bdense"), default="distill", help="the student"
    )
    ds.add_argument(
        "--teacher",
        required=True,
        action="append",
        metavar="CKPT",
        help="teacher checkpoint; bezier: repeat it for one teacher per guide (the first "
        "gives the endpoint)",
    )
    add_pair_options(ds)
    m = ds.add_argument_group("method options")
    m.add_argument(
        "--distill-steps",
        type=positive_int,
        default=None,
        metavar="N",
        help="distill: train an N-step student (t on {0, 1/N, ...}; default 1); bezier: the same "
        "grid instead of uniform t when given (N = 1: t = 0 only)",
    )
    m.add_argument("--order", type=positive_int, default=2, help="bezier: curve order")
    m.add_argument(
        "--endpoint",
        choices=("data", "teacher"),
        default="data",
        help="bezier: real images with X0 from the reverse ODE, or the teacher's forward endpoint",
    )
    m.add_argument(
        "--placement", choices=("control", "interpolate"), default="control", help="bezier guides"
    )
    m.add_argument(
        "--guide-state",
        choices=("euler", "ode"),
        default="euler",
        help="bezier: the teacher's state at s_i by one Euler step or by its ODE",
    )
    m.add_argument(
        "--target-kind",
        choices=("tangent", "endpoint"),
        default="endpoint",
        help="bezier: regress B'(t) or (X1 - B(t)) / (1 - t)",
    )
    m.add_argument(
        "--branches", type=positive_int, default=None, metavar="K", help="bdense: branches"
    )
    m.add_argument(
        "--restarts", action="store_true", help="bdense: also train from intermediate states"
    )
    ds.set_defaults(func="images:run_distill", check_args=check_distill_options)

    ev = sub.add_parser(
        "evaluate",
        help="sample and measure checkpoints (JSON)",
        description="Euler samples from seeded noise at each --steps; digits: exact W2 against "
        "the test split, sliced W2 and the digits Frechet distance, each with the noise floor of "
        "real train images; CIFAR-10: W2, sliced W2 and FID (with --fid-weights). Prints JSON.",
    )
    ev.add_argument("checkpoints", nargs="+", metavar="CKPT", help="stage outputs to evaluate")
    add_preset_options(ev, stage=None)
    ev.add_argument(
        "--steps",
        type=positive_int,
        nargs="+",
        default=None,
        metavar="N",
        help="Euler step counts (default: the preset's)",
    )
    ev.add_argument(
        "--n", type=positive_int, default=None, metavar="N", help="samples (default: the preset's)"
    )
    ev.add_argument("--seed", type=seed_int, default=0, metavar="SEED", help="noise seed")
    ev.add_argument("--fid-weights", metavar="FILE", default=None, help="CIFAR-10 FID Inception")
    ev.add_argument("--fid-stats", metavar="NPZ", default=None, help="FID reference statistics")
    ev.add_argument("--no-frechet", action="store_true", help="digits: skip the Frechet distance")
    ev.add_argument("--grid", metavar="PNG", default=None, help="also save a grid of samples")
    ev.add_argument("--out", metavar="FILE", default=None, help="also write the JSON to FILE")
    ev.set_defaults(func="images:run_evaluate")
    p.set_defaults(func=no_stage)
    return p


def no_stage(args: argparse.Namespace) -> int:
    """``bezkit images`` without a stage: a usage error."""
    raise CLIError(
        "choose a stage: train, reflow, distill or evaluate (see 'bezkit images --help')"
    )


def check_stage_options(args: argparse.Namespace) -> None:
    """A training stage's options that need no torch (``check_args``): ``--ema-decay`` < 1."""
    if args.ema_decay is not None and args.ema_decay >= 1:
        raise CLIError(f"--ema-decay must be < 1 (0 turns EMA off), got {args.ema_decay}")


def check_distill_options(args: argparse.Namespace) -> None:
    """``distill``'s options that need no torch (``check_args``): one ``--teacher`` for every
    method but ``bezier``, then :func:`check_stage_options`."""
    if args.method != "bezier" and len(args.teacher) != 1:
        raise CLIError(f"--method {args.method} takes one --teacher, got {len(args.teacher)}")
    check_stage_options(args)
