"""Shared fixtures of the core test suite.

Everything here is seeded: a test that uses random numbers gets them from a ``torch.Generator`` (or a
numpy ``Generator``) with a fixed seed, so a failure is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from bezkit.cli import main


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU torch generator seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def make_gen() -> Callable[[int], torch.Generator]:
    """``make_gen(seed)`` -> a fresh CPU torch generator with that seed."""
    return lambda seed=0: torch.Generator().manual_seed(seed)


@pytest.fixture
def np_rng() -> np.random.Generator:
    """A numpy generator seeded with 0."""
    return np.random.default_rng(0)


class CountingField:
    """A velocity field ``f(x, t)`` wrapped to count its evaluations (the solvers' NFE)."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.shape == (x.shape[0],), "solvers must pass t of shape (n,)"
        self.calls += 1
        return self.fn(x, t)


@pytest.fixture
def counting() -> type[CountingField]:
    """The :class:`CountingField` class: ``counting(fn)`` wraps ``fn`` and counts its calls."""
    return CountingField


@pytest.fixture(autouse=True)
def single_thread():
    """Every test runs on one torch thread; the setting it found is restored afterwards (also
    when a test or a fixture changed it).

    The tests use tiny models, for which a second intra-op thread buys nothing; on a busy 2-core
    machine an OpenMP team competing with other processes makes them up to 10x slower. No result
    may depend on the count (docs/CONTRIBUTING.md): a test that needs another sets it itself.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_job_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--jobs auto`` means one worker in the suite (no worker processes unless a test asks for
    them with ``--jobs N``): the tests stay as fast on a 2-core machine under load."""
    monkeypatch.setattr("bezkit.executor.AUTO_JOBS_MAX", 1)


@pytest.fixture
def cli_error(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], str]:
    """``cli_error(argv)``: run ``bezkit argv`` in process; it must fail with exit status 2 and a
    one-line message starting with ``bezkit`` and no traceback. Returns that line."""

    def run(argv: list[str]) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith("bezkit"), lines[0]
        return lines[0]

    return run
