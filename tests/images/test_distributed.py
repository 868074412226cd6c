"""torchrun/DDP helpers: index sharding, the single-process fallback, a real 2-process DDP step on
the gloo backend."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from bezkit.couplings.pair_shards import PairShardDataset, generate_pair_shards
from bezkit.training.distributed import (
    ShardSampler,
    all_reduce_mean,
    barrier,
    cleanup,
    init_distributed,
    is_main_process,
    shard_indices,
    unwrap_model,
    wrap_ddp,
)

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def test_shards_are_disjoint_and_cover_when_divisible() -> None:
    shards = [shard_indices(12, rank=r, world_size=3, seed=4) for r in range(3)]
    assert all(len(s) == 4 for s in shards)
    assert sorted(torch.cat(shards).tolist()) == list(range(12))
    again = [shard_indices(12, rank=r, world_size=3, seed=4) for r in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(shards, again, strict=True))
    other_epoch = shard_indices(12, rank=0, world_size=3, seed=4, epoch=1)
    assert not torch.equal(other_epoch, shards[0])


def test_shards_pad_or_drop_like_distributed_sampler() -> None:
    padded = [shard_indices(10, rank=r, world_size=4, shuffle=False) for r in range(4)]
    assert [s.tolist() for s in padded] == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]
    dropped = [
        shard_indices(10, rank=r, world_size=4, shuffle=False, drop_last=True) for r in range(4)
    ]
    assert [s.tolist() for s in dropped] == [[0, 4], [1, 5], [2, 6], [3, 7]]
    sampler = ShardSampler(10, rank=1, world_size=4, seed=2)
    sampler.set_epoch(3)
    assert list(sampler) == shard_indices(10, rank=1, world_size=4, seed=2, epoch=3).tolist()
    assert len(sampler) == 3
    with pytest.raises(ValueError, match="rank"):
        shard_indices(10, rank=4, world_size=4)


def test_single_process_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_distributed) == (0, 1, None, False)
    assert ctx.is_main_process and is_main_process()
    model = nn.Linear(2, 2)
    assert wrap_ddp(model) is model and unwrap_model(model) is model
    x = torch.tensor([1.0, 3.0])
    assert torch.equal(all_reduce_mean(x), x)
    barrier()
    cleanup()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 4, generator=g), torch.randn(8, 2, generator=g)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """One torchrun-like process: the env vars torchrun would set, then one DDP SGD step."""
    os.environ.update({
        "RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
    })  # fmt: skip
    torch.set_num_threads(1)
    ctx = init_distributed(device="cpu", timeout_s=60)
    model = wrap_ddp(_model(seed=100 + rank))  # different inits: DDP must broadcast rank 0's
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _data()
    idx = shard_indices(len(x), rank=ctx.rank, world_size=ctx.world_size, shuffle=False)
    loss = (model(x[idx]) - y[idx]).square().mean()
    opt.zero_grad()
    loss.backward()  # DDP averages the gradients over the two processes here
    opt.step()
    mean_loss = all_reduce_mean(loss)
    params = [p.detach().clone() for p in unwrap_model(model).parameters()]
    # reflow pairs under the process group: each rank makes the shards i with i % 2 == rank
    report = generate_pair_shards(_shard_teacher, _Noise(), Path(out_dir) / "shards", **SHARD_ARGS)
    torch.save(
        {
            "backend": ctx.backend,
            "main": is_main_process(),
            "loss": mean_loss,
            "params": params,
            "generated": report.generated,
            "complete": report.complete,
        },
        Path(out_dir) / f"rank{rank}.pt",
    )
    barrier()
    cleanup()


SHARD_ARGS = {"n_pairs": 10, "shard_size": 3, "steps": 2, "progress": False, "teacher_id": "v=-x"}


class _Noise:
    data_shape = (1, 2, 2)
    name = "noise"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, 1, 2, 2, generator=generator)


def _shard_teacher(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -x


def test_two_process_ddp_step_and_pair_shards(tmp_path: Path) -> None:
    world_size = 2
    mp.spawn(_ddp_worker, args=(world_size, _free_port(), str(tmp_path)), nprocs=world_size)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world_size)]
    assert [r["backend"] for r in results] == ["gloo", "gloo"]
    assert [r["main"] for r in results] == [True, False]

    # the reference: rank 0's initial model, one SGD step on the full batch of 8
    model = _model(seed=100)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _data()
    loss = (model(x) - y).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    # shards: 0 and 2 from rank 0, 1 and 3 from rank 1; both return with the folder complete,
    # holding exactly the pairs of a single-process run
    assert [r["generated"] for r in results] == [(0, 2), (1, 3)]
    assert all(r["complete"] for r in results)
    generate_pair_shards(_shard_teacher, _Noise(), tmp_path / "single", **SHARD_ARGS)
    for a, b in zip(
        PairShardDataset(tmp_path / "shards").iter_shards(),
        PairShardDataset(tmp_path / "single").iter_shards(),
        strict=True,
    ):
        assert torch.equal(a.x0, b.x0) and torch.equal(a.x1, b.x1)
    for r in results:
        torch.testing.assert_close(r["loss"], loss.detach(), rtol=1e-6, atol=1e-7)
        for p_ddp, p_ref in zip(r["params"], model.parameters(), strict=True):
            torch.testing.assert_close(p_ddp, p_ref.detach(), rtol=1e-5, atol=1e-6)


def test_device_cuda_means_this_process_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """``init_distributed(device="cuda")`` (``--device cuda`` under torchrun) picks
    ``cuda:LOCAL_RANK`` and makes it current: ``torch.cuda.set_device`` is never given a bare
    ``cuda`` (which raised). CUDA is faked: only the choice of device is under test."""
    chosen: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: chosen.append(torch.device(d)))
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    for asked in ("cuda", torch.device("cuda"), "auto", None):
        chosen.clear()
        ctx = init_distributed(device=asked)
        assert ctx.device == torch.device("cuda", 1) and chosen == [torch.device("cuda", 1)]
    ctx = init_distributed(device="cuda:0")  # an explicit index is kept
    assert ctx.device == torch.device("cuda", 0)


def test_a_resume_with_another_world_size_is_refused() -> None:
    """``check_processes``: the same world size resumes (whatever the record's batch: the batch is
    checked with the other run settings), another is refused naming both, and a checkpoint from
    before the record has nothing to check."""
    from bezkit.training.resume import ResumeError, check_processes, processes_record

    two = processes_record(2, 8)
    assert two == {"world_size": 2, "batch_per_process": 8, "global_batch": 16}
    check_processes("state", two, processes_record(2, 8))
    check_processes("state", None, processes_record(3, 8))
    with pytest.raises(ResumeError) as err:
        check_processes("state", two, processes_record(1, 8))
    text = str(err.value)
    assert "2 process(es) x 8 images (global batch 16)" in text
    assert "1 process(es) x 8 (global batch 8)" in text and "--nproc_per_node 2" in text
    with pytest.raises(ResumeError, match="unreadable"):
        check_processes("state", {"size": 2}, processes_record(2, 8))
