"""The GPU check (``python -m bezkit.bench.gpu``, ``scripts/gpu_check.sh``) on the CPU, so that the
script that runs on a lent GPU cannot rot or waste its run: its CPU mode end to end, results
under ``$OUT``, a missing carried wheel stopping it early and loudly, the JSON written after
every section (a section cut short or a run killed from outside keeps the earlier sections), the
carry list against what the check imports, and its FLOP count against a formula."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import bezkit.bench.gpu as gpu
from bezkit.bench.carry import (
    CARRIED_REQUIRES,
    CARRIED_WHEELS,
    CARRY,
    GPU_IMAGE_PACKAGES,
    POT_BACKENDS_OFF,
    carried_names,
    child_env,
    third_party_modules,
)
from bezkit.bench.gpu import SECTIONS, default_out, run_check
from bezkit.bench.gpu_report import markdown, summary
from bezkit.bench.gpu_sections import committed_digits_seconds
from bezkit.bench.train_speed import flops_per_image

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.split(r"[<>=!~\[; ]", name, maxsplit=1)[0].lower().replace("_", "-")


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
    only = [name for name in SECTIONS[1:] if name != "cuda_tests"]
    threads = torch.get_num_threads()
    try:
        report = run_check("cpu", tmp_path, budget_s=900, only=only)
    finally:
        torch.set_num_threads(threads)
    sections = report["sections"]
    assert list(sections) == ["preflight", *only]
    failed = {k: v for k, v in sections.items() if v["status"] != "ok" and k != "compile"}
    assert not failed and report["ok"], failed
    assert sections["compile"] == {"status": "skipped", "reason": "CPU mode: no compile",
                                   "seconds": sections["compile"]["seconds"]}  # fmt: skip
    assert report["measured_on"] == "no GPU (CPU mode)"
    on_disk = json.loads((tmp_path / "gpu_check.json").read_text())
    assert on_disk["mode"] == "cpu" and list(on_disk["sections"]) == list(sections)
    assert isinstance(sections["preflight"]["import_seconds"]["ot"], float)
    step = sections["train_step"]
    assert step["flop_per_image_train"] > 2 * step["flop_per_image_forward"] > 0
    trainer = step["trainer"]  # the real trainer: (T(long) - T(short)) / (long - short)
    assert trainer["losses_finite"] and trainer["seconds_long"] > 0
    assert trainer["ms_per_step"] == pytest.approx(
        max(trainer["seconds_long"] - trainer["seconds_short"], 1e-9)
        / (trainer["steps_long"] - trainer["steps_short"]) * 1e3
    )  # fmt: skip
    for run in step["model"]:
        assert run["ms_per_step"] > 0 and run["losses_finite"]
        # images/s and TFLOP/s are the same measurement seen two ways
        assert run["images_per_s"] == pytest.approx(run["batch"] / run["ms_per_step"] * 1e3)
        assert run["tflops"] == pytest.approx(
            step["flop_per_image_train"] * run["images_per_s"] / 1e12
        )
    assert sections["ddp"]["backend"] == "gloo" and sections["ddp"]["world_size"] == 1
    assert sections["ddp"]["flow"]["warmup_steps"] >= 1  # timed after a warm-up
    assert set(sections["pipeline"]["stage_seconds"]) >= {"train 1-RF", "B-DENSE (K = 2)"}
    assert "code-path timing only" in sections["pipeline"]["fid_note"]
    assert sections["ensemble2d"]["seeds"] == 5 and sections["ensemble2d"]["cpu_seconds"] > 0
    assert sections["digits"]["tiny"] and sections["digits"]["digits_seconds"] > 0
    assert sections["digits"]["quiet_cpu_seconds"] == 358
    text = (tmp_path / "gpu_check.md").read_text()
    assert text == markdown(report) and "| train_step | ok |" in text
    assert "the trainer" in text and "the model alone" in text
    assert "GPU check (cpu mode" in summary(report)


def _fake_sections(marker: Path | None = None) -> list[tuple[str, float, Any]]:
    def ok(check: Any, part: dict[str, Any]) -> None:
        part["value"] = 1

    def broken(check: Any, part: dict[str, Any]) -> None:
        raise RuntimeError("no such device")

    def slow(check: Any, part: dict[str, Any]) -> None:
        part["first_measurement"] = 42  # measured before the limit: kept
        if marker is not None:
            marker.write_text("started")
        time.sleep(60)

    return [("preflight", 0, ok), ("first", 0, ok), ("broken", 0, broken), ("slow", 0, slow),
            ("after", 0, ok)]  # fmt: skip


def test_a_failing_section_and_a_section_past_the_budget_keep_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A section that raises is recorded and the next runs; a section past the budget is cut
    short (``timeout``, with what it had measured), the next is skipped for want of time, and
    the JSON on disk holds every section."""
    monkeypatch.setattr(gpu, "_sections", _fake_sections)
    t0 = time.perf_counter()
    report = run_check("cpu", tmp_path, budget_s=2.0)
    assert time.perf_counter() - t0 < 30  # not the section's 60 s
    s = report["sections"]
    assert s["first"]["status"] == "ok" and s["first"]["value"] == 1
    assert s["broken"]["status"] == "error" and "no such device" in s["broken"]["error"]
    assert s["slow"]["status"] == "timeout" and s["slow"]["first_measurement"] == 42
    assert s["after"]["status"] == "skipped" and "time budget" in s["after"]["reason"]
    assert not report["ok"]
    assert json.loads((tmp_path / "gpu_check.json").read_text())["sections"] == s


