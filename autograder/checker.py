"""``cmp``: compare a hand-written gradient with the one autograd computed.

The meaning is the one students know from the lecture -- ``exact`` (bitwise equal), ``approximate``
(``allclose`` within the item's tolerance) and ``maxdiff`` (largest absolute difference) -- but
before comparing anything it checks what ``==`` and ``allclose`` silently paper over: the type, the
exact shape (no broadcasting: a ``(64,)`` result never matches a ``(1, 64)`` gradient), the dtype, the
device, emptiness and finiteness. None of these pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .hints import shape_hint, value_hint, where_it_differs
from .tolerances import DEFAULT, Tolerance

if TYPE_CHECKING:
    from .mistakes import Mistake
    from .spec import Case

NAME_WIDTH = 20


@dataclass(frozen=True)
class CheckResult:
    """What one comparison found. ``passed`` is the verdict; the rest explains it."""

    name: str
    passed: bool
    exact: bool = False
    approximate: bool = False
    maxdiff: float | None = None
    problem: str | None = None  # why the values could not be compared at all
    hint: str | None = None
    where: tuple[int, ...] | None = None  # index of the largest difference
    expected_value: float | None = None
    received_value: float | None = None
    spread: str | None = None  # how many entries differ, and in which rows (``hints.where_it_differs``)
    # For a wrong 2-D (or larger) result of the right shape: both tensors, to draw where they differ
    # (``picture.difference_png``). Not part of the comparison of two results.
    tensors: tuple[Tensor, Tensor] | None = field(default=None, compare=False, repr=False)
    tolerance: Tolerance = field(default=DEFAULT, compare=False, repr=False)

    def row(self) -> str:
        """The one aligned line the lecture's ``cmp`` prints."""
        name = f"{self.name:<{NAME_WIDTH}}"
        if self.problem is not None:
            return f"{name} | FAILED: {self.problem}"
        return (f"{name} | exact: {self.exact!s:<5} | approximate: {self.approximate!s:<5} "
                f"| maxdiff: {_fmt_float(self.maxdiff)}")

    def details(self) -> str:
        """What a student needs to fix a failure: where, expected vs received, and a hint."""
        lines: list[str] = []
        if self.where is not None and not self.approximate:
            lines.append(f"furthest outside the tolerance at index {list(self.where)}: expected "
                         f"{self.expected_value:.6g}, received {self.received_value:.6g}")
        if self.spread and not self.approximate:
            lines.append(self.spread)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        extra = self.details()
        return self.row() + (("\n" + _indent(extra)) if extra and not self.passed else "")


def _fmt_float(x: float | None) -> str:
    text = format(x, ".3g")
    return text if any(ch in text for ch in ".einf") else text + ".0"


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _fmt_shape(shape: Iterable[int]) -> str:
    dims = tuple(int(s) for s in shape)
    return str(dims)


def reference_of(t: Tensor) -> Tensor:
    """The expected gradient: ``t.grad`` if ``t`` takes part in autograd, else ``t`` itself."""
    if not isinstance(t, Tensor):
        raise TypeError(f"cmp's third argument must be a tensor (or a tensor whose .grad is the reference), "
                        f"got {type(t).__name__}")
    if t.requires_grad or t.grad is not None:
        if t.grad is None:
            raise ValueError("the reference tensor has no .grad yet: run loss.backward() first "
                             "(and call .retain_grad() on intermediate tensors before it)")
        return t.grad
    return t


def compare(name: str, received: object, expected: Tensor, tolerance: Tolerance | None = None,
            mistakes: Sequence[Mistake] = (), case: Case | None = None, key: str | None = None) -> CheckResult:
    """Compare without printing. ``mistakes`` are the item's known mistakes (``mistakes.py``), checked
    against ``case``, the inputs the result was computed from; ``key`` is the entry of a dict answer."""
    tol = tolerance or DEFAULT
    expected = expected.detach()

    def fail(problem: str, hint: str | None = None) -> CheckResult:
        return CheckResult(name=name, passed=False, problem=problem, hint=hint)

    if received is None:
        return fail("received None instead of a tensor", "did your function forget to `return` the gradient?")
    if not isinstance(received, Tensor):
        kind = type(received).__name__
        hint = ("convert with torch.from_numpy(...)" if kind == "ndarray"
                else "gradients are tensors; build the result with torch operations")
        return fail(f"expected a torch.Tensor of shape {_fmt_shape(expected.shape)}, received a {kind}", hint)
    received = received.detach()
    if received.numel() == 0 and expected.numel() != 0:
        return fail(f"received an empty tensor of shape {_fmt_shape(received.shape)}, "
                    f"expected shape {_fmt_shape(expected.shape)}")
    if tuple(received.shape) != tuple(expected.shape):
        return fail(f"shape mismatch: expected {_fmt_shape(expected.shape)}, received {_fmt_shape(received.shape)}",
                    shape_hint(received, expected, tol))
    if received.dtype != expected.dtype:
        return fail(f"dtype mismatch: expected {expected.dtype}, received {received.dtype}",
                    "create new tensors with the dtype of the inputs (torch.zeros_like(x), or dtype=x.dtype), "
                    "and use floating-point constants (1.0 / n, not integer tensors).")
    if received.device != expected.device:
        return fail(f"device mismatch: expected {expected.device}, received {received.device}",
                    "create new tensors on the inputs' device (torch.zeros_like(x), or device=x.device).")
    finite = torch.isfinite(received)
    if not bool(finite.all()):
        bad = (~finite).nonzero()[0].tolist()
        value = received[tuple(bad)].item()
        kind = "NaN" if value != value else "inf"
        return fail(f"contains {kind} (first at index {bad})",
                    "look for a division by zero or log of zero, or an uninitialised tensor (torch.empty).")

    exact = bool(torch.equal(received, expected))
    diff = (received - expected).abs()
    maxdiff = float(diff.max()) if diff.numel() else 0.0
    approximate = bool(torch.allclose(received, expected, rtol=tol.rtol, atol=tol.atol))
    # where the result is furthest outside the tolerance (not merely the largest absolute difference,
    # which in a large gradient may sit well within it)
    excess = diff / (tol.atol + tol.rtol * expected.abs())
    where = tuple(int(i) for i in torch.unravel_index(excess.argmax(), diff.shape)) if diff.numel() else None
    hint = None if approximate else value_hint(received, expected, tol, mistakes, case, key)
    return CheckResult(
        name=name, passed=approximate, exact=exact, approximate=approximate, maxdiff=maxdiff, hint=hint,
        where=where,
        expected_value=float(expected[where]) if where is not None else None,
        received_value=float(received[where]) if where is not None else None,
        spread=None if approximate else where_it_differs(received, expected, tol),
        tensors=(received.clone(), expected.clone()) if not approximate and expected.ndim >= 2 else None,
        tolerance=tol,
    )


def cmp(name: str, dt: object, t: Tensor, tolerance: Tolerance | None = None, *, quiet: bool = False) -> CheckResult:
    """Check the hand-written gradient ``dt`` against ``t.grad`` (or against ``t`` if it is the reference).

    Prints one aligned row (and, on failure, where it differs and a hint) and returns the result.
    """
    result = compare(name, dt, reference_of(t), tolerance)
    if not quiet:
        print(result)
    return result
