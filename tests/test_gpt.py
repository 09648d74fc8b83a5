"""gpt_backprop: the forward pass is torch's own layers, and the mistakes the assignment is about (a
mask built for the notebook's T, a softmax backward without its row sum, eps outside LayerNorm's
root) are caught where they show."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autograder.assignments import gpt_backprop as module
from autograder.assignments import load
from autograder.harness import NamespaceSource, grade

from conftest import cases_of, namespace_of, solution_notebook, with_answers

AID = "gpt_backprop"


def test_the_forward_pass_is_torchs_layers() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 12, generator=g) * 0.03
    gain, bias = torch.randn(12, generator=g), torch.randn(12, generator=g)
    out, xhat, rstd = module.layernorm(x, gain, bias)
    torch.testing.assert_close(out, F.layer_norm(x, (12,), gain, bias, eps=module.LN_EPS))  # eps inside the root
    torch.testing.assert_close(module.gelu_tanh(x * 30), F.gelu(x * 30, approximate="tanh"))
    assert module.causal_mask(4).tolist() == [[True, False, False, False], [True, True, False, False],
                                              [True, True, True, False], [True, True, True, True]]


def test_masked_positions_get_no_gradient_and_leaking_there_fails() -> None:
    assignment = load(AID)
    cases = cases_of(assignment)
    for case in (c for c in cases if c.checks(assignment.item("datt_scaled"))):
        T = case.values["x"].shape[1]
        above = ~module.causal_mask(T)
        assert bool((case.grads["datt_scaled"][..., above] == 0).all())
    leaks = ("def softmax_backward(att, datt):\n"
             "    return att * datt - (datt * att).sum(-1, keepdim=True)  # the row sum not weighted by att\n")
    namespace = namespace_of(with_answers(solution_notebook(AID), {"softmax_backward": leaks}), assignment)
    (report,) = grade(assignment, NamespaceSource(namespace), cases, [assignment.item("datt_scaled")])
    assert not report.passed


def test_a_mask_built_for_the_notebooks_T_fails_the_hidden_cases() -> None:
    assignment = load(AID)
    T = module.NOTEBOOK_CONFIG.context
    fixed = ("def softmax_backward(att, datt):\n"
             f"    keep = torch.tril(torch.ones({T}, {T}))  # the notebook's T, written in\n"
             "    return keep * att * (datt - (datt * att).sum(-1, keepdim=True))\n")
    namespace = namespace_of(with_answers(solution_notebook(AID), {"softmax_backward": fixed}), assignment)
    (report,) = grade(assignment, NamespaceSource(namespace), cases_of(assignment), [assignment.item("datt_scaled")])
    assert report.notebook_checks[0].passed and not report.passed
    assert "right on the notebook's batch but not on the hidden case 1" in (report.problem or "")


def test_eps_outside_the_root_shows_at_the_small_embeddings_only() -> None:
    """The partly-right sample's LayerNorm: off by about eps/std, which the tolerance sees at ln1 (the
    stream starts at GPT-2's 0.02 scale) and not at ln2 or lnf (an O(1) stream)."""
    assignment = load(AID)
    sample = next(s for s in assignment.samples if s.student == "sample-partly-right")
    wrong = {"layernorm_backward": sample.replace["layernorm_backward"]}
    namespace = namespace_of(with_answers(solution_notebook(AID), wrong), assignment)
    items = [assignment.item(n) for n in ("dx2", "dlnf_g", "dlnf_b", "dx1_ln2", "dx0_ln1")]
    verdicts = {r.item.name: r.passed for r in grade(assignment, NamespaceSource(namespace), cases_of(assignment), items)}
    assert verdicts == {"dx2": True, "dlnf_g": True, "dlnf_b": True, "dx1_ln2": True, "dx0_ln1": False}


def test_the_composed_backward_names_the_helper_item_that_fails() -> None:
    """A function checked at several places (scores_backward gives dqh and dkh) is a failing helper
    when any of its items fails, and the composed item's feedback names that item."""
    assignment = load(AID)
    wrong_dq = ("def scores_backward(qh, kh, dscores):\n"
                "    return dscores @ kh * 2.0, dscores.transpose(-2, -1) @ qh  # dqh off by a factor\n")
    namespace = namespace_of(with_answers(solution_notebook(AID), {"scores_backward": wrong_dq}), assignment)
    reports = {r.item.name: r for r in grade(assignment, NamespaceSource(namespace), cases_of(assignment),
                                             [assignment.item("backward")])}
    assert "calls functions whose own items fail (dqh)" in (reports["backward"].problem or "")
