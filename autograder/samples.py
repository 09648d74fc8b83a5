"""Bundled sample submissions, written into a course's ``submitted/`` folder the way nbgrader expects.

Each sample is derived from a committed notebook (the executed solution or the release) by replacing
whole answer cells, so the samples can never drift from the assignment they belong to.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .spec import Assignment, Sample

KIT_ROOT = Path(__file__).resolve().parent.parent


def answer_cell_index(nb: NotebookNode, function: str) -> int:
    """The answer cell that defines ``function`` (or the class of that name)."""
    pattern = re.compile(rf"^(?:def {re.escape(function)}\(|class {re.escape(function)}\b)", re.MULTILINE)
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("solution") and pattern.search(cell.source):
            return index
    raise KeyError(f"no answer cell defines {function}()")


def sample_notebook(sample: Sample, assignment: Assignment, kit_root: Path = KIT_ROOT) -> str:
    """The text of the sample's notebook file."""
    folder = "solutions" if sample.base == "solution" else "release"
    path = kit_root / folder / assignment.id / f"{assignment.id}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    for function, code in sample.replace.items():
        nb.cells[answer_cell_index(nb, function)].source = code.rstrip("\n")
    for cell in nb.cells:  # a student's copy: no outputs from the instructor's run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    text = nbformat.writes(nb)
    if sample.corrupt:
        text = text[: len(text) // 2]  # a file cut off mid-way: not valid JSON
    return text


def write_samples(course_root: Path, assignment: Assignment, kit_root: Path = KIT_ROOT) -> list[Sample]:
    """Write every sample of ``assignment`` as ``submitted/<student>/<assignment>/<notebook>.ipynb``."""
    for sample in assignment.samples:
        folder = course_root / "submitted" / sample.student / assignment.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{assignment.id}.ipynb").write_text(sample_notebook(sample, assignment, kit_root), encoding="utf-8")
    return list(assignment.samples)
