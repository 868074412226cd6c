"""Describe a model as a JSON-able spec and rebuild it from one (used by checkpoints).

``model_spec(model) == {"class": "MLPVelocity", "config": {...}}``; ``build_model(spec)`` is its
inverse. Only the classes listed here can be built, so a checkpoint never names code to run.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from bezkit.models.branched import BranchedVelocity

__all__ = ["MODEL_CLASSES", "build_model", "model_spec"]

# class name -> "module:attribute"
MODEL_CLASSES: dict[str, str] = {
    "MLPVelocity": "bezkit.models.mlp:MLPVelocity",
    "UNetVelocity": "bezkit.models.unet:UNetVelocity",
}


def model_spec(model: nn.Module) -> dict[str, Any]:
    """``{"class": name, "config": kwargs}``, JSON-able, with ``build_model(model_spec(m))`` an
    untrained model of the same architecture. A DDP wrapper is unwrapped; a ``BranchedVelocity``
    nests its trunk's spec under ``"net"``. ``TypeError`` for a class not in ``MODEL_CLASSES``."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    if isinstance(model, BranchedVelocity):
        return {
            "class": "BranchedVelocity",
            "config": {
                "net": model_spec(model.net),
                "num_branches": model.num_branches,
                "channel_dim": model.channel_dim,
                "times": list(model.times),
            },
        }
    name = type(model).__name__
    config = getattr(model, "config", None)
    if name not in MODEL_CLASSES or not callable(config):
        raise TypeError(f"cannot describe model of class {name}; known: {', '.join(MODEL_CLASSES)}")
    return {"class": name, "config": config()}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """The model a ``model_spec`` describes, freshly initialised; only classes in
    ``MODEL_CLASSES`` (and ``BranchedVelocity``) are built, any other name is a ``ValueError``."""
    name, config = spec.get("class"), dict(spec.get("config", {}))
    if name == "BranchedVelocity":
        net = build_model(config.pop("net"))
        return BranchedVelocity(net, config.pop("num_branches"), **config)
    if name not in MODEL_CLASSES:
        raise ValueError(f"unknown model class {name!r} in spec; known: {', '.join(MODEL_CLASSES)}")
    module, attr = MODEL_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), attr)(**config)
