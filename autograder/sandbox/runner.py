"""The grader's side of the sandbox: one isolated child per submission, restarted past hung steps.

``SandboxSource(cells, ...).run(calls)`` starts ``child`` inside the isolation chosen in
``isolation.py``, lets it run the cells and then the calls, and collects plain outcomes: each cell's
outputs (JSON, capped in bytes) and each call's result (tensors and plain containers, loaded with
``weights_only=True`` so a submission cannot smuggle code into the grader).

A step that outlives its wall-clock limit, or kills the process, is skipped: the child is started
again past it, so an endless loop or a crash costs one cell's outputs or one item, never the
submission. A child that tampers with the guard is ended, and the call it was in fails with the
reason (``tampering``), which the grader records for manual review.
"""

from __future__ import annotations

import io
import json
import os
import stat
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..harness import Call
from ..invoke import CallOutcome
from .isolation import Isolation, IsolationUnavailable, ResourceLimits, choose
from .launch import Launcher, launcher_for, prepare_run, tail_of


@dataclass(frozen=True)
class Limits:
    per_call_s: float = 10.0
    per_cell_s: float = 30.0
    startup_s: float = 90.0          # importing torch and IPython on a busy machine
    max_restarts: int = 30
    output_bytes_per_cell: int = 200_000
    resources: ResourceLimits = field(default_factory=ResourceLimits)


class SandboxError(RuntimeError):
    """The sandbox itself could not run (not the student's fault): the grade must not be recorded."""


CellOutputs = tuple[list[dict], bool]  # (nbformat outputs, whether the cell raised)


