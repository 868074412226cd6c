"""The version is written once, in ``bezkit/__init__.py``; the packaging metadata reads it there."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

import bezkit

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_version_equals_the_installed_metadata() -> None:
    assert bezkit.__version__ == importlib.metadata.version("bezkit")


def test_pyproject_reads_the_version_from_the_package() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert "version" not in config["project"], "the version belongs in bezkit/__init__.py only"
    assert "version" in config["project"]["dynamic"]
    dynamic = config["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "bezkit.__version__"}


def test_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", bezkit.__version__)
