"""The grading contract, checked through the in-kernel source (NamespaceSource) on the real notebook code.

The sandboxed source runs the same ``invoke`` on the same calls; test_sandbox.py and test_nbgrader.py
check that path end to end.
"""

from __future__ import annotations

import re

import pytest
import torch

from autograder.harness import NamespaceSource, grade
from autograder.spec import Assignment, Case

from conftest import namespace_of, solution_notebook


@pytest.fixture(scope="module")
def solution_ns(mlp: Assignment) -> dict[str, object]:
    return namespace_of(solution_notebook(), mlp)


def scores(mlp: Assignment, namespace: dict[str, object], cases: list[Case]) -> dict[str, float]:
    return {r.item.name: r.earned for r in grade(mlp, NamespaceSource(namespace), cases)}


def test_solution_scores_every_item(mlp: Assignment, solution_ns: dict, mlp_cases: list[Case]) -> None:
    reports = grade(mlp, NamespaceSource(solution_ns), mlp_cases)
    assert [r.item.name for r in reports if not r.passed] == []
    assert sum(r.earned for r in reports) == mlp.total_points == 42


def test_items_are_declared_once_with_unique_names(mlp: Assignment) -> None:
    names = [i.name for i in mlp.items]
    assert len(names) == len(set(names)) == 29
    ex1 = [i.name for i in mlp.items if i.exercise == 1]
    assert ex1 == ["dlogprobs", "dprobs", "dcounts_sum_inv", "dcounts_sum", "dcounts", "dnorm_logits", "dlogit_maxes",
                   "dlogits", "dh", "dW2", "db2", "dhpreact", "dbngain", "dbnbias", "dbnraw", "dbnvar_inv", "dbnvar",
                   "dbndiff2", "dbndiff", "dbnmeani", "dhprebn", "dembcat", "dW1", "db1", "demb", "dC"]


def test_hidden_cases_use_other_seeds_and_sizes(mlp_cases: list[Case]) -> None:
    shapes = {tuple(c.values["hprebn"].shape) for c in mlp_cases}
    assert len(shapes) == 3  # batch and hidden sizes differ between cases
    assert len({tuple(c.values["emb"].shape) for c in mlp_cases}) == 3
    for case in mlp_cases:
        dims = [case.values["Xb"].shape[0], case.values["hprebn"].shape[1], case.values["emb"].shape[2],
                case.values["embcat"].shape[1], 27]
        assert len(set(dims)) == len(dims), f"sizes must all differ in {case.label}: {dims}"


def test_gradients_the_notebook_says_are_zero_are_zero_but_zeros_earn_nothing(
        mlp: Assignment, solution_ns: dict, mlp_cases: list[Case]) -> None:
    # The notebook tells students to expect ~0 here: the row max does not change the softmax, and
    # batchnorm subtracts the batch mean right after `+ b1`. Zeros would then pass, if the checks
    # used only the loss's gradients; the random-upstream cases (upstream.py) do not let them.
    for case in (c for c in mlp_cases if c.items is None):
        assert case.grads["dlogit_maxes"].abs().max() < 1e-6
        assert case.grads["db1"].abs().max() < 1e-6
    for name in ("dlogit_maxes", "db1"):
        (random_case,) = [c for c in mlp_cases if c.random_upstream and c.checks(mlp.item(name))]
        assert random_case.grads[name].abs().max() > 1e-3
    namespace = dict(solution_ns)
    exec("def backward_logit_maxes(dnorm_logits):\n    return torch.zeros_like(dnorm_logits[:, :1])\n"
         "def backward_b1(dhprebn):\n    return -dhprebn.sum(0)\n", namespace)
    reports = {r.item.name: r for r in grade(mlp, NamespaceSource(namespace), mlp_cases)}
    for name in ("dlogit_maxes", "db1"):
        assert reports[name].earned == 0 and reports[name].notebook_checks[0].passed
        assert "right for the true upstream gradient but not on the hidden case 1" in reports[name].problem


def _grad_copy(namespace: dict, function: str, target: str) -> None:
    exec(f"def {function}(*args):\n    return {target}\n", namespace)


def test_copying_grad_from_notebook_tensors_scores_zero(mlp: Assignment, solution_ns: dict,
                                                       mlp_cases: list[Case]) -> None:
    namespace = dict(solution_ns)
    _grad_copy(namespace, "backward_logprobs", "f.logprobs.grad")           # the notebook's own tensors
    _grad_copy(namespace, "backward_probs", "args[0].grad")                 # the argument's .grad
    _grad_copy(namespace, "backward_W2", "params['W2'].grad")
    reports = {r.item.name: r for r in grade(mlp, NamespaceSource(namespace), mlp_cases)}
    for name in ("dlogprobs", "dprobs", "dW2"):
        assert reports[name].earned == 0
    # The notebook's own tensors carry autograd's graph: using them is refused outright (and their
    # .grad would be right on the notebook's batch only: the hidden cases would catch it anyway).
    assert "carries a backward graph" in reports["dlogprobs"].problem
    assert "received None" in reports["dprobs"].failing_check.problem


