"""CIFAR-10 from the command line on a CPU, as a user runs it: every stage of ``bezkit images`` with
the ``cifar10-tiny`` preset on a fixture in the real on-disk format (the downloaded archive, its
pickled batches), the checksum rules, and torchrun (gloo): the 1-RF in two processes, a resume
with another number of processes refused, ``--device cuda`` and the 2D trainer under torchrun."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch

from bezkit.cli import main
from bezkit.data.cifar10 import (
    CIFAR10_ARCHIVE,
    CIFAR10_FOLDER,
    ChecksumError,
    CIFAR10Dataset,
    download_cifar10,
    file_md5,
    read_checksums,
    write_cifar10_fixture,
)
from bezkit.models.branched import BranchedVelocity
from bezkit.training.checkpoint import checkpoint_files
from bezkit.training.model_io import load_model

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                 "MASTER_PORT", "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The fixture as a download leaves it: ``cifar-10-python.tar.gz`` (plus its checksums)."""
    root = tmp_path / "data"
    write_cifar10_fixture(root, archive=True)
    return root


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip()


def _common(data: Path) -> list[str]:
    return ["--preset", "cifar10-tiny", "--data-root", str(data), "--data-checksums",
            str(data / "checksums.json"), "--device", "cpu", "--quiet"]  # fmt: skip


def test_fixture_is_the_official_layout(tmp_path: Path) -> None:
    """The archive holds ``cifar-10-batches-py/`` with the five train batches, the test batch and
    ``batches.meta``; ``checksums.json`` lists every file's md5 and the archive's."""
    import tarfile

    write_cifar10_fixture(tmp_path, archive=True, per_file=3)
    assert not (tmp_path / CIFAR10_FOLDER).exists()  # only the archive, as downloaded
    with tarfile.open(tmp_path / CIFAR10_ARCHIVE) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
    expected = [f"data_batch_{i}" for i in range(1, 6)] + ["batches.meta", "test_batch"]
    assert names == sorted(f"{CIFAR10_FOLDER}/{n}" for n in expected)
    sums = read_checksums(tmp_path / "checksums.json")
    assert sums[CIFAR10_ARCHIVE] == file_md5(tmp_path / CIFAR10_ARCHIVE)
    ds = CIFAR10Dataset(tmp_path, "train", checksums=sums)  # unpacks the archive, then reads
    assert len(ds) == 15 and ds.data.dtype == torch.uint8
    assert sums["test_batch"] == file_md5(tmp_path / CIFAR10_FOLDER / "test_batch")


