"""Students' self-check: ``pytest my_notebook.ipynb`` reports one test per graded item.

Registered as a pytest plugin by the kit's package. A notebook is collected when it belongs to a
kit assignment (its metadata says so, or it is named like one). The whole notebook is graded once,
by the same sandboxed harness as the instructor's autograde, and each item's test passes or fails
with the item's feedback: the comparison row, where it differs, and a hint.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# nbformat validates with jsonschema, which loads the optional IRI checker ``rfc3987_syntax`` when it
# is installed (Jupyter's event schemas pull it in); that module compiles a grammar for 0.7 s at
# import. No notebook field is an IRI, and a self-check should start fast: this process goes without.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # None: `import` raises ImportError

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .harness import ItemReport
    from .sandbox.launch import ForkServer
    from .spec import Assignment

# The kit's grading modules (and torch) are imported inside the hooks, not here: the sandboxed
# process is started first (``pytest_configure``), so its imports run beside the parent's.
_REPORTS_KEY = pytest.StashKey[list[tuple["Assignment", list["ItemReport"]]]]()
_STARTED: list[ForkServer] = []  # a sandboxed process importing already, for the first notebook


def pytest_configure(config: pytest.Config) -> None:
    """``pytest my_notebook.ipynb``: start the sandboxed process now, before this process imports
    torch, so the two start-ups overlap (about a second of the self-check)."""
    if not any(str(arg).split("::")[0].endswith(".ipynb") for arg in config.args):
        return
    from .sandbox.isolation import ResourceLimits, choose
    from .sandbox.launch import ForkServer

    server = ForkServer(choose("limits"), [], ResourceLimits(), one_shot=True)
    server.spawn()
    _STARTED.append(server)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _STARTED:
        _STARTED.pop().close()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".ipynb" or ".ipynb_checkpoints" in file_path.parts:
        return None
    return NotebookFile.from_parent(parent, path=file_path)


class ItemFailed(Exception):
    def __init__(self, report: ItemReport) -> None:
        super().__init__(report.text())
        self.report = report


class NotebookUnreadable(Exception):
    pass


class NotebookFile(pytest.File):
    """A notebook: one test per graded item, all graded in one sandbox run."""

    _reports: dict[str, ItemReport] | None = None
    _error: str | None = None

    def collect(self) -> Iterator[pytest.Item]:
        from .assignments import load
        from .notebook_code import assignment_of, grading_cells, read_notebook

        try:
            nb = read_notebook(self.path)
        except Exception as exc:
            # A notebook that is not valid JSON is still collected, so the student sees why.
            yield BrokenNotebook.from_parent(self, name="notebook", message=f"cannot read {self.path.name}: {exc}")
            return
        assignment_id = assignment_of(nb, self.path)
        if assignment_id is None:
            return  # not a kit notebook: nothing to check here
        self.assignment = load(assignment_id)
        self.cells = grading_cells(nb, self.assignment)
        for item in self.assignment.items:
            yield ItemTest.from_parent(self, name=item.name, item_name=item.name)

    def reports(self) -> dict[str, ItemReport]:
        if self._reports is None:
            from .harness import grade
            from .hidden_cases import fresh_rng
            from .sandbox import SandboxSource

            # New hidden cases every run, as in the notebook's own checks.
            cases = self.assignment.make_cases(fresh_rng())
            started = _STARTED.pop() if _STARTED else None
            source = SandboxSource(self.cells, launcher=started, isolation=started.isolation if started else None)
            try:
                reports = grade(self.assignment, source, cases)
            finally:
                if started is not None:
                    started.close()
            self._reports = {r.item.name: r for r in reports}
            self.config.stash.setdefault(_REPORTS_KEY, []).append((self.assignment, reports))
        return self._reports


class ItemTest(pytest.Item):
    def __init__(self, *, item_name: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.item_name = item_name

    def runtest(self) -> None:
        assert isinstance(self.parent, NotebookFile)
        report = self.parent.reports()[self.item_name]
        if not report.passed:
            raise ItemFailed(report)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: object = None) -> str:
        if isinstance(excinfo.value, ItemFailed):
            return excinfo.value.report.text()
        return super().repr_failure(excinfo)  # a bug in the kit: show the traceback

    def reportinfo(self) -> tuple[Path, int | None, str]:
        assert isinstance(self.parent, NotebookFile)
        points = self.parent.assignment.item(self.item_name).points
        return self.path, None, f"{self.item_name} ({points:g} pt)"


class BrokenNotebook(pytest.Item):
    def __init__(self, *, message: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.message = message

    def runtest(self) -> None:
        raise NotebookUnreadable(self.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: object = None) -> str:
        return self.message

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, "notebook"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .harness import summary

    for assignment, reports in terminalreporter.config.stash.get(_REPORTS_KEY, []):
        terminalreporter.section(f"score: {assignment.id}")
        terminalreporter.write_line(summary(assignment, reports))
