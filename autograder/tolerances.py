"""The one place where default comparison tolerances live.

An item overrides them next to its declaration (``Item(..., tolerance=Tolerance(...))``).

The defaults are set for float32 gradients computed in a different order than autograd computes
them: a correct hand-written gradient differs from ``.grad`` by rounding (about 1e-7 relative,
up to ~1e-6 after a long reduction), while the mistakes students make (a factor of n, n/(n-1),
a sign, a missing term) are off by more than 1e-3 relative. ``tests/test_tolerances.py`` prints
the largest deviation of the solutions so the margin stays visible.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """``allclose`` bounds: ``|received - expected| <= atol + rtol * |expected|``."""

    rtol: float = 1e-4
    atol: float = 1e-6


DEFAULT = Tolerance()
