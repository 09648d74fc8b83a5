"""No free points: for every item of every assignment, an answer that is zero, the solution negated, or
the solution 1% off scores nothing, even where the true gradient is zero by construction."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from autograder.assignments import assignment_ids, load
from autograder.harness import NamespaceSource, plan_calls, score_item
from autograder.spec import Assignment
from autograder.upstream import upstream_tensors

from conftest import cases_of, namespace_of, solution_notebook

TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {
    "zeros": torch.zeros_like,
    "the solution negated": lambda t: -t,
    "the solution times 1.01": lambda t: t * 1.01,
}


def transformed(value: object, transform: Callable[[Tensor], Tensor]) -> object:
    """Every tensor of a returned value (a tensor, a tuple of them, a dict of them) transformed."""
    if isinstance(value, Tensor):
        return transform(value)
    if isinstance(value, dict):
        return {k: transformed(v, transform) for k, v in value.items()}
    if isinstance(value, list):
        return [transformed(v, transform) for v in value]
    return value


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_no_item_passes_zeros_the_negated_or_a_scaled_solution(assignment: Assignment, transform: str) -> None:
    cases = cases_of(assignment)
    outcomes = NamespaceSource(namespace_of(solution_notebook(assignment.id), assignment)).run(
        plan_calls(assignment.items, cases))
    assert all(score_item(item, cases, outcomes).passed for item in assignment.items)  # the solution itself
    changed = {key: dataclasses.replace(o, value=transformed(o.value, TRANSFORMS[transform]))
               for key, o in outcomes.items()}
    passing = [item.name for item in assignment.items if score_item(item, cases, changed).earned > 0]
    assert passing == [], f"{transform} passes {passing}"


@pytest.mark.parametrize("aid", assignment_ids())
def test_every_item_given_an_upstream_gradient_also_gets_a_random_one(aid: str) -> None:
    assignment = load(aid)
    cases = cases_of(assignment)
    standard = [c for c in cases if c.items is None]
    module = __import__(f"autograder.assignments.{aid}", fromlist=["_"])
    aliases = getattr(module, "UPSTREAM_ALIASES", {})
    for item in assignment.items:
        random_cases = [c for c in cases if c.random_upstream and c.checks(item)]
        upstream = upstream_tensors(item, standard[1], aliases)
        assert len(random_cases) == (1 if upstream else 0), item.name
        if not upstream:
            continue
        (case,) = random_cases
        # what the function receives there is not the loss's gradient, nor proportional to it
        for arg in (a for a in item.args if isinstance(a, str) and a in case.grads):
            given, true = case.grads[arg], standard[1].grads[arg]
            scale = float((given * true).sum() / (true * true).sum().clamp_min(1e-30))
            assert not torch.allclose(given, scale * true, rtol=1e-2, atol=1e-8), (item.name, arg)
