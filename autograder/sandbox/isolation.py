"""Where the sandbox is drawn: the layers around the process that runs a submission's code.

Three levels, strongest first. A course requires one (``SandboxedGrading.require_isolation``); when
this machine cannot give it, grading stops with a message instead of recording grades (fail closed).

``bubblewrap``  bwrap (the sandbox Flatpak uses) builds a private view of the machine:
                * the whole filesystem read-only; a private, size-limited ``/tmp``; the job folder
                  the only place shared with the grader;
                * the course's private files (gradebook, config and secret, source/, solutions/,
                  submitted/, autograded/, feedback/) and the kit checkout's source/ and solutions/
                  covered by empty folders; the grader's home replaced by an empty folder with only
                  the Python installation bound back;
                * new network (no interfaces but its own loopback), PID, IPC and UTS namespaces; the
                  process dies with the grader (``--die-with-parent``) and has no terminal;
                * a different uid/gid (``nobody``), no capabilities and ``no_new_privs`` when the
                  grader runs as root (``setpriv`` inside the sandbox); an unprivileged grader gets
                  a user namespace, where the uid differs only inside it.
``namespaces``  ``unshare`` of the network and mount namespaces; the child covers the private
                paths itself. Same user as the grader, filesystem writable where the grader's is.
``limits``      resource limits only (a laptop that trusts its own code).

Every level adds the resource limits (``rlimits``): address space, CPU seconds, processes, file
size, open files, no core dumps; the parent adds wall-clock limits per cell and per call and caps
the output kept. ``Isolation.describe()`` is recorded with every grade.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

LEVELS = ("bubblewrap", "namespaces", "limits")
SANDBOX_UID = 65534  # nobody
SANDBOX_GID = 65534
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class IsolationUnavailable(RuntimeError):
    """The isolation a course requires cannot be had on this machine: grading must stop."""


@dataclass(frozen=True)
class ResourceLimits:
    memory_bytes: int = 8 * 1024**3
    cpu_seconds: int = 900          # a backstop: the parent's wall-clock limits act first
    processes: int = 4096            # threads count too (torch starts a few); fork is refused anyway
    file_bytes: int = 64 * 1024**2
    open_files: int = 256
    tmp_bytes: int = 256 * 1024**2   # the private /tmp (bubblewrap only)


@dataclass(frozen=True)
class Isolation:
    level: str
    as_root: bool

    def describe(self) -> str:
        if self.level == "bubblewrap":
            who = (f"uid {SANDBOX_UID} without capabilities" if self.as_root
                   else "the grader's uid in a user namespace")
            return (f"bubblewrap: {who}, read-only filesystem, private /tmp, course files hidden, "
                    "no network, own PID namespace, resource limits")
        if self.level == "namespaces":
            return "namespaces: no network, course files hidden, resource limits (same user as the grader)"
        return "limits only: resource limits (no filesystem or network isolation)"


@lru_cache(maxsize=1)
def bubblewrap_works() -> bool:
    """Whether bwrap is installed and can build a sandbox here (a container may forbid it)."""
    if shutil.which("bwrap") is None or (os.geteuid() == 0 and shutil.which("setpriv") is None):
        return False
    try:
        done = subprocess.run(_bwrap_prefix(probe=True) + ["/bin/true"], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@lru_cache(maxsize=1)
def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(["unshare", "--net", "--mount", "--map-root-user", "true"], capture_output=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def available_level() -> str:
    if bubblewrap_works():
        return "bubblewrap"
    if namespaces_work():
        return "namespaces"
    return "limits"


def choose(required: str) -> Isolation:
    """The strongest isolation this machine gives, if it is at least ``required``; else stop."""
    if required not in LEVELS:
        raise ValueError(f"unknown isolation level {required!r}; choose one of {LEVELS}")
    level = available_level()
    if LEVELS.index(level) > LEVELS.index(required):
        hint = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`) and allow user namespaces"
                if required == "bubblewrap" else "allow unprivileged user namespaces (`unshare` must work)")
        raise IsolationUnavailable(
            f"grading needs the {required!r} sandbox but this machine only offers {level!r}: {hint}, or "
            f"lower the requirement in course_config.py (c.SandboxedGrading.require_isolation = {level!r}) "
            "if you accept weaker isolation. No grade was recorded.")
    return Isolation(level=level, as_root=os.geteuid() == 0)


# The folder that holds the autograder package (a checkout, site-packages, a --target folder): the
# sandbox binds it and imports the kit from it, the same code as the grader's.
KIT_IMPORT_ROOT = Path(__file__).resolve().parents[2]


def _bwrap_prefix(probe: bool = False) -> list[str]:
    as_root = os.geteuid() == 0
    # As root, no user namespace: bwrap builds the mounts with root's rights and setpriv drops to
    # nobody inside. Unprivileged, bwrap needs a user namespace to do anything at all.
    spaces = (["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
              if as_root else ["--unshare-all", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID)])
    return ["bwrap", *spaces, "--die-with-parent", "--new-session", "--ro-bind", "/", "/", "--dev", "/dev",
            "--proc", "/proc"] if not probe else ["bwrap", *spaces, "--ro-bind", "/", "/", "--", ]


def _needed_paths() -> list[str]:
    """What the child must read: the Python installation, the environment and the kit."""
    kit = KIT_IMPORT_ROOT
    paths = {sys.prefix, sys.base_prefix, os.path.realpath(sys.executable), str(kit),
             *(sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib"))}
    return sorted({os.path.realpath(p) for p in paths} | paths)


def _mask(path: str) -> list[str]:
    if os.path.isdir(path):
        return ["--tmpfs", path]
    if os.path.exists(path):
        return ["--ro-bind", "/dev/null", path]
    return []


def _require_readable_to_sandbox(wanted: list[str], made: set[str]) -> None:
    """The sandbox's user (nobody) must enter every folder on the way to what the child imports: a
    bind keeps a folder's mode, so a kit or environment in a 0700 folder would be there but closed,
    and the child would fail with a bare ModuleNotFoundError. Say which folder instead."""
    for path in wanted:
        for folder in (Path(path), *Path(path).parents):
            name = str(folder)
            if name in made or not folder.is_dir():
                continue
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise IsolationUnavailable(
                    f"the sandbox's user cannot enter {name} (mode {stat.S_IMODE(mode):o}), and the sandboxed "
                    f"code imports Python or the kit from {path}. Make it readable "
                    f"(chmod o+rx {name}) or install the kit and its environment elsewhere. No grade was recorded.")


def bwrap_command(job: Path, hide: list[str], limits: ResourceLimits, python: list[str]) -> list[str]:
    """The bwrap command line that runs ``python`` (a command in the sandbox) with ``job`` at /tmp/job."""
    as_root = os.geteuid() == 0
    cmd = _bwrap_prefix()
    cmd += ["--size", str(limits.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp",
            "--size", str(limits.tmp_bytes), "--perms", "1777", "--tmpfs", "/var/tmp"]
    home = os.path.realpath(os.path.expanduser("~"))
    if home not in ("/", "/tmp", "/var/tmp") and os.path.isdir(home):
        cmd += ["--perms", "0755", "--tmpfs", home]
    # What the child needs (the interpreter, the environment, the kit) may live under a folder the
    # sandbox replaces by an empty one (a checkout in /tmp, a pyenv in the home): bind it back,
    # read-only, with the folders between made traversable for the sandbox's uid (bwrap would make
    # them 0700, and the venv's python link would lead nowhere).
    wanted = [p for p in _needed_paths() if os.path.exists(p)]
    made = {"/tmp", "/var/tmp", home}  # folders the sandbox makes itself, traversable
    for covered in {"/tmp", "/var/tmp", home}:
        needed = [p for p in wanted if p.startswith(covered + "/")]
        between = sorted({str(a) for p in needed for a in Path(p).parents if str(a).startswith(covered + "/")},
                         key=lambda a: a.count("/"))
        made.update(between)
        cmd += [arg for a in between for arg in ("--perms", "0755", "--dir", a)]
        cmd += [arg for p in needed for arg in ("--ro-bind", p, p)]
    if as_root:
        _require_readable_to_sandbox(wanted, made)
    for path in hide:
        cmd += _mask(os.path.realpath(path))
    cmd += ["--bind", str(job), "/tmp/job", "--chdir", "/tmp/job"]
    drop = (["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups",
             "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"] if as_root else [])
    return cmd + ["--", *drop, *python]


def namespaces_command(python: list[str]) -> list[str]:
    return ["unshare", "--net", "--mount", "--map-root-user", "--", *python]


def set_limits(limits: ResourceLimits) -> None:
    """Runs in the forked child before exec (inherited by bwrap and the Python it starts)."""
    for which, value in ((resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_CPU, limits.cpu_seconds),
                         (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_FSIZE, limits.file_bytes),
                         (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # die with the grader, at every level


def hide_in_process(paths: list[str]) -> str:
    """The ``namespaces`` level: cover each path with an empty tmpfs (folders) or /dev/null (files),
    from inside the child's private mount namespace, before any student code runs."""
    failed: list[str] = []
    for path in paths:
        target = path.encode()
        if os.path.isdir(path):
            rc = _LIBC.mount(b"tmpfs", target, b"tmpfs", 0, b"size=1m")
        elif os.path.exists(path):
            rc = _LIBC.mount(b"/dev/null", target, None, 4096, None)  # MS_BIND
        else:
            continue
        if rc != 0:
            failed.append(f"{path} ({os.strerror(ctypes.get_errno())})")
    return "hidden" if not failed else "could not hide: " + ", ".join(failed)


def forbid_new_tasks() -> bool:
    """No new thread or process from here on: RLIMIT_NPROC at 0 makes the kernel refuse every
    clone() of this unprivileged user, whatever Python or C code asks (a thread would start without
    the autograd guard, a process without the sandbox's seal). Root is exempt from the limit, so this
    holds at the bubblewrap level run as root (the child is nobody) and for unprivileged graders."""
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    except (ValueError, OSError):
        return False
    return os.geteuid() != 0
