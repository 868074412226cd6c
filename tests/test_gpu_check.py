"""The GPU check's CPU mode (``python -m bezkit.bench.gpu --mode cpu``), so that the script that
runs on a lent GPU cannot rot between GPU sessions, and its FLOP count against a formula."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from bezkit.bench.gpu import SECTIONS, committed_digits_seconds, markdown, run_check, summary
from bezkit.bench.train_speed import flops_per_image


class _OneConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_flop_count_of_a_convolution_matches_its_formula() -> None:
    """A 3x3 convolution from 3 to 4 channels on 8x8: 2 * 3 * 4 * 9 * 64 FLOP per image; the
    backward pass adds the weight gradient (the same count; the input needs no gradient)."""
    model = _OneConv()
    forward = flops_per_image(model, (3, 8, 8), backward=False)
    assert forward == 2 * 3 * 4 * 9 * 64
    assert flops_per_image(model, (3, 8, 8), backward=True) == 2 * forward
    assert all(p.grad is None for p in model.parameters())  # the count leaves no gradients


@pytest.mark.slow
def test_cpu_mode_runs_every_section_and_writes_its_report(tmp_path: Path) -> None:
    # cuda_tests runs pytest on tests/test_cuda.py, which this suite collects anyway
    only = [name for name, _, _ in SECTIONS if name != "cuda_tests"]
    threads = torch.get_num_threads()
    try:
        report = run_check("cpu", tmp_path, budget_s=600, only=only)
    finally:
        torch.set_num_threads(threads)
    sections = report["sections"]
    assert list(sections) == only
    failed = {k: v for k, v in sections.items() if v["status"] != "ok"}
    assert not failed and report["ok"], failed
    on_disk = json.loads((tmp_path / "gpu_check.json").read_text())
    assert on_disk["mode"] == "cpu" and set(on_disk["sections"]) == set(only)
    step = sections["train_step"]
    assert step["flop_per_image_train"] > 2 * step["flop_per_image_forward"] > 0
    for run in step["runs"]:
        assert run["ms_per_step"] > 0 and run["losses_finite"]
        # images/s and TFLOP/s are the same measurement seen two ways
        assert run["images_per_s"] == pytest.approx(run["batch"] / run["ms_per_step"] * 1e3)
        assert run["tflops"] == pytest.approx(
            step["flop_per_image_train"] * run["images_per_s"] / 1e12
        )
    assert sections["ddp"]["backend"] == "gloo" and sections["ddp"]["world_size"] == 1
    assert set(sections["pipeline"]["stage_seconds"]) >= {"train 1-RF", "B-DENSE (K = 2)"}
    assert sections["digits"]["tiny"] and sections["digits"]["digits_seconds"] > 0
    text = (tmp_path / "gpu_check.md").read_text()
    assert text == markdown(report) and "| train_step | ok |" in text
    assert "GPU check (cpu mode)" in summary(report)


def test_a_failing_section_is_recorded_and_the_rest_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bezkit.bench.gpu as gpu

    def broken(check: object) -> dict:
        raise RuntimeError("no such device")

    monkeypatch.setattr(gpu, "SECTIONS", [("broken", 0, broken), *gpu.SECTIONS[:1]])
    report = run_check("cpu", tmp_path, only=["broken", "environment"])
    assert report["sections"]["broken"]["status"] == "error"
    assert "no such device" in report["sections"]["broken"]["error"]
    assert report["sections"]["environment"]["status"] == "ok" and not report["ok"]


def test_committed_digits_time_is_read_from_the_results() -> None:
    seconds = committed_digits_seconds()
    assert seconds is not None and seconds > 0
