"""The options of ``bezkit images``: the help text, the preset/machine/optimisation/output options
every stage shares, and the teacher-pair options of ``reflow`` and ``distill``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bezkit.cli.common import (
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
    "add_preset_options",
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
