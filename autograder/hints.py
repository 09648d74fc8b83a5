"""Name a mistake in a hand-written gradient, but only one that is verified to explain what was received.

Each diagnosis here is checked against the numbers before it is said: "transposed" only when the
transpose of the result is the gradient, "sum over dim 0" only when that sum is the gradient, "the
sign is flipped" only when the negated result is. Mistakes that belong to one item (a factor of its
batch size, a missing path, overwritten rows) are declared with the item (``mistakes.py``) and
verified the same way. When nothing is verified, there is no hint: the checker still says where the
result differs and by how much (``where_it_differs``). None of these functions raises: a hint is a
bonus, so anything unexpected about the inputs just means "no hint".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .mistakes import Mistake, close, explains, first_match
from .tolerances import Tolerance

if TYPE_CHECKING:
    from .spec import Case


def shape_hint(received: Tensor, expected: Tensor, tol: Tolerance) -> str | None:
    """Explain a shape mismatch when a reshaping or a sum of the result gives the gradient."""
    try:
        r, e = received.detach().to(expected.dtype), expected.detach()
        if r.ndim == 2 and e.ndim == 2 and tuple(r.shape) == tuple(e.shape)[::-1] and close(r.T, e, tol):
            return ("your result is the transpose of the gradient: a gradient has the shape of the tensor it "
                    "belongs to, so check the order of the factors in your matrix product.")
        if r.ndim == e.ndim:
            summed = [k for k in range(e.ndim) if e.shape[k] == 1 and r.shape[k] > 1]
            if summed and all(r.shape[k] == e.shape[k] for k in range(e.ndim) if k not in summed):
                if close(r.sum(dim=summed, keepdim=True), e, tol):
                    dims = ", ".join(str(k) for k in summed)
                    return (f"summing your result over dim {dims} gives the gradient: this tensor was broadcast "
                            f"along dim {dims} in the forward pass, so its gradient adds up the contributions "
                            f"along that dim (`.sum({dims}, keepdim=True)`).")
        if r.ndim > e.ndim and tuple(r.shape[r.ndim - e.ndim:]) == tuple(e.shape):
            lead = tuple(range(r.ndim - e.ndim))
            if close(r.sum(dim=lead), e, tol):
                return (f"summing your result over its leading dims {lead} gives the gradient: this tensor was "
                        f"broadcast over them in the forward pass, so its gradient adds them up.")
        if r.numel() == e.numel() and close(r.reshape(e.shape), e, tol):
            return ("the values are right but the shape is not: keep the shape of the forward tensor "
                    "(`keepdim=True` in reductions, or `.view(...)` back to it).")
    except Exception:  # a hint must never break a check
        return None
    return None


def value_hint(received: Tensor, expected: Tensor, tol: Tolerance, mistakes: Sequence[Mistake] = (),
               case: Case | None = None, key: str | None = None) -> str | None:
    """Explain a same-shape value mismatch: the item's own known mistakes first, then the ones any
    gradient can have (all zeros, a flipped sign, a transpose), each only when it reproduces
    ``received`` and ``received`` is clearly wrong (``mistakes.explains``)."""
    try:
        r, e = received.detach().to(expected.dtype), expected.detach()
        declared = first_match(mistakes, r, e, case, tol, key)
        if declared is not None:
            return declared
        if not torch.any(r != 0) and explains(r, torch.zeros_like(e), e, tol):
            return "your result is all zeros, and the gradient is not."
        if explains(r, -e, e, tol):
            return "your result is the gradient with its sign flipped: check each minus sign along the way."
        if r.ndim == 2 and r.shape[0] == r.shape[1] and explains(r, e.T, e, tol):
            return ("your result is the transpose of the gradient: check the order of the factors in your "
                    "matrix product.")
    except Exception:  # a hint must never break a check
        return None
    return None


def where_it_differs(received: Tensor, expected: Tensor, tol: Tolerance) -> str | None:
    """Facts, not a diagnosis: how many entries are outside the tolerance, and in which rows."""
    try:
        r, e = received.detach().to(expected.dtype), expected.detach()
        off = ~torch.isclose(r, e, rtol=tol.rtol, atol=tol.atol)
        count, total = int(off.sum()), off.numel()
        if count == 0 or total == 1:
            return None
        text = f"{count} of {total} entries differ from autograd's"
        if r.ndim >= 2 and count < total:
            rows = off.flatten(1).any(dim=1).nonzero().flatten().tolist()
            shown = ", ".join(str(i) for i in rows[:8]) + (", ..." if len(rows) > 8 else "")
            text += f", in {len(rows)} of {off.shape[0]} rows along dim 0 ({shown})"
        return text
    except Exception:
        return None
