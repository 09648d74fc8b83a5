"""The instructor pipeline, driven through nbgrader's own commands.

release -> collect (here: bundled samples) -> ``nbgrader autograde`` -> record what nbgrader could
not open -> ``nbgrader generate_feedback`` -> ``nbgrader export`` -> a per-student table. Every
submitted student gets a row and a grade; a submission nbgrader cannot process (a notebook that is
not valid JSON) is recorded as zero with the reason, in the gradebook and in its feedback file.
"""

from __future__ import annotations

import html
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
from .harness import summary
from .nbgrader_plugin import course_private_paths, grade_notebook
from .samples import KIT_ROOT, write_samples
from .spec import Assignment

NBGRADER_CONFIG = "nbgrader_config.py"  # what nbgrader reads in a course folder; it loads course_config.py
COURSE_FILES = ("course_config.py", NBGRADER_CONFIG)


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


def prepare_course(course: Path, assignment_ids: list[str], kit_root: Path = KIT_ROOT) -> None:
    """A fresh course folder: the kit's configuration and source notebooks, assignments released."""
    if course.exists():
        shutil.rmtree(course)
    course.mkdir(parents=True)
    for name in COURSE_FILES:
        shutil.copy(kit_root / name, course / name)
    for aid in assignment_ids:
        shutil.copytree(kit_root / "source" / aid, course / "source" / aid)
        done = nbgrader(course, "generate_assignment", aid, "--force")
        if done.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment {aid} failed:\n{done.stderr[-3000:]}")


def submitted_students(course: Path, aid: str) -> list[str]:
    root = course / "submitted"
    return sorted(p.name for p in root.iterdir() if (p / aid).is_dir()) if root.exists() else []


def unreadable_reason(path: Path) -> str | None:
    """Why a submitted notebook cannot be read at all, or None if it can."""
    if not path.exists():
        return "no notebook was submitted"
    try:
        nbformat.read(str(path), as_version=4)
    except Exception as exc:
        return f"the notebook file cannot be opened ({type(exc).__name__}: {str(exc).split(':')[0][:120]})"
    return None


def execution_failure(log: str) -> str:
    """What stopped nbgrader, in words for the student (the details are in the autograde log)."""
    if "DeadKernelError" in log:
        return "nbgrader could not run this notebook: the kernel died (a cell called exit() or crashed Python)"
    if "UnresponsiveKernelError" in log:
        return "nbgrader could not run this notebook: the kernel stopped responding (an endless loop in C code?)"
    return "nbgrader could not run this notebook"


def _record_scores(course: Path, aid: str, student: str, scores: dict[str, float], comment: str) -> None:
    """Write auto scores (grade_id -> points; missing ones get 0) for one submission into the gradebook."""
    course_id, db_url = course_id_and_db(course)
    with Gradebook(db_url, course_id) as gb:
        gb.update_or_create_student(student)
        try:
            gb.find_submission(aid, student)
        except MissingEntry:
            gb.add_submission(aid, student)
        submission = gb.find_submission_notebook(aid, aid, student)
        for grade in submission.grades:
            grade.auto_score = float(scores.get(grade.name, 0.0))
            grade.needs_manual_grade = False
        for entry in submission.comments:
            entry.auto_comment = comment
        gb.db.commit()


def _feedback_page(course: Path, aid: str, student: str, title: str, body: str) -> None:
    page = course / "feedback" / student / aid / f"{aid}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"<html><body><h1>{html.escape(aid)}: {html.escape(title)}</h1>{body}</body></html>\n")


def record_ungradable(course: Path, aid: str, student: str, reason: str) -> None:
    """Zero for every graded cell, with the reason as a comment, and a feedback page that says why."""
    _record_scores(course, aid, student, {}, reason)
    _feedback_page(course, aid, student, "not graded",
                   f"<p>Your submission could not be graded: {html.escape(reason)}.</p><p>Every item scores 0. "
                   "Re-submit a notebook that opens in Jupyter (File &rarr; Save, then check that it reopens).</p>")


def grade_in_sandbox_only(course: Path, aid: str, student: str, reason: str) -> None:
    """nbgrader could not execute a readable notebook: grade it with the sandboxed harness alone (the
    same verdicts TrustedGrades gives), so a crashing cell costs only what depends on it."""
    nb = nbformat.read(str(course / "submitted" / student / aid / f"{aid}.ipynb"), as_version=4)
    reports, _ = grade_notebook(nb, aid, course_private_paths(str(course)))
    _record_scores(course, aid, student, {r.item.name: r.earned for r in reports},
                   f"{reason}; graded in the sandbox without cell outputs")
    items = "".join(f"<h3>{html.escape(r.item.name)}</h3><pre>{html.escape(r.text())}</pre>" for r in reports)
    _feedback_page(course, aid, student, "graded without running the notebook",
                   f"<p>{html.escape(reason)}. Your functions were still graded, each on its own, so this "
                   f"report has no cell outputs.</p><pre>{html.escape(summary(load(aid), reports))}</pre>{items}")


def collect_rows(course: Path, assignment: Assignment, reasons: dict[str, str]) -> list[StudentRow]:
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
    """Autograde every submission of ``aid``, record the ones nbgrader could not process, write feedback."""
    assignment = load(aid)
    students = submitted_students(course, aid)
    start = time.perf_counter()
    log = nbgrader(course, "autograde", aid, "--force").stderr
    seconds = time.perf_counter() - start
    reasons: dict[str, str] = {}
    for student in students:
        if (course / "autograded" / student / aid / f"{aid}.ipynb").exists():
            continue
        unreadable = unreadable_reason(course / "submitted" / student / aid / f"{aid}.ipynb")
        if unreadable is not None:
            reasons[student] = f"not gradable: {unreadable}"
            record_ungradable(course, aid, student, unreadable)
        else:
            reasons[student] = f"graded in the sandbox only: {execution_failure(log)}"
            grade_in_sandbox_only(course, aid, student, execution_failure(log))
    feedback = nbgrader(course, "generate_feedback", aid, "--force")
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
    lines = [f"{run.assignment.id}: nbgrader autograde of {run.submissions} submissions took "
             f"{run.autograde_seconds:.1f} s ({per:.1f} s per submission)",
             f"  {'student':<22} {'score':>11}  {'status':<12} {'check':<12} items lost"]
    for row in run.rows:
        status = ("graded" if row.status == "graded" else "NOT GRADABLE" if row.status.startswith("not gradable")
                  else "sandbox only")
        lost = ", ".join(row.wrong) if len(row.wrong) < len(run.assignment.items) else "all"
        lines.append(f"  {row.student:<22} {row.score:>5g} / {row.max_score:<3g}  {status:<12} "
                     f"{row.expected or '-':<12} {lost}")
        if row.status != "graded":
            lines.append(f"  {'':<22} {row.status}")
    return "\n".join(lines)


def run_demo(course: Path, assignment_ids: list[str]) -> tuple[list[AssignmentRun], Path]:
    """The main job: release, bundled samples, autograde, feedback, export."""
    prepare_course(course, assignment_ids)
    runs = []
    for aid in assignment_ids:
        write_samples(course, load(aid))
        runs.append(grade_assignment(course, aid))
    return runs, export_grades(course)