@dataclass
class SandboxSource:
    """Cells (``(notebook index, source)``, in order) run once in a sandboxed child, then the calls."""

    cells: Sequence[tuple[int, str]]
    hide: Sequence[str] = ()
    limits: Limits = field(default_factory=Limits)
    require: str = "limits"
    isolation: Isolation | None = None
    cell_outputs: dict[int, CellOutputs] = field(default_factory=dict)
    student_output: str = ""
    tampering: list[str] = field(default_factory=list)
    skipped_cells: list[int] = field(default_factory=list)
    launcher: Launcher | None = None  # default: warm when this process asked for it (launch.py), else cold

    @property
    def isolation_note(self) -> str:
        return self.isolation.describe() if self.isolation else "not run"

    def run(self, calls: Sequence[Call]) -> dict[str, CallOutcome]:
        if self.isolation is None:
            self.isolation = choose(self.require)
        outcomes: dict[str, CallOutcome] = {}
        pending = list(calls)
        skip_cells: set[int] = set(self.skipped_cells)
        restarts, start_failed = 0, False
        launcher = self.launcher or launcher_for(self.isolation, list(self.hide), self.limits.resources)
        while True:
            with launcher.run_folder() as run:
                job = prepare_run(run, self.isolation)
                made = _identity(run), _identity(job)
                stuck, status = self._run_child(launcher, job, pending, skip_cells)
                if (_identity(run), _identity(job)) != made:
                    # The child swapped its folder for a link or another folder (possible where the
                    # shared folder is writable to it: an unprivileged grader's warm runs). Nothing in
                    # it is read: every pending call fails as tampering.
                    self.tampering.append("replaced the grader's job folder")
                    for call in pending:
                        outcomes[call.key] = CallOutcome(error="tampered with the grader: replaced its job folder",
                                                         used_autograd=True)
                    break
                skip_cells |= _lines_with(status, "skip-cell ")
                if self.isolation.level == "namespaces":
                    _refuse_unhidden(status)
                done = self._collect(job, pending, outcomes)
                tamper = next(iter(_tamper_reasons(status)), None)
            pending = [c for c in pending if c.key not in done]
            if not stuck:
                # noticed by the child itself (``integrity``): the calls from there on failed, each
                # with its line
                self.tampering += [t for t in _tamper_reasons(status) if t not in self.tampering]
                break
            restarts += 1
            if restarts > self.limits.max_restarts:
                for call in pending:
                    outcomes[call.key] = CallOutcome(error="not run: too many earlier steps hung or crashed")
                break
            if tamper:
                self.tampering.append(f"{stuck}: {tamper}")
            if stuck.startswith("cell "):
                index = int(stuck.split()[1])
                skip_cells.add(index)
                note = f"tampered with the grader ({tamper})" if tamper else "did not finish or crashed the process"
                self.cell_outputs.setdefault(index, ([_grader_note(f"this cell {note}; it was skipped")], True))
                self.student_output += f"\n[grader] notebook cell {index} {note}; skipped it\n"
            elif stuck.startswith("call "):
                # The call that hung or crashed fails, and so does the rest of its item (the item
                # needs every case): no point in running them through more restarts.
                key = stuck.split(maxsplit=1)[1]
                item = key.split("@")[0]
                error = (f"tampered with the grader: {tamper}" if tamper
                         else stuck_message("timeout" if stuck.endswith("(killed)") else "crash", self.limits))
                outcomes[key.removesuffix(" (killed)")] = CallOutcome(error=error, timed_out=not tamper,
                                                                      used_autograd=bool(tamper))
                for call in [c for c in pending if c.key.split("@")[0] == item]:
                    outcomes.setdefault(call.key, CallOutcome(error="not run: an earlier case of this item failed"))
                    pending.remove(call)
            elif stuck.startswith("done") and not pending:
                break  # every result is in: a slow exit after the last line costs nothing
            elif stuck.startswith("done"):
                # Only the child's last line, once every call has run, is "done": one that kept on
                # running after it wrote the line itself, with calls still to make. Nothing more of
                # it is run.
                self.tampering.append("wrote the grader's 'done' line and kept running")
                for call in pending:
                    outcomes[call.key] = CallOutcome(error="tampered with the grader: said it was done and kept running",
                                                     used_autograd=True)
                break
            elif hasattr(launcher, "restart") and not start_failed:
                start_failed = True  # a warm zygote that died between runs: once more, with a fresh one
                launcher.restart()
            else:
                raise SandboxError(f"the grading process did not start ({stuck or 'no status'}): "
                                   f"{self._last_child_error[-2000:]}")
            if not pending and not any(i not in skip_cells and i not in self.cell_outputs for i, _ in self.cells):
                break
        self.skipped_cells = sorted(skip_cells)
        return outcomes

    _last_child_error: str = ""

    def _run_child(self, launcher: Launcher, job: Path, calls: Sequence[Call],
                   skip_cells: set[int]) -> tuple[str, list[str]]:
        """Run one child until it finishes or a step outlives its limit; return the step it was in
        (empty when it finished) and the lines of its status file."""
        assert self.isolation is not None
        torch.save({"cells": list(self.cells), "skip_cells": sorted(skip_cells),
                    "outputs_known": sorted(self.cell_outputs),
                    "hide": list(self.hide) if self.isolation.level == "namespaces" else [],
                    "calls": list(calls),
                    "per_call_s": self.limits.per_call_s, "per_cell_s": self.limits.per_cell_s,
                    "max_output_bytes": self.limits.output_bytes_per_cell}, job / "job.pt")
        with StatusFile(job / "status") as status:
            child = launcher.start(job.parent)
            step, since = "start", time.monotonic()
            try:
                while child.poll() is None:
                    time.sleep(0.02)
                    latest = _last_step(status.lines())
                    if latest and latest != step:
                        step, since = latest, time.monotonic()
                    if time.monotonic() - since > self._allowance(step):
                        step += " (killed)"
                        break
            finally:
                child.kill()
            lines = status.lines()
        latest = step if step.endswith("(killed)") else (_last_step(lines) or step)
        self.student_output += tail_of(job.parent / "child_log.txt", 20_000)  # capped only by RLIMIT_FSIZE
        error = read_job_file(job / "child_error.txt", 20_000)
        self._last_child_error = (error.decode("utf-8", "replace") if error else self.student_output[-3000:]
                                  ) + getattr(child, "reason", "")
        return ("" if latest == "done" else latest), lines

    def _allowance(self, step: str) -> float:
        if step.startswith("cell "):
            return self.limits.per_cell_s + 5
        if step.startswith("call "):
            return self.limits.per_call_s + 5
        if step == "done":
            return 5.0  # after its last line the child only exits
        return self.limits.startup_s

    def _collect(self, job: Path, calls: Sequence[Call], outcomes: dict[str, CallOutcome]) -> set[str]:
        for index, _ in self.cells:
            path = job / f"cell_{index}.json"
            if index in self.cell_outputs or not os.path.lexists(path):
                continue
            self.cell_outputs[index] = _read_cell_outputs(path, self.limits.output_bytes_per_cell)
        done: set[str] = set()
        for number, call in enumerate(calls):
            data = read_job_file(job / f"result_{number}.pt")
            if data is None:
                continue
            try:
                outcomes[call.key] = CallOutcome.from_plain(load_result(data))
            except Exception as exc:
                outcomes[call.key] = CallOutcome(error=f"the grader could not read the returned value back ({exc})")
            done.add(call.key)
        return done


