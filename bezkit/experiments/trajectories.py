"""The chains' sample trajectories of a run, kept beside ``results.json`` so that every figure can
be redrawn without re-running (``bezkit experiment --redraw DIR``).

One ``.npz`` file (:data:`TRAJECTORIES_FILE`) holds, for experiment ``i`` (the order of
``results["experiments"]``):

- ``e{i}-x0``: the starting points, ``(m, 2)`` (the first ``m`` points of evaluation draw 0);
- ``e{i}-{chain}-k{k}``: the Euler trajectory ``(steps + 1, m, 2)`` of seed 0's round-``k`` model
  of chain ``chain`` from those points (``trajectory[0] == x0``), in the order they were made.

Arrays are stored as computed (float32), so a redrawn figure is the figure the run drew. A run's
file also holds ``run_id`` (a 0-d string array): the id of the run that wrote it, the same as in
its ``results.json`` (:func:`trajectories_run_id`), so that a folder mixing two runs is found.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from bezkit.files.atomic import atomic_write_bytes

__all__ = [
    "TRAJECTORIES_FILE",
    "ChainPaths",
    "load_trajectories",
    "save_trajectories",
    "trajectories_run_id",
]

#: The file name of the trajectories, beside ``results.json``.
TRAJECTORIES_FILE = "chain-trajectories.npz"

#: ``{(chain, k): trajectory (steps + 1, m, 2)}`` of one experiment.
ChainPaths = Mapping[tuple[str, int], torch.Tensor]

_KEY = re.compile(r"^e(?P<exp>\d+)-(?P<chain>[a-z0-9_]+)-k(?P<k>\d+)$")


_RUN_ID = "run_id"


def save_trajectories(
    path: str | Path, paths: Sequence[ChainPaths], *, run_id: str | None = None
) -> Path:
    """Write the trajectories of every experiment (``paths[i]`` of experiment ``i``) to ``path``
    atomically; the starting points of each experiment are stored once, as ``e{i}-x0``. All
    trajectories of one experiment must start from the same points. ``run_id``, if given, is
    stored with them (:func:`trajectories_run_id`)."""
    arrays: dict[str, np.ndarray] = {}
    if run_id is not None:
        arrays[_RUN_ID] = np.array(run_id)
    for i, by_round in enumerate(paths):
        x0: torch.Tensor | None = None
        for (chain, k), traj in by_round.items():
            if not re.fullmatch(r"[a-z0-9_]+", chain):
                raise ValueError(f"chain name {chain!r} cannot be stored (a-z, 0-9, _ only)")
            if traj.dim() != 3:
                raise ValueError(
                    f"trajectory of {chain} k={k} must be (steps + 1, m, d), got "
                    f"{tuple(traj.shape)}"
                )
            if x0 is None:
                x0 = traj[0]
            elif not torch.equal(traj[0], x0):
                raise ValueError(f"trajectory of {chain} k={k} starts from other points")
            arrays[f"e{i}-{chain}-k{int(k)}"] = traj.detach().cpu().numpy()
        if x0 is not None:
            arrays[f"e{i}-x0"] = x0.detach().cpu().numpy()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return atomic_write_bytes(path, buffer.getvalue())


def load_trajectories(
    path: str | Path, n_experiments: int
) -> list[dict[tuple[str, int], torch.Tensor]]:
    """The trajectories written by :func:`save_trajectories`, one dict per experiment (empty for
    an experiment without chains), in the order they were saved. A file that does not match
    (an experiment index out of range, trajectories that do not start at the stored points) is
    an error naming the problem."""
    out: list[dict[tuple[str, int], torch.Tensor]] = [{} for _ in range(n_experiments)]
    starts: dict[int, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            if key == _RUN_ID:
                continue
            if key.endswith("-x0") and key[1:-3].isdigit():
                starts[int(key[1:-3])] = data[key]
                continue
            match = _KEY.match(key)
            if match is None:
                raise ValueError(f"{path}: unexpected array {key!r}")
            i = int(match["exp"])
            if i >= n_experiments:
                raise ValueError(
                    f"{path}: trajectories of experiment {i}, but results.json has "
                    f"{n_experiments} experiment(s)"
                )
            out[i][(match["chain"], int(match["k"]))] = torch.from_numpy(data[key])
    for i, by_round in enumerate(out):
        for (chain, k), traj in by_round.items():
            if i not in starts or not np.array_equal(traj[0].numpy(), starts[i]):
                raise ValueError(
                    f"{path}: the trajectory of {chain} k={k} (experiment {i}) does not start "
                    "at the stored starting points"
                )
    return out


def trajectories_run_id(path: str | Path) -> str | None:
    """The run id stored in a trajectories file by :func:`save_trajectories` (``None`` for a file
    written without one, e.g. by a bezkit before run ids)."""
    with np.load(path, allow_pickle=False) as data:
        if _RUN_ID not in data.files:
            return None
        return str(data[_RUN_ID])
