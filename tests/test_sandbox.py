"""The sandbox, attacked: student code runs in another process, inside the isolation the course
requires, and nothing it does crashes a grading run, changes anything outside its scratch folder,
reaches the network or the course's private files, or costs more than the item it breaks."""

from __future__ import annotations

import hashlib
import re
import os
import socket
import threading
from pathlib import Path

import pytest
import torch

import autograder
from autograder.harness import grade
from autograder.notebook_code import grading_cells
from autograder.sandbox import Isolation, IsolationUnavailable, Limits, SandboxSource, available_level, choose
from autograder.sandbox import isolation as isolation_module
from autograder.sandbox.launch import ForkServer
from autograder.spec import Assignment, Case

from conftest import FIGURES, solution_notebook, with_answers

FAST = Limits(per_call_s=2, per_cell_s=3)
HAS_BWRAP = available_level() == "bubblewrap"
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap cannot build a sandbox on this machine")


def run(mlp: Assignment, cases: list[Case], replacements: dict[str, str], items: list[str],
        extra_cells: tuple[str, ...] = (), hide: tuple[str, ...] = (), isolation: Isolation | None = None,
        warm: bool = False) -> tuple[dict, SandboxSource]:
    """Grade ``items`` of the solution with ``replacements``; ``warm``: forked from a zygote, as
    ``backprop-kit grade``'s workers do, instead of a new process per run."""
    nb = with_answers(solution_notebook(), replacements)
    cells = grading_cells(nb, mlp) + [(1000 + i, c) for i, c in enumerate(extra_cells)]
    isolation = isolation or choose("limits")
    server = ForkServer(isolation, list(hide), FAST.resources) if warm else None
    source = SandboxSource(cells, hide=hide, limits=FAST, isolation=isolation, launcher=server)
    try:
        reports = grade(mlp, source, cases, [mlp.item(n) for n in items])
    finally:
        if server is not None:
            server.close()
    return {r.item.name: r for r in reports}, source


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_solution_passes_in_the_sandbox(mlp: Assignment, mlp_cases: list[Case], timed) -> None:
    nb = solution_notebook()
    source = SandboxSource(grading_cells(nb, mlp))
    calls = sum(case.checks(item) for item in mlp.items for case in mlp_cases)
    with timed(f"sandboxed run of the MLP solution: cells, then {calls} calls ({available_level()})"):
        reports = grade(mlp, source, mlp_cases)
    assert sum(r.earned for r in reports) == mlp.total_points
    # the cells' outputs come from the same run (what the feedback shows)
    assert any("names, for example" in o.get("text", "") for outs, _ in source.cell_outputs.values() for o in outs)


@pytest.mark.parametrize("warm", [False, pytest.param(True, marks=needs_bwrap)], ids=["cold", "warm"])
def test_hazards_each_cost_only_their_item(mlp: Assignment, mlp_cases: list[Case], warm: bool) -> None:
    hazards = {
        "backward_probs": "def backward_probs(probs, dlogprobs):\n    while True:\n        pass\n",
        "backward_h": ("def backward_h(W2, dlogits):\n    while True:\n        try:\n            while True:\n"
                       "                pass\n        except BaseException:\n            pass\n"),
        "backward_b2": "import os\ndef backward_b2(dlogits):\n    os._exit(3)\n",
        "backward_W2": "def backward_W2(h, dlogits):\n    return [[1.0]]\n",
        "backward_bnbias": "def backward_bnbias(dhpreact):\n    raise SystemExit('bye')\n",
        "backward_bngain": ("def backward_bngain(bnraw, dhpreact):\n"
                            "    return torch.empty(10**11)  # ~400 GB: over the memory limit\n"),
    }
    items = ["dprobs", "dh", "db2", "dW2", "dbnbias", "dbngain", "dlogprobs", "dC"]
    reports, source = run(mlp, mlp_cases, hazards, items,
                          extra_cells=("while True:\n    pass\n", "print('x' * 10_000_000)"), warm=warm)
    assert {n for n, r in reports.items() if r.passed} == {"dlogprobs", "dC"}
    assert "an endless loop" in reports["dprobs"].problem
    assert "an endless loop" in reports["dh"].problem   # even when it swallows the timeout
    # os._exit ends the process: the guard refuses it first (a private call), which also flags it
    assert re.search("crashed the grading process|tampered with the grader: called `_exit`", reports["db2"].problem)
    assert "received a list" in reports["dW2"].failing_check.problem
    assert "SystemExit" in reports["dbnbias"].problem
    assert reports["dbngain"].problem  # out of memory is an error for that item, not a crash
    # the endless top-level cell was stopped once and skipped after restarts; a 10 MB print is capped
    assert any(o.get("ename") == "TimeoutError" for o in source.cell_outputs[1000][0])
    printed = sum(len(o.get("text", "")) for o in source.cell_outputs[1001][0])
    assert printed <= FAST.output_bytes_per_cell + 200
    assert "output cut off" in source.cell_outputs[1001][0][-1]["text"]


