"""Checkpoints: one safetensors file (no pickle, so loading runs no code) that carries its own
metadata, committed in one atomic step; a JSON copy of the metadata beside it for people.

``name.safetensors`` holds the tensors (weights under ``model.``, and for resuming ``ema.`` and
``optimizer.``) and, in its header's ``__metadata__`` under the single key ``"bezkit"``, the
metadata as JSON: the caller's (model spec, config, step, ...) plus ``format``, ``versions`` and
``sha256``, the digest

    sha256 = SHA-256( canonical JSON of the metadata without "sha256"
                      || for each tensor, by name: name | dtype | shape | raw bytes )

which covers the metadata *and* the tensors: a tensor or a metadata value changed by hand is
refused when loading. The file is written to a temporary file beside it, fsynced and moved into
place with ``os.replace``: the previous checkpoint stays whole until the new one is complete, and
a kill at any moment leaves the old checkpoint or the new one, never a mix. (A single header key
also keeps the file byte-reproducible: safetensors writes several keys in random order.)

``name.json`` is a derived copy of the same metadata, written after the tensor file. It is never
needed to load: a missing copy, or a stale one left by a kill between the two writes (its
``sha256`` differs from the file's), is ignored and rewritten by the next save. A copy whose
``sha256`` matches the file but whose content does not was edited by hand, and is refused: edit
metadata with :func:`bezkit.training.model_io.update_metadata`.

Checkpoints of the first format (``bezkit-checkpoint-1``: metadata only in the JSON, whose
``sha256`` is the tensor file's) still load, read-only.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from bezkit import __version__
from bezkit.files.atomic import (
    atomic_write,
    atomic_write_bytes,
    remove_stale_temp_files,
    sha256_file,
    write_json,
)
from bezkit.files.run_dir import RunLock

__all__ = [
    "FORMAT",
    "LEGACY_FORMAT",
    "Checkpoint",
    "CheckpointError",
    "atomic_write_bytes",
    "checkpoint_files",
    "content_digest",
    "load_checkpoint",
    "read_metadata",
    "save_checkpoint",
    "sha256_file",
    "versions",
]

FORMAT = "bezkit-checkpoint-2"
LEGACY_FORMAT = "bezkit-checkpoint-1"
HEADER_KEY = "bezkit"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, altered or of the wrong kind."""


@dataclass
class Checkpoint:
    """The tensors and metadata of one checkpoint, loaded on the CPU."""

    tensors: dict[str, Tensor]
    metadata: dict[str, Any]
    path: Path
    extra: dict[str, dict[str, Tensor]] = field(default_factory=dict)

    @property
    def model_state(self) -> dict[str, Tensor]:
        """The ``model.*`` tensors with the prefix removed (a ``state_dict``)."""
        return {k[len("model.") :]: v for k, v in self.tensors.items() if k.startswith("model.")}

    def section(self, prefix: str) -> dict[str, Tensor]:
        """The tensors under ``prefix.`` with the prefix removed."""
        p = prefix + "."
        return {k[len(p) :]: v for k, v in self.tensors.items() if k.startswith(p)}


