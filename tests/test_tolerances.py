"""The default tolerance against the rounding a correct answer actually shows, and against mistakes.

Prints, for the solution, how much of the tolerance each item uses at most (it must be a small
fraction), and for the mistakes students make, how far outside it they land.
"""

from __future__ import annotations

import torch

from autograder.harness import NamespaceSource, plan_calls
from autograder.spec import Assignment, Case
from autograder.tolerances import DEFAULT

from conftest import FIGURES, KIT_ROOT, cases_of, namespace_of, solution_notebook


def used_fraction(received: torch.Tensor, expected: torch.Tensor) -> float:
    """max |r - e| / (atol + rtol |e|): 1.0 is the edge of the tolerance."""
    bound = DEFAULT.atol + DEFAULT.rtol * expected.abs()
    return float(((received - expected).abs() / bound).max())


def test_solution_uses_a_small_fraction_of_the_tolerance(assignment: Assignment) -> None:
    namespace = namespace_of(solution_notebook(assignment.id), assignment)
    cases = cases_of(assignment)
    outcomes = NamespaceSource(namespace).run(plan_calls(assignment.items, cases))
    worst = 0.0
    for item in assignment.items:
        for index, case in enumerate(cases):
            if not case.checks(item):
                continue
            value = outcomes[f"{item.name}@{index}"].value
            if item.output is not None:
                value = value[item.output]
            expected = item.expected_for(case)
            pairs = [(value[k], expected[k]) for k in expected] if isinstance(expected, dict) else [(value, expected)]
            worst = max([worst] + [used_fraction(r, e) for r, e in pairs])
    FIGURES.append((f"largest share of the tolerance a {assignment.id} solution gradient uses", 100 * worst, "%"))
    assert worst < 0.05  # at least 20x headroom over float32 rounding


def test_common_mistakes_land_far_outside_the_tolerance(mlp_cases: list[Case]) -> None:
    case = mlp_cases[1]
    n = case.values["Xb"].shape[0]
    dbndiff2 = case.grads["dbndiff2"]
    assert used_fraction(dbndiff2 * (n - 1) / n, dbndiff2) > 10     # Bessel: 1/n instead of 1/(n-1)
    dlogprobs = case.grads["dlogprobs"]
    assert used_fraction(dlogprobs * n, dlogprobs) > 10            # a missing 1/n
    dW2 = case.grads["dW2"]
    assert used_fraction(dW2 * 1.01, dW2) > 1                      # even a 1% slip


def test_the_notebook_states_the_tolerance_behind_approximate() -> None:
    """The MLP notebook explains `approximate` with the numbers the checks really use."""
    text = (KIT_ROOT / "source" / "mlp_backprop" / "mlp_backprop.ipynb").read_text()
    assert f"|yours - autograd's| <= {DEFAULT.atol:g} + {DEFAULT.rtol:g} * |autograd's|" in text
    assert "rtol=1e-5" in text and "atol=1e-8" in text  # allclose's defaults, which the lecture used
