"""Assignments: one module each, exposing ``ASSIGNMENT``. Found by name; nothing to register."""

from __future__ import annotations

import importlib
import pkgutil

from ..spec import Assignment


def assignment_ids() -> list[str]:
    """Every assignment module in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(assignment_id: str) -> Assignment:
    """The assignment declared by ``autograder/assignments/<assignment_id>.py``."""
    if assignment_id not in assignment_ids():
        raise KeyError(f"unknown assignment {assignment_id!r}; known: {assignment_ids()}")
    module = importlib.import_module(f"{__name__}.{assignment_id}")
    assignment: Assignment = module.ASSIGNMENT
    return assignment
