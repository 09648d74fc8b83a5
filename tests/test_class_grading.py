"""``backprop-kit grade``: a class graded on Dask workers records exactly what ``nbgrader autograde``
records, into SQLite or PostgreSQL; re-runs skip what is unchanged; Ctrl-C loses nothing; a
submission that cannot be graded gets its reason and stops nothing."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from distributed import LocalCluster
from nbgrader.api import Gradebook

from autograder.assignments import load
from autograder.classgrade.course import Course, NotAKitCourse
from autograder.classgrade.engine import grade_course
from autograder.classgrade.report import format_class_run
from autograder.pipeline import nbgrader, prepare_course
from autograder.samples import write_samples

from conftest import FIGURES

AID = "mlp_backprop"
STUDENTS = ("sample-solution", "sample-partly-right", "sample-autograd", "sample-broken", "sample-release")


def _scores(db_url: str, course_id: str = "backprop-by-hand") -> dict[tuple[str, str], float | None]:
    """Every grade in the gradebook: (student, cell) -> score, plus each submission's flag."""
    found: dict[tuple[str, str], float | None] = {}
    with Gradebook(db_url, course_id) as gb:
        for student in gb.students:
            for submission in gb.assignment_submissions(AID):
                if submission.student.id != student.id:
                    continue
                for notebook in submission.notebooks:
                    found[(student.id, "flagged")] = float(notebook.flagged)
                    for grade in notebook.grades:
                        found[(student.id, grade.name)] = grade.score
    return found


def _make_course(root: Path, students: tuple[str, ...] = STUDENTS) -> Path:
    prepare_course(root, [AID])
    assignment = load(AID)
    write_samples(root, assignment)
    for folder in (root / "submitted").iterdir():
        if folder.name not in students:
            shutil.rmtree(folder)
    return root


