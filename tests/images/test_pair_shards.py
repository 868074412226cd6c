"""Sharded reflow-pair generation: exact counts, interruption and resume, config checks, reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from bezkit.couplings.pair_shards import (
    MANIFEST_NAME,
    PairShardDataset,
    generate_pair_shards,
    shard_file_name,
    shard_seed,
)
from bezkit.couplings.pairs import Pairs
from bezkit.solvers.ode import solve_ode

SHAPE = (1, 4, 4)
N_PAIRS, SHARD, BATCH, STEPS = 50, 8, 3, 4  # 7 shards, the last one holds 2 pairs
CALLS_PER_FULL_SHARD = 3 * STEPS  # ceil(8 / 3) batches, Euler: one call per step


class Noise:
    """Standard normal images of shape SHAPE."""

    data_shape = SHAPE
    name = "noise"

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, *SHAPE, generator=generator)


class Teacher(nn.Module):
    """``v(x, t) = a * x + t`` with a learnable scalar ``a``; counts its calls and can be told to
    crash after ``fail_after`` calls (simulating an interrupted job)."""

    def __init__(self, a: float = -0.5, fail_after: int | None = None) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.calls = 0
        self.fail_after = fail_after

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated interruption")
        self.calls += 1
        return self.a * x + t[:, None, None, None]


def _generate(out: Path, teacher: Teacher, **kw: object) -> object:
    args = {"n_pairs": N_PAIRS, "shard_size": SHARD, "steps": STEPS, "method": "euler",
            "seed": 7, "batch_size": BATCH, "progress": False}  # fmt: skip
    args.update(kw)
    return generate_pair_shards(teacher, Noise(), out, **args)  # type: ignore[arg-type]


def _all_pairs(out: Path) -> tuple[Tensor, Tensor]:
    shards = list(PairShardDataset(out).iter_shards())
    return torch.cat([p.x0 for p in shards]), torch.cat([p.x1 for p in shards])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tensor, Tensor]:
    out = tmp_path_factory.mktemp("reference")
    report = _generate(out, Teacher())
    assert report.generated == tuple(range(7)) and report.skipped == () and report.complete
    x0, x1 = _all_pairs(out)
    return out, x0, x1


def test_uninterrupted_run_layout_and_content(reference: tuple[Path, Tensor, Tensor]) -> None:
    out, x0, x1 = reference
    assert x0.shape == x1.shape == (N_PAIRS, *SHAPE)
    assert sorted(p.name for p in out.glob("*.safetensors")) == [
        shard_file_name(i) for i in range(7)
    ]
    assert not list(out.glob(".*"))  # no temporary files left behind
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] and [s["count"] for s in manifest["shards"]] == [8] * 6 + [2]
    # shard i's noise comes from a generator seeded by (seed, i) alone
    g = torch.Generator().manual_seed(shard_seed(7, 3))
    torch.testing.assert_close(x0[24:32], Noise().sample(8, g), rtol=0, atol=0)
    # and its endpoints are the teacher's Euler solution
    expected = solve_ode(Teacher(), x0, method="euler", steps=STEPS).x
    torch.testing.assert_close(x1, expected)
    assert len(torch.unique(x0.flatten(1), dim=0)) == N_PAIRS  # no duplicated pair


def test_interrupted_run_resumes_without_loss_or_duplication(
    tmp_path: Path, reference: tuple[Path, Tensor, Tensor]
) -> None:
    _, ref_x0, ref_x1 = reference
    crashing = Teacher(fail_after=2 * CALLS_PER_FULL_SHARD + 5)  # dies inside shard 2
    with pytest.raises(RuntimeError, match="simulated interruption"):
        _generate(tmp_path, crashing)
    done = sorted(p.name for p in tmp_path.glob("pairs-*.safetensors"))
    assert done == [shard_file_name(0), shard_file_name(1)]
    assert not list(tmp_path.glob(".*"))  # the crash left no partial file
    with pytest.raises(ValueError, match="incomplete"):
        PairShardDataset(tmp_path)

    teacher = Teacher()
    report = _generate(tmp_path, teacher)
    assert report.skipped == (0, 1) and report.generated == (2, 3, 4, 5, 6) and report.complete
    # exactly the missing pairs were generated: 4 full shards and one of 2 pairs (1 batch)
    assert teacher.calls == 4 * CALLS_PER_FULL_SHARD + STEPS
    assert report.nfe == (N_PAIRS - 16) * STEPS
    ds = PairShardDataset(tmp_path, verify=True)
    assert len(ds) == N_PAIRS
    x0, x1 = _all_pairs(tmp_path)
    assert torch.equal(x0, ref_x0) and torch.equal(x1, ref_x1)

    again = Teacher()
    report = _generate(tmp_path, again)  # a complete folder: nothing to do
    assert report.generated == () and report.skipped == tuple(range(7)) and again.calls == 0


def test_batch_size_does_not_change_pairs(
    tmp_path: Path, reference: tuple[Path, Tensor, Tensor]
) -> None:
    _generate(tmp_path, Teacher(), batch_size=5)
    x0, x1 = _all_pairs(tmp_path)
    assert torch.equal(x0, reference[1])
    torch.testing.assert_close(x1, reference[2])


def test_ranks_split_the_shards(tmp_path: Path, reference: tuple[Path, Tensor, Tensor]) -> None:
    r0 = _generate(tmp_path, Teacher(), rank=0, world_size=2)
    assert r0.generated == (0, 2, 4, 6) and not r0.complete
    with pytest.raises(ValueError, match="incomplete"):
        PairShardDataset(tmp_path)
    r1 = _generate(tmp_path, Teacher(), rank=1, world_size=2)
    assert r1.generated == (1, 3, 5) and r1.complete
    x0, x1 = _all_pairs(tmp_path)
    assert torch.equal(x0, reference[1]) and torch.equal(x1, reference[2])


def test_different_config_is_refused(tmp_path: Path) -> None:
    _generate(tmp_path, Teacher(), n_pairs=16)
    with pytest.raises(ValueError, match="seed"):
        _generate(tmp_path, Teacher(), n_pairs=16, seed=8)
    with pytest.raises(ValueError, match="steps"):
        _generate(tmp_path, Teacher(), n_pairs=16, steps=5)
    with pytest.raises(ValueError, match="teacher"):
        _generate(tmp_path, Teacher(a=-0.4), n_pairs=16)  # other weights
    with pytest.raises(ValueError, match="n_pairs"):
        _generate(tmp_path, Teacher(), n_pairs=17)


def test_stray_files_without_manifest_are_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / shard_file_name(0)).write_bytes(b"someone else's data")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        _generate(tmp_path, Teacher())
    assert (tmp_path / shard_file_name(0)).read_bytes() == b"someone else's data"


def test_corrupted_or_unrecorded_shards_are_regenerated(
    tmp_path: Path, reference: tuple[Path, Tensor, Tensor]
) -> None:
    _generate(tmp_path, Teacher())
    path = tmp_path / shard_file_name(4)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        PairShardDataset(tmp_path, verify=True)
    (tmp_path / "pairs-00005.json").unlink()  # a crash between the shard and its record
    with pytest.warns(UserWarning, match="pairs-00004"):
        report = _generate(tmp_path, Teacher())
    assert report.generated == (4, 5)
    x0, x1 = _all_pairs(tmp_path)
    assert torch.equal(x0, reference[1]) and torch.equal(x1, reference[2])


def test_reader_samples_lazily_and_reproducibly(reference: tuple[Path, Tensor, Tensor]) -> None:
    out, ref_x0, ref_x1 = reference
    ds = PairShardDataset(out, max_open=2)
    assert len(ds) == N_PAIRS and ds.data_shape == SHAPE
    x0, x1 = ds[33]
    assert torch.equal(x0, ref_x0[33]) and torch.equal(x1, ref_x1[33])
    with pytest.raises(IndexError):
        ds[N_PAIRS]

    pairs = ds.sample(200, torch.Generator().manual_seed(0))
    assert isinstance(pairs, Pairs) and pairs.x0.shape == (200, *SHAPE)
    assert len(ds._handles) <= 2  # never more than max_open shards open
    idx = torch.randint(0, N_PAIRS, (200,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(pairs.x0, ref_x0[idx]) and torch.equal(pairs.x1, ref_x1[idx])
    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=False)
    first_x0, first_x1 = next(iter(loader))
    assert torch.equal(first_x0, ref_x0[:16]) and torch.equal(first_x1, ref_x1[:16])


def test_progress_bar_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _generate(tmp_path / "p", Teacher(), n_pairs=10, progress=True)
    assert "reflow pairs" in capsys.readouterr().err
    with pytest.raises(ValueError, match="shard_size"):
        _generate(tmp_path / "q", Teacher(), shard_size=0)
    with pytest.raises(ValueError, match="rank"):
        _generate(tmp_path / "r", Teacher(), rank=2, world_size=2)


def test_identical_runs_give_identical_bytes(
    tmp_path: Path, reference: tuple[Path, Tensor, Tensor]
) -> None:
    """Shard files are byte-reproducible (issue 11 item 7): the same SHA-256 for the same pairs."""
    ref, _, _ = reference
    _generate(tmp_path, Teacher())
    for i in range(7):
        name = shard_file_name(i)
        assert (tmp_path / name).read_bytes() == (ref / name).read_bytes(), name
    assert (tmp_path / MANIFEST_NAME).read_bytes() == (ref / MANIFEST_NAME).read_bytes()


def test_a_second_generator_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    from bezkit.files.run_dir import RunLock, RunLocked

    with (
        RunLock(tmp_path / "generator-rank0", folder=False),
        pytest.raises(RunLocked, match="another pair generator is using"),
    ):
        _generate(tmp_path, Teacher())
    assert not list(tmp_path.glob("pairs-*"))
    assert _generate(tmp_path, Teacher()).complete  # free again once the first one is done
