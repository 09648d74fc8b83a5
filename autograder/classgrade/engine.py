"""``backprop-kit grade``: every submission of a course, graded on Dask workers, recorded by nbgrader.

The coordinator (this process) is the only writer:

1. it lists the course's submissions and skips those whose grade is stored with their current
   checksum (unless ``force``);
2. for each other one it makes the sandboxed runs' plans (nbgrader's autograde stopped after
   sanitizing; no writes) and sends them to the workers as it goes;
3. as verdicts come back it runs nbgrader's own autograde for that student, in this process, with the
   verdicts standing in for the sandboxed run (``plan.recording``): nbgrader writes the gradebook and
   the ``autograded/`` notebook exactly as ``nbgrader autograde`` would, one submission at a time
   (SQLite takes one writer; PostgreSQL works the same way).

Ctrl-C is held while a grade is being written: the current one is finished, nothing else is
started, and a re-run picks up where this one stopped. A submission that cannot be graded (a broken
worker, a notebook nbgrader refuses) gets its reason in the table; the others go on.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from distributed import Client, LocalCluster, as_completed
from sqlalchemy.exc import SAWarning
from tqdm import tqdm

from ..sandbox import choose
from .course import Course, Submission
from .memory import PeakMemory
from .plan import GradingPlan, Verdicts, recording
from .worker import WarmWorker, grade_on_worker


@dataclass
class Outcome:
    submission: Submission
    status: str              # graded | unchanged | failed | interrupted
    reason: str = ""
    worker_seconds: float = 0.0   # the sandboxed runs and comparisons, on a worker
    record_seconds: float = 0.0   # nbgrader's autograde writing the grade, in the coordinator
    worker: tuple[int, int] = (0, 0)  # (worker pid, zygotes that worker had started by then)


Finish = Callable[["Outcome"], None]  # records an outcome in the run and moves the progress bar


@dataclass
class ClassRun:
    course: Course
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0
    peak_worker_bytes: int = 0   # the largest worker's process tree (its sandboxes included)
    peak_total_bytes: int = 0    # this process, the scheduler and every worker, together
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def zygote_starts(self) -> int:
        """Warm sandbox processes started over the run (one per worker, plus any restarted)."""
        latest: dict[int, int] = {}
        for pid, starts in (o.worker for o in self.outcomes if o.worker[0]):
            latest[pid] = max(latest.get(pid, 0), starts)
        return sum(latest.values())


class _Interrupt:
    """SIGINT sets a flag instead of raising, so no grade is ever half-written. A second Ctrl-C
    stops at once unless a grade is being written (a hung worker must not hold the terminal)."""

    def __init__(self) -> None:
        self.requested = False
        self.writing = False

    @contextmanager
    def held(self) -> Iterator[None]:
        def ask(signum: int, frame: object) -> None:
            if self.requested and not self.writing:
                raise KeyboardInterrupt
            if not self.requested:
                print("\ninterrupted: finishing the grade being written, then stopping "
                      "(run the same command again to go on)", file=sys.stderr)
            self.requested = True

        previous = signal.signal(signal.SIGINT, ask)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def _client(workers: int, scheduler: str | None) -> Iterator[Client]:
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    # One single-threaded worker process per core; Dask's own memory manager is off (the sandbox has
    # its own limits, and a worker must not be paused or restarted mid-grade for its children's use).
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0, silence_logs=40) as cluster, Client(cluster) as client:
        yield client


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _nbgrader_error(result: dict) -> str:
    lines = [ln for ln in (result.get("error") or result.get("log") or "").splitlines() if ln.strip()]
    errors = [ln for ln in (result.get("log") or "").splitlines() if ln.startswith("[ERROR]")]
    return (errors[-1] if errors else lines[-1] if lines else "nbgrader autograde failed")[:300]


def record(course: Course, sub: Submission, verdicts: list[Verdicts]) -> str | None:
    """nbgrader's autograde of one submission, in this process, with the workers' verdicts; an error
    text if nbgrader did not record the grade."""
    with recording(sub.checksum, verdicts) as unused, warnings.catch_warnings():
        # nbgrader's own SQLAlchemy 2 autoflush notices (also printed by `nbgrader autograde`): harmless
        warnings.simplefilter("ignore", SAWarning)
        result = course.api.autograde(sub.assignment_id, sub.student, force=True, create=True)
    if not result.get("success"):
        return _nbgrader_error(result)
    if unused:  # cannot happen unless the gradebook changed between planning and recording
        print(f"note: {sub.label}: the sandboxed run was repeated while recording (the notebook nbgrader "
              "saw differed from the one planned)", file=sys.stderr)
    return None


def grade_course(root: Path, assignment_ids: list[str] | None = None, workers: int | None = None,
                 scheduler: str | None = None, force: bool = False, progress: TextIO | None = sys.stderr
                 ) -> ClassRun:
    started = time.perf_counter()
    course = Course(root)
    known = course.assignments()
    chosen = assignment_ids or known
    unknown = [a for a in chosen if a not in known]
    if unknown:
        raise ValueError(f"not in the course's gradebook: {', '.join(unknown)} (known: {', '.join(known) or 'none'}; "
                         "run `nbgrader generate_assignment` first)")
    run = ClassRun(course)
    submissions = [sub for aid in chosen for sub in course.submissions(aid)]
    todo: list[Submission] = []
    for sub in submissions:
        if not force and course.recorded_checksum(sub) == sub.checksum:
            run.outcomes.append(Outcome(sub, "unchanged"))
        else:
            todo.append(sub)
    if not todo:
        run.seconds = time.perf_counter() - started
        return run
    choose(course.grading.require_isolation)  # fail closed before starting anything
    interrupt = _Interrupt()
    bar = tqdm(total=len(todo), unit="submission", file=progress, disable=progress is None, dynamic_ncols=True,
               desc="grading", mininterval=0.5)
    failed = 0

    def finish(outcome: Outcome) -> None:
        nonlocal failed
        run.outcomes.append(outcome)
        failed += outcome.status == "failed"
        bar.set_postfix_str(f"{failed} failed" if failed else "", refresh=False)
        bar.update(1)

    def planned() -> Iterator[tuple[Submission, list[GradingPlan]]]:
        """Each submission's plans, made as the workers need them (no writes); a submission with
        nothing to run in a sandbox (an unreadable notebook) is recorded on the way."""
        for sub in todo:
            if interrupt.requested:
                return
            if sub.problem:
                finish(Outcome(sub, "failed", sub.problem))
                continue
            try:
                plans = course.plans(sub)
            except Exception as exc:  # nbgrader could not read the submission's folder
                finish(Outcome(sub, "failed", f"could not prepare: {_reason(exc)}"))
                continue
            if plans:
                yield sub, plans
            else:
                _record_now(course, sub, [], finish, interrupt)

    with interrupt.held():
        stream = planned()
        first = next(stream, None)  # a run where nothing needs a sandbox starts no cluster
        if first is not None and not interrupt.requested:
            run.workers = workers or os.cpu_count() or 1
            _grade_on_cluster(run, course, itertools.chain([first], stream), scheduler, finish, interrupt)
    bar.close()
    graded = {o.submission.label for o in run.outcomes}
    run.interrupted = interrupt.requested
    for sub in todo:
        if sub.label not in graded:
            run.outcomes.append(Outcome(sub, "interrupted", "not graded: the run was interrupted"))
    run.seconds = time.perf_counter() - started
    return run


def _grade_on_cluster(run: ClassRun, course: Course, planned: Iterator[tuple[Submission, list[GradingPlan]]],
                      scheduler: str | None, finish: Finish, interrupt: _Interrupt) -> None:
    """Plans out to the workers as they are made, verdicts recorded here as they come back."""
    with _client(run.workers, scheduler) as client:
        client.register_plugin(WarmWorker(course.grading.require_isolation, list(course.grading.hide),
                                          course.grading.limits()))
        worker_pids = {f"worker {i}": int(pid) for i, pid in enumerate(client.run(os.getpid).values())}
        run.workers = len(worker_pids)
        with PeakMemory({"all": os.getpid(), **worker_pids}) as memory:
            pending = as_completed()
            waiting: dict[str, tuple[Submission, int, list[Verdicts]]] = {}  # by submission label
            labels: dict[str, str] = {}  # future key -> submission label
            for sub, plans in planned:
                waiting[sub.label] = (sub, len(plans), [])
                for number, plan in enumerate(plans):
                    future = client.submit(grade_on_worker, plan, pure=False,
                                           key=f"grade-{sub.label}-{number}-{plan.key[:12]}")
                    labels[future.key] = sub.label
                    pending.add(future)
                _drain(course, pending, waiting, labels, finish, interrupt, block=False)
            _drain(course, pending, waiting, labels, finish, interrupt, block=True)
            for future in list(pending.futures):
                future.cancel()
        run.peak_worker_bytes = max((memory.peaks[name] for name in worker_pids), default=0)
        run.peak_total_bytes = memory.peaks["all"]


def _record_now(course: Course, sub: Submission, verdicts: list[Verdicts], finish: Finish,
                interrupt: _Interrupt) -> None:
    start = time.perf_counter()
    interrupt.writing = True
    try:
        error = record(course, sub, verdicts)
    except Exception as exc:
        error = f"recording failed: {_reason(exc)}\n{traceback.format_exc(limit=3)}"[:500]
    finally:
        interrupt.writing = False
    seconds = sum(v.timings.get("worker_seconds", 0.0) for v in verdicts)
    recorded = time.perf_counter() - start
    worker = max(((int(v.timings.get("worker_pid", 0)), int(v.timings.get("zygote_starts", 0))) for v in verdicts),
                 default=(0, 0))
    finish(Outcome(sub, "failed" if error else "graded", error or "", seconds, recorded, worker))


def _drain(course: Course, pending: as_completed, waiting: dict[str, tuple[Submission, int, list[Verdicts]]],
           labels: dict[str, str], finish: Finish, interrupt: _Interrupt, block: bool) -> None:
    """Record every submission whose verdicts are all back; with ``block``, until none is left."""
    while not pending.is_empty():
        if interrupt.requested:
            return
        if not pending.has_ready():
            if not block:
                return
            time.sleep(0.05)
            continue
        for future in pending.next_batch(block=False):
            label = labels.pop(future.key)
            if label not in waiting:  # another notebook of this submission failed already
                continue
            sub, expected, verdicts = waiting[label]
            try:
                verdicts.append(future.result())  # raises what the worker raised, or why it is gone
            except Exception as exc:  # one submission's failure (even a sandbox that would not start)
                waiting.pop(label)
                finish(Outcome(sub, "failed", f"the grading worker failed: {_reason(exc)}"))
                continue
            if len(verdicts) == expected:
                waiting.pop(label)
                _record_now(course, sub, verdicts, finish, interrupt)
            if interrupt.requested:
                return
