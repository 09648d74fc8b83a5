"""The instructor pipeline through real nbgrader commands: autograde into the SQLite gradebook,
feedback, export. Every submission gets a row; the trusted verdicts are what the gradebook records."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from autograder.assignments import assignment_ids, load
from autograder.pipeline import AssignmentRun, export_grades, format_run, grade_assignment, nbgrader
from autograder.samples import sample_notebook, write_samples
from autograder.spec import Assignment, Sample

from conftest import FIGURES

EXTRA_SAMPLES = (
    # One gradient mutated (a sign in dbnvar): exactly that item's point is lost.
    Sample("test-one-mutation", "solution with dbnvar's sign flipped",
           replace={"backward_bnvar": "def backward_bnvar(bnvar, dbnvar_inv):\n"
                                      "    return 0.5 * (bnvar + 1e-5) ** -1.5 * dbnvar_inv\n"},
           expected_zero=("dbnvar",)),
    # Tampering with the in-kernel checker and torch cannot change the recorded grade.
    Sample("test-tamper", "release answers, with the kernel's checker patched to claim full marks", base="release",
           replace={"backward_logprobs": ("import torch\n"
                                          "grader.check = lambda name: 100.0\n"
                                          "torch.allclose = lambda *a, **k: True\n"
                                          "torch.equal = lambda *a, **k: True\n"
                                          "def backward_logprobs(logprobs, Yb):\n"
                                          "    return torch.zeros(1)\n")},
           expected_zero=()),
    # A warning on stderr inside a correct answer does not cost the item.
    Sample("test-stderr", "solution whose dh answer writes a warning to stderr",
           replace={"backward_h": ("import sys, warnings\n"
                                   "def backward_h(W2, dlogits):\n"
                                   "    print('debug', file=sys.stderr)\n"
                                   "    warnings.warn('a warning')\n"
                                   "    return dlogits @ W2.T\n")},
           expected_zero=()),
    # A cell that kills the kernel makes nbgrader give up on the notebook: the sandbox still grades it,
    # and only the item whose cell crashed is lost.
    Sample("test-kernel-dies", "solution, but the db1 answer cell ends with os._exit(1)",
           replace={"backward_b1": "def backward_b1(dhprebn):\n    return dhprebn.sum(0)\n\nimport os\nos._exit(1)\n"},
           expected_zero=("db1",)),
)


@pytest.fixture(scope="module")
def runs(released_course: Path) -> dict[str, AssignmentRun]:
    """Every assignment's bundled samples (and, for the MLP, the extra ones above), autograded."""
    result = {}
    for aid in assignment_ids():
        assignment = load(aid)
        write_samples(released_course, assignment)
        for sample in EXTRA_SAMPLES if aid == "mlp_backprop" else ():
            folder = released_course / "submitted" / sample.student / aid
            folder.mkdir(parents=True)
            (folder / f"{aid}.ipynb").write_text(sample_notebook(sample, assignment))
        run = grade_assignment(released_course, aid)
        FIGURES.append((f"nbgrader autograde of {run.submissions} {aid} submissions (sequential)",
                        run.autograde_seconds, "s"))
        print(format_run(run))
        result[aid] = run
    return result


@pytest.fixture(scope="module")
def graded(runs: dict[str, AssignmentRun]) -> AssignmentRun:
    return runs["mlp_backprop"]


def test_every_assignment_every_sample_as_designed(runs: dict[str, AssignmentRun]) -> None:
    for aid, run in runs.items():
        assignment = load(aid)
        by_student = rows(run)
        assert {s.student for s in assignment.samples} <= set(by_student)
        assert by_student["sample-solution"].score == assignment.total_points
        for sample in assignment.samples:
            assert by_student[sample.student].expected == "as expected", (aid, sample.student)


def rows(run: AssignmentRun) -> dict:
    return {r.student: r for r in run.rows}


def test_every_submission_gets_a_row(graded: AssignmentRun, mlp: Assignment) -> None:
    expected = {s.student for s in mlp.samples} | {s.student for s in EXTRA_SAMPLES}
    assert set(rows(graded)) == expected
    assert all(r.max_score == mlp.total_points for r in graded.rows)
    for sample in mlp.samples + EXTRA_SAMPLES:
        if sample.expected_zero and not sample.corrupt and sample.base != "release":
            wrong = rows(graded)[sample.student].wrong
            assert wrong == [i.name for i in mlp.items if i.name in sample.expected_zero], sample.student


