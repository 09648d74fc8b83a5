"""The grader's reference gradients: autograd on an assignment's own forward pass.

An assignment's ``forward(params, *data)`` returns a dataclass of named steps with a scalar
``loss``. These helpers run it with every step's ``.grad`` kept, and read autograd's gradient of
every parameter and every intermediate as ``"d" + name``: no gradient formula is written twice.
"""

from __future__ import annotations

import dataclasses
import os
import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import TypeVar

import torch
from torch import Tensor

F = TypeVar("F")


def named_tensors(f: object) -> dict[str, Tensor]:
    """Every tensor of a forward pass by name; a list field (one tensor per time step) gives
    ``name@0``, ``name@1``, ..."""
    named: dict[str, Tensor] = {}
    for k, v in vars(f).items():
        if isinstance(v, Tensor):
            named[k] = v
        elif isinstance(v, list):
            named.update({f"{k}@{t}": x for t, x in enumerate(v) if isinstance(x, Tensor)})
    return named


def tracked(f: object) -> dict[str, Tensor]:
    """The steps of a forward pass that autograd tracks (computed from parameters; not the data)."""
    return {k: v for k, v in named_tensors(f).items() if v.requires_grad}


# Random weights of the tensors a random-upstream case differentiates, from the forward pass (their shapes).
Upstream = Callable[[object], Mapping[str, Tensor]]


def forward_with_grads(forward: Callable[..., F], params: dict[str, Tensor], *data: Tensor,
                       retain_graph: bool = False, upstream: Upstream | None = None) -> F:
    """Run ``forward`` and ``loss.backward()``, keeping ``.grad`` on every intermediate too.

    With ``upstream``, the scalar differentiated is not the loss but ``sum(<R, f.name>)`` over the
    weights ``R`` it gives (see ``upstream.py``): every ``.grad`` is then the gradient of that function.
    Inside the grading sandbox, where autograd is refused, only the forward pass runs: the notebook's
    cells still define their variables, and no ``.grad`` exists for an answer to copy."""
    for p in params.values():
        p.grad = None
    if os.environ.get("BACKPROP_KIT_SANDBOX") == "1":
        with torch.no_grad():
            return forward(params, *data)
    f = forward(params, *data)
    for t in tracked(f).values():
        t.retain_grad()
    if upstream is None:
        objective = f.loss  # type: ignore[attr-defined]
    else:
        named = named_tensors(f)
        objective = sum((named[name] * weight).sum() for name, weight in upstream(f).items())
    objective.backward(retain_graph=retain_graph)
    return f


def autograd_reference(forward: Callable[..., F], params: dict[str, Tensor], *data: Tensor,
                       extra: Callable[[F, dict[str, Tensor]], dict[str, Tensor]] | None = None,
                       upstream: Upstream | None = None) -> tuple[F, dict[str, Tensor]]:
    """Detached forward steps, and autograd's gradient of every step and parameter (``d`` + name).

    ``extra(f, leaves)`` may add gradients that are not of a single named tensor (a vector-Jacobian
    product through one part of the graph, such as one time step), computed with autograd too; a
    tensor the differentiated function does not reach has ``.grad`` None there, and gets no entry.
    ``upstream``: differentiate a random linear function of some steps instead of the loss
    (``forward_with_grads``); only the steps that reach them get a gradient.
    """
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    f = forward_with_grads(forward, leaves, *data, retain_graph=extra is not None, upstream=upstream)
    # clones, not views of .grad: later autograd calls (``extra``) may add to the .grad of retained tensors
    grads = {f"d{k}": t.grad.detach().clone() for k, t in tracked(f).items() if k != "loss" and t.grad is not None}
    grads.update({f"d{k}": p.grad.detach().clone() for k, p in leaves.items() if p.grad is not None})
    if extra is not None:
        grads.update({k: v.detach() for k, v in extra(f, leaves).items()})
    return detach(f), grads


def detach(f: F) -> F:
    """A copy of a forward pass with every tensor (and every tensor in a list) detached."""
    def plain(v: object) -> object:
        if isinstance(v, Tensor):
            return v.detach()
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v
    return dataclasses.replace(f, **{k: plain(v) for k, v in vars(f).items()})  # type: ignore[type-var]


def case_values(f: object, params: dict[str, Tensor]) -> dict[str, object]:
    """What a student function may receive in a grader's case: every forward tensor by name (``name@t``
    per time step), every parameter, the whole forward pass as ``f`` and the parameters as ``params``."""
    plain = {k: v.detach() for k, v in params.items()}
    return {**named_tensors(f), **plain, "f": f, "params": plain}


def show_source(obj: object) -> object:
    """Display the source of a kit function in a notebook, highlighted."""
    from IPython.display import Code

    return Code(textwrap.dedent(inspect.getsource(obj)), language="python")  # type: ignore[arg-type]
