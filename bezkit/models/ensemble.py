"""S models of one architecture run as one vectorised module on *seed-blocked* batches.

Seed-block layout: a batch of ``S * n`` rows holds ``S`` consecutive blocks of ``n`` rows; block ``s``
(rows ``s * n .. (s + 1) * n - 1``) belongs to model ``s``:

    x = cat([x_0, ..., x_{S-1}]),   t = cat([t_0, ..., t_{S-1}])
    EnsembleVelocity(models)(x, t) = cat([models[0](x_0, t_0), ..., models[S-1](x_{S-1}, t_{S-1})])

The weights of the S models are stacked along a new leading axis (``torch.func.stack_module_state``).
``MLPVelocity`` and ``BranchedVelocity`` over an ``MLPVelocity`` run each layer for all S blocks as
one batched matrix product (``torch.baddbmm``); any other architecture runs through one
``torch.func.vmap`` of ``functional_call``. Either way the S forward (and backward) passes cost
about one call of the Python and kernel overhead that dominates tiny 2D models. ``model(x, t)`` is the velocity convention, so ``solve_ode(ensemble, x)`` integrates
the S flows at once; :meth:`EnsembleVelocity.call` runs any other method of the wrapped models (e.g.
``branches`` of a ``BranchedVelocity``) the same way, and :meth:`EnsembleVelocity.unstack` gives the
S plain models back.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from bezkit.models.branched import BranchedVelocity
from bezkit.models.mlp import MLPVelocity

__all__ = ["EnsembleVelocity", "seed_block_size"]


def seed_block_size(total: int, blocks: int) -> int:
    """The rows per seed block of a seed-blocked batch of ``total`` rows and ``blocks`` seeds."""
    if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 1:
        raise ValueError(f"the number of seed blocks must be an int >= 1, got {blocks!r}")
    if total % blocks:
        raise ValueError(
            f"a seed-blocked batch must split into {blocks} equal blocks, got {total} rows"
        )
    return total // blocks


class _StackedMLP(nn.Module):
    """An ``MLPVelocity`` forward on a seed-blocked batch with the ensemble's stacked weights.

    ``h_0 = [x_s, emb_s(t_s)]``, ``h_{l+1} = SiLU(h_l W_{l,s}^T + b_{l,s})`` for every seed block s at
    once with ``torch.baddbmm`` (the same arithmetic as S separate ``nn.Linear`` calls, without
    ``vmap``'s per-call overhead, which dominates for tiny 2D models).
    """

    def __init__(self, owner: EnsembleVelocity, mlp: MLPVelocity, prefix: str) -> None:
        super().__init__()
        self._owner = [owner]  # a plain list: the owner's weights are not registered twice
        self.dim = mlp.dim
        self.plan: list[tuple[str, str] | None] = []  # (weight, bias) names, or None for SiLU
        for i, layer in enumerate(mlp.net):
            if isinstance(layer, nn.Linear):
                self.plan.append((f"{prefix}net.{i}.weight", f"{prefix}net.{i}.bias"))
            elif isinstance(layer, nn.SiLU):
                self.plan.append(None)
            else:
                raise TypeError(f"no stacked form for layer {type(layer).__name__}")
        self.freqs_name = f"{prefix}time_embedding.freqs"

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        owner = self._owner[0]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"MLPVelocity expects x of shape (n, {self.dim}), got {tuple(x.shape)}"
            )
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        s = owner.num_models
        n = seed_block_size(x.shape[0], s)
        params, buffers = owner.stacked_state()
        angles = t.float().reshape(s, n, 1) * buffers[self.freqs_name][:, None, :]
        emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=2)
        h = torch.cat([x.reshape(s, n, -1), emb.to(x.dtype)], dim=2)
        for step in self.plan:
            if step is None:
                h = torch.nn.functional.silu(h)
            else:
                w, b = params[step[0]], params[step[1]]
                h = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
        return h.reshape(s * n, -1)


def _stacked_form(owner: EnsembleVelocity, template: nn.Module) -> nn.Module | None:
    """A module computing ``template``'s methods on seed-blocked batches without ``vmap``, or
    ``None`` when there is none (then ``vmap`` of ``functional_call`` is used)."""
    if type(template) is MLPVelocity:
        return _StackedMLP(owner, template, "")
    if type(template) is BranchedVelocity and type(template.net) is MLPVelocity:
        core = _StackedMLP(owner, template.net, "net.")
        return BranchedVelocity(
            core, template.num_branches, channel_dim=template.channel_dim, times=template.times
        )
    return None


class _MethodCall(nn.Module):
    """``forward(*args)`` calls ``module.<method>(*args)``: lets ``functional_call`` reach any method."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.module = module
        self.method = method

    def forward(self, *args: Tensor) -> Tensor:
        return getattr(self.module, self.method)(*args)


def _check_same_architecture(models: Sequence[nn.Module]) -> None:
    if len(models) < 1:
        raise ValueError("an ensemble needs at least one model")
    first = models[0]
    kind = type(first)
    shapes = {k: v.shape for k, v in first.state_dict().items()}
    for i, m in enumerate(models[1:], start=1):
        if type(m) is not kind:
            raise TypeError(
                f"ensemble models must share one class: model 0 is {kind.__name__}, "
                f"model {i} is {type(m).__name__}"
            )
        other = {k: v.shape for k, v in m.state_dict().items()}
        if other != shapes:
            raise ValueError(
                f"ensemble models must share one architecture: model {i}'s weights differ in "
                f"names or shapes from model 0's"
            )
        first_config, other_config = getattr(first, "config", None), getattr(m, "config", None)
        if callable(first_config) and callable(other_config) and first_config() != other_config():
            raise ValueError(
                f"ensemble models must share one architecture: model {i} has config "
                f"{other_config()}, model 0 has {first_config()}"
            )


class EnsembleVelocity(nn.Module):
    """S same-architecture models stacked into one module that runs seed-blocked batches.

    Args:
        models: the S models (same class and weight shapes; their weights are copied, the models
            themselves are not modified).

    Attributes:
        num_models: S.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        models = list(models)
        _check_same_architecture(models)
        modes = [m.training for m in models]
        with torch.no_grad():  # stack_module_state wants one train/eval mode: lend model 0's
            params, buffers = stack_module_state([m.train(modes[0]) for m in models])
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
        self.num_models = len(models)
        self.param_names = tuple(params)
        self.buffer_names = tuple(buffers)
        self.params = nn.ParameterList(
            [nn.Parameter(p.detach().clone(), requires_grad=True) for p in params.values()]
        )
        for i, b in enumerate(buffers.values()):
            self.register_buffer(f"stacked_buffer_{i}", b.detach().clone())
        # The skeleton that functional_call fills with each model's weights (never trained itself).
        self._skeleton = [copy.deepcopy(models[0]).to("meta")]
        self._callers: dict[str, nn.Module] = {}
        # MLPVelocity and BranchedVelocity(MLPVelocity) run as batched matrix products: rows are
        # independent outside the network, so only the network needs the stacked weights.
        self._fast: list[nn.Module | None] = [None]
        with contextlib.suppress(TypeError):
            self._fast[0] = _stacked_form(self, self.template)

    def train(self, mode: bool = True) -> EnsembleVelocity:
        """Set train / eval mode here and on the wrapped architecture (what its layers see)."""
        super().train(mode)
        self.template.train(mode)
        if self._fast[0] is not None:
            self._fast[0].train(mode)
        return self

    @property
    def vectorised_by(self) -> str:
        """``"batched-matmul"`` (MLPVelocity, BranchedVelocity over one) or ``"vmap"``."""
        return "vmap" if self._fast[0] is None else "batched-matmul"

    @property
    def template(self) -> nn.Module:
        """The wrapped architecture (weights on the meta device: a skeleton, not a model)."""
        return self._skeleton[0]

    def stacked_state(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``(params, buffers)`` by the wrapped model's names, each of shape ``(S, *shape)``."""
        params = dict(zip(self.param_names, self.params, strict=True))
        buffers = {
            name: getattr(self, f"stacked_buffer_{i}") for i, name in enumerate(self.buffer_names)
        }
        return params, buffers

    def call(self, method: str, x: Tensor, t: Tensor) -> Tensor:
        """``cat_s models[s].<method>(x_s, t_s)`` on the seed-blocked ``x`` ``(S*n, *d)``, ``t`` ``(S*n,)``.

        The output keeps the seed-block layout along its first axis.
        """
        s = self.num_models
        if not isinstance(x, Tensor) or x.ndim < 2:
            raise ValueError(f"x must be a tensor of shape (S * n, *data_shape), got {x!r:.80}")
        n = seed_block_size(x.shape[0], s)
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        fast = self._fast[0]
        if fast is not None and callable(getattr(type(fast), method, None)):
            return getattr(fast, method)(x, t)
        caller = self._callers.get(method)
        if caller is None:
            if not callable(getattr(self.template, method, None)):
                raise AttributeError(
                    f"{type(self.template).__name__} has no method {method!r} to run per seed"
                )
            caller = _MethodCall(self.template, method)
            self._callers[method] = caller
        params, buffers = self.stacked_state()
        prefixed = {
            **{f"module.{k}": v for k, v in params.items()},
            **{f"module.{k}": v for k, v in buffers.items()},
        }

        def one(state: dict[str, Tensor], xb: Tensor, tb: Tensor) -> Tensor:
            return functional_call(caller, state, (xb, tb))

        out = vmap(one)(prefixed, x.reshape(s, n, *x.shape[1:]), t.reshape(s, n))
        return out.reshape(s * n, *out.shape[2:])

    def forward(self, x: Tensor, t: Tensor, *, branches: bool = False) -> Tensor:
        """The S velocity fields on their seed blocks: ``cat_s models[s](x_s, t_s)``.

        ``branches=True`` gives the per-seed branch outputs instead (see :meth:`branches`), the
        ``model(x, t, branches=True)`` convention of ``BranchedVelocity`` that ``BDenseLoss`` uses.
        """
        return self.call("branches" if branches else "forward", x, t)

    def branches(self, x: Tensor, t: Tensor) -> Tensor:
        """``BranchedVelocity.branches`` per seed block, shape ``(S*n, K, *d)``."""
        return self.call("branches", x, t)

    @property
    def times(self) -> tuple[float, ...]:
        """The branch times of wrapped ``BranchedVelocity`` models."""
        if not hasattr(self.template, "times"):
            raise AttributeError(f"{type(self.template).__name__} models have no branch times")
        return tuple(float(x) for x in getattr(self.template, "times"))  # noqa: B009 (typed access)

    @property
    def num_branches(self) -> int:
        """The number of branches of wrapped ``BranchedVelocity`` models."""
        if not hasattr(self.template, "num_branches"):
            raise AttributeError(f"{type(self.template).__name__} models have no branches")
        return int(getattr(self.template, "num_branches"))  # noqa: B009 (typed access)

    @torch.no_grad()
    def load_into(
        self, models: Sequence[nn.Module], *, params: Sequence[Tensor] | None = None
    ) -> None:
        """Copy model ``s``'s stacked weights into ``models[s]`` (in place).

        ``params`` replaces this ensemble's stacked parameters (same order and shapes as
        ``self.params``), e.g. an exponential moving average of them."""
        if len(models) != self.num_models:
            raise ValueError(f"need {self.num_models} models to load into, got {len(models)}")
        stacked, buffers = self.stacked_state()
        if params is not None:
            given = list(params)
            if [p.shape for p in given] != [p.shape for p in self.params]:
                raise ValueError("params must match the ensemble's stacked parameters in shape")
            stacked = dict(zip(self.param_names, given, strict=True))
        for s, m in enumerate(models):
            own = dict(m.named_parameters())
            own_buffers = dict(m.named_buffers())
            for k, v in stacked.items():
                own[k].copy_(v[s])
            for k, v in buffers.items():
                own_buffers[k].copy_(v[s])

    def unstack(self) -> list[nn.Module]:
        """The S models as plain, independent modules (eval mode, on this ensemble's device)."""
        params, _ = self.stacked_state()
        device = next(iter(params.values())).device
        models = [
            copy.deepcopy(self.template).to_empty(device=device) for _ in range(self.num_models)
        ]
        self.load_into(models)
        for m in models:
            m.eval()
        return models

    def extra_repr(self) -> str:
        """The number of models and their class, for ``repr``."""
        return f"num_models={self.num_models}, model={type(self.template).__name__}"
