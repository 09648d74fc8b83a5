"""The grader's side of the sandbox, attacked through the job folder (the one place the submission
can write): it must not hang, exhaust itself, lose a grade, or let an answer replay the true
gradients other items were given."""

from __future__ import annotations

import io
import time
import zipfile

import pytest

from autograder.harness import grade
from autograder.notebook_code import grading_cells
from autograder.sandbox import Limits, SandboxSource, available_level
from autograder.sandbox.runner import MAX_RESULT_BYTES, load_result
from autograder.spec import Assignment, Case

from autograder.samples import answer_cell_index

from conftest import FIGURES, solution_notebook, with_answers

ATTACKS = {
    # the status file the grader polls becomes a FIFO: a plain open() would block the grader forever,
    # and a grader that read the name would lose sight of the steps after it (and of "done")
    "backward_b1": ("import os\n"
                    "def backward_b1(dhprebn):\n"
                    "    os.unlink('status'); os.mkfifo('status')\n"
                    "    return dhprebn.sum(0)\n"),
    # a forged 'could not hide' note: at the bubblewrap level it must not stop the grade
    "backward_bnbias": ("def backward_bnbias(dhpreact):\n"
                        "    open('status', 'a').write('isolation could not hide: everything\\n')\n"
                        "    return dhpreact.sum(0, keepdim=True)\n"),
    # the result of the first call overwritten by a zip that would inflate to gigabytes in the grader
    "backward_W2": ("import zipfile\n"
                    "def backward_W2(h, dlogits):\n"
                    "    with zipfile.ZipFile('result_0.pt', 'w', zipfile.ZIP_DEFLATED) as z:\n"
                    f"        z.writestr('archive/data/0', bytes({MAX_RESULT_BYTES + 1}))\n"
                    "    return h.T @ dlogits\n"),
    # keep the dlogits that backward_h is given, and hand it back as cross-entropy's answer
    "backward_h": ("_stash = {}\n"
                   "def backward_h(W2, dlogits):\n"
                   "    _stash[tuple(dlogits.shape)] = dlogits.clone()\n"
                   "    return dlogits @ W2.T\n"),
    "cross_entropy_backward": ("def cross_entropy_backward(logits, Yb):\n"
                               "    return _stash.get(tuple(logits.shape), torch.zeros_like(logits))\n"),
}


@pytest.fixture(scope="module")
def attacked(mlp: Assignment, mlp_cases: list[Case]) -> tuple[dict, SandboxSource, float]:
    nb = with_answers(solution_notebook(), ATTACKS)
    source = SandboxSource(grading_cells(nb, mlp), limits=Limits(per_call_s=3, per_cell_s=5))
    start = time.perf_counter()
    reports = {r.item.name: r for r in grade(mlp, source, mlp_cases)}
    seconds = time.perf_counter() - start
    FIGURES.append(("sandboxed grading of a submission that attacks the job folder", seconds, "s"))
    return reports, source, seconds


def test_a_fifo_in_place_of_the_status_file_does_not_hang_the_grader(attacked) -> None:
    reports, _, seconds = attacked
    assert seconds < 300  # bounded by the per-step limits and restarts, not by the attacker
    # its answer is right: the trick cost the grader nothing, and it nothing; the steps after it were
    # still followed (a grader blind to them would blame the last step it saw)
    assert reports["db1"].passed and reports["demb"].passed and reports["dC"].passed
    failed = {name for name, report in reports.items() if not report.passed}
    assert failed == {"dlogprobs", "ex2_dlogits", "ex4_backward"}  # the attacks' own, below, and no other


def test_a_forged_isolation_note_does_not_lose_the_grade(attacked) -> None:
    reports, source, _ = attacked
    if available_level() == "bubblewrap":
        assert reports["dbnbias"].passed and "bubblewrap" in source.isolation_note


def test_a_result_that_would_inflate_is_refused_before_it_is_unpacked(attacked) -> None:
    reports, _, _ = attacked
    assert not reports["dlogprobs"].passed  # its result file was the one replaced
    assert "too large" in reports["dlogprobs"].problem
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data/0", bytes(MAX_RESULT_BYTES + 1))
    assert len(bomb.getvalue()) < MAX_RESULT_BYTES // 100
    with pytest.raises(ValueError, match="too large"):
        load_result(bomb.getvalue())


def test_true_gradients_given_to_other_items_cannot_be_replayed(attacked) -> None:
    reports, _, _ = attacked
    assert reports["ex2_dlogits"].earned == 0  # cross-entropy is graded before backward_h is given dlogits
    assert reports["dh"].passed and reports["dW1"].passed and reports["dC"].passed  # honest answers around it


