"""Fault injection: ``python -m bezkit train`` killed at random moments (SIGKILL and SIGINT, several
times, a checkpoint at every step so that kills land inside checkpoint writes), then resumed,
must always resume and end with exactly the weights of an uninterrupted run (bitwise: the same
machine runs both). Most of its time is the start-up of each process (importing torch)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bezkit.cli import main
from bezkit.training import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TOTAL_STEPS = 150
RUN = ["--steps", str(TOTAL_STEPS), "--hidden", "16", "--depth", "1", "--batch-size", "32"]
RUN += ["--ema-decay", "0.9", "--seed", "3", "--checkpoint-every", "1", "--quiet"]
KILLS = (signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGINT)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _bezkit(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bezkit", "train", *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _step(out: Path) -> int:
    return int(load_checkpoint(out).metadata["step"])


@pytest.mark.slow
def test_random_kills_always_resume_to_the_uninterrupted_weights(tmp_path):
    rng = random.Random(11)
    reference = tmp_path / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1)
    try:
        assert main(["train", *RUN, "--out", str(reference)]) == 0  # in process: one start less
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "killed"
    steps_at_kill = []
    proc = _bezkit(*RUN, "--out", str(out))
    st = out.with_name("killed.safetensors")
    for sig in KILLS:
        # let the run get going (it has written a checkpoint of its own), then kill it at a
        # random moment: often inside a checkpoint write, as one is written every step
        before = st.stat().st_mtime_ns if st.exists() else None
        deadline = time.monotonic() + 60
        while proc.poll() is None and (not st.exists() or st.stat().st_mtime_ns == before):
            assert time.monotonic() < deadline, "the run wrote no checkpoint"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(sig)
        code, err = _finish(proc)
        assert "Traceback" not in err, err
        if code == 0:  # the run finished before the kill: nothing left to resume
            break
        # SIGINT before Python installs its handler (start-up) ends the process by the signal: -2
        assert code in (-signal.SIGKILL, -signal.SIGINT, 130), (sig, code, err)
        steps_at_kill.append(_step(out))  # the checkpoint left behind is whole and verified
        if steps_at_kill[-1] == TOTAL_STEPS:  # killed after its last checkpoint: it is complete
            break
        proc = _bezkit("--resume", str(out), "--quiet")
    else:
        code, err = _finish(proc)
        assert code == 0, err

    assert steps_at_kill, "every run finished before it could be killed"
    assert steps_at_kill == sorted(steps_at_kill)  # progress is never lost
    a, b = load_checkpoint(reference), load_checkpoint(out)
    assert b.metadata["step"] == TOTAL_STEPS
    assert b.metadata["losses"] == a.metadata["losses"]
    assert b.metadata["run"] == a.metadata["run"]
    for key, value in a.tensors.items():
        assert torch.equal(value, b.tensors[key]), key
    # no temporary file and no stray checkpoint survives the kills
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("killed")) == [
        "killed.json",
        "killed.safetensors",  # the last, finished run removed its lock file
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
