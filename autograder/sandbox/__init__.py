"""The sandbox: where a submission's code runs, once, isolated from the grader and the course.

* ``isolation`` -- the layers (bubblewrap, namespaces, resource limits) and the fail-closed choice;
* ``runner``    -- the grader's side: start the child, enforce wall-clock limits, collect outcomes;
* ``child``     -- the sandboxed process: run the cells, then call the graded functions;
* ``cells``     -- run cells like a Jupyter kernel and record their outputs;
* ``guard``     -- autograd refused by outcome, and the interpreter sealed so the refusal stays.
"""

from .isolation import Isolation, IsolationUnavailable, ResourceLimits, available_level, choose
from .runner import Limits, SandboxError, SandboxSource

__all__ = ["Isolation", "IsolationUnavailable", "Limits", "ResourceLimits", "SandboxError", "SandboxSource",
           "available_level", "choose"]
