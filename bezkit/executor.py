"""Where tasks run (the experiment's pairs): in this process, in local worker processes, or on a Dask
cluster, all through one ``concurrent.futures``-style interface.

- ``jobs == 1`` and no scheduler: the tasks run here, in order (no executor).
- ``jobs > 1``: a :class:`~concurrent.futures.ProcessPoolExecutor` of freshly *spawned* workers.
  Each worker ignores SIGINT (the parent decides; it starts with SIGINT blocked, so a Ctrl-C to
  the terminal's process group while it starts up prints no traceback from it), asks Linux to
  SIGKILL it when the parent dies
  (``prctl(PR_SET_PDEATHSIG)``), and checks twice a second that its parent is alive (other
  systems, and the moment before ``prctl``): a killed parent leaves no worker behind.
- ``scheduler="tcp://host:8786"``: the tasks go to that Dask distributed scheduler through
  ``Client(address).get_executor()`` (the optional extra ``bezkit[dask]``). Any Dask cluster will
  do: ``dask scheduler`` + ``dask worker`` on several machines, or ``dask-jobqueue``'s
  ``SLURMCluster`` (its ``scheduler_address``).

:func:`run_tasks` hands every result to ``on_done`` as soon as it arrives (the caller keeps it
durably). A task whose worker dies is submitted again (``retries`` times; Dask also retries it on
its own before it reports ``KilledWorker``), then reported as :class:`WorkerLost`: never dropped.
On Ctrl-C the workers are killed at once and :class:`KeyboardInterrupt` propagates; the results
already handed to ``on_done`` are kept.

This module imports only the standard library (Dask when a scheduler is given), so a worker
imports torch only when its task needs it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, TypeVar

__all__ = [
    "AUTO_JOBS_MAX",
    "KeptExecutor",
    "Task",
    "WorkerLost",
    "auto_jobs",
    "dask_available",
    "executor_factory",
    "local_executor",
    "run_tasks",
]

_PR_SET_PDEATHSIG = 1
_parent_pid: int | None = None  # set in a worker by _init_worker
_started_with_sigint_blocked: bool | None = None  # likewise: how the worker started


_T = TypeVar("_T")

#: ``--jobs auto`` uses the usable cores, at most this many workers (each worker of the 2D
#: experiment holds about 0.5 GB: torch, its pair's draws and models).
AUTO_JOBS_MAX = 2


def auto_jobs() -> int:
    """The worker count ``--jobs auto`` means: the cores this process may use (its CPU affinity,
    e.g. under taskset or a container's CPU set), at most :data:`AUTO_JOBS_MAX`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, AUTO_JOBS_MAX))


class WorkerLost(RuntimeError):
    """A task's worker died more often than it may be retried."""


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args)`` in a worker (``fn`` importable there, e.g. a module-level
    function of bezkit), named ``name`` in messages."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = field(default_factory=tuple)


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def _init_worker(parent: int) -> None:
    """A local worker's initializer: ignore SIGINT, die with the parent (module docstring)."""
    global _parent_pid, _started_with_sigint_blocked
    _parent_pid = parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked by _WorkerPool.submit until now
        before = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        _started_with_sigint_blocked = signal.SIGINT in before
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Run a task in a worker (a local worker first checks that its parent is alive)."""
    if _parent_pid is not None and os.getppid() != _parent_pid:
        os._exit(1)
    return fn(*args)


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread for the block (a Ctrl-C meanwhile is delivered after it)."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _WorkerPool(ProcessPoolExecutor):
    """A process pool whose workers are started (in ``submit``) with SIGINT blocked: a blocked
    signal stays blocked across ``exec``, so a worker cannot be interrupted before its
    initializer ignores SIGINT (as :mod:`multiprocessing.resource_tracker` starts its process)."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        with _sigint_blocked():
            return super().submit(fn, *args, **kwargs)


