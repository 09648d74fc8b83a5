"""Declared shortcuts, attacked: an answer to "write unfold (fold) with a loop" that calls the library's
unfold (fold) in any form scores nothing on that item, with a message saying so, in the student's
kernel and in the grading sandbox alike; the same functions stay allowed where the exercise is not
to write them (``conv_backward`` may use ``F.fold``)."""

from __future__ import annotations

import pytest

from autograder.assignments import load
from autograder.harness import NamespaceSource, grade
from autograder.notebook_code import grading_cells
from autograder.sandbox import Limits, SandboxSource

from conftest import cases_of, namespace_of, solution_notebook, with_answers

AID = "cnn_backprop"
SAYS = "which this exercise asks you to write yourself"

UNFOLD = "def unfold_loop(x, kernel_w, stride, padding):\n"
FOLD = "def fold_loop(cols, width, kernel_w, stride, padding):\n"

# Each: (function replaced, its answer cell): a way to get the library to do the exercise's work.
SHORTCUTS: dict[str, tuple[str, str]] = {
    "F.unfold": ("unfold_loop", UNFOLD + "    return F.unfold(x, (1, kernel_w), padding=(0, padding), stride=(1, stride))\n"),
    "nn.Unfold": ("unfold_loop", UNFOLD + "    return torch.nn.Unfold((1, kernel_w), padding=(0, padding), "
                                          "stride=(1, stride))(x)\n"),
    "an alias made in the cell": ("unfold_loop", "sliding = getattr(F, 'un' + 'fold')\n\n" + UNFOLD +
                                  "    return sliding(x, (1, kernel_w), padding=(0, padding), stride=(1, stride))\n"),
    "Tensor.unfold": ("unfold_loop", UNFOLD + "    B, C, _, T = x.shape\n"
                      "    w = F.pad(x, (padding, padding)).unfold(3, kernel_w, stride)  # (B, C, 1, L, k)\n"
                      "    return w.squeeze(2).permute(0, 1, 3, 2).reshape(B, C * kernel_w, -1)\n"),
    "an identity convolution": ("unfold_loop", UNFOLD + "    B, C, _, T = x.shape\n"
                                "    eye = torch.eye(C * kernel_w, dtype=x.dtype).view(C * kernel_w, C, 1, kernel_w)\n"
                                "    out = F.conv2d(x, eye, stride=(1, stride), padding=(0, padding))\n"
                                "    return out.flatten(2)\n"),
    "the operator by name": ("unfold_loop", UNFOLD + "    return torch.ops.aten.im2col(x, [1, kernel_w], [1, 1], "
                             "[0, padding], [1, stride])\n"),
    "the shortcut, its error caught, then a loop": ("unfold_loop", UNFOLD +
        "    try:\n"
        "        return F.unfold(x, (1, kernel_w), padding=(0, padding), stride=(1, stride))\n"
        "    except Exception:\n"
        "        xp = F.pad(x, (padding, padding))\n"
        "        L = (x.shape[-1] + 2 * padding - kernel_w) // stride + 1\n"
        "        cols = [xp[:, :, 0, l * stride:l * stride + kernel_w].reshape(x.shape[0], -1) for l in range(L)]\n"
        "        return torch.stack(cols, dim=2)\n"),
    "F.fold": ("fold_loop", FOLD + "    return F.fold(cols, (1, width), (1, kernel_w), padding=(0, padding), "
                                   "stride=(1, stride))\n"),
    "nn.Fold": ("fold_loop", FOLD + "    return torch.nn.Fold((1, width), (1, kernel_w), padding=(0, padding), "
                                    "stride=(1, stride))(cols)\n"),
    "col2im by name": ("fold_loop", FOLD + "    return torch.ops.aten.col2im(cols, [1, width], [1, kernel_w], [1, 1], "
                       "[0, padding], [1, stride])\n"),
}


def items_of(function: str) -> list[str]:
    return [i.name for i in load(AID).items if i.function == function]


@pytest.mark.parametrize("name", SHORTCUTS)
def test_a_shortcut_scores_nothing_in_the_kernel(name: str) -> None:
    assignment = load(AID)
    function, code = SHORTCUTS[name]
    namespace = namespace_of(with_answers(solution_notebook(AID), {function: code}), assignment)
    reports = {r.item.name: r for r in grade(assignment, NamespaceSource(namespace), cases_of(assignment))}
    for item in items_of(function):
        assert reports[item].earned == 0 and SAYS in (reports[item].problem or ""), reports[item].text()
    # everything else is untouched, including conv_backward, which uses F.unfold and F.fold itself
    assert [n for n, r in reports.items() if not r.passed] == items_of(function)


def test_the_honest_loops_pass_and_conv_backward_may_use_the_library() -> None:
    assignment = load(AID)
    cell = solution_notebook(AID).cells
    sources = "".join(c.source for c in cell if c.cell_type == "code")
    assert "F.fold(" in sources and "F.unfold(" in sources  # conv_backward's solution uses both
    namespace = namespace_of(solution_notebook(AID), assignment)
    assert all(r.passed for r in grade(assignment, NamespaceSource(namespace), cases_of(assignment)))


def sandboxed(replacements: dict[str, str]) -> tuple[dict[str, object], SandboxSource]:
    assignment = load(AID)
    nb = with_answers(solution_notebook(AID), replacements)
    source = SandboxSource(grading_cells(nb, assignment), limits=Limits(per_call_s=5, per_cell_s=10))
    reports = {r.item.name: r for r in grade(assignment, source, cases_of(assignment))}
    return reports, source


@pytest.mark.parametrize("unfold, fold", [("the shortcut, its error caught, then a loop", "col2im by name"),
                                          ("an identity convolution", "nn.Fold")])
def test_shortcuts_score_nothing_in_the_sandbox(unfold: str, fold: str) -> None:
    reports, source = sandboxed({SHORTCUTS[unfold][0]: SHORTCUTS[unfold][1], SHORTCUTS[fold][0]: SHORTCUTS[fold][1]})
    refused = items_of("unfold_loop") + items_of("fold_loop")
    for item in refused:
        assert reports[item].earned == 0 and SAYS in (reports[item].problem or ""), reports[item].text()
    assert [n for n, r in reports.items() if not r.passed] == [i for i in reports if i in refused]
    assert source.tampering == []  # a shortcut is not cheating: refused, not flagged


def test_rebinding_the_library_function_does_not_hide_it_in_the_sandbox() -> None:
    """torch hands a call to the guard's mode under the name it finds in its own C module: a
    submission that rebinds ``torch._C._nn.im2col`` to a wrapper and calls the original would show the
    mode the wrapper, not the shortcut. The child watches those modules (``sandbox/integrity.py``):
    the rebinding is tampering, and the answer earns nothing."""
    rebound = ("import torch._C._nn as nn_ops\n"
               "original_im2col = nn_ops.im2col\n"
               "nn_ops.im2col = lambda *a: original_im2col(*a)\n\n" + UNFOLD +
               "    return original_im2col(x, [1, kernel_w], [1, 1], [0, padding], [1, stride])\n")
    reports, source = sandboxed({"unfold_loop": rebound})
    for item in items_of("unfold_loop"):
        assert reports[item].earned == 0
        assert "tampered with the grader: the submission changed torch._C._nn.im2col" in (reports[item].problem or "")
    assert any("torch._C._nn.im2col" in t for t in source.tampering)
