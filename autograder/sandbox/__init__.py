"""The sandbox: where a submission's code runs, once, isolated from the grader and the course.

* ``isolation`` -- the layers (bubblewrap, namespaces, resource limits) and the fail-closed choice;
* ``launch``    -- how a child starts: cold (a new process) or warm (forked from a ``zygote``);
* ``runner``    -- the grader's side: start the child, enforce wall-clock limits, collect outcomes;
* ``child``     -- the sandboxed process: run the cells, then call the graded functions;
* ``cells``     -- run cells like a Jupyter kernel and record their outputs;
* ``guard``     -- autograd refused by outcome, and the interpreter sealed so the refusal stays.

Names are imported on first use, so ``isolation`` and ``launch`` load without torch.
"""

from __future__ import annotations

import importlib

__all__ = ["Isolation", "IsolationUnavailable", "Limits", "ResourceLimits", "SandboxError", "SandboxSource",
           "available_level", "choose"]
_WHERE = {"Isolation": ".isolation", "IsolationUnavailable": ".isolation", "ResourceLimits": ".isolation",
          "available_level": ".isolation", "choose": ".isolation",
          "Limits": ".runner", "SandboxError": ".runner", "SandboxSource": ".runner"}


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(name)
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