# What the grader reads back from the job folder, which student code can write: a file it replaced by
# a FIFO, a link to /dev/zero or a 64 MiB zip that inflates to gigabytes must not hang, exhaust or
# fool the grader. Every read goes through here.
MAX_READ_BYTES = 64 * 1024**2
MAX_RESULT_BYTES = 512 * 1024**2  # a result unpacked: far above any gradient of these assignments


def read_job_file(path: Path, max_bytes: int = MAX_READ_BYTES) -> bytes | None:
    """The bytes of a regular file in the job folder, at most ``max_bytes``; None for anything else
    (missing, a link, a FIFO, a device, a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size < max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_result(data: bytes) -> dict:
    """A call's outcome from ``torch.save`` bytes: tensors and plain containers only
    (``weights_only``), and refused before unpacking if it would inflate past ``MAX_RESULT_BYTES``."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(info.file_size for info in archive.infolist()) > MAX_RESULT_BYTES:
            raise ValueError("the returned value is too large")
    return torch.load(io.BytesIO(data), weights_only=True)


def _grader_note(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": f"[grader] {text}\n"}


def _read_cell_outputs(path: Path, max_bytes: int) -> CellOutputs:
    """A cell's outputs as the child wrote them, checked: a file the student's code wrote over must
    not break the grader or bloat the notebook."""
    try:
        raw = read_job_file(path, 2 * max_bytes + 100_000)
        if raw is None:
            raise ValueError("not a regular file")
        data = json.loads(raw.decode("utf-8", "replace"))
        outputs = [o for o in data["outputs"] if isinstance(o, dict) and o.get("output_type") in
                   ("stream", "display_data", "execute_result", "error")]
        return outputs, bool(data.get("failed"))
    except Exception:
        return [_grader_note("this cell's outputs could not be read back")], True


def stuck_message(reason: str, limits: Limits) -> str:
    if reason == "timeout":
        return f"did not finish within {limits.per_call_s:g} s (an endless loop?)"
    return "crashed the grading process (out of memory, or the process exited)"


class StatusFile:
    """The child's status file, read through a descriptor the grader opened before the child started.

    The child appends a line before each step to the file it opened at start. Student code may
    unlink the name, or put a FIFO or a link in its place; the grader still reads the file both
    processes opened, so it never blocks, and never loses sight of the step the child is in (or of
    its "done")."""

    MAX_BYTES = 4 * 1024**2

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            os.close(self._fd)
            raise SandboxError(f"{path} is not the status file the grader made")

    def lines(self) -> list[str]:
        data = os.pread(self._fd, self.MAX_BYTES, 0)
        return data.decode("utf-8", "replace").splitlines()

    def __enter__(self) -> StatusFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


def _lines_with(status: list[str], prefix: str) -> set[int]:
    found: set[int] = set()
    for line in status:
        if line.startswith(prefix):
            try:
                found.add(int(line.split()[1]))
            except (ValueError, IndexError):
                pass
    return found


def _refuse_unhidden(status: list[str]) -> None:
    """At the ``namespaces`` level the child covers the private paths itself, and says so on the
    status file's first line, before any student code runs; if it could not, the isolation promised
    was not there, and nothing from this run may count."""
    first = status[:1]
    failed = first[0] if first and first[0].startswith("isolation could not hide") else None
    if failed:
        raise IsolationUnavailable(f"the sandbox could not hide the course's private files ({failed}); "
                                   "no grade was recorded")


def _tamper_reasons(status: list[str]) -> list[str]:
    return [ln.removeprefix("tamper ")[:300] for ln in status if ln.startswith("tamper ")]


def _last_step(status: list[str]) -> str:
    """The step the child began last (``skip-cell`` and ``tamper`` lines are notes, not steps)."""
    lines = [ln for ln in status if ln.startswith(("cell ", "call ", "done"))]
    return lines[-1] if lines else ""


def _identity(path: Path) -> tuple[int, int] | None:
    """A folder's device and inode, as it is now (None if it is not a real folder any more)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None
