"""The course kit: the setup call, student versions, `bezkit lessons`, and the packaged lessons."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
import torch
from course_wheel import build_wheel

from bezkit.cli import main
from bezkit.course import (
    BEGIN,
    END,
    STUB,
    answers_start,
    copy_course,
    kit_files,
    lesson_root,
    setup_lesson,
    student_notebook,
    student_source,
    write_student_versions,
)

ROOT = Path(__file__).resolve().parents[1]

SOLUTION = f"""import math


def tangent(points, t):
    {BEGIN}
    n = len(points) - 1
    return n * (points[1] - points[0])
    {END}


{BEGIN}
ANSWER = 3
{END}
print("done")"""


def make_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A lesson"),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)"),
        nbformat.v4.new_code_cell(SOLUTION, metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell(
            "# NBVAL_CHECK_OUTPUT\ncheck(tangent)", metadata={"tags": ["check"]}
        ),
    ]
    for cell in nb.cells[1:]:
        cell.outputs = [nbformat.v4.new_output("stream", text="stored\n")]
        cell.execution_count = 1
    return nb


def test_student_source_replaces_each_block_at_its_indentation():
    out, blocks = student_source(SOLUTION)
    assert blocks == 2
    assert f"    {STUB}" in out.splitlines()  # inside the function
    assert STUB in out.splitlines()  # at top level
    assert "n * (points" not in out and "ANSWER = 3" not in out
    assert out.splitlines()[0] == "import math" and out.splitlines()[-1] == 'print("done")'
    compile(out, "student", "exec")  # still valid Python


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (f"{BEGIN}\nx = 1", "without # END"),
        (f"x = 1\n{END}", "without # BEGIN"),
        (f"{BEGIN}\n{BEGIN}\n{END}", "inside another"),
    ],
)
def test_student_source_rejects_broken_markers(source, problem):
    with pytest.raises(ValueError, match=problem):
        student_source(source, where="lesson.ipynb cell 4")


def test_student_notebook_stubs_solutions_and_keeps_the_rest():
    nb = make_notebook()
    student, stubs = student_notebook(nb, name="lesson.ipynb")
    assert stubs == 2
    assert nb.cells[2].source == SOLUTION  # the original is untouched
    assert student.cells[1] == nb.cells[1]  # other cells, outputs included, unchanged
    assert student.cells[2].outputs == [] and student.cells[2].execution_count is None
    assert BEGIN not in student.cells[2].source
    assert student.cells[3].source == "check(tangent)"  # no NBVAL marker, no stored output
    assert student.cells[3].outputs == []
    assert student.metadata["bezkit"]["version"] == "student"


def test_student_notebook_stores_no_output_below_a_question():
    """Issue 20: the copy showed the figure that answers 01's prediction and 06's table."""
    nb = make_notebook()
    question = nbformat.v4.new_code_cell('show_question("01.one-step")')
    answer = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(answer)\nplt.show()")
    for cell in (question, answer):
        cell.outputs = [nbformat.v4.new_output("stream", text="the answer\n")]
        cell.execution_count = 1
    nb.cells[2:2] = [question, answer]
    student, _ = student_notebook(nb, name="lesson.ipynb")
    assert student.cells[1] == nb.cells[1]  # above the first question: kept
    for cell in student.cells[2:]:
        assert cell.outputs == [] and cell.execution_count is None
        assert "NBVAL_CHECK_OUTPUT" not in cell.source  # nbval must not compare it with nothing
    assert student.cells[3].source == "print(answer)\nplt.show()"


def test_student_copies_of_the_lessons_give_no_answer_away():
    for path in kit_files().lessons():
        nb = nbformat.read(path, as_version=4)
        student, _ = student_notebook(nb, name=path.name)
        start = answers_start(student.cells)
        assert start < len(student.cells), f"{path.name} has no question and no exercise"
        for index, cell in enumerate(student.cells[start:], start=start):
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name} cell {index} keeps its outputs"
        shown = [
            cell.source
            for cell in student.cells
            if cell.cell_type == "code"
            and any("image/png" in o.get("data", {}) for o in cell.outputs)
        ]
        if path.name.startswith("01_"):  # the one-step figure answers 01.one-step
            assert not any("one_step = solve_ode" in source for source in shown)


def test_student_notebook_refuses_untagged_or_empty_solutions():
    nb = make_notebook()
    nb.cells[2].metadata["tags"] = []
    with pytest.raises(ValueError, match="cell 2 has # BEGIN SOLUTION/# END SOLUTION markers"):
        student_notebook(nb, name="x.ipynb")
    nb = make_notebook()
    nb.cells[1].metadata["tags"] = ["solution"]
    with pytest.raises(ValueError, match="cell 1 is tagged 'solution' but has no"):
        student_notebook(nb, name="x.ipynb")


def test_write_student_versions_is_atomic_and_never_overwrites(tmp_path):
    src = tmp_path / "lesson.ipynb"
    nbformat.write(make_notebook(), src)
    out = tmp_path / "students"
    (written,) = write_student_versions([src], out)
    assert written.stubs == 2 and written.path == out / "lesson.ipynb"
    assert STUB in nbformat.read(written.path, as_version=4).cells[2].source
    with pytest.raises(FileExistsError, match=r"lesson\.ipynb"):
        write_student_versions([src], out)
    write_student_versions([src], out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["lesson.ipynb"]  # no temporary files left
    with pytest.raises(ValueError, match="no notebooks"):
        write_student_versions([], out)


def test_every_lesson_has_tagged_exercises_that_stub_cleanly():
    kit = kit_files()
    counts = {}
    for path in kit.lessons():
        nb = nbformat.read(path, as_version=4)
        student, stubs = student_notebook(nb, name=path.name)
        counts[path.name] = stubs
        for cell in student.cells:
            if cell.cell_type == "code":
                assert BEGIN not in cell.source and END not in cell.source
    assert all(counts.values()), counts  # every lesson has exercises


def test_setup_lesson(tmp_path, monkeypatch):
    (tmp_path / "data" / "checkpoints").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("BEZKIT_CHECKPOINTS", raising=False)
    threads = torch.get_num_threads()
    try:
        lesson = setup_lesson(seed=3, style=False)
        assert lesson.root == tmp_path and lesson.checkpoints == tmp_path / "data" / "checkpoints"
        assert lesson.seed == 3 and lesson.retrain is False and torch.get_num_threads() == 1
        assert torch.initial_seed() == 3
        monkeypatch.chdir(tmp_path)
        assert lesson_root() == tmp_path
        (tmp_path / "data" / "checkpoints").rmdir()  # no local data: the installed copy
        assert setup_lesson(style=False).checkpoints == kit_files().checkpoints
        monkeypatch.setenv("BEZKIT_CHECKPOINTS", str(tmp_path / "nowhere"))
        with pytest.raises(FileNotFoundError, match="BEZKIT_CHECKPOINTS"):
            setup_lesson(style=False)
        with pytest.raises(ValueError, match="threads"):
            setup_lesson(threads=0)
    finally:
        torch.set_num_threads(threads)


def test_copy_course_writes_lessons_checkpoints_workflow_and_readme(tmp_path):
    kit = copy_course(tmp_path / "course")
    root = kit.root
    lessons = sorted(p.name for p in (root / "notebooks").glob("*.ipynb"))
    assert lessons == [p.name for p in kit_files().lessons()]
    checkpoints = kit_files().checkpoints
    shipped = sorted(p.relative_to(checkpoints) for p in checkpoints.rglob("*") if p.is_file())
    # lessons 04 and 06 load their cached students from students-04/ and students-06/
    for folder in ("students-04", "students-06"):
        assert any(p.parts[0] == folder and p.name == "students.json" for p in shipped), folder
    for name in shipped:
        src, dst = checkpoints / name, root / "data" / "checkpoints" / name
        assert dst.read_bytes() == src.read_bytes(), name
    # lesson 05 reads the experiment's results (without them it would run a small experiment)
    results = root / "data" / "results" / "results.json"
    assert results.read_bytes() == kit_files().results.read_bytes()
    yaml = pytest.importorskip("yaml")  # PyYAML comes with jupyter; the check needs it only here
    workflow = yaml.safe_load((root / ".github" / "workflows" / "lessons.yml").read_text())
    steps = workflow["jobs"]["notebooks"]["steps"]
    assert any("pytest" in s.get("run", "") for s in steps)
    assert "--nbval-lax" in (root / "pytest.ini").read_text()
    assert (root / "notebooks" / "NOTATION.md").is_file()
    assert "bezkit lessons student" in (root / "README.md").read_text()
    with pytest.raises(FileExistsError, match="already has"):
        copy_course(root)

    students = copy_course(tmp_path / "students", student=True)
    assert students.stubs >= 12
    nb = nbformat.read(students.root / "notebooks" / "03_bezier_curves.ipynb", as_version=4)
    text = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    assert STUB in text and BEGIN not in text


def test_cli_lessons(tmp_path, capsys):
    assert main(["lessons", "list"]) == 0
    assert "01_rectified_flow.ipynb" in capsys.readouterr().out
    assert main(["lessons", "copy", str(tmp_path / "c"), "--student"]) == 0
    assert "student versions" in capsys.readouterr().out
    assert main(["lessons", "copy", str(tmp_path / "c")]) == 2
    assert "already has" in capsys.readouterr().err
    assert (
        main(["lessons", "student", str(tmp_path / "s"), "--lesson", "03_bezier_curves.ipynb"]) == 0
    )
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["03_bezier_curves.ipynb"]
    assert main(["lessons", "student", str(tmp_path / "s"), "--lesson", "99_nope.ipynb"]) == 2
    assert "no lesson 99_nope.ipynb" in capsys.readouterr().err
    # an output that cannot be written is one line before any work, never a traceback
    (tmp_path / "a-file").write_text("")
    for action in ("copy", "student"):
        assert main(["lessons", action, str(tmp_path / "a-file" / "course")]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "is not a folder" in err
        assert err.startswith(f"bezkit lessons {action}: error: "), err  # names the action


def test_the_wheel_ships_the_lessons_and_copy_works_from_it(tmp_path):
    """Build the wheel from a clean copy of the project, unpack it, run `bezkit lessons` from it."""
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for lesson in kit_files().lessons():
        assert f"bezkit/course/kit/notebooks/{lesson.name}" in names
    checkpoints = ROOT / "data" / "checkpoints"
    for path in checkpoints.rglob("*"):  # the lessons' flows and 04 / 06's cached students
        if path.is_file():
            assert f"bezkit/course/kit/data/checkpoints/{path.relative_to(checkpoints)}" in names
    assert "bezkit/course/kit/data/checkpoints/students-04/students.json" in names
    assert "bezkit/course/kit/data/checkpoints/students-06/students.json" in names
    assert "bezkit/course/kit/data/results/results.json" in names  # lesson 05's numbers
    for name in ("sanitize.cfg", "README.md", "NOTATION.md"):
        assert f"bezkit/course/kit/notebooks/{name}" in names

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-m", "bezkit", "lessons", "copy", str(tmp_path / "course")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "wrote" in out.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "bezkit", "lessons", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert f"packaged copy in {site / 'bezkit' / 'course' / 'kit'}" in listed
    course = tmp_path / "course" / "data"
    assert (course / "checkpoints" / "8gaussians-moons-1rf.json").is_file()
    for folder in ("students-04", "students-06"):
        assert (course / "checkpoints" / folder / "students.json").is_file()
    results = course / "results" / "results.json"
    assert results.read_bytes() == (ROOT / "data" / "results" / "results.json").read_bytes()


def test_the_course_says_how_it_installs_bezkit(tmp_path, capsys):
    """Issue 20: the copy pinned bezkit==VERSION, which is not on PyPI; the lecturer must choose."""
    wheel = tmp_path / "bezkit-0.2.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    kit = copy_course(tmp_path / "with-wheel", bezkit_wheel=wheel)
    requirements = (kit.root / "requirements.txt").read_text()
    assert "--find-links ./wheels\nbezkit[notebooks,test]==0.2.0" in requirements
    assert (kit.root / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    readme = (kit.root / "README.md").read_text()
    assert "what you must choose" in readme and f"wheels/{wheel.name}" in readme

    url = "bezkit[notebooks,test] @ git+https://github.com/OWNER/bezkit@v0.2.0"
    kit = copy_course(tmp_path / "with-url", bezkit_requirement=url)
    assert (kit.root / "requirements.txt").read_text().splitlines()[-1] == url
    assert not (kit.root / "wheels").exists()

    kit = copy_course(tmp_path / "unchosen")
    assert "CHOOSE" in (kit.root / "requirements.txt").read_text()
    assert "Not chosen yet" in (kit.root / "README.md").read_text()

    with pytest.raises(ValueError, match="not a bezkit wheel"):
        copy_course(tmp_path / "x", bezkit_wheel=tmp_path / "numpy-1.0-py3-none-any.whl")
    with pytest.raises(FileNotFoundError, match="no wheel"):
        copy_course(tmp_path / "x", bezkit_wheel=tmp_path / "bezkit-9.9-py3-none-any.whl")
    with pytest.raises(ValueError, match="not both"):
        copy_course(tmp_path / "x", bezkit_wheel=wheel, bezkit_requirement=url)
    with pytest.raises(ValueError, match="one pip requirement line for bezkit"):
        copy_course(tmp_path / "x", bezkit_requirement="numpy\nbezkit")
    assert not (tmp_path / "x").exists()  # nothing written on a bad choice

    assert main(["lessons", "copy", str(tmp_path / "cli"), "--bezkit-wheel", str(wheel)]) == 0
    assert "note:" not in capsys.readouterr().out
    assert main(["lessons", "copy", str(tmp_path / "cli2")]) == 0
    assert "--bezkit-wheel or --bezkit-requirement" in capsys.readouterr().out
    missing = str(tmp_path / "bezkit-9.9-py3-none-any.whl")
    assert main(["lessons", "copy", str(tmp_path / "cli3"), "--bezkit-wheel", missing]) == 2
    err = capsys.readouterr().err
    assert "no wheel" in err and "Traceback" not in err