ATTACK_CELL = r'''
import os, socket, pathlib
found = {}
def attempt(name, fn):
    try:
        fn(); found[name] = "DONE"
    except BaseException as exc:
        found[name] = type(exc).__name__
attempt("write kit", lambda: open(KIT_FILE, "a").write("# pwned\n"))
attempt("write torch", lambda: open(TORCH_FILE, "a").write("# pwned\n"))
attempt("write course", lambda: open(SUBMISSION, "a").write("pwned"))
attempt("read secret", lambda: (_ for _ in ()).throw(PermissionError()) if not open(SECRET).read() else None)
attempt("list solutions", lambda: (_ for _ in ()).throw(FileNotFoundError()) if not os.listdir(SOLUTIONS) else None)
attempt("connect", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2))
attempt("write host tmp", lambda: open(HOST_TMP, "w").write("x"))
attempt("chmod kit", lambda: os.chmod(KIT_FILE, 0o777))
print("uid", os.getuid(), found)
'''


@needs_bwrap
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_bubblewrap_keeps_everything_outside_unchanged(mlp: Assignment, mlp_cases: list[Case],
                                                        tmp_path: Path, warm: bool) -> None:
    """The attack runs at the top of a cell and inside a graded function: every write outside the
    scratch folder fails, the course's private files read as empty, and no connection is made."""
    course = tmp_path / "course"
    (course / "solutions" / "mlp_backprop").mkdir(parents=True)
    (course / "solutions" / "mlp_backprop" / "mlp_backprop.ipynb").write_text("the answers")
    submission = course / "submitted" / "bob" / "mlp_backprop" / "mlp_backprop.ipynb"
    submission.parent.mkdir(parents=True)
    submission.write_text("bob's notebook")
    secret = course / ".course_secret"
    secret.write_text("s3cret")
    kit_file = Path(autograder.__file__)
    torch_file = Path(torch.__file__)
    host_tmp = Path("/tmp") / f"backprop-kit-attack-{os.getpid()}"
    before = {p: digest(p) for p in (kit_file, torch_file, submission, secret)}
    modes = {p: p.stat().st_mode for p in (kit_file, torch_file)}

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    accepted: list[object] = []

    def accept() -> None:
        for _ in range(40):
            try:
                accepted.append(listener.accept())
            except OSError:
                pass

    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    constants = (f"KIT_FILE, TORCH_FILE, SUBMISSION = {str(kit_file)!r}, {str(torch_file)!r}, {str(submission)!r}\n"
                 f"SECRET, SOLUTIONS = {str(secret)!r}, {str(course / 'solutions')!r}\n"
                 f"PORT, HOST_TMP = {listener.getsockname()[1]}, {str(host_tmp)!r}\n")
    in_function = ("def backward_b1(dhprebn):\n" + "\n".join("    " + ln for ln in (constants + ATTACK_CELL).splitlines())
                   + "\n    return dhprebn.sum(0)\n")
    reports, source = run(mlp, mlp_cases, {"backward_b1": in_function}, ["db1", "dlogprobs"],
                          extra_cells=(constants + ATTACK_CELL,), hide=(str(course / "solutions"), str(secret)),
                          warm=warm)
    watcher.join()
    listener.close()
    printed = "".join(o.get("text", "") for o in source.cell_outputs[1000][0])
    assert "uid 65534" in printed or os.geteuid() != 0, printed
    # every write and read outside the scratch folder failed; /tmp is the sandbox's own (see below)
    assert printed.count("DONE") == 1 and "'write host tmp': 'DONE'" in printed, printed
    assert {p: digest(p) for p in before} == before
    assert {p: p.stat().st_mode for p in modes} == modes
    assert not host_tmp.exists()
    assert accepted == []
    assert reports["dlogprobs"].passed and reports["db1"].passed  # the attack itself costs nothing here