def versions() -> dict[str, str]:
    """The versions of bezkit, torch, numpy and Python, recorded in every checkpoint."""
    return {
        "bezkit": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """The ``(.safetensors, .json)`` files a checkpoint path names (either suffix is dropped;
    any other suffix is kept: ``run_0.5`` -> ``run_0.5.safetensors``)."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _canonical(meta: dict[str, Any]) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def content_digest(tensors: dict[str, Tensor], metadata: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of ``metadata`` (without ``"sha256"``) and every tensor's
    name, dtype, shape and bytes, in name order (see the module docstring)."""
    digest = hashlib.sha256()
    digest.update(_canonical({k: v for k, v in metadata.items() if k != "sha256"}).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"\0{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    path: str | Path,
    tensors: dict[str, Tensor],
    metadata: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``tensors`` with ``metadata`` in one atomic step; returns the ``.safetensors`` path.

    An existing checkpoint is an error unless ``overwrite=True`` (nothing is silently replaced).
    ``metadata`` is stored as JSON (other objects, e.g. paths, as their ``str``); ``format`` and
    ``sha256`` are set here, ``versions`` unless given. When this process holds a
    :class:`~bezkit.files.run_dir.RunLock` over the checkpoint (``bezkit train``, the image
    stages), the temporary files an earlier, killed write of it left are removed first.
    """
    st_path, js_path = checkpoint_files(path)
    if not overwrite and (st_path.exists() or js_path.exists()):
        raise FileExistsError(
            f"checkpoint {st_path} already exists; pass overwrite=True (--overwrite on the command line) to replace it"
        )
    for target in (st_path, js_path):
        owner = RunLock.held_over(target)
        if owner is not None:  # only under its lock: another process may be writing this file
            remove_stale_temp_files(target, owner=owner)
    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"versions": versions(), **metadata, "format": FORMAT}
    meta.pop("sha256", None)
    meta = json.loads(json.dumps(meta, default=str))  # exactly what a reader will see
    meta["sha256"] = content_digest(clean, meta)
    header = {HEADER_KEY: _canonical(meta)}
    atomic_write(st_path, lambda tmp: save_file(clean, tmp, metadata=header))
    # the commit is done; the JSON is a copy for people and tools (a kill here is harmless)
    write_json(js_path, meta, sort_keys=True, allow_nan=True)
    return st_path


def _header_metadata(st_path: Path) -> dict[str, Any] | None:
    """The ``"bezkit"`` metadata of a tensor file's header, or None for a first-format file."""
    try:
        with safe_open(str(st_path), framework="pt") as fh:
            header = fh.metadata() or {}
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(
            f"checkpoint {st_path} is damaged or was altered: cannot read its header ({err})"
        ) from err
    if HEADER_KEY not in header:
        return None
    try:
        meta = json.loads(header[HEADER_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"checkpoint {st_path} is damaged or was altered: its metadata is not JSON ({err})"
        ) from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{st_path} is not a bezkit checkpoint (format {found!r})")
    return meta


def _read_json(js_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(js_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint metadata {js_path} is not valid JSON: {err}") from err
    except UnicodeDecodeError as err:
        raise CheckpointError(f"checkpoint metadata {js_path} is not text: {err}") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{js_path} is not a bezkit checkpoint (not a JSON object)")
    return meta


def _header_is_authentic(st_path: Path, meta: dict[str, Any], copy: dict[str, Any]) -> bool:
    """Which of two differing metadata (the header's ``meta``, the JSON ``copy``, both with one
    digest) the tensors' digest confirms: False only when the copy's does and the header's does
    not (the header was edited); an unreadable file counts as the header's fault too."""
    try:
        tensors = load_file(st_path)
    except Exception:  # safetensors raises its own error types; the header is the suspect
        return False
    digest = meta.get("sha256")
    return content_digest(tensors, meta) == digest or content_digest(tensors, copy) != digest


def read_metadata(path: str | Path) -> tuple[Path, Path, dict[str, Any]]:
    """``(tensor file, JSON file, metadata)`` of a checkpoint, from the tensor file's header.

    Checks the files exist and are a bezkit checkpoint's, and refuses a JSON copy that was edited
    by hand; the tensors are neither read nor verified (:func:`load_checkpoint` does that).
    """
    st_path, js_path = checkpoint_files(path)
    if not st_path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {st_path}")
    if not st_path.is_file():
        raise CheckpointError(f"checkpoint {st_path} is not a regular file")
    meta = _header_metadata(st_path)
    if meta is None:  # first format: the JSON is the metadata
        if not js_path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {js_path}")
        meta = _read_json(js_path)
        if meta.get("format") != LEGACY_FORMAT:
            raise CheckpointError(
                f"{js_path} is not a bezkit checkpoint (format {meta.get('format')!r})"
            )
        return st_path, js_path, meta
    if js_path.is_file():
        copy = _read_json(js_path)
        if copy.get("sha256") == meta["sha256"] and copy != meta:
            changed = sorted(k for k in set(copy) | set(meta) if copy.get(k) != meta.get(k))
            if not _header_is_authentic(st_path, meta, copy):
                raise CheckpointError(
                    f"checkpoint {st_path} is damaged or was altered: the metadata in its header "
                    f"({', '.join(changed)}) no longer matches its digest, while the copy "
                    f"{js_path.name} does; restore the checkpoint (the .json copy alone cannot "
                    "be loaded)"
                )
            raise CheckpointError(
                f"{js_path} was edited by hand ({', '.join(changed)} differ from the metadata in "
                f"{st_path.name}); the .json is only a copy: restore it, delete it (it is "
                "rewritten), or change metadata with bezkit.training.model_io.update_metadata"
            )
    return st_path, js_path, meta


def load_checkpoint(path: str | Path, *, verify: bool = True) -> Checkpoint:
    """Read a checkpoint, verifying its format and digest; tensors are loaded on the CPU."""
    st_path, js_path, meta = read_metadata(path)
    if verify and meta["format"] == LEGACY_FORMAT:
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
    if verify and meta["format"] == FORMAT:
        digest = content_digest(tensors, meta)
        if digest != meta.get("sha256"):
            raise CheckpointError(
                f"checkpoint {st_path} was altered: the digest of its tensors and metadata "
                f"{digest[:12]}... does not match {str(meta.get('sha256'))[:12]}... in its header"
            )
    return Checkpoint(tensors=tensors, metadata=meta, path=st_path)
