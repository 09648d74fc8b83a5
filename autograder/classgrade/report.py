"""The table ``backprop-kit grade`` prints: one summary line, then per assignment every student's
score, status and the items lost, read back from the gradebook nbgrader wrote."""

from __future__ import annotations

from ..assignments import assignment_ids, load
from ..pipeline import AssignmentRun, StudentRow, collect_rows, expectation, format_run, grading_status
from .engine import ClassRun


def _gb(n: int) -> str:
    return f"{n / 1024**3:.2f} GB"


def summary_line(run: ClassRun) -> str:
    graded, failed = run.count("graded"), run.count("failed")
    per = run.seconds / graded if graded else 0.0
    text = (f"graded {graded}, unchanged {run.count('unchanged')} (kept), failed {failed}"
            + (f", interrupted {run.count('interrupted')}" if run.interrupted else "")
            + f" in {run.seconds:.1f} s")
    if graded:
        done = [o for o in run.outcomes if o.status == "graded"]
        text += (f" on {run.workers} workers ({per:.2f} s per graded submission; each took "
                 f"{sum(o.worker_seconds for o in done) / graded:.2f} s on a worker and "
                 f"{sum(o.record_seconds for o in done) / graded:.2f} s to record)")
    if run.zygote_starts:
        text += f"; warm sandbox processes started: {run.zygote_starts}"
    if run.peak_worker_bytes:
        text += f"; peak memory: one worker {_gb(run.peak_worker_bytes)}, whole run {_gb(run.peak_total_bytes)}"
    return text


def assignment_runs(run: ClassRun, samples: bool = False) -> list[AssignmentRun]:
    """Per assignment, rows in student order (``samples``: also whether each bundled sample got the
    verdict it was made to show)."""
    course = run.course
    runs = []
    for aid in sorted({o.submission.assignment_id for o in run.outcomes}):
        outcomes = {o.submission.student: o for o in run.outcomes if o.submission.assignment_id == aid}
        if aid not in assignment_ids():
            continue
        assignment = load(aid)
        reasons = {}
        for student, outcome in outcomes.items():
            if outcome.status in ("failed", "interrupted"):
                reasons[student] = f"NOT GRADED: {outcome.reason}"
            else:
                status = grading_status(course.root, aid, student, course.coursedir)
                reasons[student] = (status + " (unchanged since its grade: kept)"
                                    if outcome.status == "unchanged" else status)
        rows = [r for r in collect_rows(course.root, assignment, reasons, course.course_id, course.db_url)
                if r.student in outcomes]
        for student in sorted(set(outcomes) - {r.student for r in rows}):
            rows.append(StudentRow(student, 0.0, float(assignment.total_points), reasons[student],
                                   [i.name for i in assignment.items]))
        for row in rows:
            if row.status.startswith("NOT GRADED"):
                row.wrong = [i.name for i in assignment.items]
            if samples:
                row.expected = expectation(assignment, row)
        rows.sort(key=lambda r: r.student)
        runs.append(AssignmentRun(assignment, rows, run.seconds, len(outcomes), how="backprop-kit grade (whole run)"))
    return runs


def format_class_run(run: ClassRun, runs: list[AssignmentRun] | None = None) -> str:
    """The summary line and the tables (``runs``: the rows already read, else read now)."""
    return "\n".join([summary_line(run), *(format_run(r) for r in (runs or assignment_runs(run)))])