class _SwappingLauncher:
    """Stands in for a child that swapped its job folder for a link to a folder of forged results
    (possible where the shared folder is writable to the sandbox: an unprivileged grader's warm
    runs). The forged folder holds a result the grader would otherwise read as the answer."""

    def __init__(self, isolation: object, forged: object) -> None:
        from autograder.sandbox.launch import ColdLauncher

        self.isolation = isolation
        self._cold = ColdLauncher(isolation, [], Limits().resources)  # type: ignore[arg-type]
        self.forged = forged

    def run_folder(self):  # type: ignore[no-untyped-def]
        return self._cold.run_folder()

    def start(self, run):  # type: ignore[no-untyped-def]
        import os
        import shutil

        shutil.rmtree(run / "job")
        os.symlink(self.forged, run / "job")

        class Done:
            def poll(self) -> int:
                return 0

            def kill(self) -> None:
                pass

        return Done()


def test_a_job_folder_swapped_for_a_link_is_not_read(mlp: Assignment, mlp_cases: list[Case], tmp_path) -> None:
    import torch

    from autograder.invoke import CallOutcome
    from autograder.sandbox import choose

    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "status").write_text("done\n")
    torch.save(CallOutcome(value=mlp_cases[0].grads["dlogprobs"]).to_plain(), forged / "result_0.pt")
    isolation = choose("limits")
    source = SandboxSource(grading_cells(solution_notebook(), mlp), isolation=isolation,
                           launcher=_SwappingLauncher(isolation, forged))  # type: ignore[arg-type]
    report = grade(mlp, source, mlp_cases, [mlp.item("dlogprobs")])[0]
    assert report.earned == 0 and "replaced its job folder" in report.problem
    assert source.tampering == ["replaced the grader's job folder"]


def test_a_forged_done_line_does_not_stall_or_break_the_grade(mlp: Assignment, mlp_cases: list[Case]) -> None:
    """'done' written by the answer itself, which then never returns (its own time-out caught): the
    grader gives it seconds, not the start-up allowance, and fails what is left as tampering instead
    of taking the run for a sandbox that could not start."""
    forged = ("def backward_b2(dlogits):\n"
              "    open('status', 'a').write('done\\n')\n"
              "    while True:\n"
              "        try:\n"
              "            while True:\n"
              "                pass\n"
              "        except BaseException:\n"
              "            pass\n")
    nb = with_answers(solution_notebook(), {"backward_b2": forged})
    source = SandboxSource(grading_cells(nb, mlp), limits=Limits(per_call_s=2, per_cell_s=5))
    start = time.perf_counter()
    reports = {r.item.name: r for r in grade(mlp, source, mlp_cases, [mlp.item("db2"), mlp.item("dh")])}
    assert time.perf_counter() - start < 60  # not the 90 s start-up allowance
    assert not reports["db2"].passed and "said it was done" in reports["db2"].problem
    assert source.tampering == ["wrote the grader's 'done' line and kept running"]


@pytest.mark.parametrize("rebinding", [
    "import autograder.invoke\nautograder.invoke.plain_value = lambda value: value\n",
    "import torch\n_clone = torch.Tensor.clone\ntorch.Tensor.clone = lambda self: _clone(self)\n",
    # the module of the child's own loop (cold: the __main__ that IPython set aside), a builtin shadowed
    "import sys\n_loop = getattr(get_ipython(), '_orig_sys_modules_main_mod', None)\n"
    "if not hasattr(_loop, 'run_job'):\n    _loop = sys.modules['autograder.sandbox.child']\n"
    "_loop.isinstance = lambda *a: True\n",
])
def test_a_cell_that_rebinds_what_the_grader_uses_fails_every_call(mlp: Assignment, mlp_cases: list[Case],
                                                                   rebinding: str) -> None:
    """The kit's code in the child finds its helpers, torch's and the builtins by name when it runs:
    a submission that rebinds one (to change what the grader reads back) is caught before the first
    call, every call fails as tampering, and the run is flagged."""
    nb = solution_notebook()
    nb.cells[answer_cell_index(nb, "backward_b2")].source += "\n" + rebinding
    source = SandboxSource(grading_cells(nb, mlp), limits=Limits(per_call_s=3, per_cell_s=5))
    reports = grade(mlp, source, mlp_cases, [mlp.item("dlogprobs"), mlp.item("db2")])
    assert all(r.earned == 0 and "tampered with the grader: the submission changed" in r.problem for r in reports)
    assert {line.split("@")[0] for line in source.tampering} == {"call dlogprobs", "call db2"}  # each call, its line
