"""The grading contract for every assignment, through the in-kernel source on its solution notebook:
full marks, zero for the release, and one mutated function loses exactly the items that use it."""

from __future__ import annotations

import nbformat
import pytest

from autograder.assignments import assignment_ids, load
from autograder.harness import NamespaceSource, grade
from autograder.samples import answer_cell_index
from autograder.spec import Assignment

from conftest import KIT_ROOT, cases_of, namespace_of, solution_notebook, with_answers

# Items whose solution calls other graded functions: a mistake in one of those also costs the item
# (and its feedback names the function's own item as the one to fix).
COMPOSED = {
    "mlp_backprop": {"ex4_backward": {"backward_C", "cross_entropy_backward", "batchnorm_backward"}},
    "cnn_backprop": {"backward": {"cross_entropy_backward", "linear_backward", "avgpool_backward",
                                  "residual_backward", "batchnorm2d_backward", "conv_backward", "relu_backward",
                                  "input_backward", "embedding_backward"},
                     "dxin": {"conv_backward"}},
    # bptt's items are graded with the grader's step oracle, so a wrong piece of the step does not reach
    # them; the composed backward pass reaches every piece through the notebook's gru_step_backward
    "gru_backprop": {"backward": {"cross_entropy_backward", "head_backward", "dropout_backward", "bptt",
                                  "embedding_backward", "blend_backward", "tanh_backward", "reset_backward",
                                  "sigmoid_backward", "gates_backward", "linear_backward"}},
    # every micrograd item is isolated by its driver (tests/test_micrograd.py mutates its answers)
    "micrograd": {},
    "gpt_backprop": {"backward": {"cross_entropy_backward", "head_backward", "layernorm_backward", "linear_backward",
                                  "gelu_backward", "residual_backward", "merge_heads_backward",
                                  "attention_values_backward", "softmax_backward", "scale_backward", "scores_backward",
                                  "split_heads_backward", "position_embedding_backward",
                                  "token_embedding_backward"}},
}


def test_every_assignment_declares_its_composed_exercise() -> None:
    assert set(COMPOSED) == set(assignment_ids())


def test_solution_full_marks(assignment: Assignment) -> None:
    namespace = namespace_of(solution_notebook(assignment.id), assignment)
    reports = grade(assignment, NamespaceSource(namespace), cases_of(assignment))
    assert [r.item.name for r in reports if not r.passed] == []


def test_release_zero(assignment: Assignment) -> None:
    path = KIT_ROOT / "release" / assignment.id / f"{assignment.id}.ipynb"
    namespace = namespace_of(nbformat.read(str(path), as_version=4), assignment)
    reports = grade(assignment, NamespaceSource(namespace), cases_of(assignment))
    assert sum(r.earned for r in reports) == 0
    assert all("not answered yet" in (r.problem or "") for r in reports)


def _mutated(function: str, solution_cell: str) -> str:
    """The solution's function, with every tensor it returns 1% too large plus 1e-3."""
    right = solution_cell.replace(f"def {function}(", f"def _right_{function}(")
    return right + f"""

def {function}(*args):
    out = _right_{function}(*args)
    bump = lambda t: t * 1.01 + 1e-3
    if isinstance(out, dict):
        return {{k: bump(v) for k, v in out.items()}}
    if isinstance(out, tuple):
        return tuple(bump(v) for v in out)
    return bump(out)
"""


def _functions() -> list[tuple[str, str]]:
    """Every tensor function (items with a driver check a class: tests/test_micrograd.py)."""
    return sorted({(aid, item.function) for aid in assignment_ids() for item in load(aid).items
                   if item.driver is None})


@pytest.mark.parametrize("aid, function", _functions())
def test_one_wrong_function_loses_exactly_the_items_that_use_it(aid: str, function: str) -> None:
    assignment = load(aid)
    nb = solution_notebook(aid)
    cell = nb.cells[answer_cell_index(nb, function)].source
    namespace = namespace_of(with_answers(nb, {function: _mutated(function, cell)}), assignment)
    reports = {r.item.name: r for r in grade(assignment, NamespaceSource(namespace), cases_of(assignment))}
    composed = COMPOSED[aid]
    expected = [i.name for i in assignment.items
                if i.function == function or function in composed.get(i.name, set())]
    assert [name for name, r in reports.items() if not r.passed] == expected
    assert sum(r.earned for r in reports.values()) == assignment.total_points - sum(
        assignment.item(n).points for n in expected)
    for name, functions in composed.items():
        if function in functions:
            assert "calls functions whose own items fail" in reports[name].problem


def test_bptt_loop_mistake_is_reported_at_the_step_it_happens() -> None:
    assignment = load("gru_backprop")
    nb = solution_notebook("gru_backprop")
    cell = nb.cells[answer_cell_index(nb, "bptt")].source
    forgets_later_steps = cell.replace("dh = dH[:, t] + dh_next", "dh = dH[:, t]")
    assert forgets_later_steps != cell
    namespace = namespace_of(with_answers(nb, {"bptt": forgets_later_steps}), assignment)
    reports = {r.item.name: r for r in grade(assignment, NamespaceSource(namespace), cases_of(assignment))}
    assert [n for n, r in reports.items() if not r.passed] == [
        "bptt_dembd", "bptt_dx2g_W", "bptt_dx2g_b", "bptt_dh2g_W", "bptt_dh2g_b", "backward"]
    last = cases_of(assignment)[0].values["x"].shape[1] - 1
    assert (f"step {last - 1} received a dh that is not the gradient of h_{last - 1}"
            in reports["bptt_dembd"].problem)
