"""One ``unwrap_model`` for every wrapper (DDP / DataParallel ``.module``, torch.compile
``._orig_mod``), used by checkpoints, EMA and model specs."""

from __future__ import annotations

import torch
from torch import nn

from bezkit.models import MLPVelocity
from bezkit.models.factory import model_spec
from bezkit.models.unwrap import unwrap_model
from bezkit.training.distributed import unwrap_model as from_distributed
from bezkit.training.model_io import model_tensors


def test_unwrap_strips_nested_wrappers_and_keeps_plain_models():
    model = MLPVelocity(2, hidden=8, depth=1)
    assert unwrap_model(model) is model
    compiled = torch.compile(model)  # wraps lazily: nothing is compiled here
    assert unwrap_model(compiled) is model
    assert unwrap_model(nn.DataParallel(compiled)) is model
    assert from_distributed is unwrap_model  # one function, re-exported


def test_checkpoints_and_specs_of_a_compiled_model_are_the_plain_models():
    model = MLPVelocity(2, hidden=8, depth=1)
    compiled = torch.compile(model)
    assert model_spec(compiled) == model_spec(model)
    assert model_tensors(compiled).keys() == model_tensors(model).keys()
    assert all(k.startswith("model.net.") for k in model_tensors(compiled))
