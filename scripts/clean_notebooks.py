#!/usr/bin/env python
"""Notebook hygiene for commits: strip what changes from run to run, keep the outputs.

For each ``.ipynb`` given:

- execution counts are renumbered 1, 2, 3, ... in the order of the code cells (cells and their
  ``execute_result`` outputs), as a clean top-to-bottom run numbers them; a cell that was never run
  and has no output keeps ``null``. (Counts cannot simply go: nbval fails a cell that has outputs
  but no count, "Unrun reference cell has outputs".)
- cell metadata loses the run records ``execution``, ``ExecuteTime``, ``collapsed``, ``scrolled``
  (tags and everything else stay: nbval and the lessons may read them);
- notebook metadata keeps only ``kernelspec`` and ``language_info`` without its Python ``version``
  (saved widget state and editor settings go);
- outputs stay, since nbval compares the cells marked ``# NBVAL_CHECK_OUTPUT`` against them, but a
  cell whose outputs exceed ``--max-output-kb`` is reported as an error: make the figure smaller;
- except widget views (``application/vnd.jupyter.widget-view+json``): their widget state goes with
  the notebook metadata, so a stored view could only show "model not found" (or the text of a
  widget the code no longer builds); a widget shows when its cell runs.

The file is rewritten (atomically, in Jupyter's own layout: one-space indent, sorted keys) only when
it changes. The exit status is 1 when a file was changed (or, with ``--check``, would be) or has an
oversized output, as pre-commit expects of a fixing hook; 2 for a file that is not a notebook.

    python scripts/clean_notebooks.py notebooks/*.ipynb
    python scripts/clean_notebooks.py --check notebooks/*.ipynb
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bezkit.files.atomic import atomic_write_bytes

RUN_RECORD_KEYS = ("execution", "ExecuteTime", "collapsed", "scrolled")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NOTEBOOK_METADATA_KEYS = ("kernelspec", "language_info")
DEFAULT_MAX_OUTPUT_KB = 300


class NotANotebookError(ValueError):
    """The file is not a version-4 Jupyter notebook."""


def clean_notebook(nb: dict[str, Any]) -> dict[str, Any]:
    """A cleaned copy of the notebook (the argument is left as it is)."""
    nb = json.loads(json.dumps(nb))
    metadata = {k: v for k, v in nb.get("metadata", {}).items() if k in NOTEBOOK_METADATA_KEYS}
    if isinstance(metadata.get("language_info"), dict):
        metadata["language_info"].pop("version", None)
    nb["metadata"] = metadata
    code_cells = 0
    for cell in nb["cells"]:
        cell["metadata"] = {
            k: v for k, v in cell.get("metadata", {}).items() if k not in RUN_RECORD_KEYS
        }
        if cell.get("cell_type") != "code":
            continue
        code_cells += 1
        ran = cell.get("execution_count") is not None or bool(cell.get("outputs"))
        count = code_cells if ran else None
        cell["execution_count"] = count
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if WIDGET_VIEW not in o.get("data", {})]
        for output in cell.get("outputs", []):
            if "execution_count" in output:
                output["execution_count"] = count
    return nb


def oversized_outputs(nb: dict[str, Any], max_kb: float) -> list[str]:
    """``"cell N (id): S kB"`` for every code cell whose outputs take more than ``max_kb``."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        size_kb = len(json.dumps(cell.get("outputs", []))) / 1024
        if size_kb > max_kb:
            found.append(f"cell {index} ({cell.get('id', 'no id')}): {size_kb:.0f} kB")
    return found


def read_notebook(path: Path) -> tuple[str, dict[str, Any]]:
    """The file's text and its parsed notebook; ``NotANotebookError`` naming what is wrong."""
    text = path.read_text(encoding="utf-8")
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotANotebookError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise NotANotebookError(f"{path}: not a version-4 Jupyter notebook")
    return text, nb


def notebook_text(nb: dict[str, Any]) -> str:
    """The notebook as Jupyter writes it (``nbformat``'s layout), ending in a newline."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Clean (or, with ``--check``, inspect) the notebooks; the exit status as described above."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="report, do not rewrite")
    parser.add_argument(
        "--max-output-kb",
        type=float,
        default=DEFAULT_MAX_OUTPUT_KB,
        help=f"largest outputs of one cell, in kB (default {DEFAULT_MAX_OUTPUT_KB}; 0: no limit)",
    )
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        try:
            text, nb = read_notebook(path)
        except (NotANotebookError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        cleaned = notebook_text(clean_notebook(nb))
        if cleaned != text:
            status = max(status, 1)
            if args.check:
                print(f"{path}: would be cleaned")
            else:
                atomic_write_bytes(path, cleaned.encode("utf-8"))
                print(f"{path}: cleaned")
        big = oversized_outputs(nb, args.max_output_kb) if args.max_output_kb > 0 else []
        for where in big:
            print(f"{path}: {where} of outputs, over {args.max_output_kb:g} kB", file=sys.stderr)
        status = max(status, 1 if big else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
