"""backprop-kit's grader: the checker students call (``cmp``), the hidden checks, the trusted
sandboxed grading that plugs into nbgrader, the pytest self-check and the instructor CLI.

Names are imported on first use: ``import autograder.<module>`` must not pull in torch (the pytest
self-check starts its sandboxed process before the parent imports torch, so the two overlap)."""

from __future__ import annotations

import importlib

__all__ = ["CheckResult", "Grader", "Tolerance", "cmp"]
_WHERE = {"CheckResult": ".checker", "cmp": ".checker", "Tolerance": ".tolerances", "Grader": ".notebook"}


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(name)
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
