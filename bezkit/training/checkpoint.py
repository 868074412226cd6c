"""Checkpoints: tensors in safetensors (no pickle, so loading runs no code), metadata in JSON.

``name.safetensors`` holds the weights (and, for resuming, optimizer and EMA tensors under the
prefixes ``optimizer.`` and ``ema.``); ``name.json`` holds the model spec, the config, versions,
the step and the SHA-256 of the ``.safetensors`` file. Both files are written to a temporary file in
the same folder and moved into place with ``os.replace`` (atomic on POSIX), the tensors first and the
JSON last, so a crash never leaves a JSON pointing at half-written weights. Loading recomputes the
hash and refuses a file that was altered.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from bezkit.training.atomic import atomic_write, atomic_write_bytes, sha256_file

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "atomic_write_bytes",
    "load_checkpoint",
    "read_metadata",
    "save_checkpoint",
    "sha256_file",
    "versions",
]

FORMAT = "bezkit-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, altered or of the wrong kind."""


@dataclass
class Checkpoint:
    tensors: dict[str, Tensor]
    metadata: dict[str, Any]
    path: Path
    extra: dict[str, dict[str, Tensor]] = field(default_factory=dict)

    @property
    def model_state(self) -> dict[str, Tensor]:
        return {k[len("model.") :]: v for k, v in self.tensors.items() if k.startswith("model.")}

    def section(self, prefix: str) -> dict[str, Tensor]:
        p = prefix + "."
        return {k[len(p) :]: v for k, v in self.tensors.items() if k.startswith(p)}


def versions() -> dict[str, str]:
    import numpy

    import bezkit

    return {
        "bezkit": bezkit.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    # append, not replace, a suffix: "run_0.5" -> "run_0.5.safetensors" (not "run_0.safetensors")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def save_checkpoint(
    path: str | Path,
    tensors: dict[str, Tensor],
    metadata: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``tensors`` and ``metadata`` atomically; returns the ``.safetensors`` path.

    An existing checkpoint is an error unless ``overwrite=True`` (nothing is silently replaced).
    """
    st_path, js_path = _paths(path)
    if not overwrite and (st_path.exists() or js_path.exists()):
        raise FileExistsError(
            f"checkpoint {st_path} already exists; pass overwrite=True to replace it"
        )
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    digest = ""

    def write(tmp: str) -> None:
        nonlocal digest
        save_file(clean, tmp)
        digest = sha256_file(tmp)

    atomic_write(st_path, write)
    meta = {"format": FORMAT, "sha256": digest, "versions": versions(), **metadata}
    atomic_write_bytes(js_path, json.dumps(meta, indent=2, sort_keys=True, default=str).encode())
    return st_path


def read_metadata(path: str | Path) -> tuple[Path, Path, dict[str, Any]]:
    """``(tensor file, JSON file, metadata)`` of a checkpoint, after checking both files exist and
    the JSON is a bezkit checkpoint's (the tensors are neither read nor verified)."""
    st_path, js_path = _paths(path)
    for p in (st_path, js_path):
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {p}")
    try:
        meta = json.loads(js_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint metadata {js_path} is not valid JSON: {err}") from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{js_path} is not a bezkit checkpoint (format {meta.get('format')!r})"
        )
    return st_path, js_path, meta


def load_checkpoint(path: str | Path, *, verify: bool = True) -> Checkpoint:
    """Read a checkpoint, verifying its format and hash; tensors are loaded on the CPU."""
    st_path, js_path, meta = read_metadata(path)
    if verify:
        digest = sha256_file(st_path)
        if digest != meta.get("sha256"):
            raise CheckpointError(
                f"checkpoint {st_path} was altered: its SHA-256 {digest[:12]}... does not match "
                f"{str(meta.get('sha256'))[:12]}... recorded in {js_path.name}"
            )
    try:
        tensors = load_file(st_path)
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read tensors from {st_path}: {err}") from err
    return Checkpoint(tensors=tensors, metadata=meta, path=st_path)
