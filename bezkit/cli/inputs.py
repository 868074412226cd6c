"""The inputs of the 2D commands: dataset names and point files, checked as argparse types, read
as samplers, fingerprinted (SHA-256) so that a changed file is never used silently."""

from __future__ import annotations

from pathlib import Path

from bezkit.cli.common import CLIError
from bezkit.cli.datasets import dataset
from bezkit.data import Sampler, get_sampler
from bezkit.files.atomic import sha256_file

__all__ = ["data_ref", "data_sha256", "dataset", "load_sampler"]


def data_ref(name: str) -> str:
    """A dataset name as given; a data file as an absolute path (a checkpoint works anywhere)."""
    if name.lower().endswith((".npy", ".csv")):
        return str(Path(name).resolve())
    return name


def data_sha256(name: str) -> str | None:
    """The SHA-256 of a data file (None for a named dataset): recorded at training, checked on
    resume and by ``evaluate`` so that a changed file is never used silently."""
    if not name.lower().endswith((".npy", ".csv")):
        return None
    try:
        return sha256_file(name)
    except OSError as err:
        raise CLIError(f"cannot read data file {name}: {err.strerror or err}") from None


def load_sampler(name: str, option: str) -> Sampler:
    """The 2D sampler for a dataset name or data file; problems become a :class:`CLIError`
    naming ``--option``."""
    try:
        sampler = get_sampler(name)
    except (FileNotFoundError, ValueError, TypeError) as err:
        raise CLIError(f"--{option}: {err}") from None
    shape = tuple(getattr(sampler, "data_shape", (2,)))
    if shape != (2,):
        raise CLIError(
            f"--{option} {name} holds points of shape {shape}; 2D points (n, 2) are needed here"
        )
    return sampler
