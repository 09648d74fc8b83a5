"""The instructor pipeline through real nbgrader commands: ``nbgrader autograde`` runs every submission
once, in the sandbox, and the gradebook, the autograded notebooks and the feedback show the trusted
verdicts. Every bad submission still gets an autograded notebook, a grade and a reason, on plain
``nbgrader autograde`` itself; nothing outside the sandbox changes."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.assignments import assignment_ids, load
from autograder.pipeline import AssignmentRun, course_id_and_db, export_grades, format_run, grade_assignment, nbgrader
from autograder.samples import sample_notebook, write_samples
from autograder.spec import Assignment, Sample

from conftest import FIGURES

EXTRA_SAMPLES = (
    # One gradient mutated (a sign in dbnvar): exactly that item's point is lost.
    Sample("test-one-mutation", "solution with dbnvar's sign flipped",
           replace={"backward_bnvar": "def backward_bnvar(bnvar, dbnvar_inv):\n"
                                      "    return 0.5 * (bnvar + 1e-5) ** -1.5 * dbnvar_inv\n"},
           expected_zero=("dbnvar",)),
    # Tampering with the in-kernel checker and torch cannot change the recorded grade; rebinding what
    # the grader's code in the sandbox uses (torch.equal, which finds inputs changed in place) is
    # caught as tampering and flagged.
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
    # A cell that kills its process: in nbgrader's kernel this lost the whole submission; in the
    # sandbox it costs only the item whose cell it is.
    Sample("test-kernel-dies", "solution, but the db1 answer cell ends with os._exit(1)",
           replace={"backward_b1": "def backward_b1(dhprebn):\n    return dhprebn.sum(0)\n\nimport os\nos._exit(1)\n"},
           expected_zero=("db1",)),
    # A function that kills the process when called (what grader.summary() used to trigger in the kernel).
    Sample("test-call-kills", "solution, but dW1 kills the process when it is called",
           replace={"backward_W1": "import os, signal\ndef backward_W1(embcat, dhprebn):\n"
                                   "    os.kill(os.getpid(), signal.SIGKILL)\n"},
           expected_zero=("dW1",)),
    # 50 MB printed on one line: capped by bytes in the autograded notebook, no points lost.
    Sample("test-huge-output", "solution whose dC cell prints 50 MB on one line",
           replace={"backward_C": "print('x' * 50_000_000)\n" + "def backward_C(C, Xb, demb):\n"
                                  "    dC = torch.zeros_like(C)\n"
                                  "    dC.index_add_(0, Xb.view(-1), demb.view(-1, C.shape[1]))\n"
                                  "    return dC\n"},
           expected_zero=()),
    # Code that goes after the other students: their notebooks, the gradebook (COURSE is filled in).
    Sample("test-vandal", "solution whose db2 cell tries to overwrite other students' files and grades",
           replace={"backward_b2": ("import glob, sqlite3\n"
                                    "for path in glob.glob(COURSE + '/submitted/*/*/*.ipynb') + [COURSE + '/gradebook.db']:\n"
                                    "    try:\n"
                                    "        open(path, 'w').write('vandalised')\n"
                                    "    except OSError as exc:\n"
                                    "        print('refused', type(exc).__name__)\n"
                                    "try:\n"
                                    "    db = sqlite3.connect(COURSE + '/gradebook.db')\n"
                                    "    db.execute('update grade set auto_score = 99')\n"
                                    "    db.commit()\n"
                                    "except Exception as exc:\n"
                                    "    print('refused', type(exc).__name__)\n"
                                    "def backward_b2(dlogits):\n"
                                    "    return dlogits.sum(0)\n")},
           expected_zero=()),
)


def _check_cell(nb: nbformat.NotebookNode, item: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == item
                and c.metadata["nbgrader"].get("grade") and not c.metadata["nbgrader"].get("solution"))


def _delete_check(nb: nbformat.NotebookNode) -> None:
    del nb.cells[_check_cell(nb, "dlogprobs")]


def _duplicate_check(nb: nbformat.NotebookNode) -> None:
    index = _check_cell(nb, "dh")
    nb.cells.insert(index + 1, nbformat.from_dict(nb.cells[index]))


def _rename_and_edit_check(nb: nbformat.NotebookNode) -> None:
    nb.cells[_check_cell(nb, "dW2")].metadata["nbgrader"]["grade_id"] = "dW2_free_points"
    nb.cells[_check_cell(nb, "db2")].source = "print('full marks please')\n1000"


def _demo_with_saved_output(nb: nbformat.NotebookNode) -> None:
    train = next(c for c in nb.cells if "grader-skip" in c.metadata.get("tags", []))
    train.source = "print('THIS RAN AT ' + 'GRADING TIME')\n" + train.source
    train.outputs = [nbformat.v4.new_output("stream", name="stdout", text="step 0: loss 3.30 (saved by the student)\n")]


# (student, file name, how the solution notebook is changed): each must still score full marks
STRUCTURAL: tuple[tuple[str, str, Callable[[nbformat.NotebookNode], None]], ...] = (
    ("test-misnamed", "mlp_backprop (1).ipynb", lambda nb: None),
    ("test-deleted-check", "mlp_backprop.ipynb", _delete_check),
    ("test-duplicated-check", "mlp_backprop.ipynb", _duplicate_check),
    ("test-renamed-check", "mlp_backprop.ipynb", _rename_and_edit_check),
    ("test-demo-outputs", "mlp_backprop.ipynb", _demo_with_saved_output),
)
DIGESTS: dict[str, str] = {}


def _digests(course: Path, aid: str) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (course / "submitted").glob(f"*/{aid}/*.ipynb")}


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
            text = sample_notebook(sample, assignment).replace("COURSE", json.dumps(repr(str(released_course)))[1:-1])
            (folder / f"{aid}.ipynb").write_text(text)
        for student, filename, change in STRUCTURAL if aid == "mlp_backprop" else ():
            folder = released_course / "submitted" / student / aid
            folder.mkdir(parents=True)
            nb = nbformat.reads(sample_notebook(Sample(student, ""), assignment), as_version=4)
            change(nb)
            (folder / filename).write_text(nbformat.writes(nb))
        DIGESTS.update(_digests(released_course, aid))
        run = grade_assignment(released_course, aid)
        FIGURES.append((f"nbgrader autograde of {run.submissions} {aid} submissions (sequential)",
                        run.autograde_seconds, "s"))
        print(format_run(run))
        result[aid] = run
    return result


@pytest.fixture(scope="module")
def graded(runs: dict[str, AssignmentRun]) -> AssignmentRun:
    return runs["mlp_backprop"]


def rows(run: AssignmentRun) -> dict:
    return {r.student: r for r in run.rows}


def test_every_assignment_every_sample_as_designed(runs: dict[str, AssignmentRun]) -> None:
    for aid, run in runs.items():
        assignment = load(aid)
        by_student = rows(run)
        assert {s.student for s in assignment.samples} <= set(by_student)
        assert by_student["sample-solution"].score == assignment.total_points
        for sample in assignment.samples:
            assert by_student[sample.student].expected == "as expected", (aid, sample.student)


def test_every_submission_gets_a_row(graded: AssignmentRun, mlp: Assignment) -> None:
    expected = {s.student for s in mlp.samples} | {s.student for s in EXTRA_SAMPLES} | {s[0] for s in STRUCTURAL}
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
    assert row.score == 0 and row.status.startswith("graded (flagged for review")
    assert "the submission changed torch." in row.status


def test_stderr_in_student_code_does_not_cost_points(graded: AssignmentRun) -> None:
    assert rows(graded)["test-stderr"].score == 42



def test_broken_notebook_gets_zero_with_a_reason_on_the_nbgrader_path(graded: AssignmentRun,
                                                                      released_course: Path) -> None:
    row = rows(graded)["sample-broken"]
    assert row.score == 0 and row.status.startswith("not gradable: the notebook file cannot be opened")
    autograded = released_course / "autograded" / "sample-broken" / "mlp_backprop" / "mlp_backprop.ipynb"
    assert autograded.exists()  # formgrader lists it as graded, not as "needs autograding"
    page = released_course / "feedback" / "sample-broken" / "mlp_backprop" / "mlp_backprop.html"
    assert "the notebook file cannot be opened" in page.read_text()


def test_every_submission_has_an_autograded_notebook_and_a_score_on_every_item(
        runs: dict[str, AssignmentRun], released_course: Path) -> None:
    course_id, db_url = course_id_and_db(released_course)
    with Gradebook(db_url, course_id) as gb:
        for aid, run in runs.items():
            for row in run.rows:
                assert (released_course / "autograded" / row.student / aid / f"{aid}.ipynb").exists(), row.student
                notebook = gb.find_submission_notebook(aid, aid, row.student)
                autograded_cells = [g for g in notebook.grades if g.max_score > 0]
                assert autograded_cells and all(g.auto_score is not None for g in autograded_cells), (aid, row.student)


def test_feedback_shows_the_trusted_verdict_the_hint_and_the_protections(graded: AssignmentRun,
                                                                         released_course: Path) -> None:
    page = (released_course / "feedback" / "sample-partly-right" / "mlp_backprop" / "mlp_backprop.html").read_text()
    assert "shape mismatch: expected (30, 64), received (64, 30)" in page and "transpose of the gradient" in page
    assert "each row holds the gradient of only one position" in page  # dC's verified hint
    assert 'src="data:image/png;base64,' in page  # the picture of where the wrong dC differs
    assert "graded in" in page and ("bubblewrap" in page or "limits" in page or "namespaces" in page)
    tamper = (released_course / "feedback" / "test-tamper" / "mlp_backprop" / "mlp_backprop.html").read_text()
    assert "tampered with the grader: the submission changed torch." in tamper


def test_a_process_killing_cell_or_call_costs_only_its_item(graded: AssignmentRun) -> None:
    assert rows(graded)["test-kernel-dies"].wrong == ["db1"] and rows(graded)["test-kernel-dies"].score == 41
    assert rows(graded)["test-call-kills"].wrong == ["dW1"] and rows(graded)["test-call-kills"].score == 41


def test_huge_output_is_capped_in_bytes(graded: AssignmentRun, released_course: Path) -> None:
    assert rows(graded)["test-huge-output"].score == 42
    autograded = released_course / "autograded" / "test-huge-output" / "mlp_backprop" / "mlp_backprop.ipynb"
    assert autograded.stat().st_size < 2_000_000
    assert "output cut off after" in autograded.read_text()


def test_structural_damage_is_repaired_and_graded_once(graded: AssignmentRun, released_course: Path,
                                                       mlp: Assignment) -> None:
    for student, _, _ in STRUCTURAL:
        row = rows(graded)[student]
        assert (row.score, row.max_score) == (mlp.total_points, mlp.total_points), (student, row)
    assert "submitted as 'mlp_backprop (1).ipynb'" in rows(graded)["test-misnamed"].status
    assert "check cells restored: dlogprobs" in rows(graded)["test-deleted-check"].status
    assert "check cells restored: dW2" in rows(graded)["test-renamed-check"].status
    autograded = nbformat.read(str(released_course / "autograded" / "test-duplicated-check" / "mlp_backprop"
                                   / "mlp_backprop.ipynb"), as_version=4)
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in autograded.cells].count("dh") == 1


def test_demonstrations_are_not_re_run_and_keep_the_saved_outputs(graded: AssignmentRun,
                                                                  released_course: Path) -> None:
    text = (released_course / "autograded" / "test-demo-outputs" / "mlp_backprop" / "mlp_backprop.ipynb").read_text()
    assert "loss 3.30 (saved by the student)" in text and "not re-run for grading" in text
    assert "THIS RAN AT GRADING TIME" not in text


def test_nothing_outside_the_sandbox_changed(graded: AssignmentRun, released_course: Path) -> None:
    assert rows(graded)["test-vandal"].score == 42  # its own answers are right; the attack achieved nothing
    now = _digests(released_course, "mlp_backprop")
    misnamed_copy = str(released_course / "submitted" / "test-misnamed" / "mlp_backprop" / "mlp_backprop.ipynb")
    assert {k: v for k, v in now.items() if k != misnamed_copy} == {k: v for k, v in DIGESTS.items() if k in now}
    assert all(row.score <= row.max_score for row in graded.rows)  # no score was raised to 99
    text = (released_course / "autograded" / "test-vandal" / "mlp_backprop" / "mlp_backprop.ipynb").read_text()
    assert "refused" in text


def test_autograd_and_tampering_are_flagged_for_review(graded: AssignmentRun, released_course: Path) -> None:
    course_id, db_url = course_id_and_db(released_course)
    with Gradebook(db_url, course_id) as gb:
        flagged = {row.student: gb.find_submission_notebook("mlp_backprop", "mlp_backprop", row.student).flagged
                   for row in graded.rows}
    assert flagged["sample-autograd"] and flagged["test-kernel-dies"]
    assert not flagged["sample-solution"] and not flagged["sample-partly-right"]
    notebook = released_course / "autograded" / "sample-autograd" / "mlp_backprop" / "mlp_backprop.ipynb"
    review = json.loads(notebook.read_text())["metadata"]["backprop_kit"]["grading"]["review"]
    assert any("autograd" in reason for reason in review)


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
