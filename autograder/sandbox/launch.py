"""How the runner starts a sandboxed child: cold (a new process per run) or warm (forked from a zygote).

Both give the child the same isolation (``isolation.py``), the same job folder layout and the same
seal before student code; they differ in what the child costs to start.

* ``ColdLauncher`` -- a new interpreter per run: ``bwrap ... python -m autograder.sandbox.child``.
  Pays the 1.2-1.6 s of importing torch, IPython and the kit every time. Used for single runs (a
  student's ``pytest``, one ``nbgrader autograde``).
* ``ForkServer`` -- one ``zygote`` per grading worker, started inside the same bubblewrap sandbox
  with everything imported; each run is a fork of it. Used by ``backprop-kit grade`` (at weaker
  levels it grades cold). What the sandbox shares between runs, and why that is safe, is in
  ``zygote``'s docstring and ARCHITECTURE.md ("Warm runs").

Layout of one run: ``<run>/job/`` (the child's working folder: job.pt, status, results, its home)
and ``<run>/child_log.txt`` (its stdout and stderr).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .isolation import (KIT_IMPORT_ROOT, SANDBOX_GID, SANDBOX_UID, Isolation, ResourceLimits, bwrap_command,
                        namespaces_command, set_limits)

PYTHON_FLAGS = ("-I", "-B", "-X", "faulthandler")
INSIDE = Path("/tmp/job")  # where bubblewrap shows the shared folder to the sandbox
ZYGOTE_START_S = 120.0  # importing torch on a busy machine


class ChildHandle(Protocol):
    def poll(self) -> int | None: ...   # the exit code once finished (negative: killed by that signal)
    def kill(self) -> None: ...         # end it now (and wait for it)


class Launcher(Protocol):
    isolation: Isolation

    def run_folder(self) -> Iterator[Path]: ...  # a context manager: a fresh run folder, removed after
    def start(self, run: Path) -> ChildHandle: ...


def kit_module_command(module: str, *args: str) -> list[str]:
    """``python -I -m module args``, with the kit imported from where this grader imported it. ``-I``
    drops PYTHONPATH and the current folder, so a kit found through them (a checkout, a ``--target``
    folder) would be missing in the sandbox, or another installed copy of the kit would run there."""
    root = str(KIT_IMPORT_ROOT)
    boot = (f"import runpy, sys\nif {root!r} not in sys.path: sys.path.insert(0, {root!r})\n"
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    return [sys.executable, *PYTHON_FLAGS, "-c", boot, *args]


def child_env(home: str) -> dict[str, str]:
    """The sandbox's environment: nothing of the grader's but the locale and PATH."""
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=home, MPLBACKEND="Agg", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               PYTHONWARNINGS="ignore", BACKPROP_KIT_SANDBOX="1")
    return env


def prepare_run(run: Path, isolation: Isolation) -> Path:
    """The job folder of a run, with what the child writes to made the sandbox user's."""
    job = run / "job"
    job.mkdir()
    (job / "status").touch()
    (job / "home").mkdir()
    (run / "child_log.txt").touch()
    if isolation.level == "bubblewrap" and isolation.as_root:
        for path in (job, job / "status", job / "home", run / "child_log.txt"):
            os.chown(path, SANDBOX_UID, SANDBOX_GID)
        os.chmod(run, 0o755)
    return job


def _wrap(isolation: Isolation, shared: Path, hide: list[str], resources: ResourceLimits,
          python: list[str]) -> list[str]:
    if isolation.level == "bubblewrap":
        return bwrap_command(shared, hide, resources, python)
    if isolation.level == "namespaces":
        return namespaces_command(python)
    return python


def _end(proc: subprocess.Popen) -> None:
    """End a process started in a session of its own, with everything in it, and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
    proc.wait()


def tail_of(path: Path, max_bytes: int) -> str:
    """The end of a log, at most ``max_bytes``; nothing if it is anything but a regular file (a child
    may have replaced its log by a FIFO or a link)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return ""
        os.lseek(fd, max(0, info.st_size - max_bytes), os.SEEK_SET)
        return os.read(fd, max_bytes).decode("utf-8", "replace")
    finally:
        os.close(fd)


@dataclass
class _Process:
    proc: subprocess.Popen

    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        _end(self.proc)


