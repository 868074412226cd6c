"""The lessons as a course: one setup call, student versions, and a kit for a course repository.

- :func:`setup_lesson`: the first code cell of every lesson (seed, one thread, figure style, the
  checkpoints folder);
- :func:`student_notebook` / :func:`write_student_versions`: solution blocks replaced by stubs,
  no stored output from the first question or exercise on (:func:`answers_start`);
- :func:`copy_course`: lessons, checkpoints, CI workflow and a lecturer's README into a folder
  (``bezkit lessons copy DIR [--student]``); :func:`kit_files` finds them in the installed package.
"""

from bezkit.course.kit import WORKFLOW, CourseKit, copy_course, lecturer_readme
from bezkit.course.kit_manifest import KitFiles, kit_files
from bezkit.course.lesson_setup import FIGURE_STYLE, LessonSetup, lesson_root, setup_lesson
from bezkit.course.student import (
    BEGIN,
    CHECK_TAG,
    END,
    SOLUTION_TAG,
    STUB,
    StudentVersion,
    answers_start,
    notebook_json,
    read_notebook,
    student_notebook,
    student_source,
    write_notebook,
    write_student_versions,
)

__all__ = [
    "BEGIN",
    "CHECK_TAG",
    "END",
    "FIGURE_STYLE",
    "SOLUTION_TAG",
    "STUB",
    "WORKFLOW",
    "CourseKit",
    "KitFiles",
    "LessonSetup",
    "StudentVersion",
    "answers_start",
    "copy_course",
    "kit_files",
    "lecturer_readme",
    "lesson_root",
    "notebook_json",
    "read_notebook",
    "setup_lesson",
    "student_notebook",
    "student_source",
    "write_notebook",
    "write_student_versions",
]
