"""Finished stages of one (source, target) pair, kept durably: what makes a killed run resumable
stage by stage, and what the pair's worker processes hand each other.

A stage (one unit of :mod:`bezkit.experiments.pair_units`) leaves a record (JSON: the rows it adds
to ``results.json``), optionally tensors (the chains' trajectories) and trained models (each seed's
weights, with the architecture to rebuild them from)::

    stages/pair-<i>/<key>.safetensors   tensors and model weights (written first)
    stages/pair-<i>/<key>.json          the record, the run id, the models' specs (commit marker)

A stage counts as finished only when its ``.json`` exists and carries the run's id; every file is
written atomically (:mod:`bezkit.files.atomic`), so a kill at any moment leaves finished stages
and nothing half-written that could be read as finished. Weights go through safetensors (no
pickle: loading runs no code) and come back bit for bit, so a stage loaded from disk and the same
stage computed again give the same numbers downstream.

``StageStore(None, run_id)`` keeps the stages in memory (a run without a staging folder).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor, nn

from bezkit.files.atomic import atomic_write_bytes, write_json
from bezkit.models.factory import build_model, model_spec

__all__ = ["Stage", "StageStore", "json_form", "paths_to_tensors", "tensors_to_paths"]

_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*")


@dataclass
class Stage:
    """What a finished stage left: its ``record`` (JSON-able), ``tensors`` by name, and ``models``
    by name (one model per training seed, weights as trained)."""

    record: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    models: dict[str, list[nn.Module]] = field(default_factory=dict)


def json_form(obj: Any) -> Any:
    """``obj`` as it reads back from JSON: a fresh stage and a loaded one are the same object."""
    return json.loads(json.dumps(obj, allow_nan=False))


class StageStore:
    """The finished stages of one pair in folder ``root`` (``None``: in memory), all of run
    ``run_id`` (module docstring)."""

    def __init__(self, root: str | Path | None, run_id: str) -> None:
        self.root = None if root is None else Path(root)
        self.run_id = run_id
        self._memory: dict[str, Stage] = {}

    def __repr__(self) -> str:
        return f"StageStore({str(self.root) if self.root else None!r}, {self.run_id!r})"

    @staticmethod
    def _check_key(key: str) -> str:
        if not _KEY.fullmatch(key):
            raise ValueError(f"bad stage key {key!r} (lower-case letters, digits, . _ -)")
        return key

    def save(
        self,
        key: str,
        record: Mapping[str, Any],
        *,
        tensors: Mapping[str, Tensor] | None = None,
        models: Mapping[str, Sequence[nn.Module]] | None = None,
    ) -> Stage:
        """Keep stage ``key`` (tensors and weights first, then the record: the commit marker);
        returns the stage as a later :meth:`load` gives it (the record in its JSON form)."""
        self._check_key(key)
        stage = Stage(
            json_form(dict(record)),
            {name: t.detach().clone() for name, t in (tensors or {}).items()},
            {name: list(ms) for name, ms in (models or {}).items()},
        )
        if self.root is None:
            self._memory[key] = stage
            return stage
        blobs: dict[str, Tensor] = {f"tensor/{n}": t.contiguous() for n, t in stage.tensors.items()}
        specs: dict[str, list[dict[str, Any]]] = {}
        for name, ms in stage.models.items():
            specs[name] = [model_spec(m) for m in ms]
            for i, m in enumerate(ms):
                for p, value in m.state_dict().items():
                    blobs[f"model/{name}/{i}/{p}"] = value.detach().contiguous()
        atomic_write_bytes(self.root / f"{key}.safetensors", save_tensors(blobs))
        write_json(
            self.root / f"{key}.json",
            {"run_id": self.run_id, "key": key, "record": stage.record, "models": specs},
        )
        return stage

    def load(self, key: str, *, models: bool = True) -> Stage | None:
        """Stage ``key`` if it finished in this run, else ``None`` (models in eval mode; none
        with ``models=False``)."""
        self._check_key(key)
        if self.root is None:
            return self._memory.get(key)
        try:
            head = json.loads((self.root / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(head, dict) or head.get("run_id") != self.run_id:
            return None
        blobs = load_tensors((self.root / f"{key}.safetensors").read_bytes())
        tensors = {
            name.removeprefix("tensor/"): t
            for name, t in blobs.items()
            if name.startswith("tensor/")
        }
        built: dict[str, list[nn.Module]] = {}
        for name, specs in head["models"].items() if models else ():
            built[name] = []
            for i, spec in enumerate(specs):
                prefix = f"model/{name}/{i}/"
                state = {k[len(prefix) :]: v for k, v in blobs.items() if k.startswith(prefix)}
                model = build_model(spec)
                model.load_state_dict(state)
                built[name].append(model.eval())
        return Stage(head["record"], tensors, built)

    def has(self, key: str) -> bool:
        """Whether stage ``key`` finished in this run (its record alone is read, not its
        weights)."""
        self._check_key(key)
        if self.root is None:
            return key in self._memory
        return self._is_ours(self.root / f"{key}.json")

    def finished(self) -> list[str]:
        """The keys of the stages kept so far (in memory or in this run's files)."""
        if self.root is None:
            return sorted(self._memory)
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if self._is_ours(p))

    def _is_ours(self, path: Path) -> bool:
        try:
            head = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(head, dict) and head.get("run_id") == self.run_id


def paths_to_tensors(paths: Mapping[tuple[str, int], Tensor]) -> dict[str, Tensor]:
    """Chain trajectories ``{(kind, k): tensor}`` as named tensors ``{"kind/k": tensor}``."""
    return {f"{kind}/{k}": t for (kind, k), t in paths.items()}


def tensors_to_paths(tensors: Mapping[str, Tensor]) -> dict[tuple[str, int], Tensor]:
    """The inverse of :func:`paths_to_tensors`."""
    out: dict[tuple[str, int], Tensor] = {}
    for name, t in tensors.items():
        kind, _, k = name.rpartition("/")
        out[(kind, int(k))] = t
    return out
