"""Each solution notebook runs top to bottom in a fresh kernel, as a student's would (time printed)."""

from __future__ import annotations

import time

import nbformat
from nbclient import NotebookClient

from autograder.spec import Assignment

from conftest import FIGURES, KIT_ROOT


def test_solution_notebook_runs_top_to_bottom(assignment: Assignment, tmp_path) -> None:
    source = KIT_ROOT / "source" / assignment.id / f"{assignment.id}.ipynb"
    nb = nbformat.read(str(source), as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    FIGURES.append((f"{assignment.id}: solution notebook, top to bottom in a fresh kernel",
                    time.perf_counter() - start, "s"))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
