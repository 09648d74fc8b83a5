"""release/ and solutions/ are what source/ generates: regenerate with `make release` after editing source/."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.assignments import assignment_ids, load
from autograder.notebook_code import grade_id, is_test_cell

from conftest import KIT_ROOT

FIX = "source/ changed without regenerating: run `make release` and commit release/ and solutions/"


def test_every_assignment_has_source_release_and_solution() -> None:
    for aid in assignment_ids():
        for folder in ("source", "release", "solutions"):
            assert (KIT_ROOT / folder / aid / f"{aid}.ipynb").is_file(), f"missing {folder}/{aid}/{aid}.ipynb"


@pytest.mark.parametrize("aid", assignment_ids())
def test_release_is_what_nbgrader_generates_from_source(aid: str, released_course: Path) -> None:
    generated = (released_course / "release" / aid / f"{aid}.ipynb").read_text()
    committed = (KIT_ROOT / "release" / aid / f"{aid}.ipynb").read_text()
    assert generated == committed, FIX


@pytest.mark.parametrize("aid", assignment_ids())
def test_solutions_match_source_and_ran_to_full_marks(aid: str) -> None:
    source = nbformat.read(str(KIT_ROOT / "source" / aid / f"{aid}.ipynb"), as_version=4)
    solution = nbformat.read(str(KIT_ROOT / "solutions" / aid / f"{aid}.ipynb"), as_version=4)
    assert [c.source for c in solution.cells] == [c.source for c in source.cells], FIX
    assert [grade_id(c) for c in solution.cells] == [grade_id(c) for c in source.cells], FIX
    points = {i.name: i.points for i in load(aid).items}
    for cell in solution.cells:
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"solutions/{aid}: a cell was not executed"
        assert not [o for o in cell.outputs if o.output_type == "error"], f"solutions/{aid}: {cell.source[:60]}"
        if is_test_cell(cell):
            (value,) = [o for o in cell.outputs if o.output_type == "execute_result"]
            assert float(value.data["text/plain"]) == points[grade_id(cell)]


@pytest.mark.parametrize("aid", assignment_ids())
def test_every_item_has_one_check_cell_with_its_points(aid: str) -> None:
    source = nbformat.read(str(KIT_ROOT / "source" / aid / f"{aid}.ipynb"), as_version=4)
    cells = {grade_id(c): c for c in source.cells if is_test_cell(c)}
    items = load(aid).items
    assert list(cells) == [i.name for i in items]
    for item in items:
        assert cells[item.name].metadata.nbgrader.points == item.points
        assert cells[item.name].source == f'grader.check("{item.name}")'


@pytest.mark.parametrize("aid", assignment_ids())
def test_every_source_passes_the_checks_release_makes_before_writing(aid: str) -> None:
    from autograder.release import source_problems

    assert source_problems(KIT_ROOT, aid) == []