@pytest.fixture(scope="module")
def two_courses(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same class twice (same secret): one for ``backprop-kit grade``, one for ``nbgrader autograde``."""
    course = _make_course(tmp_path_factory.mktemp("class") / "course")
    (course / "submitted" / "no-notebook" / AID).mkdir(parents=True)  # a folder with nothing to grade
    twin = tmp_path_factory.mktemp("twin") / "course"
    shutil.copytree(course, twin)
    return course, twin


@pytest.fixture(scope="module")
def graded(two_courses: tuple[Path, Path]) -> tuple[Path, Path, object]:
    course, twin = two_courses
    start = time.perf_counter()
    run = grade_course(course, [AID], workers=2, progress=None)
    FIGURES.append((f"backprop-kit grade of {len(STUDENTS) + 1} MLP submissions, 2 workers (with start-up)",
                    time.perf_counter() - start, "s"))
    start = time.perf_counter()
    done = nbgrader(twin, "autograde", AID, "--force")
    FIGURES.append((f"nbgrader autograde (kit pipeline, serial) of the same {len(STUDENTS)} submissions",
                    time.perf_counter() - start, "s"))
    assert done.returncode == 0, done.stderr[-3000:]
    return course, twin, run


def test_parallel_grading_records_what_nbgrader_autograde_records(graded: tuple[Path, Path, object]) -> None:
    course, twin, run = graded
    db = f"sqlite:///{course / 'gradebook.db'}"
    ours, theirs = _scores(db), _scores(f"sqlite:///{twin / 'gradebook.db'}")
    assert ours == theirs
    assert {s for s, _ in ours} == set(STUDENTS)
    assert ours[("sample-solution", "dlogprobs")] == 1 and ours[("sample-release", "dlogprobs")] == 0
    assert ours[("sample-autograd", "flagged")] == 1.0  # the flag for review is nbgrader's, set the same way
    # the autograded notebooks carry the same feedback, cell for cell (the checksum is the only addition)
    for student in STUDENTS:
        mine = nbformat.read(str(course / "autograded" / student / AID / f"{AID}.ipynb"), as_version=4)
        other = nbformat.read(str(twin / "autograded" / student / AID / f"{AID}.ipynb"), as_version=4)
        assert [c.get("outputs") for c in mine.cells] == [c.get("outputs") for c in other.cells], student
        assert mine.metadata["backprop_kit"]["grading"].pop("submission_checksum")
        assert mine.metadata == other.metadata
    # a folder nbgrader finds nothing in gets its reason; the batch went on
    by_student = {o.submission.student: o for o in run.outcomes}
    assert by_student["no-notebook"].status == "failed" and "No notebooks" in by_student["no-notebook"].reason
    assert run.count("graded") == len(STUDENTS)
    # warm workers: a zygote per worker, and a new one when autograded/ appears (it must be hidden
    # too); never one per submission (test_warm_sandbox shows the reuse run by run)
    assert 1 <= run.zygote_starts <= 2 * run.workers, run.zygote_starts
    table = format_class_run(run)
    assert "NOT GRADED" in table and "sample-solution" in table and "42 / 42" in table


def test_a_rerun_skips_what_is_unchanged_and_force_adds_no_rows(graded: tuple[Path, Path, object]) -> None:
    course, _, _ = graded
    db = course / "gradebook.db"

    def rows() -> dict[str, int]:
        with sqlite3.connect(db) as conn:
            return {t: conn.execute(f"select count(*) from {t}").fetchone()[0]
                    for t in ("grade", "comment", "submitted_notebook", "submitted_assignment", "student")}

    before, scores = rows(), _scores(f"sqlite:///{db}")
    again = grade_course(course, [AID], progress=None)
    assert {o.submission.student: o.status for o in again.outcomes if o.status != "failed"} == {
        s: "unchanged" for s in STUDENTS}
    assert again.workers == 0  # nothing to grade: no cluster was started
    # one student resubmits: only that one is graded again
    path = course / "submitted" / "sample-release" / AID / f"{AID}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("resubmitted"))
    nbformat.write(nb, str(path))
    third = grade_course(course, [AID], workers=1, progress=None)
    assert [o.submission.student for o in third.outcomes if o.status == "graded"] == ["sample-release"]
    # --force, on an existing Dask cluster (what --scheduler reaches: here one started beside the run)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        forced = grade_course(course, [AID], scheduler=cluster.scheduler_address, force=True, progress=None)
    assert forced.count("graded") == len(STUDENTS) and forced.workers == 1
    assert rows() == before and _scores(f"sqlite:///{db}") == scores


def test_ctrl_c_finishes_the_grade_being_written_and_a_rerun_goes_on(tmp_path: Path) -> None:
    course = _make_course(tmp_path / "course")
    command = [sys.executable, "-m", "autograder", "grade", AID, "--course", str(course), "--workers", "1"]
    # its own process group, as a terminal's: Ctrl-C reaches the coordinator and its workers alike
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    graded_dir = course / "autograded"
    deadline = time.monotonic() + 300
    while not any(graded_dir.glob(f"*/{AID}/{AID}.ipynb")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, output[-3000:]
    assert "interrupted" in output
    done = {p.parts[-3] for p in graded_dir.glob(f"*/{AID}/{AID}.ipynb")}
    assert 1 <= len(done) < len(STUDENTS), output[-2000:]
    # every grade in the gradebook is whole: each recorded submission has a score for every cell
    recorded = _scores(f"sqlite:///{course / 'gradebook.db'}")
    assert {s for s, _ in recorded} == done
    assert all(score is not None for score in recorded.values())
    rerun = grade_course(course, [AID], workers=1, progress=None)
    assert {o.submission.student for o in rerun.outcomes if o.status == "unchanged"} == done
    assert {o.submission.student for o in rerun.outcomes if o.status == "graded"} == set(STUDENTS) - done


def test_postgres_gradebook_in_parallel_matches_serial_sqlite(graded: tuple[Path, Path, object],
                                                              postgres_url: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _, twin, _ = graded  # graded serially by nbgrader autograde into SQLite
    course = tmp_path / "course"
    shutil.copytree(twin, course, ignore=shutil.ignore_patterns("autograded", "feedback", "gradebook.db"))
    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])  # nbgrader runs `alembic` by name
    monkeypatch.setenv("BACKPROP_KIT_DB_URL", postgres_url)
    done = nbgrader(course, "generate_assignment", AID, "--force")
    assert done.returncode == 0, done.stderr[-3000:]
    assert Course(course).db_url.startswith("postgresql+psycopg://")
    # one more student tries to reach the gradebook's server from the sandbox, through its socket
    socket_folder = postgres_url.split("host=")[1].split("&")[0]
    attack = (f"import psycopg\ntry:\n    psycopg.connect(host={socket_folder!r}, user='postgres', dbname='postgres')"
              "\n    print('CONNECTED')\nexcept Exception as exc:\n    print('refused:', type(exc).__name__)\n")
    nb = nbformat.read(str(course / "submitted" / "sample-solution" / AID / f"{AID}.ipynb"), as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell(attack))
    (course / "submitted" / "mallory" / AID).mkdir(parents=True)
    nbformat.write(nb, str(course / "submitted" / "mallory" / AID / f"{AID}.ipynb"))
    run = grade_course(course, [AID], workers=2, progress=None)
    assert run.count("graded") == len(STUDENTS) + 1
    assert not (course / "gradebook.db").exists()
    scores = _scores(postgres_url)
    assert {k: v for k, v in scores.items() if k[0] != "mallory"} == _scores(f"sqlite:///{twin / 'gradebook.db'}")
    graded_nb = nbformat.read(str(course / "autograded" / "mallory" / AID / f"{AID}.ipynb"), as_version=4)
    printed = "".join(o.get("text", "") for o in graded_nb.cells[2].outputs)
    assert "refused:" in printed and "CONNECTED" not in printed, printed


def test_a_folder_that_is_not_a_kit_course_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(NotAKitCourse, match="no nbgrader_config.py"):
        Course(tmp_path)
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'x'\n")
    with pytest.raises(NotAKitCourse, match="sandboxed grading"):
        Course(tmp_path)
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", "--all", "--course", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "sandboxed grading" in done.stderr and "Traceback" not in done.stderr
