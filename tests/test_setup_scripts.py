"""The set-up scripts' choice of Python (scripts/pick_python.sh): an active venv or conda env, else
the project's .venv, created from a stock PEP 668 interpreter without installing into it; and the
torch version test (packaging.version, not strings)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _pick(folder: Path, *, mode: str = "", **env: str) -> subprocess.CompletedProcess:
    """Run ``pick_python MODE`` in ``folder`` with a clean environment plus ``env``."""
    shutil.copy(ROOT / "scripts" / "pick_python.sh", folder / "pick_python.sh")
    base = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    base.pop("BEZKIT_VENV", None)
    script = f'source ./pick_python.sh && pick_python {mode} && echo "PY=$PY"'
    return subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _chosen(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].removeprefix("PY=")


def _externally_managed(python: Path) -> bool:
    code = "import sysconfig, os; print(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()).is_file()


@pytest.mark.skipif(
    not (SYSTEM_PYTHON.is_file() and _externally_managed(SYSTEM_PYTHON)),
    reason="needs a PEP 668 (externally managed) /usr/bin/python3 (.ci/run installs Debian's)",
)
def test_a_pep668_python_gets_a_project_venv_and_is_never_installed_into(tmp_path):
    # the stock interpreter refuses pip installs: this is the situation of issue 11
    refused = subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "pip", "install", "--dry-run", "--no-index", "bezkit"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0
    result = _pick(tmp_path, mode="create", PYTHON=str(SYSTEM_PYTHON))
    chosen = _chosen(result)
    assert chosen == str(tmp_path / ".venv" / "bin" / "python")
    assert "creating the project environment .venv" in result.stdout
    probe = "import sys; print(sys.prefix != sys.base_prefix, sys.version_info[:2])"
    out = subprocess.run([chosen, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("True")
    # the venv accepts installs (a no-network, no-dependency one: pip's own wheel check)
    ok = subprocess.run([chosen, "-m", "pip", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ".venv" in ok.stdout
    # a second call (test.sh) finds the same .venv and creates nothing
    assert _chosen(_pick(tmp_path, PYTHON=str(SYSTEM_PYTHON))) == chosen


def test_an_active_virtual_or_conda_env_is_used(tmp_path):
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    assert _chosen(_pick(tmp_path, VIRTUAL_ENV=str(env))) == str(env / "bin" / "python")
    assert _chosen(_pick(tmp_path, CONDA_PREFIX=str(env))) == str(env / "bin" / "python")
    assert not (tmp_path / ".venv").exists()


def test_a_venv_interpreter_given_as_python_is_used_as_is(tmp_path):
    venv = tmp_path / "myenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    assert _chosen(_pick(tmp_path, mode="create", PYTHON=python)) == python
    assert not (tmp_path / ".venv").exists()


def test_without_a_venv_test_sh_falls_back_with_a_note_and_bezkit_venv_0_opts_out(tmp_path):
    result = _pick(tmp_path, PYTHON=sys.executable)
    in_venv = sys.prefix != sys.base_prefix or Path(sys.prefix, "conda-meta").is_dir()
    assert _chosen(result) == sys.executable
    if not in_venv:
        assert "no .venv yet" in result.stderr
    assert _chosen(_pick(tmp_path, mode="create", PYTHON=sys.executable, BEZKIT_VENV="0")) == (
        sys.executable
    )
    assert not (tmp_path / ".venv").exists()


def test_a_missing_interpreter_is_a_clear_error(tmp_path):
    result = _pick(tmp_path, PYTHON="no-such-python3.99")
    assert result.returncode != 0 and "not found" in result.stderr


@pytest.mark.parametrize(("version", "recent"), [("2.10.0", True), ("2.2.0+cpu", True),
                                                  ("2.13.0", True), ("2.1.2", False),
                                                  ("1.13.1", False)])  # fmt: skip
def test_the_torch_version_test_compares_versions_not_strings(tmp_path, version, recent):
    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    shutil.copy(ROOT / "scripts" / "pick_python.sh", tmp_path / "pick_python.sh")
    env = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{sysconfig.get_path('purelib')}"}
    result = subprocess.run(
        ["bash", "-c", f"source ./pick_python.sh && torch_is_recent {sys.executable}"],
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert (result.returncode == 0) is recent


def _torch_index(tmp_path, spec, *, gpu=None, **env):
    """``torch_index_args PY SPEC`` with PATH holding a fake ``nvidia-smi`` (``gpu``: whether
    ``nvidia-smi -L`` succeeds) or none, so the answer does not depend on this machine's GPU."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.unlink(missing_ok=True)
    if gpu is not None:
        smi.write_text(f"#!/bin/sh\nexit {0 if gpu else 9}\n")
        smi.chmod(0o755)
    shutil.copy(ROOT / "scripts" / "pick_python.sh", tmp_path / "pick_python.sh")
    base = {k: v for k, v in os.environ.items() if k != "BEZKIT_TORCH_INDEX"}
    base["PATH"] = f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"
    result = subprocess.run(
        ["bash", "-c", f"source ./pick_python.sh && torch_index_args {sys.executable} '{spec}'"],
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


CPU_INDEX = ["--index-url", "https://download.pytorch.org/whl/cpu"]
NO_SUCH_TORCH = (
    "torch==1.0.0.post999"  # no wheel anywhere, never downloaded (the probe is --no-index)
)


def test_setup_takes_torch_from_pytorchs_cpu_index_without_a_gpu(tmp_path):
    """Issue 17: setup.sh said it installs the CPU build but ran a plain `pip install torch`."""
    assert _torch_index(tmp_path, NO_SUCH_TORCH) == CPU_INDEX
    assert _torch_index(tmp_path, NO_SUCH_TORCH, gpu=False) == CPU_INDEX  # nvidia-smi, no GPU
    assert _torch_index(tmp_path, NO_SUCH_TORCH, gpu=True) == []  # PyPI's default build
    url = "https://download.pytorch.org/whl/cu124"
    assert _torch_index(tmp_path, NO_SUCH_TORCH, BEZKIT_TORCH_INDEX=url) == ["--index-url", url]
    assert _torch_index(tmp_path, NO_SUCH_TORCH, BEZKIT_TORCH_INDEX="none") == []


def test_a_local_torch_wheel_is_taken_as_before(tmp_path):
    """Offline machines with the CPU wheel in pip's find-links (as here) install it unchanged."""
    import importlib.metadata

    installed = f"torch=={importlib.metadata.version('torch')}"
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
         "--ignore-installed", "--quiet", installed],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"no local wheel of {installed} in pip's configuration")
    assert _torch_index(tmp_path, installed) == []


def test_setup_sh_passes_the_chosen_index_to_pip():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'torch_index_args "$PY" "$TORCH_SPEC"' in text
    assert '${TORCH_INDEX[@]+"${TORCH_INDEX[@]}"} "$TORCH_SPEC"' in text
