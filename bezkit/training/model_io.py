"""Save a trained model with its metadata and load it back, in the checkpoint format of
:mod:`bezkit.training.checkpoint` (one safetensors file carrying its metadata, committed
atomically, SHA-256 verified over tensors and metadata; a JSON copy beside it).

The tensor layout is the one the trainer writes (``bezkit.training.trainer``), so a trainer
checkpoint and a :func:`save_model` file load the same way:

    model.<name>      the trained weights
    ema.<name>        the EMA weights (optional)
    optimizer.<...>   optimizer state (trainer checkpoints only; ignored when loading a model)

and the metadata always holds ``"model": model_spec(model)``, from which
:func:`bezkit.models.factory.build_model` rebuilds the architecture (a checkpoint never names
code to run). Everything else in the metadata is the caller's (a config, the data it was trained
on, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from bezkit.models.factory import build_model, model_spec
from bezkit.models.unwrap import unwrap_model
from bezkit.training.checkpoint import (
    CheckpointError,
    checkpoint_files,
    load_checkpoint,
    save_checkpoint,
)
from bezkit.training.ema import EMA

__all__ = ["checkpoint_files", "load_model", "model_tensors", "save_model", "update_metadata"]

# keys that save_checkpoint writes itself; a caller may not set or change them
RESERVED_KEYS = frozenset({"format", "sha256", "versions"})


def model_tensors(model: nn.Module, ema: nn.Module | EMA | None = None) -> dict[str, Tensor]:
    """``{"model.<name>": ...}`` and, with ``ema``, ``{"ema.<name>": ...}`` (trainer layout)."""
    state = unwrap_model(model).state_dict()
    tensors = {f"model.{k}": v for k, v in state.items()}
    if ema is not None:
        ema_state = (ema.model if isinstance(ema, EMA) else unwrap_model(ema)).state_dict()
        if ema_state.keys() != state.keys() or any(
            ema_state[k].shape != state[k].shape for k in state
        ):
            raise ValueError("the EMA model does not have the same parameters as the model")
        tensors.update({f"ema.{k}": v for k, v in ema_state.items()})
    return tensors


def save_model(
    path: str | Path,
    model: nn.Module,
    metadata: dict[str, Any],
    *,
    ema: nn.Module | EMA | None = None,
    overwrite: bool = False,
) -> Path:
    """Save ``model`` (and ``ema`` weights) with ``metadata``; returns the ``.safetensors`` path.

    ``metadata["model"]`` is set to ``model_spec(model)`` (a different value there is an error). An
    existing checkpoint is an error unless ``overwrite=True``.
    """
    reserved = RESERVED_KEYS & metadata.keys()
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved for the checkpoint format")
    spec = model_spec(model)
    if "model" in metadata and metadata["model"] != spec:
        raise ValueError(
            f"metadata['model'] {metadata['model']!r} does not describe the model {spec!r}"
        )
    return save_checkpoint(
        path, model_tensors(model, ema), {**metadata, "model": spec}, overwrite=overwrite
    )


def load_model(
    path: str | Path, *, use_ema: bool = True, verify: bool = True, best: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; returns ``(model, metadata)``.

    With ``use_ema`` the EMA weights are loaded when the checkpoint has them, else the trained
    weights; with ``best`` the weights of lowest validation loss (``best.*``, written by a run with
    ``TrainConfig.val_every``; a :class:`CheckpointError` if it has none). The model is on the CPU in eval mode. The returned metadata is a copy of the
    checkpoint's with ``"loaded_weights"`` set to ``"ema"`` or ``"model"``. Raises
    ``FileNotFoundError`` for a missing checkpoint and :class:`CheckpointError` for an altered,
    foreign or inconsistent one.
    """
    ckpt = load_checkpoint(path, verify=verify)
    spec = ckpt.metadata.get("model")
    if not isinstance(spec, dict):
        raise CheckpointError(f"checkpoint {ckpt.path} has no model spec in its metadata")
    try:
        model = build_model(spec)
    except (ValueError, TypeError, KeyError, ImportError) as err:
        raise CheckpointError(f"cannot rebuild the model of checkpoint {ckpt.path}: {err}") from err
    if best and not ckpt.section("best"):
        raise CheckpointError(
            f"checkpoint {ckpt.path} holds no best-validation weights (train with --val-every)"
        )
    ema_state = ckpt.section("ema") if use_ema and not best else {}
    state = ckpt.section("best") if best else (ema_state or ckpt.model_state)
    if not state:
        raise CheckpointError(
            f"checkpoint {ckpt.path} holds no model weights (no 'model.*' tensors)"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"the weights in {ckpt.path} do not fit its model spec: {first}"
        ) from err
    meta = dict(ckpt.metadata)
    meta["loaded_weights"] = "best" if best else ("ema" if ema_state else "model")
    return model.eval(), meta


def update_metadata(path: str | Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into a checkpoint's top-level metadata; returns the new metadata.

    The checkpoint is verified, then rewritten in one atomic step with the same tensors and a new
    digest (which covers the metadata), and its JSON copy is rewritten.
    """
    reserved = RESERVED_KEYS & updates.keys()
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved for the checkpoint format")
    ckpt = load_checkpoint(path)
    meta = {k: v for k, v in ckpt.metadata.items() if k not in ("format", "sha256")}
    meta.update(updates)
    save_checkpoint(ckpt.path, ckpt.tensors, meta, overwrite=True)
    return load_checkpoint(ckpt.path, verify=False).metadata
