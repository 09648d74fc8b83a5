"""Recognise the common mistakes of a hand-written gradient and name them for the student.

Each function looks at a received tensor next to the expected one and returns a sentence a student
can act on, or ``None`` when nothing familiar is recognised. They never raise: a hint is a bonus,
so anything unexpected about the inputs just means "no hint".
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .tolerances import Tolerance


def _close(a: Tensor, b: Tensor, tol: Tolerance) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol.rtol, atol=tol.atol))


def shape_hint(received: Tensor, expected: Tensor, tol: Tolerance) -> str | None:
    """Explain a shape mismatch: a transpose, a missing sum over a broadcast dimension, keepdim."""
    try:
        r, e = received.detach().to(expected.dtype), expected.detach()
        if r.ndim == 2 and e.ndim == 2 and tuple(r.shape) == tuple(e.shape)[::-1]:
            return ("your result looks transposed: a gradient always has the shape of the tensor it "
                    "belongs to, so check the order of the factors in your matrix product (e.g. "
                    "`h.T @ dlogits`, not `dlogits.T @ h`).")
        if r.ndim == e.ndim:
            summed_dims = [k for k in range(e.ndim) if e.shape[k] == 1 and r.shape[k] > 1]
            other_dims_match = all(r.shape[k] == e.shape[k] for k in range(e.ndim) if k not in summed_dims)
            if summed_dims and other_dims_match:
                dims = ", ".join(str(k) for k in summed_dims)
                agrees = _close(r.sum(dim=summed_dims, keepdim=True), e, tol)
                return (f"this tensor was broadcast along dim {dims} in the forward pass, so its gradient "
                        f"adds up the contributions along that dim: `.sum({dims}, keepdim=True)`"
                        + (" (summing your result that way gives the right answer)." if agrees else "."))
        if r.numel() == e.numel():
            if r.squeeze().shape == e.squeeze().shape:
                return ("right number of elements, but dims of size 1 are missing or extra: keep the shape "
                        "of the forward tensor (use `keepdim=True` in reductions, or `.view(...)` to restore it).")
            return "right number of elements in the wrong shape: `.view(...)` it back to the forward tensor's shape."
        if r.ndim > e.ndim and tuple(r.shape[r.ndim - e.ndim:]) == tuple(e.shape):
            lead = tuple(range(r.ndim - e.ndim))
            return (f"your result has extra leading dims {tuple(r.shape[:len(lead)])}: this tensor was "
                    f"broadcast over them in the forward pass, so sum its gradient over dims {lead}.")
    except Exception:  # a hint must never break a check
        return None
    return None


def _scale_names(sizes: Iterable[int]) -> list[tuple[float, str]]:
    """Factors that come from familiar mistakes, with the sentence that names each."""
    named: list[tuple[float, str]] = [
        (2.0, "a factor of 2 (the derivative of x**2 is 2*x; counted twice?)"),
        (0.5, "a factor of 1/2 (the derivative of x**2 is 2*x; a missing 2?)"),
    ]
    for n in sorted({int(s) for s in sizes if int(s) > 2}):
        named += [
            (float(n), f"a factor of {n} (a mean over {n} items contributes 1/{n} to each gradient)"),
            (1.0 / n, f"a factor of 1/{n} (a mean's 1/{n} applied twice, or where a sum was meant)"),
            ((n - 1) / n, f"a factor of ({n}-1)/{n}: biased vs unbiased variance (the forward pass "
                          f"divides by n-1 = {n - 1}, Bessel's correction)"),
            (n / (n - 1), f"a factor of {n}/({n}-1): biased vs unbiased variance (the forward pass "
                          f"divides by n-1 = {n - 1}, Bessel's correction)"),
        ]
    return named


def value_hint(received: Tensor, expected: Tensor, tol: Tolerance, sizes: Iterable[int] = ()) -> str | None:
    """Explain a same-shape value mismatch: zeros, sign, transpose, a constant factor, partial match."""
    try:
        r, e = received.detach().to(expected.dtype), expected.detach()
        if not torch.any(r != 0) and torch.any(e != 0):
            return "your result is all zeros: no gradient flows here yet (did you fill the tensor you created?)."
        if _close(-r, e, tol):
            return "the sign is flipped: check each minus sign along the way (e.g. d/dx of 1/x is -1/x**2)."
        if r.ndim == 2 and r.shape[0] == r.shape[1] and _close(r.T, e, tol):
            return "your result is the transpose of the gradient: check the order of the factors in your matrix product."
        denom = float((e * e).sum())
        if denom > 0:
            c = float((r * e).sum()) / denom
            if c != 0 and _close(r, c * e, Tolerance(rtol=tol.rtol * 10, atol=tol.atol * 10)):
                for factor, sentence in _scale_names(list(sizes) + list(e.shape)):
                    if abs(c - factor) <= 1e-3 * abs(factor):
                        return f"your result is off by {sentence}."
                return f"your result is the right gradient times a constant {c:.4g}: look for a missing or extra factor."
        close = torch.isclose(r, e, rtol=tol.rtol, atol=tol.atol)
        n_close = int(close.sum())
        if 0 < n_close < close.numel():
            if r.ndim >= 2:
                bad_rows = (~close).flatten(1).any(dim=1).nonzero().flatten().tolist()
                shown = ", ".join(str(i) for i in bad_rows[:6]) + (", ..." if len(bad_rows) > 6 else "")
                return (f"{n_close} of {close.numel()} entries are right; the rest sit in rows {shown}. "
                        "If those rows get contributions from several places (a token used twice, a "
                        "broadcast), make sure every contribution is added (`+=`), not overwritten.")
            return f"{n_close} of {close.numel()} entries are right: look at the ones that differ."
    except Exception:  # a hint must never break a check
        return None
    return None
