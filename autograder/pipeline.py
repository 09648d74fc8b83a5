"""The instructor pipeline, driven through nbgrader's own commands.

release -> collect (here: bundled samples) -> grade -> ``nbgrader generate_feedback`` -> ``nbgrader
export`` -> a per-student table. Grading a class goes through ``backprop-kit grade`` (``classgrade``);
``grade_assignment`` here runs plain ``nbgrader autograde`` for one assignment, one submission after
another, the path formgrader's button takes. Everything that makes every submission get a grade and
a reason (unreadable files, misnamed files, edited check cells, crashes) lives inside
``nbgrader autograde`` itself (``nbgrader_plugin``), so formgrader's button behaves the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from traitlets.config.loader import PyFileConfigLoader

from .assignments import load
from .course_folder import COURSE_FILES, KIT_ROOT, make_fresh_folder
from .spec import Assignment

NBGRADER_CONFIG = "nbgrader_config.py"  # what nbgrader reads in a course folder; it loads course_config.py


@dataclass
class StudentRow:
    student: str
    score: float
    max_score: float
    status: str = "graded"
    wrong: list[str] = field(default_factory=list)
    expected: str = ""  # for bundled samples: whether the verdict is the one the sample was made for


@dataclass
class AssignmentRun:
    assignment: Assignment
    rows: list[StudentRow]
    autograde_seconds: float
    submissions: int
    log: str = ""
    how: str = "nbgrader autograde"


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an nbgrader command in the course folder, exactly as an instructor would type it."""
    # nbgrader runs `alembic` (and kernels) by name: the environment's bin/ must be on PATH even
    # when the kit is called without activating its virtual environment.
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                          env=env)


def course_id_and_db(course: Path) -> tuple[str, str]:
    """The course id and gradebook URL, read from the course's own nbgrader configuration (the same
    files ``nbgrader`` reads there), so the pipeline never disagrees with it."""
    config = PyFileConfigLoader(NBGRADER_CONFIG, path=str(course)).load_config()
    return config.CourseDirectory.course_id, config.CourseDirectory.db_url


def prepare_course(course: Path, assignment_ids: list[str], source_course: Path = KIT_ROOT,
                   force: bool = False) -> None:
    """A fresh course folder made from ``source_course`` (its configuration and source notebooks),
    assignments released. ``course`` must be empty, or made by the kit, unless ``force``
    (``course_folder.make_fresh_folder``)."""
    make_fresh_folder(course, force)
    for name in COURSE_FILES:
        shutil.copy(source_course / name, course / name)
    for aid in assignment_ids:
        shutil.copytree(source_course / "source" / aid, course / "source" / aid)
        done = nbgrader(course, "generate_assignment", aid, "--force")
        if done.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {aid} failed:\n{done.stderr[-3000:]}")


def add_roster(course: Path, students: list[tuple[str, str, str]]) -> Path:
    """Write the course's ``students.csv`` (nbgrader's roster format) and import it into the gradebook,
    so formgrader shows the students' names."""
    roster = course / "students.csv"
    roster.write_text("id,first_name,last_name,email\n" + "".join(f"{sid},{first},{last},\n"
                                                                 for sid, first, last in students))
    done = nbgrader(course, "db", "student", "import", str(roster))
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader db student import failed:\n{done.stderr[-3000:]}")
    return roster


def submitted_students(course: Path, aid: str) -> list[str]:
    root = course / "submitted"
    return sorted(p.name for p in root.iterdir() if (p / aid).is_dir()) if root.exists() else []


def grading_status(course: Path, aid: str, student: str, coursedir: object | None = None) -> str:
    """What the autograded notebook says about how it was graded (nbgrader autograde wrote it);
    ``coursedir`` (nbgrader's CourseDirectory) when the course names its folders its own way."""
    folder = (Path(coursedir.format_path(coursedir.autograded_directory, student, aid))  # type: ignore[attr-defined]
              if coursedir is not None else course / "autograded" / student / aid)
    path = folder / f"{aid}.ipynb"
    if not path.exists():
        return "NOT GRADED: nbgrader autograde wrote no notebook (see its log)"
    meta = nbformat.read(str(path), as_version=4).metadata.get("backprop_kit", {})
    if meta.get("unreadable"):
        return f"not gradable: {meta['unreadable']}"
    notes = []
    if meta.get("submitted_as"):
        notes.append(f"submitted as {meta['submitted_as']!r}")
    if meta.get("restored_check_cells"):
        notes.append(f"check cells restored: {', '.join(meta['restored_check_cells'])}")
    if meta.get("grading", {}).get("review"):
        notes.append("flagged for review: " + "; ".join(meta["grading"]["review"])[:300])
    return "graded" + (" (" + "; ".join(notes) + ")" if notes else "")