@needs_bwrap
def test_sandbox_cannot_see_the_kit_checkouts_solutions(mlp: Assignment, mlp_cases: list[Case]) -> None:
    from autograder.nbgrader_plugin import course_private_paths

    kit = Path(autograder.__file__).resolve().parent.parent
    probe = (f"import os\nfound = sorted(os.listdir({str(kit / 'solutions')!r}))\n"
             f"try:\n    config = len(open({str(kit / 'course_config.py')!r}).read())\n"
             "except PermissionError:\n    config = 'unreadable'\nprint('listing', found, config)\n")
    _, source = run(mlp, mlp_cases, {}, ["dlogprobs"], extra_cells=(probe,),
                    hide=tuple(course_private_paths("/nonexistent-course")))
    printed = "".join(o.get("text", "") for o in source.cell_outputs[1000][0])
    assert "listing [] 0" in printed or "listing [] unreadable" in printed, source.cell_outputs[1000]


def test_fallback_levels_still_grade_and_say_what_they_gave(mlp: Assignment, mlp_cases: list[Case],
                                                            tmp_path: Path) -> None:
    secret = tmp_path / "gradebook.db"
    secret.write_text("grades of every student")
    reader = f"def backward_bnraw(bngain, dhpreact):\n    return open({str(secret)!r}).read()\n"
    levels = ["limits"] + (["namespaces"] if isolation_module.namespaces_work() else [])
    for level in levels:
        isolation = Isolation(level=level, as_root=os.geteuid() == 0)
        reports, source = run(mlp, mlp_cases, {"backward_bnraw": reader}, ["dbnraw", "dlogprobs"],
                              hide=(str(secret),), isolation=isolation)
        assert reports["dlogprobs"].passed and not reports["dbnraw"].passed
        assert source.isolation_note == isolation.describe() and level in source.isolation_note
        if level == "namespaces":
            assert "received a str" in reports["dbnraw"].failing_check.problem  # read back empty
    assert secret.read_text() == "grades of every student"


def test_fail_closed_when_the_required_isolation_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation_module, "available_level", lambda: "limits")
    with pytest.raises(IsolationUnavailable, match="No grade was recorded"):
        choose("bubblewrap")
    with pytest.raises(IsolationUnavailable):
        SandboxSource([(0, "x = 1")], require="namespaces").run([])
    assert choose("limits").level == "limits"  # a laptop may lower the requirement


def test_isolation_level_available_here_is_reported() -> None:
    FIGURES.append((f"sandbox level on this machine: {available_level()} (1 = bubblewrap)",
                    float(available_level() == "bubblewrap"), ""))
    if os.environ.get("CI"):
        assert HAS_BWRAP, "CI installs bubblewrap (make test): the strongest sandbox must be tested there"


