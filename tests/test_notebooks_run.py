"""Each notebook runs top to bottom in a fresh kernel, as a student's would (times printed).

The solution, with its training runs; and the untouched release, as "Run All" on it does: every cell
that needs an unanswered function says which one instead of raising, so the run reaches the last
cell, the score summary.
"""

from __future__ import annotations

import time

import nbformat
from nbclient import NotebookClient

from autograder.spec import Assignment

from conftest import FIGURES, KIT_ROOT


def run_all(path: str, cwd: str) -> tuple[nbformat.NotebookNode, float]:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": cwd}}).execute()
    return nb, time.perf_counter() - start


def errors_of(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]


def text_of(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_solution_notebook_runs_top_to_bottom(assignment: Assignment, tmp_path) -> None:
    nb, seconds = run_all(str(KIT_ROOT / "source" / assignment.id / f"{assignment.id}.ipynb"), str(tmp_path))
    FIGURES.append((f"{assignment.id}: solution notebook, top to bottom in a fresh kernel", seconds, "s"))
    assert errors_of(nb) == []
    assert not any("skipped:" in text_of(c) for c in nb.cells if c.cell_type == "code")


def test_run_all_on_the_release_reaches_the_score_summary(assignment: Assignment, tmp_path) -> None:
    nb, seconds = run_all(str(KIT_ROOT / "release" / assignment.id / f"{assignment.id}.ipynb"), str(tmp_path))
    FIGURES.append((f"{assignment.id}: release notebook, Run All", seconds, "s"))
    assert errors_of(nb) == []
    summary = text_of(nb.cells[-1])
    assert f"0 / {assignment.total_points:g}" in summary and "first wrong step" in summary
    skipped = [text_of(c) for c in nb.cells if c.cell_type == "code" and "skipped:" in text_of(c)]
    assert skipped, "every notebook has cells that need the student's functions"
    assert all("not answered yet" in s or "yours to complete" in s or "was skipped" in s for s in skipped)
