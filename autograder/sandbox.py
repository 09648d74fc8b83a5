"""Run a submitted notebook's code in a separate, limited process and collect plain outcomes.

This is where the trusted grade comes from: student code never runs in the grader's process. The
child (``sandbox_child``) gets a job file with the notebook's code cells and the calls to make, and
writes one result file per call; the parent loads them with ``weights_only=True`` (tensors and
plain containers only, so a submission cannot smuggle code into the grader).

Limits: wall-clock time per cell and per call (a hung step is killed and the child restarted past
it, so an endless loop costs one item), address-space memory, and -- where the OS allows
unprivileged namespaces (``unshare``) -- no network and an empty view of the paths in ``hide``
(gradebook, source and solution notebooks, other submissions). ``Isolation.note`` says which
protections were in force, and graders log it.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from .harness import Call, missing_function_message
from .invoke import CallOutcome


@dataclass(frozen=True)
class Limits:
    per_call_s: float = 10.0
    per_cell_s: float = 20.0
    startup_s: float = 60.0     # importing torch on a busy machine
    memory_bytes: int = 8 * 1024**3
    max_restarts: int = 30


class SandboxError(RuntimeError):
    """The sandbox itself could not run (not the student's fault): the grade must not be recorded."""


@lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Whether ``unshare --net --mount --map-root-user`` works for this user on this machine."""
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(["unshare", "--net", "--mount", "--map-root-user", "true"],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _limit_resources(memory_bytes: int) -> None:
    """Runs in the child before exec: cap its address space; no core dumps."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=str(home), MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), PYTHONWARNINGS="ignore")
    return env


@dataclass
class SandboxSource:
    """Functions come from ``cells`` (a notebook's code, in order), run in a sandboxed child."""

    cells: Sequence[str]
    hide: Sequence[str] = ()
    limits: Limits = field(default_factory=Limits)
    isolation_note: str = ""
    student_output: str = ""

    def run(self, calls: Sequence[Call]) -> dict[str, CallOutcome]:
        outcomes: dict[str, CallOutcome] = {}
        pending = list(calls)
        skip_cells: set[int] = set()
        restarts = 0
        with tempfile.TemporaryDirectory(prefix="backprop-kit-") as tmp:
            while pending:
                job = Path(tmp) / f"run{restarts}"
                job.mkdir()
                stuck = self._run_child(job, pending, skip_cells)
                skip_cells |= _cells_to_skip(job / "status")
                done = self._collect(job, pending, outcomes)
                pending = [c for c in pending if c.key not in done]
                if not pending:
                    break
                restarts += 1
                if restarts > self.limits.max_restarts:
                    for call in pending:
                        outcomes[call.key] = CallOutcome(error="not run: too many earlier steps hung or crashed")
                    break
                if stuck.startswith("cell "):
                    index = int(stuck.split()[1])
                    skip_cells.add(index)
                    self.student_output += f"\n[grader] notebook cell {index} did not finish; skipped it\n"
                elif stuck.startswith("call "):
                    # The call that hung or crashed fails, and so does the rest of its item (the item
                    # needs every case): no point in running them through more restarts.
                    key = stuck.split(maxsplit=1)[1]
                    item = key.split("@")[0]
                    outcomes[key] = CallOutcome(error=stuck_message(stuck_reason(job), self.limits), timed_out=True)
                    for call in [c for c in pending if c.key.split("@")[0] == item]:
                        outcomes.setdefault(call.key, CallOutcome(error="not run: an earlier case of this item failed"))
                        pending.remove(call)
                else:
                    detail = (job / "child_error.txt").read_text() if (job / "child_error.txt").exists() else ""
                    raise SandboxError(f"the grading process did not start ({stuck or 'no status'}): {detail[-2000:]}")
        return outcomes

    def _command(self, job: Path) -> list[str]:
        python = [sys.executable, "-m", "autograder.sandbox_child", str(job)]
        if namespaces_available():
            return ["unshare", "--net", "--mount", "--map-root-user", "--", *python]
        return python

    def _run_child(self, job: Path, calls: Sequence[Call], skip_cells: set[int]) -> str:
        """Run one child until it finishes or a step outlives its limit; return the last step it began."""
        torch.save({"cells": list(self.cells), "skip_cells": sorted(skip_cells), "hide": list(self.hide),
                    "calls": [(c.key, c.function, c.args, c.arg_names, c.watch) for c in calls],
                    "per_call_s": self.limits.per_call_s, "per_cell_s": self.limits.per_cell_s,
                    "missing_message": missing_function_message("{name}")}, job / "job.pt")
        status = job / "status"
        status.touch()
        with open(job / "child_log.txt", "w") as log:
            proc = subprocess.Popen(self._command(job), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    cwd=job, env=_child_env(job), start_new_session=True,
                                    preexec_fn=lambda: _limit_resources(self.limits.memory_bytes))
            step, since = "start", time.monotonic()
            try:
                while proc.poll() is None:
                    time.sleep(0.02)
                    latest = _last_line(status)
                    if latest and latest != step:
                        step, since = latest, time.monotonic()
                    if time.monotonic() - since > self._allowance(step):
                        (job / "killed").write_text(step)
                        break
            finally:
                _kill_group(proc)
        latest = _last_line(status) or step
        note = next((ln for ln in status.read_text().splitlines() if ln.startswith("isolation")), "")
        self.isolation_note = (("namespaces: " + note.removeprefix("isolation ")) if namespaces_available()
                               else "no namespaces on this machine: time and memory limits only")
        output = job / "student_output.txt"
        if output.exists():
            self.student_output += output.read_text(errors="replace")[-20000:]
        return "" if latest == "done" else latest

    def _allowance(self, step: str) -> float:
        if step.startswith("cell "):
            return self.limits.per_cell_s + 5
        if step.startswith("call "):
            return self.limits.per_call_s + 5
        return self.limits.startup_s

    def _collect(self, job: Path, calls: Sequence[Call], outcomes: dict[str, CallOutcome]) -> set[str]:
        done: set[str] = set()
        for index, call in enumerate(calls):
            path = job / f"result_{index}.pt"
            if not path.exists():
                continue
            try:
                outcomes[call.key] = CallOutcome.from_plain(torch.load(path, weights_only=True))
            except Exception as exc:
                outcomes[call.key] = CallOutcome(error=f"the grader could not read the returned value back ({exc})")
            done.add(call.key)
        return done


def _cells_to_skip(status: Path) -> set[int]:
    """Cells the child stopped with a timeout: skipped when the child is started again."""
    return {int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("skip-cell ")}


def stuck_reason(job: Path) -> str:
    return "timeout" if (job / "killed").exists() else "crash"


def stuck_message(reason: str, limits: Limits) -> str:
    if reason == "timeout":
        return f"did not finish within {limits.per_call_s:g} s (an endless loop?)"
    return "crashed the grading process (out of memory, or the process exited)"


def _last_line(path: Path) -> str:
    """The step the child began last (``skip-cell`` lines are notes, not steps)."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("skip-cell ")]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