_KILLED = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import bezkit.bench.gpu as gpu
from test_gpu_check import _fake_sections
gpu._sections = lambda: _fake_sections(Path(sys.argv[2]))
gpu.run_check("cpu", Path(sys.argv[1]), budget_s=600)
"""


def test_a_run_killed_from_outside_keeps_the_finished_sections(tmp_path: Path) -> None:
    """The device tool kills the command at its time limit: the JSON written after each section
    still holds the finished ones and names the section that was running."""
    marker = tmp_path / "started"
    cmd = [sys.executable, "-c", _KILLED, str(tmp_path / "out"), str(marker), str(ROOT / "tests")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env())
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the slow section never started"
    finally:
        proc.kill()
        proc.wait()
    s = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["sections"]
    assert s["first"] == {"status": "ok", "value": 1, "seconds": s["first"]["seconds"]}
    assert s["broken"]["status"] == "error"
    assert s["slow"]["status"] == "running" and "after" not in s


def test_a_missing_carried_wheel_stops_the_check_early_and_loudly(tmp_path: Path) -> None:
    """``scripts/gpu_check.sh`` with POT not importable (a package on PYTHONPATH that fails, as
    when a wheel is not carried): exit 3 after the preflight alone, a message that names POT and
    the carry list, and the JSON and log in ``$OUT``. The check's subprocesses keep the caller's
    PYTHONPATH (the carried wheels' folder): with it replaced, POT would import and this fail."""
    fake = tmp_path / "site" / "ot"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('POT was not carried')\n")
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHONPATH": str(tmp_path / "site"),
           "PYTHON": sys.executable}  # fmt: skip
    env.pop("OUT_DIR", None)
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--mode", "cpu"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "stopped before any measurement" in proc.stdout and "POT" in proc.stdout
    assert "carry" in proc.stdout
    report = json.loads((out / "gpu_check.json").read_text())
    assert list(report["sections"]) == ["preflight"] and report["ok"] is False
    assert "POT was not carried" in report["sections"]["preflight"]["missing"]["ot"]
    assert "stopped before any measurement" in (out / "gpu_check.log").read_text()


def test_results_go_to_out_and_subprocesses_keep_pythonpath(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUT", "/somewhere/out")
    assert default_out() == Path("/somewhere/out")
    monkeypatch.delenv("OUT")
    assert default_out() == Path("gpu-check")
    monkeypatch.setenv("PYTHONPATH", "/tmp/bezkit-wheels")
    env = child_env()
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT), "/tmp/bezkit-wheels"]
    assert all(env[k] == "1" for k in POT_BACKENDS_OFF)


def test_the_carry_list_covers_what_the_check_imports() -> None:
    """Every third-party module the check imports (its sections, the digits benchmark, the CUDA
    tests) is on the GPU image or carried. A static check: the image's packages are a list, not a
    virtual environment built here (that would need torch downloaded)."""
    have = GPU_IMAGE_PACKAGES | carried_names()
    used = third_party_modules()
    assert "ot" in used and "torch" in used
    missing = {m: d for m, d in used.items() if not any(_norm(x) in have for x in d)}
    assert not missing, (
        f"import these on the GPU machine: add their wheels to CARRIED_WHEELS: {missing}"
    )


def test_the_carry_list_covers_the_requirements() -> None:
    """Every runtime requirement in pyproject.toml (with the images and fid extras), and every
    requirement of the carried wheels (they are installed with --no-deps), is on the GPU image
    or carried."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    have = GPU_IMAGE_PACKAGES | carried_names()
    assert set(CARRIED_REQUIRES) == set(carried_names())
    assert {r for reqs in CARRIED_REQUIRES.values() for r in reqs} <= GPU_IMAGE_PACKAGES
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = [*project["dependencies"], *project["optional-dependencies"]["images"],
              *project["optional-dependencies"]["fid"]]  # fmt: skip
    assert {_norm(r) for r in needed} <= have


def test_the_documented_device_call_matches_the_carry_list() -> None:
    """docs/IMAGES.md gives the exact device call: the script, the carry list, a timeout that
    leaves time for a rerun in a 15-minute lease, and the wheels to download."""
    text = (ROOT / "docs" / "IMAGES.md").read_text()
    call = re.search(r"```text\nrun\((.*?)\)\n```", text, re.S)
    assert call is not None, "the device call block is missing"
    args = call.group(1)
    assert "bash scripts/gpu_check.sh" in args and "kind" not in args
    assert f"carry={json.dumps(list(CARRY))}" in args
    timeout = int(re.search(r"timeout_s=(\d+)", args).group(1))  # type: ignore[union-attr]
    assert timeout > 300 and 90 + 2 * timeout <= 15 * 60  # start, the run, one rerun
    for wheel in CARRIED_WHEELS:
        assert wheel in text
    assert (ROOT / ".gitignore").read_text().count("/.whl/") == 1  # carried, never committed


def test_committed_digits_time_is_read_from_the_results() -> None:
    seconds = committed_digits_seconds()
    assert seconds is not None and seconds > 0
