"""The CUDA path (``pytest -m cuda``; skipped without a CUDA device): device choice, bf16 autocast,
EMA, checkpoints of CUDA tensors, the U-Net forward/backward, the solvers, the trainer, B-DENSE
through DistributedDataParallel's forward. Each test compares against the same computation on the
CPU (float32) with a tolerance that bf16 or TF32 arithmetic meets and a real bug would not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.pairs import Pairs
from bezkit.experiments.images import StandardNormal, get_preset, new_unet
from bezkit.methods.bdense import BDenseLoss, branched_from_teacher
from bezkit.methods.flow import train_flow
from bezkit.models.unet import UNetVelocity, unet_config
from bezkit.solvers.ode import solve_ode
from bezkit.training import EMA, FlowMatchingLoss, TrainConfig, choose_device
from bezkit.training.model_io import load_model, save_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().cpu().norm())


def _small_unet(seed: int = 0) -> UNetVelocity:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNetVelocity(**unet_config("tiny"))


def test_auto_device_is_cuda() -> None:
    dev = choose_device("auto")
    assert dev.type == "cuda"
    assert choose_device("cuda:0") == torch.device("cuda:0")


def test_unet_forward_backward_on_cuda_matches_cpu() -> None:
    model = _small_unet()
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.rand(8, generator=torch.Generator().manual_seed(1))
    cpu_out = model(x, t)
    cpu_out.square().mean().backward()
    cpu_grad = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    cuda_model = model.cuda()
    out = cuda_model(x.cuda(), t.cuda())
    out.square().mean().backward()
    assert _rel_err(out, cpu_out) < 1e-3  # TF32 convolutions
    for g_cuda, g_cpu in zip((p.grad for p in cuda_model.parameters()), cpu_grad, strict=True):
        assert g_cuda is not None and torch.isfinite(g_cuda).all()
        if g_cpu.norm() > 0:
            assert _rel_err(g_cuda, g_cpu) < 2e-2
        else:  # zero-initialised output layers: no gradient reaches some weights yet
            assert float(g_cuda.abs().max()) < 1e-6


def test_bf16_autocast_runs_the_cifar_unet_in_bf16() -> None:
    preset = get_preset("cifar10")
    model = new_unet(preset).cuda()
    x = torch.randn(4, 3, 32, 32, device="cuda")
    t = torch.rand(4, device="cuda")
    with torch.no_grad():
        full = model(x, t)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model(x, t)
    assert half.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert _rel_err(half.float(), full) < 5e-2  # bf16 has 8 bits of mantissa


def test_ema_on_cuda_follows_its_formula() -> None:
    model = _small_unet().cuda()
    ema = EMA(model, decay=0.9)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    after, now = ema.state_dict(), model.state_dict()
    for key, old in before.items():
        if old.is_floating_point():
            assert after[key].device.type == "cuda"
            torch.testing.assert_close(after[key], 0.9 * old + 0.1 * now[key])


def test_checkpoint_round_trip_of_cuda_tensors(tmp_path: Path) -> None:
    model = _small_unet(seed=3).cuda()
    save_model(tmp_path / "m", model, {"note": "cuda"})
    loaded, meta = load_model(tmp_path / "m")
    assert meta["note"] == "cuda"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value.cpu())


def test_solvers_on_cuda_match_cpu() -> None:
    model = _small_unet(seed=4).eval()
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    for method, steps in (("euler", 8), ("heun", 4), ("dopri5", 0)):
        kwargs = {"steps": steps} if steps else {}
        with torch.no_grad():
            cpu = solve_ode(model, x, method=method, **kwargs).x
            gpu = solve_ode(model.cuda(), x.cuda(), method=method, **kwargs).x
        model.cpu()
        assert gpu.device.type == "cuda" and _rel_err(gpu, cpu) < 1e-3, method


def test_trainer_on_cuda_with_bf16_and_ema_lowers_the_loss() -> None:
    shape = (1, 8, 8)
    target = StandardNormal(shape)
    coupling = IndependentCoupling(StandardNormal(shape), target)
    config = TrainConfig(steps=30, batch_size=64, lr=2e-3, ema_decay=0.9, device="cuda",
                         amp=True, progress=False)  # fmt: skip
    result = train_flow(_small_unet(seed=5), coupling, config)
    assert next(result.raw_model.parameters()).device.type == "cuda"
    assert result.ema_model is not None
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert sum(result.losses[-5:]) < sum(result.losses[:5])


def test_bdense_loss_reaches_the_branches_through_ddp_forward() -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        student = branched_from_teacher(_small_unet(seed=6), 2).cuda()
        wrapped = torch.nn.parallel.DistributedDataParallel(student, device_ids=[0])
        x0 = torch.randn(4, 1, 8, 8, device="cuda")
        pairs = Pairs(x0, x0 + 1.0, (x0 + 0.5,))
        loss = BDenseLoss(2)(wrapped, pairs, torch.Generator().manual_seed(0))
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    finally:
        if created:
            dist.destroy_process_group()


def test_flow_matching_loss_under_autocast_is_float32() -> None:
    model = _small_unet(seed=7).cuda()
    coupling = IndependentCoupling(StandardNormal((1, 8, 8)), StandardNormal((1, 8, 8)))
    pairs = coupling.sample(16, torch.Generator().manual_seed(0)).to("cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = FlowMatchingLoss()(model, pairs, torch.Generator().manual_seed(1))
    assert torch.isfinite(loss) and loss.ndim == 0