def test_the_sandboxed_process_dies_with_the_grader(tmp_path: Path) -> None:
    """A grader killed mid-run (Ctrl-C, OOM killer) leaves no student code running behind it."""
    import subprocess
    import sys
    import time

    import psutil

    script = tmp_path / "grader.py"
    cell = "while True:\n    pass\n"
    script.write_text("from autograder.sandbox import SandboxSource, Limits\n"
                      f"SandboxSource([(0, {cell!r})], limits=Limits(per_cell_s=600)).run([])\n")
    grader = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline, sandboxed = time.monotonic() + 60, []
        while time.monotonic() < deadline and grader.poll() is None:
            # this grader's own descendants only (other sandboxes may run on the machine)
            sandboxed = [p for p in psutil.Process(grader.pid).children(recursive=True)
                         if "autograder.sandbox.child" in " ".join(p.cmdline())]
            if sandboxed:
                break
            time.sleep(0.5)
        time.sleep(3)  # past start-up, into the endless cell
        assert sandboxed and all(p.is_running() for p in sandboxed), "the sandboxed child should be running"
    finally:
        grader.kill()
        grader.wait()
    gone, alive = psutil.wait_procs(sandboxed, timeout=10)
    assert not alive, f"still running after the grader died: {[p.pid for p in alive]}"


def test_demonstrations_run_in_the_sandbox_only_when_the_course_asks(mlp: Assignment) -> None:
    from autograder.nbgrader_plugin import grade_submission

    nb = solution_notebook()
    demo = next(i for i, c in enumerate(nb.cells) if "grader-skip" in c.metadata.get("tags", []))
    nb.cells[demo].source = "print('fresh output of the demonstration')"
    assert demo not in dict(grading_cells(nb, mlp))
    assert demo in dict(grading_cells(nb, mlp, rerun_demonstrations=True))
    reports, source = grade_submission(nb, mlp, "alice", "a secret", [], FAST, "limits",
                                       rerun_demonstrations=True)
    assert sum(r.earned for r in reports) == mlp.total_points
    assert "fresh output of the demonstration" in source.cell_outputs[demo][0][0]["text"]



# Run with the kit copied to ELSEWHERE (first on PYTHONPATH): start the sandboxed child with no job to
# do, so that its traceback names the child.py it ran.
START_CHILD_IN_BWRAP = """
import subprocess, sys, tempfile
from pathlib import Path
from autograder.sandbox.isolation import IsolationUnavailable, ResourceLimits, bwrap_command
from autograder.sandbox.launch import kit_module_command
try:
    command = bwrap_command(Path(tempfile.mkdtemp()), [], ResourceLimits(),
                            kit_module_command("autograder.sandbox.child", "/tmp/job/no-such-job"))
except IsolationUnavailable as refused:
    sys.exit(f"refused: {refused}")
sys.exit(subprocess.run(command).returncode)
"""


def _start_child_from(elsewhere: Path) -> "subprocess.CompletedProcess[str]":
    import shutil
    import subprocess
    import sys

    shutil.copytree(Path(autograder.__file__).parent, elsewhere / "autograder",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return subprocess.run([sys.executable, "-c", START_CHILD_IN_BWRAP], env=dict(os.environ, PYTHONPATH=str(elsewhere)),
                          cwd=elsewhere.parent, capture_output=True, text=True, timeout=120)


@needs_bwrap
def test_the_sandbox_runs_the_kit_the_grader_imported(tmp_path: Path) -> None:
    """A kit imported from a folder on PYTHONPATH (a ``pip install --target`` folder, a checkout run
    without installing), here under /tmp, which the sandbox replaces by its own, is the kit the
    sandboxed child runs: not the copy the interpreter finds by itself (the checkout's editable
    install), and not none at all (``-I`` drops PYTHONPATH)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    done = _start_child_from(elsewhere)
    assert done.returncode != 0 and "refused" not in done.stderr, done.stderr[-2000:]
    assert f"{elsewhere}/autograder/sandbox/child.py" in done.stderr, done.stderr[-2000:]
    assert f"{Path(autograder.__file__).parent}/sandbox/child.py" not in done.stderr


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="unprivileged, the sandbox's user owns the grader's files")
def test_a_kit_the_sandboxs_user_cannot_read_is_named_not_a_bare_import_error(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)  # what pytest's tmp_path and a private install folder look like
    done = _start_child_from(elsewhere)
    assert f"refused: the sandbox's user cannot enter {elsewhere} (mode 700)" in done.stderr, done.stderr[-2000:]
    assert f"chmod o+rx {elsewhere}" in done.stderr
