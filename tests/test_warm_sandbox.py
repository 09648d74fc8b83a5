"""The warm sandbox, attacked: runs forked from one zygote (``backprop-kit grade``'s workers) must
keep submissions apart as well as a new process per run does. What one run leaves in the sandbox's
scratch folders or the jobs folder is gone for the next; the zygote's memory is out of reach; killing
it costs the run that did it one cell, and the next run gets a fresh zygote."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from autograder.harness import grade
from autograder.notebook_code import grading_cells
from autograder.sandbox import Limits, SandboxSource, available_level, choose
from autograder.sandbox.launch import ForkServer, launcher_for
from autograder.spec import Assignment, Case

from conftest import solution_notebook

FAST = Limits(per_call_s=2, per_cell_s=5)
# Warm runs exist only inside bubblewrap (the zygote empties its private /tmp between runs).
pytestmark = pytest.mark.skipif(available_level() != "bubblewrap", reason="warm runs need bubblewrap")

LEAVE_BEHIND = r'''
import os, pathlib
for folder in ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~")):
    try:
        pathlib.Path(folder, "left-by-alice.txt").write_text("alice's notes")
    except OSError as exc:
        print("could not write", folder, type(exc).__name__)
# a folder made read-only so that a plain rmtree cannot empty it
kept = pathlib.Path("/tmp/kept")
kept.mkdir()
(kept / "left-by-alice.txt").write_text("alice's notes")
kept.chmod(0o500)
try:
    pathlib.Path(os.getcwd()).parent.parent.joinpath("planted-by-alice").write_text("x")
except OSError as exc:
    print("jobs folder not writable:", type(exc).__name__)
print("alice ran in", os.getcwd())
'''

LOOK_AROUND = r'''
import os, pathlib
left = [str(p) for folder in ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"))
        for p in pathlib.Path(folder).rglob("left-by-alice.txt")]
jobs = pathlib.Path(os.getcwd()).parent.parent
others = sorted(p.name for p in jobs.iterdir())
print("left", left, "runs", len(others), "planted", "planted-by-alice" in others)
for name in ("mem", "environ", "maps"):
    try:
        open(f"/proc/{os.getppid()}/{name}", "rb").read(16)
        print("zygote", name, "READABLE")
    except OSError as exc:
        print("zygote", name, type(exc).__name__)
'''

KILL_THE_ZYGOTE = r'''
import os, signal
for name, kill in (("kill", lambda: os.kill(os.getppid(), signal.SIGKILL)),
                   ("pidfd", lambda: signal.pidfd_send_signal(os.pidfd_open(os.getppid()), signal.SIGKILL))):
    try:
        kill()
        print(name, "SENT")
    except BaseException as exc:
        print(name, type(exc).__name__)
'''


def _run(mlp: Assignment, cases: list[Case], server: ForkServer, cell: str) -> tuple[SandboxSource, list]:
    cells = grading_cells(solution_notebook(), mlp) + [(1000, cell)]
    source = SandboxSource(cells, limits=FAST, isolation=server.isolation, launcher=server)
    reports = grade(mlp, source, cases, [mlp.item("dlogprobs"), mlp.item("db2")])
    return source, reports


def _printed(source: SandboxSource) -> str:
    return "".join(o.get("text", "") for o in source.cell_outputs[1000][0])


@pytest.fixture
def server() -> ForkServer:
    server = ForkServer(choose("bubblewrap"), [], FAST.resources)
    yield server
    server.close()


def test_a_private_path_made_after_the_zygote_started_is_hidden_too(
        mlp: Assignment, mlp_cases: list[Case], tmp_path: Path) -> None:
    """bubblewrap covers only paths that exist when the sandbox is built; ``autograded/`` appears
    with the first grade, after the workers' zygotes started: a new zygote must hide it."""
    later = tmp_path / "autograded"
    server = ForkServer(choose("bubblewrap"), [str(later)], FAST.resources)
    try:
        server.start_now()
        later.mkdir()
        (later / "alice.ipynb").write_text("alice's graded answers")
        probe = f"import os\nprint('sees', os.listdir({str(later)!r}))\n"
        source, _ = _run(mlp, mlp_cases, server, probe)
        assert "sees []" in _printed(source), _printed(source)
        assert server.starts == 2
        # the cover sits in the sandbox's /tmp (tmp_path is under /tmp): emptying /tmp between runs
        # leaves mounts alone, and the zygote serves the next run instead of starting afresh
        source, _ = _run(mlp, mlp_cases, server, probe)
        assert "sees []" in _printed(source) and server.starts == 2, server.log_tail()
    finally:
        server.close()


