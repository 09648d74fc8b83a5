"""What a notebook's check cells call: ``grader.check("dlogprobs")``.

Runs the item's hidden checks on the functions defined in the student's kernel and prints the
feedback. It returns the points earned, which nbgrader reads as the cell's partial credit; during
``nbgrader autograde`` that output is replaced by the verdict of the sandboxed grader (see
``nbgrader_plugin``), because code in the student's kernel could have patched this one.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import MutableMapping

from .assignments import load
from .harness import ItemReport, NamespaceSource, grade, summary
from .hidden_cases import fresh_rng
from .spec import Case


class Grader:
    def __init__(self, assignment_id: str, namespace: MutableMapping[str, object] | None = None) -> None:
        self.assignment = load(assignment_id)
        # By default, the functions come from the notebook (the caller's globals).
        if namespace is None and _grading_elsewhere():
            namespace = {}  # the sandbox refuses frames; nothing is checked in the notebook there
        self.namespace = namespace if namespace is not None else sys._getframe(1).f_globals
        self._cases: list[Case] | None = None

    @property
    def cases(self) -> list[Case]:
        if self._cases is None:
            # Fresh hidden cases for each Grader (each run of the notebook's setup cell): passing them
            # means the answer is general. The recorded grade draws its own (nbgrader_plugin).
            self._cases = self.assignment.make_cases(fresh_rng())
        return self._cases

    def _grade(self, names: list[str] | None) -> list[ItemReport]:
        items = None if names is None else [self.assignment.item(n) for n in names]
        # nbgrader scores a cell that writes to stderr as zero: keep library warnings out of it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return grade(self.assignment, NamespaceSource(self.namespace), self.cases, items)

    def check(self, name: str) -> float:
        """Check one item, print its feedback, and return the points earned."""
        if _grading_elsewhere():
            print(f"{name}: graded outside this notebook")
            return 0.0
        (report,) = self._grade([name])
        print(report.text())
        return report.earned

    def summary(self) -> float:
        """Check every item and print a table; returns the total."""
        if _grading_elsewhere():
            print("the score is computed outside this notebook")
            return 0.0
        reports = self._grade(None)
        print(summary(self.assignment, reports))
        return sum(r.earned for r in reports)


def _grading_elsewhere() -> bool:
    """Inside the grading sandbox (or any nbgrader autograde run) the check cells' outputs are
    replaced by the trusted verdicts, and autograd, which the references need, is refused: a
    kernel-side verdict would be thrown away, so none is computed."""
    return os.environ.get("NBGRADER_EXECUTION") == "autograde" or os.environ.get("BACKPROP_KIT_SANDBOX") == "1"
