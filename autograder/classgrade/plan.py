"""One submission's sandboxed grading, as a value: what it depends on (``GradingPlan``) and what it
found (``Verdicts``), both plain enough to send to a grading worker and back.

``nbgrader autograde`` (``nbgrader_plugin.SandboxedGrading``) makes a plan from the sanitized
notebook and runs it on the spot. ``backprop-kit grade`` makes the same plan on the coordinator, runs
it on a Dask worker, and hands the verdicts to nbgrader's own autograde run (``precomputed``), which
then records exactly what it would have recorded had it run the plan itself: the plan's key covers
every input, so a verdict is only ever used for the run it was computed for.

A plan holds no course secret: only the seed the student's hidden cases are drawn from.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..assignments import load
from ..harness import ItemReport, grade
from ..hidden_cases import course_seed, seeded_rng
from ..sandbox import Limits, SandboxSource
from ..sandbox.launch import Launcher


@dataclass(frozen=True)
class GradingPlan:
    assignment_id: str
    student: str
    cells: tuple[tuple[int, str], ...]   # (notebook index, source), in the order they run
    items: tuple[str, ...]               # the items whose check cells the notebook has
    case_seed: int                       # course_seed(secret, assignment, student)
    hide: tuple[str, ...]
    limits: Limits
    require: str

    @classmethod
    def make(cls, assignment_id: str, student: str, cells: list[tuple[int, str]], items: list[str], secret: str,
             hide: list[str], limits: Limits, require: str) -> GradingPlan:
        return cls(assignment_id, student, tuple((i, s) for i, s in cells), tuple(items),
                   course_seed(secret, assignment_id, student), tuple(hide), limits, require)

    @property
    def key(self) -> str:
        """A digest of every input: equal keys, equal verdicts."""
        return hashlib.sha256(repr(dataclasses.astuple(self)).encode()).hexdigest()

    def run(self, launcher: Launcher | None = None) -> Verdicts:
        assignment = load(self.assignment_id)
        chosen = [item for item in assignment.items if item.name in self.items]
        source = SandboxSource(list(self.cells), hide=list(self.hide), limits=self.limits, require=self.require,
                               launcher=launcher)
        cases = assignment.make_cases(seeded_rng(self.case_seed))
        reports = grade(assignment, source, cases, chosen)
        for report in reports:  # drawn here, on the worker, not by the single process that records grades
            report.draw_picture()
        return Verdicts(self.key, self.assignment_id, reports, source)


@dataclass
class Verdicts:
    """The trusted outcome of one plan: each item's report, and what the sandbox saw (cell outputs,
    tampering, the isolation it had). Pickles without the assignment's functions: reports travel
    with their item's name and are joined to the item again on arrival."""

    key: str
    assignment_id: str
    reports: list[ItemReport]
    source: SandboxSource
    timings: dict[str, float] = field(default_factory=dict)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["reports"] = [(r.item.name, {f.name: getattr(r, f.name) for f in dataclasses.fields(r)
                                           if f.name != "item"}) for r in self.reports]
        state["source"] = dataclasses.replace(self.source, launcher=None)
        return state

    def __setstate__(self, state: dict) -> None:
        items = {item.name: item for item in load(state["assignment_id"]).items}
        state["reports"] = [ItemReport(item=items[name], **fields) for name, fields in state["reports"]]
        self.__dict__.update(state)


# What ``backprop-kit grade`` hands to the nbgrader autograde run it is about to make in this process:
# verdicts computed on workers, by plan key, and the checksum to store with the grade.
_PRECOMPUTED: dict[str, Verdicts] = {}
_CHECKSUM: list[str] = []


@contextmanager
def recording(checksum: str, verdicts: list[Verdicts]) -> Iterator[list[Verdicts]]:
    """For the length of one nbgrader autograde run: these verdicts stand in for running their plans,
    and the grade is stored with ``checksum``. Yields the verdicts that were not used (a plan the
    real run did not make: it then ran that plan itself)."""
    _PRECOMPUTED.clear()
    _PRECOMPUTED.update({v.key: v for v in verdicts})
    _CHECKSUM[:] = [checksum]
    unused: list[Verdicts] = []
    try:
        yield unused
    finally:
        unused.extend(_PRECOMPUTED.values())
        _PRECOMPUTED.clear()
        _CHECKSUM.clear()


def take_precomputed(plan: GradingPlan) -> Verdicts | None:
    """The verdicts computed for exactly this plan, if any (each is used once)."""
    return _PRECOMPUTED.pop(plan.key, None)


def recording_checksum() -> str | None:
    return _CHECKSUM[0] if _CHECKSUM else None
