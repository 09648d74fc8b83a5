"""The grader's reference gradients: autograd on an assignment's own forward pass.

An assignment's ``forward(params, *data)`` returns a dataclass of named steps with a scalar
``loss``. These helpers run it with every step's ``.grad`` kept, and read autograd's gradient of
every parameter and every intermediate as ``"d" + name``: no gradient formula is written twice.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from collections.abc import Callable
from typing import TypeVar

from torch import Tensor

F = TypeVar("F")


def tracked(f: object) -> dict[str, Tensor]:
    """The steps of a forward pass that autograd tracks (computed from parameters; not the data)."""
    return {k: v for k, v in vars(f).items() if isinstance(v, Tensor) and v.requires_grad}


def forward_with_grads(forward: Callable[..., F], params: dict[str, Tensor], *data: Tensor) -> F:
    """Run ``forward`` and ``loss.backward()``, keeping ``.grad`` on every intermediate too."""
    for p in params.values():
        p.grad = None
    f = forward(params, *data)
    for t in tracked(f).values():
        t.retain_grad()
    f.loss.backward()  # type: ignore[attr-defined]
    return f


def autograd_reference(forward: Callable[..., F], params: dict[str, Tensor],
                       *data: Tensor) -> tuple[F, dict[str, Tensor]]:
    """Detached forward steps, and autograd's gradient of every step and parameter (``d`` + name)."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    f = forward_with_grads(forward, leaves, *data)
    grads = {f"d{k}": t.grad.detach() for k, t in tracked(f).items() if k != "loss" and t.grad is not None}
    grads.update({f"d{k}": p.grad.detach() for k, p in leaves.items()})
    detached = dataclasses.replace(f, **{k: v.detach() for k, v in vars(f).items() if isinstance(v, Tensor)})
    return detached, grads


def show_source(obj: object) -> object:
    """Display the source of a kit function in a notebook, highlighted."""
    from IPython.display import Code

    return Code(textwrap.dedent(inspect.getsource(obj)), language="python")  # type: ignore[arg-type]
