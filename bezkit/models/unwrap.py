"""The plain model inside the wrappers PyTorch puts around one: bezkit's one ``unwrap_model``.

``DistributedDataParallel`` keeps the model as ``.module`` and ``torch.compile`` as
``._orig_mod``; their ``state_dict`` keys carry a prefix (``module.``, ``_orig_mod.``) and their
class is not the model's. Checkpoints, EMA and ``model_spec`` work on the unwrapped model so a
checkpoint is the same whichever wrappers trained it. A plain ``DataParallel`` unwraps too.
"""

from __future__ import annotations

from torch import nn

__all__ = ["unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The innermost model: strips ``DistributedDataParallel`` / ``DataParallel`` (``.module``)
    and ``torch.compile`` (``._orig_mod``) wrappers, nested in any order; a plain model is
    returned as it is."""
    while True:
        inner = (
            model.module
            if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel))
            else getattr(model, "_orig_mod", None)
        )
        if not isinstance(inner, nn.Module):
            return model
        model = inner