def test_pasted_numbers_score_zero(mlp: Assignment, solution_ns: dict, mlp_cases: list[Case]) -> None:
    namespace = dict(solution_ns)
    namespace["_printed"] = mlp_cases[0].grads["dh"].clone()  # numbers printed in the notebook, pasted back
    exec("def backward_h(W2, dlogits):\n    return _printed.clone()\n", namespace)
    (report,) = grade(mlp, NamespaceSource(namespace), mlp_cases, [mlp.item("dh")])
    assert report.earned == 0 and report.notebook_checks[0].passed
    assert "not on the hidden case" in report.problem


AUTOGRAD_CHEATS = {
    "backward": ("def backward_probs(probs, dlogprobs):\n"
                 "    p = probs.clone().requires_grad_(True)\n"
                 "    with torch.enable_grad():\n"
                 "        p.log().backward(dlogprobs)\n"
                 "    return p.grad\n"),
    "autograd.grad": ("def backward_probs(probs, dlogprobs):\n"
                      "    p = probs.clone().requires_grad_(True)\n"
                      "    with torch.enable_grad():\n"
                      "        return torch.autograd.grad(p.log(), p, dlogprobs)[0]\n"),
    "torch.func.vjp": ("def backward_probs(probs, dlogprobs):\n"
                       "    _, pull = torch.func.vjp(torch.log, probs)\n"
                       "    return pull(dlogprobs)[0]\n"),
    "autograd.functional": ("def backward_probs(probs, dlogprobs):\n"
                            "    return torch.autograd.functional.vjp(torch.log, probs, dlogprobs)[1]\n"),
}


@pytest.mark.parametrize("how", sorted(AUTOGRAD_CHEATS))
def test_calling_autograd_inside_an_answer_scores_zero(how: str, mlp: Assignment, solution_ns: dict,
                                                      mlp_cases: list[Case]) -> None:
    namespace = dict(solution_ns)
    exec(AUTOGRAD_CHEATS[how], namespace)
    (report,) = grade(mlp, NamespaceSource(namespace), mlp_cases, [mlp.item("dprobs")])
    assert report.earned == 0
    assert re.search(r"uses .* which this exercise does not allow|is not allowed here", report.problem)
    # autograd is usable again after the check
    x = torch.ones(2, requires_grad=True)
    (x * 2).sum().backward()
    assert torch.equal(x.grad, torch.full((2,), 2.0))


def test_changing_an_input_in_place_scores_zero(mlp: Assignment, solution_ns: dict, mlp_cases: list[Case]) -> None:
    namespace = dict(solution_ns)
    exec("def backward_logits(logits, dnorm_logits, dlogit_maxes):\n"
         "    dlogits = dnorm_logits  # no copy: the += below changes the caller's tensor\n"
         "    dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes\n"
         "    return dlogits\n", namespace)
    (report,) = grade(mlp, NamespaceSource(namespace), mlp_cases, [mlp.item("dlogits")])
    assert report.earned == 0 and "changed its input dnorm_logits in place" in report.problem


def test_using_a_notebook_global_for_the_batch_size_is_explained(mlp: Assignment, solution_ns: dict,
                                                                mlp_cases: list[Case]) -> None:
    namespace = dict(solution_ns)
    exec("def backward_logprobs(logprobs, Yb):\n"
         "    d = torch.zeros_like(logprobs)\n"
         "    d[torch.arange(n), Yb] = -1.0 / n   # n: the notebook's batch size, not this batch's\n"
         "    return d\n", namespace)
    (report,) = grade(mlp, NamespaceSource(namespace), mlp_cases, [mlp.item("dlogprobs")])
    assert report.earned == 0 and report.notebook_checks[0].passed
    assert "right on the notebook's batch but not on the hidden case" in report.problem
    assert "a size or a value taken from the notebook instead of from the function's arguments" in report.problem


def test_wrong_shape_is_reported_with_the_hint(mlp: Assignment, solution_ns: dict, mlp_cases: list[Case]) -> None:
    namespace = dict(solution_ns)
    exec("def backward_bnmeani(dbndiff):\n    return -dbndiff.sum(0)\n", namespace)  # the lecture's (64,)
    (report,) = grade(mlp, NamespaceSource(namespace), mlp_cases, [mlp.item("dbnmeani")])
    text = report.text()
    assert report.earned == 0
    assert "shape mismatch: expected (1, 64), received (64,)" in text and "keepdim" in text


def test_feedback_names_the_first_wrong_step(mlp: Assignment, solution_ns: dict, mlp_cases: list[Case]) -> None:
    from autograder.harness import summary
    namespace = dict(solution_ns)
    exec("def backward_dcounts_placeholder():\n    pass\n", namespace)
    exec("def backward_bnvar(bnvar, dbnvar_inv):\n    return 0.5 * (bnvar + 1e-5) ** -1.5 * dbnvar_inv\n", namespace)
    exec("def backward_counts_sum(counts_sum, dcounts_sum_inv):\n    return counts_sum**-2 * dcounts_sum_inv\n",
         namespace)
    text = summary(mlp, grade(mlp, NamespaceSource(namespace), mlp_cases))
    assert "first wrong step: dcounts_sum" in text and "40 / 42" in text
