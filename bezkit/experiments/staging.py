"""The staging folder of an experiment run: finished units of work kept durably, the run's files
assembled, then swapped in for the previous run as a whole.

A run into ``--out DIR`` works in ``.DIR.bezkit-staging`` beside ``DIR`` (same file system, so it
can be swapped in)::

    .DIR.bezkit-staging/
        run.json            the run: its id, configuration, command, number of units, the SHA-256
                            of its point files (written first)
        units/unit-<i>.npz  unit i's chain trajectories (written before its .json)
        units/unit-<i>.json unit i's finished record, with the run id (its commit marker)
        stages/pair-<i>/    unit i's finished stages (:mod:`bezkit.experiments.stage_store`)
        run/                the run's folder, assembled once every unit is finished

Every file is written atomically (:mod:`bezkit.files.atomic`); a unit counts as finished only when
its ``.json`` exists and carries the run's id. When ``run/`` is complete (``results.json`` written
last) it is exchanged with ``DIR`` in one step (:func:`bezkit.files.swap.exchange_folders`): ``DIR``
holds every file of the previous run or every file of the new one, never a mix. Files in ``DIR``
that are not a run's (anything but ``results.json``, ``report.md``, the trajectories, ``*.png``
figures and bezkit's hidden temporary files) are moved into the new ``DIR``; then the staging
folder is removed.

A unit here is one (source, target) pair (:func:`bezkit.experiments.toy2d.run_pair`): its seeds
train together as one ensemble. A pair is itself made of stages (the 1-RF, each baseline, each
chain round, each student at each budget: :mod:`bezkit.experiments.pair_units`), each kept in
``stages/pair-<i>/`` as it finishes, so an interrupted pair continues from its finished stages.
A pair's result depends only on the configuration and the pair, so a run resumed from finished
units and stages gives the numbers of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.stage_store import StageStore, json_form
from bezkit.experiments.trajectories import ChainPaths, load_trajectories, save_trajectories
from bezkit.files.atomic import sha256_file, write_json
from bezkit.files.run_dir import RunLock
from bezkit.files.swap import exchange_folders, finish_interrupted_swap

__all__ = [
    "STAGING_SUFFIX",
    "Staging",
    "config_from_dict",
    "data_fingerprints",
    "is_run_file",
    "new_run_id",
    "stage_folder",
    "staging_dir",
]

#: ``.DIR<suffix>`` beside ``DIR`` is the staging folder of a run into ``DIR``.
STAGING_SUFFIX = ".bezkit-staging"

_RUN_FILES = ("results.json", "report.md", "chain-trajectories.npz", ".bezkit.lock")


def new_run_id() -> str:
    """A fresh run id: the UTC time and 6 random bytes, e.g. ``20261206T054512Z-3f2a9c1b7d04``."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{secrets.token_hex(6)}"


def staging_dir(out: str | Path) -> Path:
    """The staging folder of a run into ``out``: ``.<name>.bezkit-staging`` beside it (beside the
    folder a symbolic link ``out`` points to: that folder is the one replaced)."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}{STAGING_SUFFIX}"


def stage_folder(root: Path, i: int) -> Path:
    """The folder of unit ``i``'s finished stages in the staging folder ``root``."""
    return root / "stages" / f"pair-{i}"


def is_run_file(name: str) -> bool:
    """Whether a file name in a run folder is one of the run's own files (replaced with the run):
    ``results.json``, ``report.md``, the trajectories, a ``*.png`` figure, the lock, or a hidden
    temporary file of an interrupted write."""
    return (
        name in _RUN_FILES
        or name.endswith(".png")
        or (name.startswith(".") and name.endswith(".tmp"))
        or name.startswith(".bezkit-draw-")
    )


