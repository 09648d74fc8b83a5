"""The sandboxed source: student code runs in another process, and nothing it does crashes a grading
run or costs more than the item it breaks."""

from __future__ import annotations

import pytest

from autograder.harness import grade
from autograder.notebook_code import grading_cells
from autograder.sandbox import Limits, SandboxSource, namespaces_available
from autograder.spec import Assignment, Case

from conftest import solution_notebook, with_answers

FAST = Limits(per_call_s=2, per_cell_s=3)


def run(mlp: Assignment, cases: list[Case], replacements: dict[str, str], items: list[str],
        extra_cells: tuple[str, ...] = (), hide: tuple[str, ...] = ()) -> tuple[dict, SandboxSource]:
    nb = with_answers(solution_notebook(), replacements)
    source = SandboxSource(grading_cells(nb, mlp) + list(extra_cells), hide=hide, limits=FAST)
    reports = grade(mlp, source, cases, [mlp.item(n) for n in items])
    return {r.item.name: r for r in reports}, source


def test_solution_passes_in_the_sandbox(mlp: Assignment, mlp_cases: list[Case], timed) -> None:
    nb = solution_notebook()
    with timed("sandboxed grading of all 29 items of the solution (one child process)"):
        reports = grade(mlp, SandboxSource(grading_cells(nb, mlp)), mlp_cases)
    assert sum(r.earned for r in reports) == mlp.total_points


def test_hazards_each_cost_only_their_item(mlp: Assignment, mlp_cases: list[Case], tmp_path) -> None:
    secret = tmp_path / "gradebook.db"
    secret.write_text("grades of every student")
    hazards = {
        "backward_probs": "def backward_probs(probs, dlogprobs):\n    while True:\n        pass\n",
        "backward_h": ("def backward_h(W2, dlogits):\n    while True:\n        try:\n            while True:\n"
                       "                pass\n        except BaseException:\n            pass\n"),
        "backward_b2": "import os\ndef backward_b2(dlogits):\n    os._exit(3)\n",
        "backward_W2": "def backward_W2(h, dlogits):\n    return [[1.0]]\n",
        "backward_bnbias": "def backward_bnbias(dhpreact):\n    raise SystemExit('bye')\n",
        "backward_bngain": ("def backward_bngain(bnraw, dhpreact):\n"
                            "    return torch.empty(10**11)  # ~400 GB: over the memory limit\n"),
        "backward_dbnraw_unused": "",
        "backward_bnraw": (f"def backward_bnraw(bngain, dhpreact):\n    return open({str(secret)!r}).read()\n"),
    }
    hazards.pop("backward_dbnraw_unused")
    items = ["dprobs", "dh", "db2", "dW2", "dbnbias", "dbngain", "dbnraw", "dlogprobs", "dC"]
    reports, source = run(mlp, mlp_cases, hazards, items, extra_cells=("while True:\n    pass\n",),
                          hide=(str(secret),))
    assert {n for n, r in reports.items() if r.passed} == {"dlogprobs", "dC"}
    assert "an endless loop" in reports["dprobs"].problem
    assert "an endless loop" in reports["dh"].problem   # even when it swallows the timeout
    assert "crashed the grading process" in reports["db2"].problem
    assert "received a list" in reports["dW2"].failing_check.problem
    assert "SystemExit" in reports["dbnbias"].problem
    assert reports["dbngain"].problem  # out of memory is an error for that item, not a crash
    if namespaces_available():
        assert "received a str" in reports["dbnraw"].failing_check.problem  # the file read back empty
        assert "namespaces: hidden" == source.isolation_note
    # the endless top-level cell was stopped, and not run again after the restarts
    assert source.student_output.count("raised TimeoutError: still running after 3 s") == 1


@pytest.mark.skipif(not namespaces_available(), reason="unprivileged namespaces are not available here")
def test_no_network_in_the_sandbox(mlp: Assignment, mlp_cases: list[Case]) -> None:
    probe = ("import socket\n"
             "def backward_b1(dhprebn):\n"
             "    s = socket.socket(); s.settimeout(1)\n"
             "    s.connect(('127.0.0.1', 9))\n"
             "    return dhprebn.sum(0)\n")
    reports, _ = run(mlp, mlp_cases, {"backward_b1": probe}, ["db1"])
    assert "Network is unreachable" in reports["db1"].problem


def test_saving_autograd_before_the_check_does_not_help(mlp: Assignment, mlp_cases: list[Case]) -> None:
    # A reference kept at the top of a cell is the grader's blocker too: autograd is forbidden in the
    # sandbox before the first student line runs.
    cheat = ("_grad = torch.autograd.grad\n"
             "def backward_probs(probs, dlogprobs):\n"
             "    p = probs.clone().requires_grad_(True)\n"
             "    with torch.enable_grad():\n"
             "        return _grad(p.log(), p, dlogprobs)[0]\n")
    reports, _ = run(mlp, mlp_cases, {"backward_probs": cheat}, ["dprobs"])
    assert reports["dprobs"].earned == 0 and "not allowed" in reports["dprobs"].problem


def test_grad_copy_scores_zero_in_the_sandbox(mlp: Assignment, mlp_cases: list[Case]) -> None:
    cheat = "def backward_logprobs(logprobs, Yb):\n    return f.logprobs.grad\n"
    reports, _ = run(mlp, mlp_cases, {"backward_logprobs": cheat}, ["dlogprobs"])
    assert reports["dlogprobs"].earned == 0
