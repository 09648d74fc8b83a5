"""The second line against autograd and tampering: a static review that flags, never scores."""

from __future__ import annotations

import nbformat
import pytest

from autograder.assignments import assignment_ids, load
from autograder.static_review import review

from conftest import KIT_ROOT


@pytest.mark.parametrize("aid", assignment_ids())
def test_the_solutions_raise_no_flag(aid: str) -> None:
    nb = nbformat.read(str(KIT_ROOT / "solutions" / aid / f"{aid}.ipynb"), as_version=4)
    answers = [(i, c.source) for i, c in enumerate(nb.cells)
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    assert answers and review(answers, allowed=load(aid).review_allows) == []


def test_what_an_assignment_allows_is_only_its_exercise() -> None:
    """micrograd's students write backward() and _backward: not flagged there, still flagged
    elsewhere, and autograd itself is flagged in micrograd too."""
    allows = load("micrograd").review_allows
    engine = "def backward(self):\n    for node in reversed(order):\n        node._backward()\n"
    assert review([(0, engine)], allowed=allows) == []
    assert review([(0, engine)]) != []
    delegates = "def tanh(self):\n    return torch.autograd.grad(torch.tanh(x), x)\n"
    assert [f.reason for f in review([(0, delegates)], allowed=allows)] == ["uses `autograd` (autograd)"]


FLAGGED = {
    "kit internals": "import autograder.assignments._micrograd_drivers as k\n",
    "backward": "def f(x):\n    x.sum().backward()\n",
    "autograd.grad": "import torch\ndef f(x):\n    return torch.autograd.grad(x.sum(), x)\n",
    "torch.func": "from torch import func\ndef f(x):\n    return func.grad(lambda t: t.sum())(x)\n",
    "derivative op": "import torch\ndef f(g, y):\n    return torch.ops.aten.tanh_backward(g, y)\n",
    "frames": "import sys\ndef f():\n    return sys._getframe(1).f_locals\n",
    "gc": "import gc\nobjs = gc.get_objects()\n",
    "ctypes": "import ctypes\n",
    "code objects": "def f(g):\n    return g.__code__\n",
    "exec": "exec('import torch')\n",
    "getattr on a string built at run time": "import torch\nname = 'back' + 'ward'\ngetattr(torch.ones(1), name)\n",
    "torch._C": "import torch\ntorch._C._pop_torch_function_stack()\n",
}


@pytest.mark.parametrize("label", FLAGGED)
def test_autograd_and_tampering_are_flagged_with_a_reason(label: str) -> None:
    findings = review([(7, FLAGGED[label])])
    assert findings, label
    assert all(str(f).startswith("cell 7, line ") for f in findings)


def test_honest_code_that_mentions_nothing_suspicious_is_not_flagged() -> None:
    honest = ("def backward_probs(probs, dlogprobs):\n    # d(log p)/dp = 1/p\n    return dlogprobs / probs\n"
              "func = max\nvalue = getattr(object(), '__class__')\n")
    assert review([(0, honest)]) == []
    assert review([(0, "def broken(:\n")]) == []  # a cell that does not parse fails in the sandbox instead