def data_fingerprints(cfg: ExperimentConfig) -> dict[str, str]:
    """The SHA-256 of every point file (``.npy`` / ``.csv``) among ``cfg``'s pairs, by the name
    the configuration gives it: what a resumed run checks its data against."""
    return {
        name: sha256_file(name)
        for pair in cfg.pairs
        for name in pair
        if name.lower().endswith((".npy", ".csv"))
    }


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """The :class:`ExperimentConfig` of a stored ``config.to_dict()`` (JSON lists back to the
    tuples and pairs the dataclass holds); an unknown option is a ``ValueError``."""
    fields = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown experiment option(s) {', '.join(unknown)}")
    defaults = ExperimentConfig()
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name == "pairs":
            value = [tuple(p) for p in value]
        elif isinstance(getattr(defaults, name), tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return ExperimentConfig(**kwargs)


def _run_id_in(out: Path) -> str | None:
    """The run id of the ``results.json`` in folder ``out``, ``None`` if there is none."""
    try:
        rid = json.loads((out / "results.json").read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return rid if isinstance(rid, str) else None


@dataclass
class Staging:
    """The staging folder of one run into ``out`` (module docstring)."""

    out: Path
    root: Path
    run_id: str
    record: dict[str, Any]

    @property
    def units_dir(self) -> Path:
        return self.root / "units"

    @property
    def assembly(self) -> Path:
        """The run's folder being assembled, swapped in for ``out`` by :meth:`publish`."""
        return self.root / "run"

    @classmethod
    def create(
        cls, out: str | Path, cfg: ExperimentConfig, *, command: str, n_units: int
    ) -> Staging:
        """Start a new run into ``out`` (its staging folder must not exist)."""
        out = Path(out).resolve()
        root = staging_dir(out)
        root.mkdir()
        record = {
            "run_id": new_run_id(),
            "config": json_form(cfg.to_dict()),
            "command": command,
            "units": n_units,
            "data_sha256": data_fingerprints(cfg),
        }
        write_json(root / "run.json", record)
        return cls(out, root, record["run_id"], record)

    @classmethod
    def find(cls, out: str | Path) -> Staging | None:
        """The staging folder of an interrupted run into ``out``, else ``None``; a staging folder
        without a readable ``run.json`` (killed before it was written) is removed, and one whose
        run is already in ``out`` (killed after the swap) is tidied as :meth:`publish` would."""
        out = Path(out).resolve()
        root = staging_dir(out)
        finish_interrupted_swap(root / "run", out)
        if not root.is_dir():
            return None
        try:
            record = json.loads((root / "run.json").read_text())
            run_id = str(record["run_id"])
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(root)
            return None
        staging = cls(out, root, run_id, record)
        if staging.assembly.is_dir() and _run_id_in(out) == run_id:
            staging._tidy()  # killed after the swap: the run is published, finish the rest
            return None
        return staging

    def config(self) -> ExperimentConfig:
        """The stored configuration of the run."""
        return config_from_dict(dict(self.record["config"]))

    def check_data(self, cfg: ExperimentConfig) -> None:
        """Refuse (``ValueError``) to continue on a point file whose content is not the one the
        run started with (edited, or another file of that name from another folder): the
        finished units were trained on the old one. A run recorded without fingerprints (an
        older staging folder) is not checked."""
        stored = self.record.get("data_sha256")
        if not isinstance(stored, dict):
            return
        for name, digest in data_fingerprints(cfg).items():
            if stored.get(name) != digest:
                raise ValueError(
                    f"data file {name} changed since the run started (SHA-256 {digest[:12]}..., "
                    f"was {str(stored.get(name))[:12]}...); its finished stages were trained on "
                    "the old content: restore that file, or start the run again with --overwrite"
                )

    def _unit(self, i: int, ext: str) -> Path:
        return self.units_dir / f"unit-{i}.{ext}"

    def save_unit(self, i: int, result: dict[str, Any], paths: ChainPaths) -> dict[str, Any]:
        """Keep unit ``i`` durably (trajectories first, then its record, the commit marker);
        returns the record as it reads back from disk."""
        self.units_dir.mkdir(exist_ok=True)
        save_trajectories(self._unit(i, "npz"), [paths], run_id=self.run_id)
        record = json_form(result)
        write_json(self._unit(i, "json"), {"run_id": self.run_id, "unit": i, "result": record})
        shutil.rmtree(stage_folder(self.root, i), ignore_errors=True)  # the pair holds it all now
        return record

    def load_unit(self, i: int) -> tuple[dict[str, Any], ChainPaths] | None:
        """Unit ``i`` if it finished in this run, else ``None``."""
        try:
            data = json.loads(self._unit(i, "json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("run_id") != self.run_id:
            return None
        paths: dict[tuple[str, int], torch.Tensor] = load_trajectories(self._unit(i, "npz"), 1)[0]
        return data["result"], paths

    def stage_store(self, i: int) -> StageStore:
        """The store of unit ``i``'s finished stages."""
        return StageStore(stage_folder(self.root, i), self.run_id)

    def finished_stages(self) -> int:
        """How many stages of unfinished units are kept."""
        n = int(self.record.get("units", 0))
        return sum(
            len(self.stage_store(i).finished()) for i in range(n) if self.load_unit(i) is None
        )

    def finished(self) -> list[int]:
        """The units kept so far."""
        n = int(self.record.get("units", 0))
        return [i for i in range(n) if self.load_unit(i) is not None]

    def fresh_assembly(self) -> Path:
        """An empty ``run/`` folder (one left by an interrupted assembly is removed)."""
        if self.assembly.exists():
            shutil.rmtree(self.assembly)
        self.assembly.mkdir()
        return self.assembly

    def publish(self) -> RunLock:
        """Swap the assembled ``run/`` in for ``out`` as a whole, move the files that are not a
        run's from the previous folder into the new one, remove the staging folder.

        Returns the lock now held on the new ``out`` (taken on ``run/`` before the swap, so the
        folder is never unlocked); release it when done."""
        if not (self.assembly / "results.json").is_file():
            raise FileNotFoundError(f"{self.assembly} has no results.json: not assembled")
        self.out.mkdir(parents=True, exist_ok=True)
        lock = RunLock(self.assembly, folder=True, what="experiment").acquire()
        try:
            exchange_folders(self.assembly, self.out)
        except BaseException:
            lock.release()
            raise
        self._tidy()
        return lock

    def _tidy(self) -> None:
        """After the swap (``run/`` now holds the previous content of ``out``): move the files
        that are not a run's into ``out``, remove the staging folder. Also what
        :meth:`find` does for a run killed between the swap and the end of :meth:`publish`."""
        previous = self.assembly
        for entry in sorted(previous.iterdir()):
            if not is_run_file(entry.name) and not (self.out / entry.name).exists():
                entry.rename(self.out / entry.name)
        shutil.rmtree(self.root)

    def remove(self) -> None:
        """Discard the staging folder (``--overwrite`` of an interrupted run)."""
        shutil.rmtree(self.root, ignore_errors=True)
