"""The sandboxed process: runs a submission's cells once, then calls its functions on the grader's inputs.

Started by ``runner.SandboxSource`` inside the isolation of ``isolation.py`` as
``python -m autograder.sandbox.child JOBDIR``. It knows no expected answers: it receives the cells and
the inputs, and writes back each cell's outputs (``cell_<i>.json``) and each call's plain outcome
(``result_<k>.pt``). Before each step it appends a line to ``JOBDIR/status`` so the parent can tell
which step hangs or kills the process.

Order matters: torch and the kit are imported, autograd is switched off, the no-graph mode is pushed
and the interpreter is sealed (``guard``) before the first student line runs.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import torch

from ..harness import bind, load_driver
from ..invoke import CallOutcome, invoke, shortcut_message, time_limit
from .cells import CellRunner
from .guard import Shortcuts, disarm_switches, exclude_autograd_for_good, no_graph_mode, seal_interpreter, trusted_roots
from .integrity import KitState
from .isolation import forbid_new_tasks, hide_in_process

TAMPER_EXIT_CODE = 86


def main(job_dir: str) -> None:
    job = Path(job_dir)
    status = open(job / "status", "a", buffering=1)
    spec = torch.load(job / "job.pt", weights_only=False)  # written by the grader; holds inputs only
    # Gone before any student line runs: it holds every call's inputs, among them the true gradients
    # that later items receive (the answers of earlier ones).
    (job / "job.pt").unlink()
    os.environ["BACKPROP_KIT_SANDBOX"] = "1"  # the kit's notebook helpers skip autograd here
    if spec["hide"]:  # the ``namespaces`` level: cover the course's private paths ourselves
        status.write(f"isolation {hide_in_process(spec['hide'])}\n")
    runner = CellRunner(max_bytes_per_cell=spec["max_output_bytes"])
    # Imported before sealing, like torch: what the notebooks import, so that their set-up (such as
    # matplotlib asking fontconfig for fonts in a subprocess) happens before subprocesses are refused.
    import autograder.assignments
    import matplotlib.pyplot  # noqa: F401

    autograder.assignments.warm_up()

    def on_tamper(reason: str) -> None:
        status.write(f"tamper {reason}\n")
        os._exit(TAMPER_EXIT_CODE)

    # One thread, started now: once sealed, the process may not start threads or processes at all.
    torch.set_num_threads(1)
    torch.ones(2, 2) @ torch.ones(2, 2)
    torch.set_grad_enabled(False)
    no_autograd = exclude_autograd_for_good()  # noqa: F841  (kept alive for the life of the process)
    refusals: list[str] = []  # what the permanent mode refused (held here, out of student code's reach)
    shortcut_calls: list[str] = []  # the forbidden library functions it refused (``Item.shortcuts``)
    # every call's shortcuts looked up now, before any student line runs: a rebinding cannot hide one
    shortcuts = Shortcuts().resolve(name for call in spec["calls"] for name in call.shortcuts)
    # stays on torch's mode stack for the life of the process
    no_graph_mode(refusals.append, shortcuts, shortcut_calls.append).__enter__()
    disarm_switches(on_tamper)
    seal_interpreter(trusted_roots(), on_tamper)
    forbid_new_tasks()
    # The kit's drivers, found now (a cell could rebind their names), and a record of every name the
    # kit's code looks up while a call runs (``integrity``): a submission that changes one fails
    # that call and all later ones as tampering.
    drivers = {call.driver: load_driver(call.driver) for call in spec["calls"] if call.driver}
    kit_state = KitState({"the sandboxed child's main loop": globals()})

    for index, source in spec["cells"]:
        if index in spec["skip_cells"]:
            continue
        status.write(f"cell {index}\n")
        with time_limit(spec["per_cell_s"]):
            try:
                outputs, failed = runner.run(source)
            except TimeoutError as exc:  # raised between IPython's own handlers
                outputs, failed = [{"output_type": "error", "ename": "TimeoutError", "evalue": str(exc),
                                    "traceback": [str(exc)]}], True
        if any(o.get("ename") == "TimeoutError" for o in outputs):
            status.write(f"skip-cell {index}\n")  # not worth re-running after a restart
        if index not in spec["outputs_known"]:
            (job / f"cell_{index}.json").write_text(json.dumps({"outputs": outputs, "failed": failed}))

    namespace = runner.namespace
    hung_items: set[str] = set()
    tampered: str | None = None
    for number, call in enumerate(spec["calls"]):
        key, args, arg_names, watch = call.key, call.args, call.arg_names, call.watch
        status.write(f"call {key}\n")
        fn = bind(call, namespace, drivers)
        item = key.split("@")[0]
        if tampered is None:
            tampered = kit_state.first_change()
        if tampered:
            outcome = _tampered(tampered)
        elif item in hung_items:
            outcome = CallOutcome(error="not run: an earlier case of this item did not finish")
        elif isinstance(fn, str):
            outcome = CallOutcome(error=fn)
        else:
            seen, seen_shortcuts = len(refusals), len(shortcut_calls)
            shortcuts.forbid(call.shortcuts)
            try:
                outcome = invoke(fn, args, arg_names, spec["per_call_s"], namespace, watch)
            except BaseException as exc:  # e.g. SystemExit raised past invoke's own handling
                outcome = CallOutcome(error=f"{type(exc).__name__}: {exc}")
            finally:
                shortcuts.forbid(())
            if len(shortcut_calls) > seen_shortcuts:  # whatever the answer did with the error
                outcome.error = shortcut_message(shortcut_calls[seen_shortcuts])
            if len(refusals) > seen:  # refused by the permanent mode, whatever the answer did with the error
                outcome.used_autograd = True
                outcome.error = f"the answer uses {refusals[seen]}, which this exercise does not allow"
            if outcome.timed_out:
                hung_items.add(item)
            tampered = kit_state.first_change()
            if tampered:
                outcome = _tampered(tampered)
        if tampered:
            status.write(f"tamper call {key}: the submission changed {tampered}\n")
        try:
            torch.save(outcome.to_plain(), job / f"result_{number}.pt")
        except Exception:
            torch.save(CallOutcome(error="the returned value could not be read back by the grader").to_plain(),
                       job / f"result_{number}.pt")
    status.write("done\n")


def _tampered(changed: str) -> CallOutcome:
    return CallOutcome(error=f"tampered with the grader: the submission changed {changed}", used_autograd=True)


def run_job(job_dir: str) -> int:
    """``main``, with what stopped it written to ``child_error.txt`` for the grader; the exit code.
    A cold child runs this as ``__main__``; a warm one right after ``zygote`` forks it."""
    try:
        main(job_dir)
    except BaseException:
        error = traceback.format_exc()
        with open(Path(job_dir) / "child_error.txt", "w") as fh:
            fh.write(error)
        sys.stderr.write(error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_job(sys.argv[1]))
