"""What a notebook's check cells call: ``grader.check("dlogprobs")``.

Runs the item's hidden checks on the functions defined in the student's kernel and prints the
feedback. It returns the points earned, which nbgrader reads as the cell's partial credit; during
``nbgrader autograde`` that output is replaced by the verdict of the sandboxed grader (see
``nbgrader_plugin``), because code in the student's kernel could have patched this one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, MutableMapping

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
        self._skipped: list[str] = []  # unanswered functions that made ``if_answered`` skip a cell

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
        picture = report.draw_picture()
        if picture is not None:
            from IPython.display import Image, display

            display(Image(data=picture, format="png"))
        return float(report.earned)  # the same type whether the item passed or not (Out: 1.0, not 1)

    @contextlib.contextmanager
    def if_answered(self) -> Iterator[None]:
        """For a cell that uses the student's functions (training, a plot): run it, but if it reaches
        one that is not answered yet (the release's ``raise NotImplementedError()``), stop the cell
        with a line naming that function instead of an error, so "Run All" goes on to the end. A
        later such cell that needs what a skipped one would have made is skipped the same way."""
        try:
            yield
        except NotImplementedError as exc:
            name = _raised_in(exc)
            self._skipped.append(name)
            if name == "<module>":  # the cell itself holds the stub to fill in
                print("skipped: this cell is yours to complete (in place of `raise NotImplementedError()`); "
                      "then run it again.")
            else:
                print(f"skipped: this cell uses `{name}`{self._exercise_of(name)}, which is not answered yet. "
                      "Answer it, then run this cell again.")
        except NameError as exc:
            if not self._skipped:
                raise
            print(f"skipped: this cell needs a result of a cell above that was skipped ({exc}); answer "
                  f"`{self._skipped[-1]}`{self._exercise_of(self._skipped[-1])}, then run the cells again.")

    def _exercise_of(self, function: str) -> str:
        exercises = sorted({i.exercise for i in self.assignment.items if i.function == function})
        return f" (exercise {exercises[0]})" if exercises else ""

    def summary(self) -> float:
        """Check every item and print a table; returns the total."""
        if _grading_elsewhere():
            print("the score is computed outside this notebook")
            return 0.0
        reports = self._grade(None)
        print(summary(self.assignment, reports))
        return sum(r.earned for r in reports)


def _raised_in(exc: BaseException) -> str:
    """The function whose body raised ``exc`` (an unanswered stub raises in its own body)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return frames[-1].name if frames else "a function"


def _grading_elsewhere() -> bool:
    """Inside the grading sandbox (or any nbgrader autograde run) the check cells' outputs are
    replaced by the trusted verdicts, and autograd, which the references need, is refused: a
    kernel-side verdict would be thrown away, so none is computed."""
    return os.environ.get("NBGRADER_EXECUTION") == "autograde" or os.environ.get("BACKPROP_KIT_SANDBOX") == "1"
