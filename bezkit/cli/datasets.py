"""The 2D dataset names and the ``NAME|FILE`` argparse type, without torch: a command's parser is
built from them before torch is imported (``bezkit train --help`` and usage errors stay fast).

``DATASET_NAMES`` repeats the keys of :data:`bezkit.data.NAMED_DATASETS` (bezkit's toys, then the
torchcfm benchmark's) and ``MODEL_SHAPE_NAMES`` those of :data:`bezkit.models.mlp.MODEL_SHAPES`
(a test keeps each equal); the samplers themselves are read by :mod:`bezkit.cli.inputs`."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["DATASET_NAMES", "MODEL_SHAPE_NAMES", "dataset"]

DATASET_NAMES: tuple[str, ...] = (
    "gaussian",
    "8gaussians",
    "25gaussians",
    "moons",
    "spirals",
    "checkerboard",
    "rings",
    "torchcfm-8gaussians",
    "torchcfm-moons",
    "torchcfm-scurve",
    "torchcfm-twodim-moons",
    "torchcfm-twodim-8gaussians",
)
MODEL_SHAPE_NAMES: tuple[str, ...] = ("bezkit", "torchcfm")


def dataset(text: str) -> str:
    """argparse type: a 2D dataset name (:data:`DATASET_NAMES`) or a .npy/.csv file.

    A file must exist; its contents are checked when it is loaded.
    """
    if text in DATASET_NAMES:
        return text
    if text.lower().endswith((".npy", ".csv")):
        if Path(text).is_dir():
            raise argparse.ArgumentTypeError(f"data file {text} is a folder, not a file")
        if not Path(text).is_file():
            raise argparse.ArgumentTypeError(f"data file not found: {text}")
        return text
    known = ", ".join(DATASET_NAMES)
    raise argparse.ArgumentTypeError(
        f"unknown dataset {text!r}; use one of {known} or a .npy/.csv file of (n, 2) points"
    )
