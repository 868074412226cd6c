"""One training loop for every method: model + loss + a source of pairs.

    for step in range(steps):
        torch.manual_seed(stream_seed(seed, step, "model"))       # dropout masks
        pairs = sample_batch(batch_size, generator_for(seed, step, "data"))
        loss  = loss_fn(model, pairs, generator_for(seed, step, "loss"))
        AdamW step (warm-up + cosine/constant lr, gradient clipping), EMA update

Each step's random numbers come from generators seeded by ``(seed, step)``, so a run is reproducible,
batches can be prepared ahead in a background thread without changing them, and a resumed run
continues exactly as if it had never stopped.

Under torchrun (a ``torch.distributed`` process group of more than one process) every rank offsets
the seed by its rank, so the ranks draw different batches; the model is wrapped in
``DistributedDataParallel`` (unless it already is), which averages the gradients, so one step is a
step on ``world_size * batch_size`` pairs; only rank 0 shows progress and writes checkpoints.
``TrainResult.raw_model`` is the model that was passed in (a plain model stays plain), trained in
place; ``TrainResult.model`` is the model to sample with: the EMA copy when EMA is on, else
``raw_model``.

With ``config.val_every`` and a ``validation`` function, the model to sample with is scored every
``val_every`` steps and at the last one; the weights with the lowest validation loss (the first on
a tie) are kept as ``TrainResult.best_model`` and saved in every checkpoint (``best.*`` tensors,
``best_step`` / ``best_val_loss`` / ``val_losses`` in the metadata), so a resumed run selects as
an uninterrupted one would.
Ctrl-C (SIGINT) during a run with ``config.checkpoint_path`` (one process, the main thread) ends
the step under way, saves a resumable checkpoint of it (as a periodic one) and then raises
``KeyboardInterrupt``: no training is lost. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import contextlib
import copy
import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bezkit.couplings.pairs import Pairs
from bezkit.models.factory import model_spec
from bezkit.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from bezkit.training.config import SMALL_MODEL_PARAMETERS, TrainConfig
from bezkit.training.device import choose_device
from bezkit.training.distributed import get_rank, get_world_size, unwrap_model, wrap_ddp
from bezkit.training.ema import EMA

__all__ = [
    "BatchFn",
    "LossFn",
    "TrainResult",
    "ValidationFn",
    "generator_for",
    "lr_factor",
    "stream_seed",
    "train",
]

LossFn = Callable[[nn.Module, Pairs, torch.Generator], Tensor]
BatchFn = Callable[[int, torch.Generator], Pairs]
ValidationFn = Callable[[nn.Module], float]

_STREAMS = {"data": 0, "loss": 1}
_MODEL_STREAM_OFFSET = 2**62  # keeps the "model" stream's seeds apart from "data" and "loss"


def stream_seed(seed: int, step: int, stream: str) -> int:
    """The integer seed of stream ``stream`` at ``(seed, step)``.

    ``data``/``loss``: ``(seed * 1_000_003 + 2 * step + {0, 1}) mod 2**63``; ``model`` (the global
    torch RNG that dropout draws from, reseeded every step) adds ``2**62`` to the ``data`` seed.
    """
    if stream == "model":
        return (seed * 1_000_003 + step * 2 + _MODEL_STREAM_OFFSET) % (2**63)
    if stream not in _STREAMS:
        raise ValueError(f"unknown stream {stream!r}; known: data, loss, model")
    return (seed * 1_000_003 + step * 2 + _STREAMS[stream]) % (2**63)


def generator_for(seed: int, step: int, stream: str) -> torch.Generator:
    """A CPU generator seeded by ``(seed, step, stream)`` (see :func:`stream_seed`)."""
    return torch.Generator().manual_seed(stream_seed(seed, step, stream))


@dataclass
class TrainResult:
    """What a training run gives back.

    ``raw_model``: the trained weights (the model passed in, trained in place); ``ema_model``: the
    exponential moving average ``ema <- decay * ema + (1 - decay) * raw`` after every step (None
    without EMA); ``model``: the one to sample with, ``ema_model`` if there is one, else
    ``raw_model``. ``losses``: the loss of every step; ``steps``: the configured step count;
    ``wall_seconds``: the time spent training (this process, resumed steps excluded). With
    validation (``config.val_every``): ``best_model``, a copy of ``model`` at the step
    ``best_step`` of lowest validation loss, and ``val_losses``, ``[step, loss]`` of every
    validation (None and empty without).
    """

    raw_model: nn.Module
    ema_model: nn.Module | None
    losses: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    steps: int = 0
    best_model: nn.Module | None = None
    best_step: int | None = None
    val_losses: list[list[float]] = field(default_factory=list)

    @property
    def model(self) -> nn.Module:
        """The model to sample with: the EMA weights when EMA was used, else the trained ones."""
        return self.ema_model if self.ema_model is not None else self.raw_model


def lr_factor(config: TrainConfig) -> Callable[[int], float]:
    """The learning-rate multiplier at each step: linear warm-up ``(step + 1) / warmup_steps``, then
    constant 1 or cosine ``(1 + cos(pi (step - warmup) / (steps - warmup))) / 2``."""

    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        span = max(1, config.steps - config.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - config.warmup_steps) / span)))

    return factor


def _batches(sample_batch: BatchFn, config: TrainConfig, seed: int, start: int) -> Iterator[Pairs]:
    """Batches in step order; with ``prefetch`` > 0 a daemon thread fills a bounded queue."""
    if config.prefetch == 0:
        for step in range(start, config.steps):
            yield sample_batch(config.batch_size, generator_for(seed, step, "data"))
        return
    q: queue.Queue = queue.Queue(maxsize=config.prefetch)
    stop = threading.Event()

    threads = torch.get_num_threads()  # the pairing thread uses the caller's thread setting

    def producer() -> None:
        torch.set_num_threads(threads)
        try:
            for step in range(start, config.steps):
                item = sample_batch(config.batch_size, generator_for(seed, step, "data"))
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as err:  # hand the error to the consumer
            q.put(err)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    try:
        for _ in range(start, config.steps):
            item = q.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _training_threads(config: TrainConfig, model: nn.Module, device: torch.device) -> int | None:
    """The CPU thread count a run trains with (``TrainConfig.cpu_threads``); None: unchanged."""
    if device.type != "cpu" or config.cpu_threads is None:
        return None
    if config.cpu_threads == "auto":
        small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMETERS
        return 1 if small else None
    return int(config.cpu_threads)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` while the block runs, the caller's count restored."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _DeferredInterrupt:
    """While active (main thread only), the first SIGINT or SIGTERM (``timeout``, a batch
    scheduler's time limit) sets :attr:`requested` instead of raising, so the current step ends
    and is saved; a second one raises ``KeyboardInterrupt``."""

    def __init__(self, active: bool) -> None:
        self.active = active and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _DeferredInterrupt:
        if self.active:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


def _save(
    path: str,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    ema: EMA | None,
    step: int,
    config: TrainConfig,
    losses: list[float],
    run_metadata: dict[str, Any],
    best: _Best | None = None,
) -> None:
    """One resumable checkpoint, committed atomically: weights, EMA, optimizer moments, step,
    losses, the config and the caller's ``run_metadata`` (what a resume needs to rebuild the run:
    data, coupling, objective, ...), in every checkpoint, periodic or final; with validation the
    best weights so far (``best.*``) and the validation record."""
    plain = unwrap_model(model)
    tensors = {f"model.{k}": v for k, v in plain.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    extra: dict[str, Any] = {}
    if best is not None and best.state is not None:
        tensors.update({f"best.{k}": v for k, v in best.state.items()})
        extra = {"best_step": best.step, "best_val_loss": best.loss, "val_losses": best.history}
    opt_state = opt.state_dict()
    for idx, state in opt_state["state"].items():
        for key, val in state.items():
            tensors[f"optimizer.{idx}.{key}"] = torch.as_tensor(val)
    meta = {
        **run_metadata,
        "model": model_spec(plain),
        "train_config": config.to_dict(),
        "step": step,
        "optimizer_param_groups": opt_state["param_groups"],
        "losses": losses,
        **extra,
    }
    save_checkpoint(path, tensors, meta, overwrite=True)


@dataclass
class _Best:
    """The validation record of a run: the lowest loss so far, its step and weights, and every
    ``[step, loss]``."""

    loss: float = math.inf
    step: int | None = None
    state: dict[str, Tensor] | None = None
    history: list[list[float]] = field(default_factory=list)

    def at_step(
        self, done: int, config: TrainConfig, validation: ValidationFn | None, model: nn.Module
    ) -> None:
        """After ``done`` steps: validate ``model`` if it is a validation step (every
        ``config.val_every`` steps, and the last)."""
        if validation is not None and (done % config.val_every == 0 or done == config.steps):
            self.update(done, _validate(validation, model), model)

    def update(self, step: int, loss: float, model: nn.Module) -> None:
        """Record ``loss`` at ``step``; keep a copy of ``model``'s weights if it is the lowest."""
        self.history.append([step, loss])
        if loss < self.loss:
            self.loss, self.step = loss, step
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def _validate(validation: ValidationFn, model: nn.Module) -> float:
    """``validation(model)`` in eval mode without gradients, the model put back in train mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            loss = float(validation(model))
    finally:
        model.train(was_training)
    if not math.isfinite(loss):
        raise FloatingPointError(f"the validation loss is {loss}; lower the lr")
    return loss


def _resume(
    path: str | Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    ema: EMA | None,
    device: torch.device,
    best: _Best | None = None,
) -> tuple[int, list[float]]:
    """Load a checkpoint written by :func:`_save` into the model, EMA and optimizer (and the
    validation record into ``best``); returns ``(step, losses)``. A checkpoint that lacks any part
    of the training state is refused."""
    ckpt = load_checkpoint(path)
    meta = ckpt.metadata
    missing = [k for k in ("step", "optimizer_param_groups") if k not in meta]
    if missing or (not ckpt.section("optimizer") and meta.get("step", 0) > 0):
        raise CheckpointError(
            f"{ckpt.path} is not a resumable training checkpoint (it has no "
            f"{', '.join(missing) or 'optimizer state'})"
        )
    unwrap_model(model).load_state_dict(ckpt.model_state)
    if ema is not None:
        ema_state = ckpt.section("ema")
        if not ema_state:
            raise CheckpointError(f"{ckpt.path} has no EMA weights, but this run uses EMA")
        ema.load_state_dict(ema_state)
    state: dict[int, dict[str, Tensor]] = {}
    for key, val in ckpt.section("optimizer").items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val.to(device) if name != "step" else val
    opt.load_state_dict({"state": state, "param_groups": meta["optimizer_param_groups"]})
    if best is not None and ckpt.section("best"):
        best.state = {k: v.to(device) for k, v in ckpt.section("best").items()}
        best.loss, best.step = float(meta["best_val_loss"]), int(meta["best_step"])
        best.history = [list(item) for item in meta.get("val_losses", [])]
    return int(meta["step"]), list(meta.get("losses", []))


def train(
    model: nn.Module,
    loss_fn: LossFn,
    sample_batch: BatchFn,
    config: TrainConfig,
    *,
    resume_from: str | Path | None = None,
    checkpoint_metadata: dict[str, Any] | None = None,
    validation: ValidationFn | None = None,
) -> TrainResult:
    """Train ``model`` in place to minimise ``loss_fn`` on batches from ``sample_batch``.

    With ``config.checkpoint_path`` and ``config.checkpoint_every``, rank 0 saves a resumable
    checkpoint every ``checkpoint_every`` steps and at the end, each carrying
    ``checkpoint_metadata`` (JSON-able: whatever the caller needs to rebuild the run on resume).
    ``resume_from`` continues from such a checkpoint exactly where it stopped. ``validation``
    (with ``config.val_every``, and only with it): ``validation(model) -> float``, a loss measured
    on held-out data every ``val_every`` steps; the lowest one's weights are ``best_model``.
    """
    if (validation is None) != (config.val_every == 0):
        raise ValueError(
            "validation and config.val_every go together: give both (selection by validation "
            "loss) or neither"
        )
    device = choose_device(config.device)
    rank = get_rank()
    seed = config.seed + rank
    torch.manual_seed(seed)
    given = model.to(device).train()
    if model is unwrap_model(model):  # a plain model: DDP-wrapped under torchrun only
        model = wrap_ddp(model)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(config))
    ema = EMA(unwrap_model(model), config.ema_decay) if config.ema_decay else None
    run_metadata = dict(checkpoint_metadata or {})
    start, losses = 0, list[float]()
    best = _Best() if validation is not None else None
    if resume_from is not None:
        start, losses = _resume(resume_from, model, opt, ema, device, best)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(config), last_epoch=start - 1)
    # torch.compile of a module returns an OptimizedModule (an nn.Module); its stub says Callable
    forward = cast(nn.Module, torch.compile(model)) if config.compile else model
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if config.amp and device.type == "cuda"
        else contextlib.nullcontext()
    )
    t0 = time.perf_counter()
    bar = tqdm(
        total=config.steps,
        initial=start,
        desc=config.desc,
        disable=not config.progress or rank != 0,
        leave=False,
    )
    can_save = bool(config.checkpoint_path) and rank == 0 and get_world_size() == 1
    threads = _training_threads(config, given, device)
    with _DeferredInterrupt(can_save) as interrupt, _torch_threads(threads):
        _loop(
            model, forward, loss_fn, sample_batch, config, seed, start, opt, sched, ema, losses,
            run_metadata, device, autocast, bar, rank, interrupt, best, validation,
        )  # fmt: skip
    bar.close()
    given.eval()
    result = TrainResult(
        raw_model=given,
        ema_model=ema.model if ema else None,
        losses=losses,
        wall_seconds=time.perf_counter() - t0,
        steps=config.steps,
    )
    if best is not None and best.state is not None:
        result.best_model = copy.deepcopy(result.model).eval()
        result.best_model.load_state_dict(best.state)
        result.best_step, result.val_losses = best.step, best.history
    return result


def _loop(
    model: nn.Module,
    forward: nn.Module,
    loss_fn: LossFn,
    sample_batch: BatchFn,
    config: TrainConfig,
    seed: int,
    start: int,
    opt: torch.optim.Optimizer,
    sched: Any,
    ema: EMA | None,
    losses: list[float],
    run_metadata: dict[str, Any],
    device: torch.device,
    autocast: Any,
    bar: Any,
    rank: int,
    interrupt: _DeferredInterrupt,
    best: _Best | None,
    validation: ValidationFn | None,
) -> None:
    """The steps ``start .. config.steps - 1`` (module docstring); on a deferred Ctrl-C, the
    checkpoint of the last finished step, then ``KeyboardInterrupt``."""
    saved = start
    for step, pairs in enumerate(_batches(sample_batch, config, seed, start), start=start):
        # the global RNG (dropout masks) is a per-(seed, step) stream, so a resumed run is exact
        torch.manual_seed(stream_seed(seed, step, "model"))
        pairs = pairs.to(device)
        with autocast:
            loss = loss_fn(forward, pairs, generator_for(seed, step, "loss"))
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss became {float(loss.detach())} at step {step}; lower the lr"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(unwrap_model(model))
        losses.append(float(loss.detach()))
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        done = step + 1
        if best is not None:
            best.at_step(done, config, validation, ema.model if ema else unwrap_model(model))
        if (
            config.checkpoint_path
            and config.checkpoint_every
            and rank == 0
            and (done % config.checkpoint_every == 0 or done == config.steps)
        ):
            _save(config.checkpoint_path, model, opt, ema, done, config, losses, run_metadata, best)
            saved = done
        if interrupt.requested:
            if config.checkpoint_path and saved != done:
                _save(
                    config.checkpoint_path,
                    model,
                    opt,
                    ema,
                    done,
                    config,
                    losses,
                    run_metadata,
                    best,
                )
            raise KeyboardInterrupt
