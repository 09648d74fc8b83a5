"""Known mistakes: a hint names a mistake only when that mistake reproduces what was received.

An item declares the wrong answers students give for it (``Item.mistakes``). Each ``Mistake`` knows
how to make the answer that mistake gives, from the case (its forward values and true gradients) and
the right answer; the checker shows its sentence only if the received tensor equals that answer
within the item's tolerance. So "off by a factor of n" appears for a missing mean and never for a
dropout scale, and "use +=" appears for overwritten rows and never for a missing derivative.

The reproductions are transformations of the right answer and of the inputs the function was given
(a factor, the upstream gradient passed through unchanged, one path of two), not second copies of
the gradient formulas: the expected values still come from autograd alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .tolerances import Tolerance

if TYPE_CHECKING:
    from .spec import Case


def close(a: Tensor, b: Tensor, tol: Tolerance) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol.rtol, atol=tol.atol))


CLOSER = 0.1  # a diagnosis needs the received result this much closer to the mistake than to the answer


def explains(received: Tensor, made: Tensor, expected: Tensor, tol: Tolerance) -> bool:
    """Whether a mistake that gives ``made`` explains ``received``: it reproduces it within the
    tolerance, and ``received`` is far closer to it than to the right answer (``CLOSER``), so that
    rounding noise around a gradient near zero is never diagnosed as, say, a flipped sign."""
    if not close(received, made, tol):
        return False
    to_mistake = float((received - made).abs().max())
    to_answer = float((received - expected).abs().max())
    return to_mistake <= CLOSER * to_answer


def _no_facts(case: Case) -> Mapping[str, object]:
    return {}


@dataclass(frozen=True)
class Mistake:
    """A wrong answer of one item, and the sentence that names it.

    ``makes(case, expected)`` is the tensor this mistake returns; ``says`` is formatted with
    ``facts(case)`` (``{n}``, ``{factor}``...). ``keys`` limits it to some entries of an item that
    returns a dict (``None``: the item's whole answer)."""

    says: str
    makes: Callable[[Case, Tensor], Tensor]
    facts: Callable[[Case], Mapping[str, object]] = _no_facts
    keys: tuple[str, ...] | None = None

    def applies_to(self, key: str | None) -> bool:
        return self.keys is None or key in self.keys

    def matches(self, received: Tensor, expected: Tensor, case: Case, tol: Tolerance) -> bool:
        return explains(received, self.makes(case, expected).to(expected.dtype), expected, tol)

    def text(self, case: Case) -> str:
        return self.says.format(**self.facts(case))


def scaled(factor: Callable[[Case], float | Tensor], says: str,
           facts: Callable[[Case], Mapping[str, object]] = _no_facts, keys: tuple[str, ...] | None = None) -> Mistake:
    """The right answer times a factor that belongs to the item (its batch size, ``1 - p``, ...);
    ``{factor}`` in ``says`` is that factor."""
    def all_facts(case: Case) -> Mapping[str, object]:
        value = factor(case)
        shown = f"{float(value):.4g}" if not isinstance(value, Tensor) or value.numel() == 1 else "per entry"
        return {"factor": shown, **facts(case)}
    return Mistake(says, lambda case, expected: expected * factor(case), all_facts, keys)


def passed_through(argument: str, says: str, facts: Callable[[Case], Mapping[str, object]] = _no_facts) -> Mistake:
    """The function returned the gradient it was given (``argument``), unchanged: a local derivative
    or a second path is missing."""
    return Mistake(says, lambda case, expected: _as_tensor(case.resolve(argument)), facts)


def _as_tensor(value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"a mistake's answer must be a tensor, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Overwritten(Mistake):
    """Rows of a table gathered by index (an embedding): each position's gradient assigned to its row
    (``=``) instead of added (``+=``), so a row used several times keeps one of its contributions.
    Recognised when every row holds exactly one of the contributions it should have summed."""

    index: Callable[[Case], Tensor] = field(default=lambda case: torch.empty(0))  # (positions,) row of each
    rows: Callable[[Case], Tensor] = field(default=lambda case: torch.empty(0))   # (positions, width)

    def matches(self, received: Tensor, expected: Tensor, case: Case, tol: Tolerance) -> bool:
        if received.shape != expected.shape or received.ndim != 2 or not explains(received, received, expected, tol):
            return False
        index, rows = self.index(case).reshape(-1), self.rows(case).reshape(len(self.index(case).reshape(-1)), -1)
        for row in range(expected.shape[0]):
            sources = rows[index == row]
            if len(sources) == 0:
                if not close(received[row], torch.zeros_like(received[row]), tol):
                    return False
            elif not any(close(received[row], source, tol) for source in sources):
                return False
        return True


def overwritten(index: Callable[[Case], Tensor], rows: Callable[[Case], Tensor], says: str) -> Mistake:
    return Overwritten(says=says, makes=lambda case, expected: expected, index=index, rows=rows)


def embedding_overwritten(index: str, table: str, gradient: str | Callable[[Case], Tensor],
                          token: str = "character") -> Mistake:
    """An embedding table's gradient, each position's row assigned to its token's row instead of
    added. ``index`` names the tokens, ``table`` the table; ``gradient`` names the gradient of the
    looked-up rows (or makes it, ``(positions..., width)``), whatever its leading dims."""
    def rows(case: Case) -> Tensor:
        width = case.resolve(table).shape[1]  # type: ignore[attr-defined]
        value = case.resolve(gradient) if isinstance(gradient, str) else gradient(case)
        return value.reshape(-1, width)  # type: ignore[attr-defined]

    return overwritten(lambda case: case.resolve(index), rows,  # type: ignore[arg-type, return-value]
                       f"each row holds the gradient of only one position that uses its {token}: a {token} used "
                       "several times must collect all of them (add with `+=` in a loop, or `index_add_`; "
                       "indexed assignment keeps one).")


def first_match(mistakes: Sequence[Mistake], received: Tensor, expected: Tensor, case: Case | None,
                tol: Tolerance, key: str | None = None) -> str | None:
    """The sentence of the first declared mistake that reproduces ``received``; None if none does.
    A mistake whose reproduction fails on this case (a shape it cannot make) just does not match."""
    if case is None:
        return None
    for mistake in mistakes:
        if not mistake.applies_to(key):
            continue
        try:
            if mistake.matches(received, expected, case, tol):
                return mistake.text(case)
        except Exception:  # a hint must never break a check
            continue
    return None