def local_executor(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` spawned worker processes that die with this process (module docstring)."""
    return _WorkerPool(
        max_workers=jobs,
        mp_context=get_context("spawn"),  # no fork of a process whose torch thread pools run
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )


def dask_available() -> bool:
    """Whether ``dask.distributed`` can be imported (the ``bezkit[dask]`` extra)."""
    return importlib.util.find_spec("distributed") is not None


@contextmanager
def executor_factory(
    jobs: int, scheduler: str | None = None
) -> Iterator[Callable[[], Executor] | None]:
    """``with executor_factory(jobs, scheduler) as new:`` gives ``new()``, a fresh executor each
    call (after a worker died, a local pool is broken and needs a new one), or ``None`` for
    in-process work (``jobs == 1``, no scheduler). With ``scheduler`` one Dask client is
    connected for the whole block."""
    if scheduler is None:
        yield (lambda: local_executor(jobs)) if jobs > 1 else None
        return
    if not dask_available():
        raise ModuleNotFoundError(
            "running on a Dask scheduler needs dask.distributed: pip install 'bezkit[dask]'"
        )
    from distributed import Client  # the optional dask extra, only with a scheduler

    try:
        client = Client(scheduler, set_as_default=False)
    except (OSError, ValueError) as err:
        raise ConnectionError(f"cannot reach the Dask scheduler {scheduler!r}: {err}") from None
    try:
        yield lambda: client.get_executor(pure=False)
    finally:
        client.close()


def _worker_died(err: BaseException) -> bool:
    return isinstance(err, BrokenProcessPool) or type(err).__name__ == "KilledWorker"


def _stop(executor: Executor) -> None:
    """Stop an executor now: cancel what has not started, kill local workers."""
    processes = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(OSError, AttributeError):  # already gone
            process.kill()
    try:
        executor.shutdown(wait=False, cancel_futures=True)
    except TypeError:  # Dask's executor: shutdown(wait=False) cancels what has not finished
        executor.shutdown(wait=False)


class KeptExecutor:
    """One executor kept for several :func:`run_tasks` calls (the worker processes start once and
    keep what they loaded), made by ``new()`` on first use; :func:`run_tasks` replaces it when a
    worker died (a local pool is then broken). ``close()`` shuts it down; use it as a context
    manager."""

    def __init__(self, new: Callable[[], Executor]) -> None:
        self._new = new
        self._executor: Executor | None = None

    def get(self) -> Executor:
        """The executor (started now if it is not running)."""
        if self._executor is None:
            self._executor = self._new()
        return self._executor

    def discard(self, *, stop: bool) -> None:
        """Forget the executor: stopped at once (``stop``) or after its work."""
        executor, self._executor = self._executor, None
        if executor is not None:
            if stop:
                _stop(executor)
            else:
                executor.shutdown(wait=True)

    def close(self) -> None:
        self.discard(stop=False)

    def __enter__(self) -> KeptExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard(stop=exc[0] is not None)


def run_tasks(
    tasks: Sequence[Task],
    on_done: Callable[[int, Any], None],
    new_executor: Callable[[], Executor] | KeptExecutor | None,
    *,
    retries: int = 2,
) -> None:
    """Run every task and call ``on_done(index, result)`` for each as it finishes (in this
    process, in the order results arrive). ``new_executor`` ``None``: in this process, in order;
    a :class:`KeptExecutor`: its executor, left running for the next call. A task whose worker
    dies is run again up to ``retries`` times, then :class:`WorkerLost`; any other error of a
    task propagates. Ctrl-C stops the workers at once."""
    if new_executor is None:
        for i, task in enumerate(tasks):
            on_done(i, task.fn(*task.args))
        return
    kept = new_executor if isinstance(new_executor, KeptExecutor) else None
    pending = list(range(len(tasks)))
    deaths = dict.fromkeys(pending, 0)
    while pending:
        executor = kept.get() if kept is not None else new_executor()  # type: ignore[operator]
        died = False
        try:
            futures: dict[Future[Any], int] = {
                executor.submit(_call, tasks[i].fn, tasks[i].args): i for i in pending
            }
            for future in as_completed(futures):
                i = futures[future]
                try:
                    value = future.result()
                except Exception as err:
                    if not _worker_died(err):
                        raise
                    deaths[i] += 1
                    died = True
                    if deaths[i] > retries:
                        raise WorkerLost(
                            f"{tasks[i].name}: the worker running it died, {deaths[i]} time(s) "
                            f"of {retries + 1} allowed ({type(err).__name__}: {err}); the "
                            "finished tasks are kept"
                        ) from err
                    continue
                on_done(i, value)
                pending.remove(i)
        except BaseException:
            if kept is not None:
                kept.discard(stop=True)
            else:
                _stop(executor)
            raise
        if kept is None:
            executor.shutdown(wait=True)
        elif died:  # a local pool with a dead worker is broken: the next call starts a new one
            kept.discard(stop=False)
