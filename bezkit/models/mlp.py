"""A velocity field ``v(x, t)`` for d-dimensional data: an MLP on ``[x, emb(t)]``.

    h_0 = [x, emb(t)],   h_{l+1} = act(W_l h_l + b_l),   v = W_out h_L + b_out

``out_dim`` defaults to ``dim``; B-DENSE uses ``K * dim`` (one block per branch). ``act`` is SiLU
(default) or SELU; ``emb(t)`` the sinusoidal features (default) or ``t`` itself (``time_input=
"raw"``). ``MODEL_SHAPES`` names two shapes: ``bezkit`` (SiLU, sinusoidal t, width and depth as
given) and ``torchcfm``, the torchcfm runner's 2D network (``VelocityNet``: 3 hidden layers of
width 64, SELU, raw t; github.com/atong01/conditional-flow-matching,
``runner/configs/model/cfm.yaml``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bezkit.models.time_embedding import SinusoidalTimeEmbedding

__all__ = ["ACTIVATIONS", "MODEL_SHAPES", "TIME_INPUTS", "MLPVelocity"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "selu": nn.SELU}
TIME_INPUTS: tuple[str, ...] = ("sinusoidal", "raw")
#: named network shapes: the keyword arguments of MLPVelocity they fix
MODEL_SHAPES: dict[str, dict[str, object]] = {
    "bezkit": {"activation": "silu", "time_input": "sinusoidal"},
    "torchcfm": {"hidden": 64, "depth": 3, "activation": "selu", "time_input": "raw"},
}


class MLPVelocity(nn.Module):
    """A velocity field ``v(x, t)`` on ``(n, dim)`` points: ``h_0 = [x, emb(t)]``,
    ``h_{l+1} = act(W_l h_l + b_l)`` for ``depth`` layers of width ``hidden``,
    ``v = W_out h_L + b_out`` with ``out_dim`` outputs (default ``dim``); ``act`` is
    ``activation`` ("silu" or "selu"), ``emb(t)`` the sinusoidal features of ``time_dim`` or, with
    ``time_input="raw"``, ``t`` itself (one input)."""

    def __init__(
        self,
        dim: int = 2,
        *,
        hidden: int = 256,
        depth: int = 3,
        time_dim: int = 64,
        out_dim: int | None = None,
        activation: str = "silu",
        time_input: str = "sinusoidal",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        if time_input not in TIME_INPUTS:
            raise ValueError(f"unknown time_input {time_input!r}; known: {', '.join(TIME_INPUTS)}")
        if dim < 1 or hidden < 1 or depth < 1:
            raise ValueError(
                f"MLPVelocity needs dim, hidden, depth >= 1, got {dim}, {hidden}, {depth}"
            )
        self.dim, self.hidden, self.depth, self.time_dim = dim, hidden, depth, time_dim
        self.out_dim = dim if out_dim is None else out_dim
        self.activation, self.time_input = activation, time_input
        self.time_embedding = SinusoidalTimeEmbedding(time_dim)
        layers: list[nn.Module] = []
        width = dim + (time_dim if time_input == "sinusoidal" else 1)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        layers.append(nn.Linear(width, self.out_dim))
        self.net = nn.Sequential(*layers)

    def config(self) -> dict[str, int | str]:
        """The constructor arguments, stored in checkpoints to rebuild the model (``activation``
        and ``time_input`` only when not the defaults, so older specs stay as they were)."""
        out: dict[str, int | str] = {
            "dim": self.dim,
            "hidden": self.hidden,
            "depth": self.depth,
            "time_dim": self.time_dim,
            "out_dim": self.out_dim,
        }
        if self.activation != "silu":
            out["activation"] = self.activation
        if self.time_input != "sinusoidal":
            out["time_input"] = self.time_input
        return out

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``v(x, t)`` for ``x`` of shape ``(n, dim)`` and ``t`` of shape ``(n,)``, in the dtype of
        the weights (a mismatch is a ``ValueError`` saying which conversion to make)."""
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"MLPVelocity expects x of shape (n, {self.dim}), got {got}")
        if not isinstance(t, Tensor):
            raise ValueError(
                f"t must be a tensor of shape ({x.shape[0]},), got {type(t).__name__} {t!r}; "
                "use torch.full((n,), t)"
            )
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        weight = self.net[0].weight
        if x.dtype != weight.dtype:
            raise ValueError(
                f"MLPVelocity has {weight.dtype} weights but x is {x.dtype}: use "
                f"x.to({weight.dtype}) (or convert the model, e.g. model.double())"
            )
        if self.time_input == "raw":
            return self.net(torch.cat([x, t.to(x.dtype)[:, None]], dim=1))
        return self.net(torch.cat([x, self.time_embedding(t).to(x.dtype)], dim=1))
