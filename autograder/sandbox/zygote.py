"""The warm process inside the sandbox: imports everything once, then forks one child per run.

Started by ``launch.ForkServer`` inside the same isolation as a cold child
(``python -m autograder.sandbox.zygote JOBS``, with ``JOBS`` the only folder shared with the grader).
Importing torch, IPython, matplotlib and the kit and filling the data caches takes 1.2-1.6 s; a fork
of this process takes milliseconds, so a class of submissions pays it once per worker.

What a forked child inherits is only what this process holds: modules and the course's public data.
It never reads a job before forking, so no submission's inputs, cases or code are in it; each child
loads its own job, and from then on runs exactly as a cold child does (``child.run_job``): it seals
itself before the first student line. Between runs this process empties the sandbox's private
``/tmp``, ``/var/tmp`` and ``/dev/shm`` so nothing one submission leaves there reaches the next; when
something cannot be removed (or a System V IPC object is left) it exits, and the next run gets a
fresh sandbox. Its own home is in that ``/tmp`` too, so no run can leave anything for a later one.

Protocol, one line each way on private pipes (fds 3 and 4; the children's own stdout and stderr go
to their job's log): ``run TOKEN`` -> ``exit TOKEN CODE``; ``kill TOKEN`` ends the running child.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import sys
from pathlib import Path

# Its home is in the sandbox's private /tmp, made here and emptied with the rest after the first
# run: the zygote needs one only while it imports (matplotlib's caches), and no run shares it.
os.makedirs(os.environ.get("HOME", "/tmp/zygote-home"), exist_ok=True)

import torch  # noqa: E402

torch.set_num_threads(1)  # before any op: a forked child must not inherit an OpenMP pool's threads

import matplotlib.pyplot  # noqa: E402,F401  (what the notebooks import, paid once)

import autograder.assignments  # noqa: E402
from autograder.sandbox import cells  # noqa: E402,F401
from autograder.sandbox.child import run_job  # noqa: E402
from autograder.sandbox.isolation import _LIBC, _PR_SET_PDEATHSIG  # noqa: E402

COMMANDS_FD, REPLIES_FD = 3, 4
_PR_SET_DUMPABLE = 4
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


def _reply(text: str) -> None:
    os.write(REPLIES_FD, (text + "\n").encode())


def _force_remove(path: Path) -> None:
    """Remove a file or a whole tree, making folders writable first: a run may leave a folder it
    made read-only (mode 0500) to keep its files past a plain ``rmtree``."""
    def retry(function, target, exc_info) -> None:  # type: ignore[no-untyped-def]
        os.chmod(os.path.dirname(target), 0o700)
        if os.path.isdir(target) and not os.path.islink(target):
            os.chmod(target, 0o700)
        function(target)

    if path.is_dir() and not path.is_symlink():
        os.chmod(path, 0o700)
        shutil.rmtree(path, onerror=retry)
    else:
        path.unlink()


def _mount_points() -> frozenset[str]:
    """Where this sandbox has mounts (bubblewrap's tmpfs covers and binds, ``/tmp/job``): those are
    the sandbox's own view, not scratch, and neither are the folders leading to them."""
    points = set()
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4]
            points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point))
    return frozenset(points)


def _clean(folder: str, mounts: frozenset[str]) -> list[str]:
    """Remove everything under ``folder`` that is not a mount point or a folder leading to one;
    return what is still there."""
    left = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return left
    for entry in entries:
        if entry.path in mounts:
            continue
        if any(m.startswith(entry.path + "/") for m in mounts):
            if entry.is_dir(follow_symlinks=False):
                left += _clean(entry.path, mounts)
            continue
        try:
            _force_remove(Path(entry.path))
        except BaseException as exc:  # a tree deeper than rmtree recurses, a file it cannot remove
            print(f"zygote: cannot remove {entry.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.path.lexists(entry.path):
            left.append(entry.path)
    return left


def _scratch_is_clean(mounts: frozenset[str]) -> bool:
    """Empty the sandbox's private scratch folders (never a mount: the jobs folder, the covers);
    whether nothing is left, and no System V IPC object in the sandbox's IPC namespace."""
    clean = True
    for folder in SCRATCH:
        left = _clean(folder, mounts)
        if left:
            print(f"zygote: left after a run: {left[:5]}", file=sys.stderr)
            clean = False
    for table in ("/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem"):
        try:
            with open(table) as fh:
                if len(fh.read().splitlines()) > 1:  # more than the header line
                    print(f"zygote: IPC objects left in {table}", file=sys.stderr)
                    clean = False
        except OSError:
            pass
    return clean


def _child(jobs: Path, token: str) -> None:
    """In the forked child: drop the protocol pipes, write to the job's log, run the job."""
    try:
        os.setsid()  # its own process group: the grader's kill ends it and anything it holds
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with this process
        os.close(COMMANDS_FD)
        os.close(REPLIES_FD)
        folder = jobs / token
        log = os.open(folder / "child_log.txt", os.O_WRONLY | os.O_APPEND)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ["HOME"] = str(folder / "job" / "home")
        os.chdir(folder / "job")
        code = run_job(str(folder / "job"))
    except BaseException:
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    os._exit(code if isinstance(code, int) else 1)


def _wait(pid: int, token: str) -> int:
    """Wait for the child, ending it when the grader says ``kill TOKEN``; its exit code, or -signal."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        ready, _, _ = select.select([COMMANDS_FD], [], [], 0.02)
        if ready:
            line = _read_line()
            if line is None or line == f"kill {token}":
                for kill in (os.killpg, os.kill):  # before its setsid() the child has no group yet
                    try:
                        kill(pid, signal.SIGKILL)
                        break
                    except ProcessLookupError:
                        pass
                if line is None:  # the grader is gone: nothing left to serve
                    os.waitpid(pid, 0)
                    os._exit(0)


_pending = bytearray()


def _read_line() -> str | None:
    """The next command line (None when the grader closed the pipe)."""
    while b"\n" not in _pending:
        chunk = os.read(COMMANDS_FD, 4096)
        if not chunk:
            return None
        _pending.extend(chunk)
    line, _, rest = bytes(_pending).partition(b"\n")
    _pending[:] = rest
    return line.decode()


def main(jobs_dir: str) -> None:
    jobs = Path(jobs_dir)
    # Serving several runs means emptying /tmp between them, which is only right for the private
    # /tmp of a bubblewrap sandbox (the launcher says so); otherwise serve one run and empty nothing.
    serves_many = os.environ.get("BACKPROP_KIT_PRIVATE_SCRATCH") == "1"
    autograder.assignments.warm_up()
    mounts = _mount_points() if serves_many else frozenset()
    # Not dumpable: a child running student code as the same user may not ptrace this process or
    # read its memory through /proc (inherited by the children, which need neither).
    _LIBC.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    _reply("ready")
    while True:
        line = _read_line()
        if line is None:
            return
        command, _, token = line.partition(" ")
        if command != "run" or not token.isalnum():
            continue
        pid = os.fork()
        if pid == 0:
            _child(jobs, token)
        code = _wait(pid, token)
        clean = serves_many and _scratch_is_clean(mounts)
        _reply(f"exit {token} {code}" + ("" if clean else " retire"))
        if not clean:  # a one-run zygote, or what this run left cannot be removed: the next run gets a new one
            return


if __name__ == "__main__":
    main(sys.argv[1])
