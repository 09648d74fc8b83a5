"""Students' self-check: `pytest their_notebook.ipynb` gives one test per item, with the feedback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from autograder.samples import sample_notebook
from autograder.spec import Assignment

from conftest import KIT_ROOT, FIGURES


def self_check(notebook: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", notebook.name, "-p", "no:cacheprovider"],
                          cwd=notebook.parent, capture_output=True, text=True)


def test_solution_passes_every_item(tmp_path: Path, assignment: Assignment) -> None:
    aid = assignment.id
    notebook = tmp_path / f"{aid}.ipynb"
    notebook.write_text((KIT_ROOT / "solutions" / aid / f"{aid}.ipynb").read_text())
    start = time.perf_counter()
    done = self_check(notebook)
    FIGURES.append((f"student self-check: pytest {aid}.ipynb (solution, whole command)",
                    time.perf_counter() - start, "s"))
    assert done.returncode == 0, done.stdout[-3000:]
    total = f"{assignment.total_points:g} / {assignment.total_points:g}"
    assert f"{len(assignment.items)} passed" in done.stdout and total in done.stdout


def test_mistakes_fail_their_items_with_the_feedback(tmp_path: Path, mlp: Assignment) -> None:
    notebook = tmp_path / "my_attempt.ipynb"  # any file name: the notebook's metadata names the assignment
    partly = next(s for s in mlp.samples if s.student == "sample-partly-right")
    notebook.write_text(sample_notebook(partly, mlp))
    done = self_check(notebook)
    assert done.returncode == 1
    assert "5 failed, 24 passed" in done.stdout
    for item in ("dcounts_sum", "dW1", "dbndiff2", "dC", "ex4_backward"):
        assert f"FAILED my_attempt.ipynb::{item}" in done.stdout
    assert "transpose of the gradient" in done.stdout and "Bessel" in done.stdout and "sign flipped" in done.stdout
    assert "each row holds the gradient of only one position" in done.stdout
    assert "first wrong step: dcounts_sum" in done.stdout


def test_broken_notebook_fails_with_a_reason(tmp_path: Path) -> None:
    notebook = tmp_path / "mlp_backprop.ipynb"
    notebook.write_text('{"cells": [')
    done = self_check(notebook)
    assert done.returncode == 1 and "1 failed" in done.stdout and "cannot read mlp_backprop.ipynb" in done.stdout


def test_other_notebooks_are_left_alone(tmp_path: Path) -> None:
    notebook = tmp_path / "scratch.ipynb"
    notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    done = self_check(notebook)
    assert done.returncode == 5  # pytest: no tests collected
