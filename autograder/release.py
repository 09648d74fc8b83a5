"""Regenerate a course's student versions (``release/``) and executed solutions (``solutions/``) from
``source/``, with nbgrader's own commands, so that a failure leaves both folders as they were.

Every source notebook named is checked before anything is written (``source_problems``): it must be
a readable notebook of a kit assignment, with valid nbgrader metadata, one check cell per item in
the assignment's order with its points, and an answer cell for each function. Then nbgrader
generates everything in a scratch copy of the course; only when every assignment succeeded does each
new ``release/<id>`` and ``solutions/<id>`` take the place of the old one.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat

from .assignments import load
from .course_folder import COURSE_FILES
from .notebook_code import assignment_of, grade_id, is_test_cell
from .pipeline import nbgrader
from .samples import answer_cell_index


class ReleaseError(Exception):
    """A source notebook that cannot be released, or an nbgrader command that failed."""


def source_problems(course: Path, assignment_id: str) -> list[str]:
    """What is wrong with ``source/<id>/<id>.ipynb`` for releasing it (empty: nothing)."""
    path = course / "source" / assignment_id / f"{assignment_id}.ipynb"
    if not path.is_file():
        return [f"{path} does not exist"]
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:
        return [f"{path} is not a readable notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"]
    problems: list[str] = []
    if assignment_of(nb) != assignment_id:
        problems.append(f"{path}: its metadata must say backprop_kit.assignment = {assignment_id!r}")
    try:
        from .nbgrader_plugin import _metadata_validator

        _metadata_validator().validate_nb(nb)
    except Exception as exc:
        problems.append(f"{path}: invalid nbgrader metadata ({str(exc).splitlines()[0][:200]})")
    assignment = load(assignment_id)
    checks = [(grade_id(c), c) for c in nb.cells if is_test_cell(c)]
    if [name for name, _ in checks] != [i.name for i in assignment.items]:
        problems.append(f"{path}: its check cells must be one per item, in the order of ITEMS: "
                        f"{[i.name for i in assignment.items]}, not {[name for name, _ in checks]}")
    for name, cell in checks:
        item = next((i for i in assignment.items if i.name == name), None)
        if item is not None and (cell.metadata["nbgrader"].get("points") != item.points
                                 or cell.source != f'grader.check("{name}")'):
            problems.append(f"{path}: the check cell of {name} must be grader.check(\"{name}\") worth "
                            f"{item.points:g} points")
    for function in sorted({i.function for i in assignment.items if i.driver is None}):
        try:
            answer_cell_index(nb, function)
        except KeyError:
            problems.append(f"{path}: no answer cell defines {function}()")
    return problems


def regenerate(course: Path, assignment_ids: list[str]) -> None:
    """``release/<id>`` and ``solutions/<id>`` of ``course`` made anew from ``source/<id>``, for every
    id, or, if any of them fails, none (the folders are left as they were)."""
    problems = [p for aid in assignment_ids for p in source_problems(course, aid)]
    if problems:
        raise ReleaseError("nothing was written: " + "; ".join(problems))
    with tempfile.TemporaryDirectory(prefix="backprop-kit-release-") as scratch:
        work = Path(scratch) / "course"
        work.mkdir()
        for name in COURSE_FILES:
            shutil.copy(course / name, work / name)
        for aid in assignment_ids:
            shutil.copytree(course / "source" / aid, work / "source" / aid)
            for command in ("generate_assignment", "generate_solution"):
                done = nbgrader(work, command, aid, "--force")
                if done.returncode != 0:
                    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
                    raise ReleaseError(f"nothing was written: nbgrader {command} {aid} failed: "
                                       f"{lines[-1] if lines else 'no message'}")
            _check_solution_ran(work / "solutions" / aid / f"{aid}.ipynb", aid)
        for aid in assignment_ids:
            shutil.rmtree(work / "release" / aid / ".ipynb_checkpoints", ignore_errors=True)
            for folder in ("release", "solutions"):
                _replace(work / folder / aid, course / folder / aid)


def _check_solution_ran(path: Path, assignment_id: str) -> None:
    """nbgrader keeps an executed solution whose cells raised (the errors are in its outputs): such a
    release is a failure, and so is a check cell short of its points."""
    nb = nbformat.read(str(path), as_version=4)
    points = {i.name: i.points for i in load(assignment_id).items}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            if output.output_type == "error":
                raise ReleaseError(f"nothing was written: the solution of {assignment_id} raises in cell {index} "
                                   f"({output.ename}: {str(output.evalue)[:200]})")
        if is_test_cell(cell):
            earned = [o for o in cell.outputs if o.output_type == "execute_result"]
            if not earned or float(earned[0].data.get("text/plain", "0")) != points.get(grade_id(cell) or "", -1):
                raise ReleaseError(f"nothing was written: the solution of {assignment_id} does not earn the points "
                                   f"of {grade_id(cell)}")


def _replace(new: Path, old: Path) -> None:
    """Put ``new`` where ``old`` is, keeping ``old`` until ``new`` is in place."""
    old.parent.mkdir(parents=True, exist_ok=True)
    staged = old.parent / f".{old.name}.new"
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(new, staged)
    kept = old.parent / f".{old.name}.old"
    shutil.rmtree(kept, ignore_errors=True)
    if old.exists():
        old.rename(kept)
    staged.rename(old)
    shutil.rmtree(kept, ignore_errors=True)