def collect_rows(course: Path, assignment: Assignment, reasons: dict[str, str], course_id: str | None = None,
                 db_url: str | None = None) -> list[StudentRow]:
    if course_id is None or db_url is None:
        course_id, db_url = course_id_and_db(course)
    rows: list[StudentRow] = []
    order = {item.name: i for i, item in enumerate(assignment.items)}  # items lost, in backward order
    with Gradebook(db_url, course_id) as gb:
        for student in sorted(s.id for s in gb.students):
            try:
                submission = gb.find_submission_notebook(assignment.id, assignment.id, student)
            except MissingEntry:
                continue
            wrong = sorted((g.name for g in submission.grades if (g.score or 0.0) < g.max_score),
                           key=lambda n: (order.get(n, len(order)), n))
            rows.append(StudentRow(student=student, score=float(submission.score), max_score=float(submission.max_score),
                                   status=reasons.get(student, "graded"),
                                   wrong=wrong))
    return rows


def expectation(assignment: Assignment, row: StudentRow) -> str:
    """For a bundled sample: does its verdict match what it was made to show?"""
    sample = next((s for s in assignment.samples if s.student == row.student), None)
    if sample is None:
        return ""
    expected_wrong = [i.name for i in assignment.items if i.name in sample.expected_zero]
    return "as expected" if row.wrong == expected_wrong else f"UNEXPECTED (expected wrong: {expected_wrong})"


def grade_assignment(course: Path, aid: str) -> AssignmentRun:
    """``nbgrader autograde`` every submission of ``aid`` (the kit's sandboxed pipeline inside it),
    then ``nbgrader generate_feedback``; rows from the gradebook."""
    assignment = load(aid)
    students = submitted_students(course, aid)
    start = time.perf_counter()
    log = nbgrader(course, "autograde", aid, "--force").stderr
    seconds = time.perf_counter() - start
    # nbgrader logs the exception's traceback; its last line starts with the exception's name, which
    # no text of a student's (always after a log prefix) can do
    stopped = [ln for ln in log.splitlines() if ln.startswith("autograder.sandbox.isolation.IsolationUnavailable:")]
    if stopped:
        raise RuntimeError("grading stopped: " + stopped[0].split(":", 1)[1].strip())
    feedback = nbgrader(course, "generate_feedback", aid, "--force")
    reasons = {student: grading_status(course, aid, student) for student in students}
    rows = collect_rows(course, assignment, reasons)
    for row in rows:
        row.expected = expectation(assignment, row)
    return AssignmentRun(assignment, rows, seconds, len(students), log=log + feedback.stderr)


def export_grades(course: Path) -> Path:
    done = nbgrader(course, "export")
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader export failed:\n{done.stderr[-3000:]}")
    return course / "grades.csv"


def format_run(run: AssignmentRun) -> str:
    per = run.autograde_seconds / max(1, run.submissions)
    lines = [f"{run.assignment.id}: {run.how} of {run.submissions} submissions took "
             f"{run.autograde_seconds:.1f} s ({per:.1f} s per submission)",
             f"  {'student':<22} {'score':>11}  {'status':<12} {'check':<12} items lost"]
    for row in run.rows:
        status = ("NOT GRADABLE" if row.status.startswith("not gradable") else "NOT GRADED"
                  if row.status.startswith("NOT GRADED") else "graded")
        lost = ", ".join(row.wrong) if len(row.wrong) < len(run.assignment.items) else "all"
        lines.append(f"  {row.student:<22} {row.score:>5g} / {row.max_score:<3g}  {status:<12} "
                     f"{row.expected or '-':<12} {lost}")
        if row.status != "graded":  # a reason, a note, or a flag for review
            lines.append(f"  {'':<22} {row.status}")
    return "\n".join(lines)