def test_a_one_shot_zygote_at_a_weak_level_serves_one_run_and_empties_nothing(
        mlp: Assignment, mlp_cases: list[Case]) -> None:
    """The self-check's early-started process: at the ``limits`` level /tmp is the machine's own."""
    from autograder.sandbox import Isolation

    marker = Path("/tmp") / f"backprop-kit-marker-{os.getpid()}"
    marker.write_text("not the sandbox's to remove")
    server = ForkServer(Isolation("limits", as_root=os.geteuid() == 0), [], FAST.resources, one_shot=True)
    try:
        server.spawn()
        source, reports = _run(mlp, mlp_cases, server, "print('ran')")
        assert "ran" in _printed(source) and all(r.passed for r in reports)
        assert marker.read_text() == "not the sandbox's to remove"
        assert server._proc is None  # it served its run and was let go
    finally:
        server.close()
        marker.unlink()


def test_warm_runs_exist_only_inside_bubblewrap(tmp_path: Path) -> None:
    """At a weaker level the zygote's /tmp would be the machine's own, which it empties between runs."""
    from autograder.sandbox import Isolation
    from autograder.sandbox.launch import ColdLauncher, use_warm_processes

    for level in ("namespaces", "limits"):
        with pytest.raises(ValueError, match="bubblewrap"):
            ForkServer(Isolation(level, as_root=False), [], FAST.resources)
        use_warm_processes()
        try:
            assert isinstance(launcher_for(Isolation(level, as_root=False), [], FAST.resources), ColdLauncher)
        finally:
            use_warm_processes(False)


def test_nothing_one_run_leaves_reaches_the_next(mlp: Assignment, mlp_cases: list[Case], server: ForkServer) -> None:
    alice, _ = _run(mlp, mlp_cases, server, LEAVE_BEHIND)
    assert "alice ran in" in _printed(alice)
    bob, reports = _run(mlp, mlp_cases, server, LOOK_AROUND)
    printed = _printed(bob)
    assert server.starts == 1  # both runs were forks of the same zygote
    assert "left [] runs 1 planted False" in printed, printed  # only bob's own run folder
    if server.isolation.level == "bubblewrap":
        assert "READABLE" not in printed, printed  # the zygote is not dumpable: no /proc/<pid>/mem
    assert all(r.passed for r in reports)


def test_the_zygote_is_out_of_reach_and_its_death_costs_one_cell(
        mlp: Assignment, mlp_cases: list[Case], server: ForkServer) -> None:
    source, reports = _run(mlp, mlp_cases, server, KILL_THE_ZYGOTE)
    # the guard refuses os.kill (an audit event) and pidfd signals (tripwires: they raise no event)
    assert "SENT" not in str(source.cell_outputs[1000]) and source.tampering, source.cell_outputs[1000]
    assert all(r.passed for r in reports) and server.starts == 1
    # Should a child find a way anyway: the zygote dies in the middle of a cell (killed from here).
    assert server._proc is not None
    killer = threading.Timer(1.0, lambda: os.killpg(server._proc.pid, signal.SIGKILL))  # type: ignore[union-attr]
    killer.start()
    source, reports = _run(mlp, mlp_cases, server, "import time\ntime.sleep(3)\nprint('slept')")
    killer.join()
    assert 1000 in source.skipped_cells and "slept" not in _printed(source)  # that cell was skipped
    assert all(r.passed for r in reports) and server.starts == 2  # the rest ran in a fresh zygote
    again, reports = _run(mlp, mlp_cases, server, "print('fine')")
    assert "fine" in _printed(again) and all(r.passed for r in reports) and server.starts == 2


def test_a_warm_run_grades_like_a_cold_one(mlp: Assignment, mlp_cases: list[Case], server: ForkServer) -> None:
    cells = grading_cells(solution_notebook(), mlp)
    warm = grade(mlp, SandboxSource(cells, isolation=server.isolation, launcher=server), mlp_cases)
    cold = grade(mlp, SandboxSource(cells, isolation=server.isolation), mlp_cases)
    assert [(r.item.name, r.earned) for r in warm] == [(r.item.name, r.earned) for r in cold]
    assert sum(r.earned for r in warm) == mlp.total_points
