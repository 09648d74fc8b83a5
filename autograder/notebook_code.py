"""Read a notebook's code for grading, and find which assignment a notebook belongs to."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .assignments import assignment_ids
from .spec import Assignment

METADATA_KEY = "backprop_kit"


def is_test_cell(cell: NotebookNode) -> bool:
    """An nbgrader autograder-test cell: graded, not an answer."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def grade_id(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_demonstration(cell: NotebookNode, assignment: Assignment) -> bool:
    """A cell tagged as a demonstration (training, plots, sampling): nothing graded depends on it."""
    return assignment.skip_tag in cell.get("metadata", {}).get("tags", [])


def grading_cells(nb: NotebookNode, assignment: Assignment, rerun_demonstrations: bool = False
                  ) -> list[tuple[int, str]]:
    """The code a grader runs, as ``(cell index, source)``: every code cell in order, except check
    cells (they only call the grader) and, unless asked, demonstrations."""
    return [(index, cell.source) for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and not is_test_cell(cell)
            and (rerun_demonstrations or not is_demonstration(cell, assignment))]


def assignment_of(nb: NotebookNode, path: Path | None = None) -> str | None:
    """The assignment id in the notebook's metadata, or else the one named like the file."""
    declared = nb.get("metadata", {}).get(METADATA_KEY, {}).get("assignment")
    if declared in assignment_ids():
        return declared
    if path is not None and path.stem in assignment_ids():
        return path.stem
    return None


def read_notebook(path: Path) -> NotebookNode:
    """Parse a notebook; raises ``nbformat.reader.NotJSONError`` or ``ValueError`` if it is broken."""
    return nbformat.read(str(path), as_version=4)