class ColdLauncher:
    def __init__(self, isolation: Isolation, hide: list[str], resources: ResourceLimits) -> None:
        self.isolation, self.hide, self.resources = isolation, hide, resources

    @contextmanager
    def run_folder(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="backprop-kit-") as tmp:
            yield Path(tmp)

    def start(self, run: Path) -> ChildHandle:
        job = run / "job"
        inside = INSIDE if self.isolation.level == "bubblewrap" else job
        python = kit_module_command("autograder.sandbox.child", str(inside))
        home = str(inside / "home")
        with open(run / "child_log.txt", "w") as log:
            proc = subprocess.Popen(_wrap(self.isolation, job, self.hide, self.resources, python),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=job, env=child_env(home),
                                    start_new_session=True, preexec_fn=lambda: set_limits(self.resources))
        return _Process(proc)


class ZygoteGone(RuntimeError):
    pass


class ForkServer:
    """A warm zygote in a bubblewrap sandbox; ``start`` forks a child of it for one run.

    Only at the bubblewrap level: the zygote empties its sandbox's private ``/tmp`` between runs,
    which at a weaker level would be the machine's own. The grader's own files (the zygote's log)
    live beside the jobs folder, never in it: the sandbox sees only the jobs folder, and a fresh one
    each time a zygote starts."""

    def __init__(self, isolation: Isolation, hide: list[str], resources: ResourceLimits, one_shot: bool = False
                 ) -> None:
        # ``one_shot``: a zygote that serves one run and exits, emptying nothing (a self-check that
        # wants its sandboxed process importing early); allowed at every level.
        if isolation.level != "bubblewrap" and not one_shot:
            raise ValueError(f"warm runs need the bubblewrap level (this is {isolation.level!r}); use ColdLauncher")
        self.isolation, self.hide, self.resources, self.one_shot = isolation, hide, resources, one_shot
        self.key = (isolation, tuple(hide), resources)
        self.private = Path(tempfile.mkdtemp(prefix="backprop-kit-zygote-"))
        os.chmod(self.private, 0o755)
        self.jobs = self.private / "jobs"
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._masked: frozenset[str] = frozenset()
        self._ready = False
        self.starts = 0  # zygotes started (1 unless one died or the hidden paths changed)

    def _existing_hidden(self) -> frozenset[str]:
        """The hidden paths that exist now: bubblewrap can only cover a path that exists when the
        sandbox is built, so one that appears later (``autograded/`` after the first grade) means a
        new zygote."""
        return frozenset(p for p in self.hide if os.path.lexists(os.path.realpath(p)))

    def _ensure(self) -> subprocess.Popen:
        alive = self._proc is not None and self._proc.poll() is None and self._masked == self._existing_hidden()
        if not alive:
            self.spawn()
        if not self._ready:
            self._await_ready()
        assert self._proc is not None
        return self._proc

    def _await_ready(self) -> None:
        if self._read_line(ZYGOTE_START_S) != "ready":
            log_tail = self.log_tail()
            self._stop()
            raise ZygoteGone(f"the warm sandbox process did not start: {log_tail}")
        self._ready = True

    def spawn(self) -> None:
        """Start a zygote without waiting for it to finish importing."""
        self._stop()
        self._ready = False
        self._masked = self._existing_hidden()
        _remove(self.jobs)
        self.jobs.mkdir()
        os.chmod(self.jobs, 0o755)
        commands_r, commands_w = os.pipe()
        replies_r, replies_w = os.pipe()
        private_tmp = self.isolation.level == "bubblewrap"
        inside = INSIDE if private_tmp else self.jobs
        python = kit_module_command("autograder.sandbox.zygote", str(inside))
        env = child_env("/tmp/zygote-home" if private_tmp else str(self.private / "home"))
        if not self.one_shot:
            env["BACKPROP_KIT_PRIVATE_SCRATCH"] = "1"  # the zygote empties /tmp between runs: only its own

        def in_child() -> None:  # fds 3 and 4 are the protocol's, whatever numbers the pipes got
            high_r, high_w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands_r, replies_w))
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)
            set_limits(self.resources)

        with open(self.private / "zygote_log.txt", "ab") as log:
            self._proc = subprocess.Popen(_wrap(self.isolation, self.jobs, self.hide, self.resources, python),
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.private,
                                          env=env, start_new_session=True, pass_fds=(3, 4), preexec_fn=in_child)
        os.close(commands_r)
        os.close(replies_w)
        self._commands, self._replies = commands_w, replies_r
        self._buffer = b""
        self.starts += 1

    def log_tail(self) -> str:
        """The end of the zygote's own log (kept where no sandbox sees it)."""
        return tail_of(self.private / "zygote_log.txt", 2000)

    def restart(self) -> None:
        """A fresh zygote for the next run (the last one did not start a child)."""
        self._stop()

    def start_now(self) -> None:
        """Start the zygote ahead of the first run (a worker warming up)."""
        self._ensure()

    def _read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._replies], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._replies, 4096)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def _send(self, line: str) -> None:
        os.write(self._commands, (line + "\n").encode())

    @contextmanager
    def run_folder(self) -> Iterator[Path]:
        self._ensure()  # a new zygote brings a new jobs folder
        # Nothing of an earlier run stays where the next child could see it (the jobs folder is the
        # one place every run of this zygote shares).
        for entry in os.scandir(self.jobs):
            _remove(Path(entry.path))
        run = self.jobs / secrets.token_hex(16)
        run.mkdir()
        try:
            yield run
        finally:
            _remove(run)

    def start(self, run: Path) -> ChildHandle:
        try:
            if self._proc is None or self._proc.poll() is not None or not self._ready or run.parent != self.jobs:
                raise ZygoteGone("the warm sandbox process ended before the run started")
            self._send(f"run {run.name}")
        except (OSError, ZygoteGone) as exc:
            return _Failed(str(exc))
        return _Forked(self, run.name)

    def _stop(self) -> None:
        if self._proc is None:
            return
        for fd in (getattr(self, "_commands", None), getattr(self, "_replies", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._commands = self._replies = None  # type: ignore[assignment]
        _end(self._proc)
        self._proc = None

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self.private, ignore_errors=True)


@dataclass
class _Forked:
    server: ForkServer
    token: str
    code: int | None = None
    reason: str = ""

    def poll(self) -> int | None:
        if self.code is not None:
            return self.code
        proc = self.server._proc
        line = self.server._read_line(0) if proc is not None else None
        if line is not None and line.startswith(f"exit {self.token} "):
            words = line.split()
            self.code = int(words[2])
            if "retire" in words[3:]:  # it could not clean up after this run: the next gets a new one
                self.server._stop()
        elif line is None and (proc is None or proc.poll() is not None):
            self.code = -9  # the zygote itself died (with it, the child): a crash of this run
            self.reason = self.server.log_tail()
            self.server._stop()
        return self.code

    def kill(self) -> None:
        if self.poll() is not None:
            return
        try:
            self.server._send(f"kill {self.token}")
        except OSError:
            pass
        deadline = time.monotonic() + 10
        while self.poll() is None:
            if time.monotonic() > deadline:  # the zygote does not answer: start afresh next time
                self.server._stop()
                self.code = -9
                return
            time.sleep(0.01)


@dataclass
class _Failed:
    reason: str

    def poll(self) -> int | None:
        return -1

    def kill(self) -> None:
        pass


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


# ---------------------------------------------------------------- one warm server per process

_SERVER: ForkServer | None = None
_WARM = False


def use_warm_processes(enabled: bool = True) -> None:
    """Let every later sandbox run in this process fork from a shared zygote (a grading worker)."""
    global _WARM
    _WARM = enabled
    if not enabled:
        close_warm()


def close_warm() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.close()
        _SERVER = None


def warm_starts() -> int:
    """How many zygotes this process's warm server has started (0 without one)."""
    return _SERVER.starts if _SERVER is not None else 0


def launcher_for(isolation: Isolation, hide: list[str], resources: ResourceLimits) -> Launcher:
    """The warm server for these settings when this process asked for one and the sandbox is
    bubblewrap, else a cold launcher."""
    global _SERVER
    if not _WARM or isolation.level != "bubblewrap":
        return ColdLauncher(isolation, hide, resources)
    key = (isolation, tuple(hide), resources)
    if _SERVER is None or _SERVER.key != key:
        close_warm()
        _SERVER = ForkServer(isolation, hide, resources)
    return _SERVER
