"""Shared fixtures: the MLP assignment, its cases, and notebooks made from the committed solution."""

from __future__ import annotations

import random
import os
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from autograder.assignments import assignment_ids, load
from autograder.notebook_code import grading_cells
from autograder.samples import answer_cell_index
from autograder.spec import Assignment, Case

KIT_ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["postgres_server", "environments"]  # a throwaway PostgreSQL server; the kit installed elsewhere

# A course requires the bubblewrap sandbox and refuses to grade without it (tested in test_sandbox).
# CI installs bubblewrap and keeps that requirement; elsewhere the suite grades with what is there.
if not os.environ.get("CI"):
    from autograder.sandbox import available_level

    os.environ.setdefault("BACKPROP_KIT_REQUIRE_ISOLATION", available_level())
FIGURES: list[tuple[str, float, str]] = []  # (what, value, unit), printed after the run


@pytest.fixture(scope="session")
def mlp() -> Assignment:
    return load("mlp_backprop")


_CASES: dict[str, list[Case]] = {}


def cases_of(assignment: Assignment) -> list[Case]:
    """The grader's cases, made once per test session, from a fixed source: the suite is reproducible."""
    if assignment.id not in _CASES:
        _CASES[assignment.id] = assignment.make_cases(random.Random(0))
    return _CASES[assignment.id]


@pytest.fixture(scope="session")
def mlp_cases(mlp: Assignment) -> list[Case]:
    return cases_of(mlp)


@pytest.fixture(scope="session", params=assignment_ids())
def assignment(request: pytest.FixtureRequest) -> Assignment:
    """Each assignment in turn."""
    return load(request.param)


def solution_notebook(aid: str = "mlp_backprop") -> nbformat.NotebookNode:
    return nbformat.read(str(KIT_ROOT / "solutions" / aid / f"{aid}.ipynb"), as_version=4)


def with_answers(nb: nbformat.NotebookNode, replacements: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose answer cells defining the given functions are replaced."""
    copy = nbformat.from_dict(nbformat.from_dict(nb))
    copy = nbformat.reads(nbformat.writes(nb), as_version=4)
    for function, code in replacements.items():
        copy.cells[answer_cell_index(copy, function)].source = code
    return copy


def namespace_of(nb: nbformat.NotebookNode, assignment: Assignment) -> dict[str, object]:
    """Run a (trusted, test-made) notebook's grading cells in this process, like a kernel would."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    for _, source in grading_cells(nb, assignment):
        exec(compile(source, "<cell>", "exec"), namespace)
    return namespace


@pytest.fixture
def timed() -> Iterator[object]:
    """Record how long a step took; the figures are printed at the end of the run."""

    class Timer:
        def __call__(self, label: str):  # type: ignore[no-untyped-def]
            timer = self

            class _Block:
                def __enter__(self_inner) -> None:
                    timer.start = time.perf_counter()

                def __exit__(self_inner, *exc: object) -> None:
                    FIGURES.append((label, time.perf_counter() - timer.start, 's'))
            return _Block()

    yield Timer()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("figures measured in this run (printed, not asserted)")
        for label, value, unit in FIGURES:
            terminalreporter.write_line(f"{label:<72} {value:8.2f} {unit}")


@pytest.fixture(scope="session")
def released_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course folder made like an instructor's: the kit's config and source, released with nbgrader."""
    from autograder.pipeline import prepare_course

    course = tmp_path_factory.mktemp("course")
    start = time.perf_counter()
    prepare_course(course, assignment_ids())
    FIGURES.append((f"nbgrader generate_assignment of {len(assignment_ids())} assignments (fresh course)",
                    time.perf_counter() - start, "s"))
    return course
