"""nbgrader integration: the trusted verdict for every check cell, written where nbgrader reads it.

``nbgrader autograde`` executes the submitted notebook in a kernel; everything in that kernel,
including the ``grader.check`` calls, is under the student's control. ``TrustedGrades`` runs after
that execution and before ``SaveAutoGrades``: it grades every item of the assignment in a sandbox
(``SandboxSource``) against references computed here, and replaces each check cell's outputs with
the feedback text and the points earned, which ``SaveAutoGrades`` records as partial credit.

nbgrader's scoring rules this relies on: a test cell whose outputs end in an ``execute_result``
that is a number gets that many points; a cell with no output would get full points, and one with
stderr output zero, so every check cell gets exactly one stdout stream and one number.
"""

from __future__ import annotations

import os
from functools import lru_cache

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, Execute, IgnorePattern, LimitOutput,
                                    NbGraderPreprocessor, SaveAutoGrades)
from traitlets import Float, List, Unicode

from .assignments import assignment_ids, load
from .harness import ItemReport, grade
from .notebook_code import assignment_of, grade_id, grading_cells, is_test_cell
from .sandbox import Limits, SandboxSource
from .spec import Case


PRIVATE_COURSE_PATHS = ("source", "solutions", "submitted", "autograded", "feedback", "gradebook.db", "tests")


def course_private_paths(root: str) -> list[str]:
    """What a submission's code must not see in a course folder: notebooks with solutions, the other
    submissions, the gradebook."""
    return [os.path.join(root, name) for name in PRIVATE_COURSE_PATHS]


def grade_notebook(nb: NotebookNode, assignment_id: str, hide: list[str], limits: Limits | None = None,
                   items: list[str] | None = None) -> tuple[list[ItemReport], SandboxSource]:
    """The trusted verdict on every item (or on ``items``) of a submitted notebook."""
    assignment = load(assignment_id)
    source = SandboxSource(grading_cells(nb, assignment), hide=hide, limits=limits or Limits())
    chosen = [i for i in assignment.items if items is None or i.name in items]
    return grade(assignment, source, cases_for(assignment_id), chosen), source


@lru_cache(maxsize=8)
def cases_for(assignment_id: str) -> tuple[Case, ...]:
    """The grader's cases, made once per process (they are the same for every submission)."""
    return tuple(load(assignment_id).make_cases())


def check_cell_outputs(report: ItemReport, execution_count: int | None) -> list[NotebookNode]:
    """The outputs nbgrader scores: the feedback on stdout, then the points as the cell's value."""
    return [new_output("stream", name="stdout", text=report.text() + "\n"),
            new_output("execute_result", data={"text/plain": repr(float(report.earned))},
                       execution_count=execution_count)]


class TrustedGrades(NbGraderPreprocessor):
    """Re-grade every item in a sandbox and overwrite the check cells' outputs with the verdicts."""

    hide = List(Unicode(), help="Paths the sandbox must not see (gradebook, source, other submissions).").tag(
        config=True)
    per_call_s = Float(10.0, help="Seconds one call of a student function may take.").tag(config=True)
    per_cell_s = Float(30.0, help="Seconds one notebook cell may take in the sandbox.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        assignment_id = resources.get("nbgrader", {}).get("assignment") or assignment_of(nb)
        if assignment_id not in assignment_ids():
            self.log.warning("TrustedGrades: %r is not a kit assignment; keeping nbgrader's own verdicts",
                             assignment_id)
            return nb, resources
        known = {item.name for item in load(assignment_id).items}
        check_cells = {grade_id(c): c for c in nb.cells if is_test_cell(c) and grade_id(c) in known}
        reports, source = grade_notebook(nb, assignment_id, list(self.hide),
                                         Limits(per_call_s=self.per_call_s, per_cell_s=self.per_cell_s),
                                         list(check_cells))
        self.log.info("TrustedGrades: %s, %g / %g points (sandbox: %s)", assignment_id,
                      sum(r.earned for r in reports), sum(r.item.points for r in reports), source.isolation_note)
        for report in reports:
            cell = check_cells[report.item.name]
            cell.outputs = check_cell_outputs(report, cell.get("execution_count"))
        return nb, resources


# nbgrader's default autograde pipeline with TrustedGrades between execution and saving the grades.
AUTOGRADE_PREPROCESSORS = [Execute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, TrustedGrades,
                           SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
