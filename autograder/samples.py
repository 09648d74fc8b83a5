"""Bundled sample submissions, written into a course's ``submitted/`` folder the way nbgrader expects.

Each sample is made from the course's release notebook, the file a student starts from: its answer
cells filled with the source notebook's solutions (a "solution" sample), or left as they are (a
"release" sample), then some answers replaced by the sample's own code. So the samples never drift
from the assignment they belong to, and carry exactly the metadata a real submission carries.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .course_folder import KIT_ROOT
from .spec import Assignment, Sample

_SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def answer_cell_index(nb: NotebookNode, function: str) -> int:
    """The answer cell that defines ``function`` (or the class of that name)."""
    pattern = re.compile(rf"^(?:def {re.escape(function)}\(|class {re.escape(function)}\b)", re.MULTILINE)
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get("nbgrader", {}).get("solution") and pattern.search(cell.source):
            return index
    raise KeyError(f"no answer cell defines {function}()")


def solved_release(course: Path, assignment_id: str) -> NotebookNode:
    """The release notebook with every answer cell holding the source's solution (markers removed)."""
    release = nbformat.read(str(course / "release" / assignment_id / f"{assignment_id}.ipynb"), as_version=4)
    source = nbformat.read(str(course / "source" / assignment_id / f"{assignment_id}.ipynb"), as_version=4)
    solutions = {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in source.cells
                 if cell.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in solutions:
            cell.source = _SOLUTION_MARKER.sub("", solutions[grade_id]).strip("\n")
    return release


def sample_notebook(sample: Sample, assignment: Assignment, course: Path = KIT_ROOT) -> str:
    """The text of the sample's notebook file, from ``course``'s release and source notebooks."""
    if sample.base == "solution":
        nb = solved_release(course, assignment.id)
    else:
        nb = nbformat.read(str(course / "release" / assignment.id / f"{assignment.id}.ipynb"), as_version=4)
    for function, code in sample.replace.items():
        nb.cells[answer_cell_index(nb, function)].source = code.rstrip("\n")
    for cell in nb.cells:  # a student's copy: no outputs from the instructor's run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    text = nbformat.writes(nb)
    if sample.corrupt:
        text = text[: len(text) // 2]  # a file cut off mid-way: not valid JSON
    return text


def write_samples(course: Path, assignment: Assignment) -> list[Sample]:
    """Write every sample of ``assignment`` as ``submitted/<student>/<assignment>/<notebook>.ipynb``,
    made from the course's own release and source notebooks."""
    for sample in assignment.samples:
        folder = course / "submitted" / sample.student / assignment.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{assignment.id}.ipynb").write_text(sample_notebook(sample, assignment, course), encoding="utf-8")
    return list(assignment.samples)


def sample_roster(assignment_ids: list[str]) -> list[tuple[str, str, str]]:
    """(id, first name, last name) of every sample student: the demo course lists them, so formgrader
    shows names."""
    from .assignments import load

    students = sorted({s.student for aid in assignment_ids for s in load(aid).samples})
    return [(sid, sid.removeprefix("sample-").replace("-", " ").capitalize(), "Sample") for sid in students]
