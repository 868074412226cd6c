"""The notebook-hygiene hook (``scripts/clean_notebooks.py``, run by pre-commit)."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "clean_notebooks", ROOT / "scripts" / "clean_notebooks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


clean = _load_script()


def _notebook(outputs_size: int = 10) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.11.7"},
            "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
            "vscode": {"interpreter": {"hash": "abc"}},
        },
        "cells": [
            {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["# Title"]},
            {
                "cell_type": "code",
                "id": "c",
                "execution_count": 7,
                "metadata": {
                    "tags": ["exercise"],
                    "execution": {"iopub.execute_input": "2026-11-23T22:07:04Z"},
                    "ExecuteTime": {"end_time": "2026-11-23"},
                    "scrolled": True,
                },
                "source": ["1 + 1  # NBVAL_CHECK_OUTPUT"],
                "outputs": [
                    {
                        "output_type": "execute_result",
                        "execution_count": 7,
                        "data": {"text/plain": ["2" * outputs_size]},
                        "metadata": {},
                    },
                    {"output_type": "stream", "name": "stdout", "text": ["hello\n"]},
                ],
            },
        ],
    }


def test_clean_strips_run_records_and_keeps_outputs_and_tags() -> None:
    nb = _notebook()
    original = copy.deepcopy(nb)
    out = clean.clean_notebook(nb)
    assert nb == original, "the argument must not be modified"
    assert set(out["metadata"]) == {"kernelspec", "language_info"}
    assert out["metadata"]["language_info"] == {"name": "python"}
    code = out["cells"][1]
    assert code["execution_count"] == 1, "renumbered in the order of the code cells"
    assert code["metadata"] == {"tags": ["exercise"]}
    assert code["outputs"][0]["execution_count"] == 1
    assert code["outputs"][0]["data"] == original["cells"][1]["outputs"][0]["data"]
    assert code["outputs"][1] == original["cells"][1]["outputs"][1]
    assert out["cells"][0] == original["cells"][0]
    assert clean.clean_notebook(out) == out, "cleaning twice changes nothing more"


def test_execution_counts_follow_the_code_cells_and_unrun_cells_stay_unrun() -> None:
    nb = _notebook()
    ran = nb["cells"][1]
    never_run = {"cell_type": "code", "id": "u", "execution_count": None, "metadata": {}}
    never_run |= {"source": ["x = 1"], "outputs": []}
    rerun = copy.deepcopy(ran) | {"id": "r", "execution_count": 41}
    rerun["outputs"][0]["execution_count"] = 41
    nb["cells"] = [ran, nb["cells"][0], never_run, rerun]
    out = clean.clean_notebook(nb)
    assert [c.get("execution_count") for c in out["cells"]] == [1, None, None, 3]
    assert out["cells"][3]["outputs"][0]["execution_count"] == 3
    assert "execution_count" not in out["cells"][3]["outputs"][1], "streams have no count"


def test_main_rewrites_once_then_reports_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lesson.ipynb"
    path.write_text(json.dumps(_notebook()), encoding="utf-8")
    assert clean.main([str(path)]) == 1
    assert "cleaned" in capsys.readouterr().out
    first = path.read_bytes()
    assert clean.main([str(path)]) == 0
    assert path.read_bytes() == first
    assert json.loads(first) == clean.clean_notebook(_notebook())
    assert [p.name for p in tmp_path.iterdir()] == ["lesson.ipynb"], "no temporary file left"


def test_check_reports_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lesson.ipynb"
    text = json.dumps(_notebook())
    path.write_text(text, encoding="utf-8")
    assert clean.main(["--check", str(path)]) == 1
    assert "would be cleaned" in capsys.readouterr().out
    assert path.read_text(encoding="utf-8") == text


def test_oversized_outputs_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.ipynb"
    path.write_text(clean.notebook_text(clean.clean_notebook(_notebook(3000))), encoding="utf-8")
    assert clean.main(["--max-output-kb", "2", str(path)]) == 1
    assert "cell 1 (c): 3 kB of outputs, over 2 kB" in capsys.readouterr().err
    assert clean.main(["--max-output-kb", "0", str(path)]) == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not JSON"),
        ('{"nbformat": 3, "cells": []}', "not a version-4 Jupyter notebook"),
    ],
)
def test_bad_input_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text(text, encoding="utf-8")
    assert clean.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and problem in err
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_writer_uses_jupyters_layout(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = clean.clean_notebook(json.loads(path.read_text(encoding="utf-8")))
    nbformat.validate(nbformat.from_dict(nb))  # still a valid notebook after cleaning
    assert clean.notebook_text(nb) == nbformat.writes(nbformat.from_dict(nb)) + "\n"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebooks_are_clean(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    assert clean.notebook_text(clean.clean_notebook(nb)) == text, (
        f"run: python scripts/clean_notebooks.py {path.name}"
    )
    assert not clean.oversized_outputs(nb, clean.DEFAULT_MAX_OUTPUT_KB)


def test_stored_widget_views_are_dropped_and_other_outputs_kept() -> None:
    """A widget view's state is not kept (notebook metadata goes), so a stored view would show
    "model not found" or a stale widget's text in the browser: it is dropped, the rest stays."""
    nb = _notebook()
    view = {
        "output_type": "display_data",
        "metadata": {},
        "data": {
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2},
            "text/plain": "VBox(children=(FigureWidget(...),))",
        },
    }
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    without = clean.clean_notebook(nb)
    code[0]["outputs"] = [view, *code[0]["outputs"]]
    out = clean.clean_notebook(nb)
    assert out == without
    assert all("widget-view" not in json.dumps(c.get("outputs", [])) for c in out["cells"])
