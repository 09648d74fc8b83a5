"""backprop-kit's grader: the checker students call (``cmp``), the hidden checks, the trusted
sandboxed grading that plugs into nbgrader, the pytest self-check and the instructor CLI."""

from .checker import CheckResult, cmp
from .tolerances import Tolerance

__all__ = ["CheckResult", "Grader", "Tolerance", "cmp"]


def __getattr__(name: str) -> object:
    # Grader pulls in the assignments; import it only when a notebook asks for it.
    if name == "Grader":
        from .notebook import Grader

        return Grader
    raise AttributeError(name)
