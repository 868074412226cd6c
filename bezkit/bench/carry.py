"""What the GPU check needs on the lent GPU machine, and what must travel with it.

The machine (the device tool's kinds ``nvidia-h100-x1`` and ``nvidia-h200``) runs an image with
PyTorch and many packages (``GPU_IMAGE_PACKAGES``: the ones bezkit could use, from the workplace's
list of the image's packages, read 2026-11-17) and has no network. What bezkit needs beyond them
travels as wheel files in the git-ignored folder ``.whl/`` (``CARRIED_WHEELS``), named in the
device call's ``carry`` and installed offline by ``scripts/gpu_check.sh``.

``third_party_modules`` imports what the check runs (its sections, the digits benchmark, the
CUDA tests) in a fresh interpreter and maps every third-party module that got imported to its
distribution: the test suite checks that each is on the image or carried, so a new dependency
cannot be forgotten from the carry list (a static check: a virtual environment holding torch and
the image's packages cannot be built offline in CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = [
    "CARRIED_REQUIRES",
    "CARRIED_WHEELS",
    "CARRY",
    "CHECK_IMPORTS",
    "GPU_IMAGE_PACKAGES",
    "POT_BACKENDS_OFF",
    "REQUIRED_MODULES",
    "carried_names",
    "child_env",
    "third_party_modules",
]

ROOT = Path(__file__).resolve().parents[2]

# pip download --no-deps --only-binary=:all: --python-version 3.12 ... -d .whl <these>
CARRIED_WHEELS: tuple[str, ...] = ("POT==0.9.7.post1", "torch-fidelity==0.4.0")
CARRY: tuple[str, ...] = (".whl",)  # the device call's carry list (git-ignored paths)
# their Requires-Dist (no extras), read from the downloaded wheels' METADATA: none is carried
CARRIED_REQUIRES: dict[str, tuple[str, ...]] = {
    "pot": ("numpy", "scipy"),
    "torch-fidelity": ("numpy", "pillow", "torch", "torchvision", "tqdm"),
}

# distributions on the GPU image that bezkit or its check may import (names normalised: lower
# case, "-"), from the workplace's list of the image's packages
GPU_IMAGE_PACKAGES: frozenset[str] = frozenset({
    "torch", "numpy", "scipy", "matplotlib", "pillow", "tqdm", "safetensors", "filelock",
    "scikit-learn", "joblib", "threadpoolctl", "torchvision", "torchmetrics", "pytest",
    "pluggy", "iniconfig", "packaging", "hypothesis", "sortedcontainers", "attrs", "typing-extensions",
    "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "fsspec", "triton", "contourpy",
    "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil", "six",
    "lightning-utilities", "setuptools", "psutil", "pyyaml", "jax", "jaxlib", "cupy-cuda13x",
    "ml-dtypes", "opt-einsum", "nvidia-ml-py", "pygments", "charset-normalizer", "narwhals",
    "cloudpickle", "requests", "urllib3", "idna", "certifi",
})  # fmt: skip

# modules the check needs before it starts (module -> distribution); a missing one stops it
REQUIRED_MODULES: dict[str, str] = {
    "torch": "torch", "numpy": "numpy", "scipy": "scipy", "ot": "POT",
    "matplotlib": "matplotlib", "PIL": "pillow", "tqdm": "tqdm", "safetensors": "safetensors",
    "filelock": "filelock", "sklearn": "scikit-learn", "pytest": "pytest",
}  # fmt: skip

# POT imports every backend it finds (jax and cupy are on the image) in every process that
# imports it; bezkit uses numpy and torch only
POT_BACKENDS_OFF: dict[str, str] = {
    "POT_BACKEND_DISABLE_JAX": "1",
    "POT_BACKEND_DISABLE_CUPY": "1",
    "POT_BACKEND_DISABLE_TENSORFLOW": "1",
}

# what the check imports: its sections' modules, the digits benchmark, the CUDA tests
CHECK_IMPORTS: tuple[str, ...] = (
    "bezkit.bench.gpu_sections", "bezkit.bench.ddp_step", "bezkit.cli", "bezkit.cli.images",
    "bezkit.experiments", "bezkit.metrics.fid", "bezkit.training.ensemble",
    "benchmarks/images_digits.py", "tests/test_cuda.py", "tests/images/test_fid_backends.py",
)  # fmt: skip


def carried_names() -> frozenset[str]:
    """The carried distributions' names, normalised (``pot``, ``torch-fidelity``)."""
    return frozenset(w.split("==")[0].lower().replace("_", "-") for w in CARRIED_WHEELS)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the check's subprocesses: this one's, with the repository *prepended*
    to ``PYTHONPATH`` (the carried wheels' folder stays on it) and POT's unused backends off."""
    env = {**os.environ, **POT_BACKENDS_OFF, **(extra or {})}
    rest = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), rest]) if rest else str(ROOT)
    return env


_PROBE = r"""
import importlib, importlib.metadata as md, importlib.util, json, runpy, sys
before = set(sys.modules)
sys.path[:0] = [sys.argv[1] + "/benchmarks", sys.argv[1] + "/tests"]
for item in sys.argv[2:]:
    if item.endswith(".py"):
        spec = importlib.util.spec_from_file_location("probe_" + str(abs(hash(item))),
                                                      sys.argv[1] + "/" + item)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    else:
        importlib.import_module(item)
dists = md.packages_distributions()
std = set(sys.stdlib_module_names)
found = {}
for name in set(sys.modules) - before:
    top = name.split(".")[0]
    if top in std or top.startswith("_") or top in ("bezkit", "_common", "cython_runtime") \
            or "probe_" in top or top.startswith("test_") or top == "conftest":
        continue
    found[top] = sorted(dists.get(top, ["?"]))
print(json.dumps(found))
"""


def third_party_modules(imports: tuple[str, ...] = CHECK_IMPORTS) -> dict[str, list[str]]:
    """Import ``imports`` (modules, or ``.py`` files relative to the repository) in a fresh
    interpreter; every third-party top-level module imported, with its distribution(s)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT), *imports],
        capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"importing the check's modules failed:\n{proc.stderr[-2000:]}")
    found: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return found