def test_every_cifar_stage_from_the_cli(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r, c = tmp_path / "runs", _common(data)
    assert main(["images", "train", *c, "--out", str(r / "1rf")]) == 0
    _, meta = load_model(r / "1rf")
    assert meta["images"]["preset"] == "cifar10-tiny" and meta["step"] == 4
    assert meta["processes"] == {"world_size": 1, "batch_per_process": 8, "global_batch": 8}
    assert (data / CIFAR10_FOLDER / "data_batch_5").is_file()  # unpacked from the archive
    fwd = ["--teacher", str(r / "1rf"), "--pairs", str(r / "fwd")]
    assert main(["images", "reflow", *c, *fwd, "--out", str(r / "2rf")]) == 0
    assert main(["images", "distill", *c, *fwd, "--out", str(r / "d")]) == 0
    assert main(["images", "distill", *c, *fwd, "--method", "bdense", "--out", str(r / "bd")]) == 0
    assert isinstance(load_model(r / "bd")[0], BranchedVelocity)
    rev = ["--teacher", str(r / "1rf"), "--pairs", str(r / "rev")]
    assert main(["images", "distill", *c, *rev, "--method", "bezier", "--out", str(r / "bz")]) == 0
    assert json.loads((r / "rev" / "pairs.json").read_text())["direction"] == "reverse"
    assert json.loads((r / "fwd" / "pairs.json").read_text())["segments"] == 2
    capsys.readouterr()
    models = [str(r / m) for m in ("1rf", "2rf", "d", "bz", "bd")]
    ev = ["images", "evaluate", *models, *c[2:], "--steps", "1", "--out", str(r / "ev.json")]
    assert main(ev) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [x["stage"] for x in reports] == ["1-RF", "2-RF", "distill", "bezier", "bdense"]
    assert all(x["preset"] == "cifar10-tiny" and x["w2"]["1"] > 0 for x in reports)


def test_checksums_stay_on_for_real_data(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--data-checksums`` the fixture is checked against the official md5 and refused,
    with a one-line message that names the file and the option."""
    argv = ["images", "train", "--preset", "cifar10-tiny", "--data-root", str(data),
            "--device", "cpu", "--quiet", "--out", str(tmp_path / "x")]  # fmt: skip
    assert main(argv) == 2
    err = _err(capsys)
    assert "md5 mismatch" in err and CIFAR10_ARCHIVE in err and "--data-checksums" in err
    assert len(err.splitlines()) == 1 and not (data / CIFAR10_FOLDER).exists()


def test_a_wrong_archive_placed_by_hand_is_not_downloaded_again(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    archive = data / CIFAR10_ARCHIVE
    archive.write_bytes(archive.read_bytes()[:-100])  # truncated by hand
    argv = ["images", "train", *_common(data), "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    err = _err(capsys)
    assert "md5 mismatch" in err and str(archive) in err and "Traceback" not in err
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        download_cifar10(data)  # the API too: checked, not silently replaced
    assert archive.is_file()


def test_downloads_have_a_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_urlopen(url: str, timeout: float | None = None) -> object:
        seen.update(url=url, timeout=timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(TimeoutError):
        download_cifar10(tmp_path, url="https://example.invalid/c.tar.gz", timeout_s=7)
    assert seen == {"url": "https://example.invalid/c.tar.gz", "timeout": 7}
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# -- torchrun (gloo) -----------------------------------------------------------------------------


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *args]  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_cifar_under_torchrun_and_a_resume_with_another_world_size(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under ``torchrun --nproc_per_node 2`` (gloo) each process first runs the 2D trainer, which
    is single-process: refused, saying so, before any lock is taken (not "lock is held" on one
    rank); then the CIFAR 1-RF trains in two processes and records its world size. Its state
    resumed by one process is refused with the reason, not trained on into other weights."""
    out = tmp_path / "1rf"
    script = tmp_path / "ranks.sh"
    script.write_text(
        f'"{sys.executable}" -m bezkit train --steps 2 --out "{tmp_path}/2d" '
        f'2> "{tmp_path}/2d-$RANK.err"; echo $? > "{tmp_path}/2d-$RANK.rc"\n'
        f'exec "{sys.executable}" -m bezkit images train {" ".join(_common(data))} --out "{out}"\n'
    )
    proc = _torchrun(["--no-python", "bash", str(script)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rank in (0, 1):
        err = (tmp_path / f"2d-{rank}.err").read_text().strip()
        assert (tmp_path / f"2d-{rank}.rc").read_text().strip() == "2"
        assert "single-process" in err and "WORLD_SIZE=2" in err and "lock" not in err, err
    assert not list(tmp_path.glob("2d*.pt")) and not list(tmp_path.glob("2d.safetensors"))
    _, meta = load_model(out)
    assert meta["processes"] == {"world_size": 2, "batch_per_process": 8, "global_batch": 16}
    for path in checkpoint_files(out):  # as if killed after the last state, before the export
        path.unlink()
    assert main(["images", "train", *_common(data), "--out", str(out)]) == 2
    err = _err(capsys)
    assert "trained by 2 process(es)" in err and "torchrun --nproc_per_node 2" in err
    assert "global batch 16" in err and len(err.splitlines()) == 1


def test_device_cuda_under_torchrun_without_cuda_is_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 1 of 2 asked for ``--device cuda`` on a machine without CUDA: a one-line error before
    any process group is joined (was ``torch.cuda.set_device('cuda')``'s traceback)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    argv = [
        "images",
        "train",
        *_common(data)[:-3],
        "--device",
        "cuda",
        "--out",
        str(tmp_path / "c"),
    ]
    assert main(argv) == 2
    err = _err(capsys)
    assert "'cuda:1' requested but CUDA is not available" in err and len(err.splitlines()) == 1


def test_the_documented_torchrun_batch_is_the_global_batch_of_128() -> None:
    """docs/IMAGES.md's commands fix the per-process batch and check the global one (``128 / P``
    gave a global batch of 126 at P = 3, silently)."""
    text = (ROOT / "docs" / "IMAGES.md").read_text()
    assert "128 / P" not in text
    p = int(re.search(r"^P=(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    b = int(re.search(r"^B=(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    assert p * b == 128 and "[ $((P * B)) -eq 128 ]" in text
