"""The sandboxed process: runs a submitted notebook's code and calls its functions on the grader's inputs.

Started by ``sandbox.SandboxSource`` as ``python -m autograder.sandbox_child JOBDIR``. It knows no
expected answers: it only receives inputs and writes back plain outcomes, one file per call, and
appends a line to ``JOBDIR/status`` before each step so the parent can tell which step hangs.
Autograd is forbidden from before the first student line runs until the process ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import traceback
from pathlib import Path

import torch

from .invoke import CallOutcome, autograd_forbidden, invoke, time_limit

MS_BIND = 4096


class _NoIPython:
    """Stands in for ``get_ipython()``: magics and shell escapes do nothing here."""

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


def hide_paths(paths: list[str]) -> str:
    """Cover each path with an empty tmpfs (folders) or /dev/null (files). Needs a private mount
    namespace (``unshare --mount``); says what it could not hide instead of failing."""
    if not paths:
        return "nothing to hide"
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    failed: list[str] = []
    for path in paths:
        target = path.encode()
        if os.path.isdir(path):
            rc = libc.mount(b"tmpfs", target, b"tmpfs", 0, b"size=1m")
        elif os.path.exists(path):
            rc = libc.mount(b"/dev/null", target, None, MS_BIND, None)
        else:
            continue
        if rc != 0:
            failed.append(f"{path} ({os.strerror(ctypes.get_errno())})")
    return "hidden" if not failed else "could not hide: " + ", ".join(failed)


def _transform(source: str) -> str:
    """Turn IPython syntax (``%magic``, ``!cmd``) into plain Python calls on ``get_ipython()``."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:
        return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def main(job_dir: str) -> None:
    job = Path(job_dir)
    status = open(job / "status", "a", buffering=1)
    spec = torch.load(job / "job.pt", weights_only=False)
    status.write(f"isolation {hide_paths(spec['hide'])}\n")

    # Whatever the student's code prints goes to a log, never into the grader's output.
    log = open(job / "student_output.txt", "a", buffering=1)  # a killed child keeps its last lines
    sys.stdout = sys.stderr = log
    namespace: dict[str, object] = {"__name__": "__main__", "get_ipython": _NoIPython,
                                    "display": lambda *a, **k: None}
    with autograd_forbidden():
        for index, source in enumerate(spec["cells"]):
            if index in spec["skip_cells"]:
                continue
            status.write(f"cell {index}\n")
            try:
                with time_limit(spec["per_cell_s"]):
                    exec(compile(_transform(source), f"<cell {index}>", "exec"), namespace)
            except BaseException as exc:  # a broken cell costs only what depends on it
                if isinstance(exc, KeyboardInterrupt):
                    raise
                log.write(f"cell {index} raised {type(exc).__name__}: {exc}\n")
                if isinstance(exc, TimeoutError):
                    status.write(f"skip-cell {index}\n")  # not worth re-running after a restart
        hung_items: set[str] = set()
        for index, (key, function, args, arg_names, watch) in enumerate(spec["calls"]):
            status.write(f"call {key}\n")
            fn = namespace.get(function)
            item = key.split("@")[0]
            if item in hung_items:
                outcome = CallOutcome(error="not run: an earlier case of this item did not finish")
            elif not callable(fn):
                outcome = CallOutcome(error=spec["missing_message"].format(name=function))
            else:
                try:
                    outcome = invoke(fn, args, arg_names, spec["per_call_s"], namespace, watch)
                except BaseException as exc:  # e.g. SystemExit raised past invoke's own handling
                    outcome = CallOutcome(error=f"{type(exc).__name__}: {exc}")
                if outcome.timed_out:
                    hung_items.add(item)
            try:
                torch.save(outcome.to_plain(), job / f"result_{index}.pt")
            except Exception:
                torch.save(CallOutcome(error="the returned value could not be read back by the grader").to_plain(),
                           job / f"result_{index}.pt")
    status.write("done\n")


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        with open(Path(sys.argv[1]) / "child_error.txt", "w") as fh:
            fh.write(traceback.format_exc())
        raise
