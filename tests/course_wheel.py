"""Build bezkit's wheel from a clean copy of the project (tracked files and the package's modules),
as a release would: shared by the wheel tests of ``test_course.py`` and ``test_course_notebooks.py``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(tmp_path: Path) -> Path:
    """Copy the project (without tests and benchmarks) to ``tmp_path`` and build its wheel there."""
    project = tmp_path / "project"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    extra = [
        b"setup.py",
        b"MANIFEST.in",
        *[str(p.relative_to(ROOT)).encode() for p in (ROOT / "bezkit").rglob("*.py")],
    ]
    for rel in {r.decode() for r in tracked + extra if r}:
        if (ROOT / rel).is_file() and not rel.startswith(("tests/", "benchmarks/")):
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, project / rel)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), "."],
        cwd=project,
        check=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = dist.glob("bezkit-*.whl")
    return wheel