def test_solution_full_marks(graded: AssignmentRun) -> None:
    row = rows(graded)["sample-solution"]
    assert row.score == 42 and row.wrong == [] and row.status == "graded"


def test_release_scores_zero_without_crashing(graded: AssignmentRun, mlp: Assignment) -> None:
    row = rows(graded)["sample-release"]
    assert row.score == 0 and row.status == "graded" and len(row.wrong) == len(mlp.items)


def test_bundled_samples_score_as_designed(graded: AssignmentRun) -> None:
    for row in graded.rows:
        if row.student.startswith("sample-"):
            assert row.expected == "as expected", f"{row.student}: wrong={row.wrong}"
    assert rows(graded)["sample-grad-copy"].score == 0
    assert rows(graded)["sample-autograd"].wrong == ["dprobs", "dh", "ex2_dlogits", "ex3_dhprebn", "ex4_backward"]


def test_one_mutated_gradient_loses_exactly_its_points(graded: AssignmentRun) -> None:
    row = rows(graded)["test-one-mutation"]
    assert row.wrong == ["dbnvar"] and row.score == 41


def test_patching_the_kernel_checker_changes_nothing(graded: AssignmentRun) -> None:
    row = rows(graded)["test-tamper"]
    assert row.score == 0 and row.status == "graded"


def test_stderr_in_student_code_does_not_cost_points(graded: AssignmentRun) -> None:
    assert rows(graded)["test-stderr"].score == 42


def test_broken_notebook_gets_zero_with_a_reason(graded: AssignmentRun, released_course: Path) -> None:
    row = rows(graded)["sample-broken"]
    assert row.score == 0 and row.status.startswith("not gradable: the notebook file cannot be opened")
    page = released_course / "feedback" / "sample-broken" / "mlp_backprop" / "mlp_backprop.html"
    assert "could not be graded" in page.read_text()


def test_feedback_shows_the_trusted_verdict_and_hint(graded: AssignmentRun, released_course: Path) -> None:
    page = (released_course / "feedback" / "sample-partly-right" / "mlp_backprop" / "mlp_backprop.html").read_text()
    assert "shape mismatch: expected (30, 64), received (64, 30)" in page and "looks transposed" in page
    tamper = (released_course / "feedback" / "test-tamper" / "mlp_backprop" / "mlp_backprop.html").read_text()
    assert "received (1,)" in tamper or "shape mismatch" in tamper


def test_a_dead_kernel_costs_only_the_crashing_cell(graded: AssignmentRun, released_course: Path) -> None:
    row = rows(graded)["test-kernel-dies"]
    assert row.wrong == ["db1"] and row.score == 41
    assert row.status == ("graded in the sandbox only: nbgrader could not run this notebook: the kernel died "
                          "(a cell called exit() or crashed Python)")
    page = (released_course / "feedback" / "test-kernel-dies" / "mlp_backprop" / "mlp_backprop.html").read_text()
    assert "graded without running the notebook" in page and "db1" in page


def test_export_writes_a_grade_for_every_student(runs: dict[str, AssignmentRun], released_course: Path) -> None:
    path = export_grades(released_course)
    with open(path) as fh:
        exported = {(r["assignment"], r["student_id"]): float(r["raw_score"]) for r in csv.DictReader(fh)}
    for aid, run in runs.items():
        exported_here = {s: v for (a, s), v in exported.items() if a == aid}
        graded_here = {r.student: r.score for r in run.rows}
        assert {s: exported_here[s] for s in graded_here} == graded_here
        # students with no submission for this assignment are exported with 0
        assert all(v == 0 for s, v in exported_here.items() if s not in graded_here)


def test_time_one_submission(graded: AssignmentRun, released_course: Path) -> None:
    start = time.perf_counter()
    done = nbgrader(released_course, "autograde", "mlp_backprop", "--student", "sample-solution", "--force")
    FIGURES.append(("nbgrader autograde of one submission (the solution)", time.perf_counter() - start, 's'))
    assert done.returncode == 0, done.stderr[-2000:]
