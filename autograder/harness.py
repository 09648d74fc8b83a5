"""The hidden checks: call the student's functions on the grader's own cases and score each item.

The harness does not care where the student's functions live. A ``FunctionSource`` runs calls and
returns plain outcomes: ``NamespaceSource`` calls functions in the student's kernel (feedback while
working), ``sandbox.SandboxSource`` runs the submitted notebook's code in a separate, limited process
(the grade an instructor records). Expected values always come from the grader's own autograd run,
in this process.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from .checker import CheckResult, compare
from .invoke import CallOutcome, invoke
from .spec import Assignment, Case, Item

PER_CALL_SECONDS = 10.0


@dataclass(frozen=True)
class Call:
    """One call of a student function on one case."""

    key: str
    function: str
    args: tuple[object, ...]
    arg_names: tuple[str | int, ...]
    watch: tuple[str, ...] = ()  # other graded functions whose use is recorded
    driver: str | None = None     # see ``Item.driver``
    uses: tuple[str, ...] = ()
    shortcuts: tuple[str, ...] = ()  # see ``Item.shortcuts``


def bind(call: Call, namespace: Mapping[str, object],
         drivers: Mapping[str, Callable[..., object]] | None = None) -> Callable[..., object] | str:
    """What a call runs, from the student's namespace: their function, or the kit's driver bound to
    the student's objects (``Item.driver``); or, if a name is missing, the message that says so.
    Used alike in the student's kernel and in the sandboxed child, which passes the ``drivers`` it
    loaded before any student code ran."""
    found = []
    for name in (call.function, *call.uses):
        obj = namespace.get(name)
        if not callable(obj):
            return missing_function_message(name)
        found.append(obj)
    if call.driver is None:
        return found[0]
    driver = drivers[call.driver] if drivers is not None else load_driver(call.driver)
    return functools.partial(driver, *found)


def load_driver(path: str) -> Callable[..., object]:
    """A driver named ``"autograder.<module>:<function>"``: only the kit's own code drives a check."""
    module, _, name = path.partition(":")
    if not (module == "autograder" or module.startswith("autograder.")) or not name:
        raise ValueError(f"a driver must be the kit's own function, not {path!r}")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


class FunctionSource(Protocol):
    def run(self, calls: Sequence[Call]) -> dict[str, CallOutcome]: ...


class NamespaceSource:
    """Calls functions found in a namespace (the student's kernel globals). Feedback only: code in
    that process can patch anything, so no grade is recorded from here."""

    def __init__(self, namespace: MutableMapping[str, object], seconds: float = PER_CALL_SECONDS) -> None:
        self.namespace = namespace
        self.seconds = seconds

    def run(self, calls: Sequence[Call]) -> dict[str, CallOutcome]:
        outcomes: dict[str, CallOutcome] = {}
        for call in calls:
            fn = bind(call, self.namespace)
            if isinstance(fn, str):
                outcomes[call.key] = CallOutcome(error=fn)
                continue
            outcomes[call.key] = invoke(fn, call.args, call.arg_names, self.seconds, self.namespace, call.watch,
                                        call.shortcuts)
        return outcomes


def missing_function_message(name: str) -> str:
    return f"the function `{name}` is not defined (run the cell that defines it; keep its name)"


@dataclass
class ItemReport:
    """The verdict on one item: points earned, the checks on the notebook's batch, the first failure."""

    item: Item
    earned: float
    notebook_checks: list[CheckResult] = field(default_factory=list)
    failing_check: CheckResult | None = None
    problem: str | None = None
    hidden_labels: list[str] = field(default_factory=list)  # the hidden cases of other sizes
    random_upstream_labels: list[str] = field(default_factory=list)  # ``upstream.random_upstream_cases``
    called: list[str] = field(default_factory=list)  # other graded functions this answer used
    picture: bytes | None = None  # PNG of where the first wrong check differs (``draw_picture``)

    @property
    def passed(self) -> bool:
        return self.earned == self.item.points

    def draw_picture(self) -> bytes | None:
        """Heatmaps of where the first wrong 2-D (or larger) result differs from autograd's
        (``picture.difference_png``), drawn once; None when the failure is not such a result."""
        check = self.failing_check
        if self.picture is None and not self.passed and check is not None and check.tensors is not None:
            from .picture import difference_png

            received, expected = check.tensors
            self.picture = difference_png(check.name, received, expected, check.tolerance)
        return self.picture

    def text(self) -> str:
        """The feedback a student reads under the item's check cell."""
        lines = [str(check) for check in self.notebook_checks]
        if self.passed:
            # Hidden sizes are drawn anew for each run: naming them here would only make outputs churn.
            random = len(self.random_upstream_labels)
            also = f" and {random} with a random upstream gradient" if random else ""
            lines.append(f"{'hidden checks':<20} | passed on {len(self.hidden_labels)} hidden cases of other "
                         f"sizes{also}; inputs left unchanged; no autograd")
        else:
            if self.problem:
                lines.append(f"{'problem':<20} | {self.problem}")
            if self.failing_check is not None and self.failing_check not in self.notebook_checks:
                lines.append(str(self.failing_check))
            if self.item.hint:
                lines.append(f"{'remember':<20} | {self.item.hint}")
        lines.append(f"{'score':<20} | {self.earned:g} / {self.item.points:g}")
        return "\n".join(lines)

    def verdict(self) -> str:
        """One short line for a summary table."""
        if self.passed:
            return "ok"
        if self.problem:
            return self.problem
        return self.failing_check.row() if self.failing_check else "failed"


class _Unsupported:
    """Stands for a return value that is neither a tensor nor a dict of tensors."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def _received(value: object) -> object:
    if isinstance(value, dict) and "__unsupported__" in value:
        return type(str(value["__unsupported__"]), (_Unsupported,), {})(str(value["__unsupported__"]))
    return value


def _call_key(item: Item, case_index: int) -> str:
    return f"{item.name}@{case_index}"


def plan_calls(items: Sequence[Item], cases: Sequence[Case], graded_functions: Sequence[str] = ()) -> list[Call]:
    """One call per item and case, in an order where no item is called after an item that was given
    its answer: the process a sandboxed answer runs in lives for the whole submission, and an answer
    must not be able to keep the true gradients that earlier items received and replay them
    (``cross_entropy_backward`` returning the ``dlogits`` that ``backward_h`` was given)."""
    items = answers_before_they_are_given(items, cases[0]) if cases else list(items)
    return [Call(key=_call_key(item, i), function=item.function,
                 args=tuple(case.resolve(a) for a in item.args), arg_names=item.args,
                 watch=tuple(f for f in graded_functions if f != item.function),
                 driver=item.driver, uses=item.uses, shortcuts=item.shortcuts)
            for item in items for i, case in enumerate(cases) if case.checks(item)]


def answers_before_they_are_given(items: Sequence[Item], case: Case) -> list[Item]:
    """``items`` in an order that reveals true gradients as late as possible: never an item after one
    that was given its answer, and among the items that may go next, the one that reveals the fewest
    gradients not yet given (so a one-formula exercise such as ``batchnorm_backward`` runs before the
    step-by-step items that receive the intermediates it must derive); declared order breaks ties."""
    def expected_names(item: Item) -> set[str]:
        expected = item.expected_for(case)
        tensors = list(expected.values()) if isinstance(expected, Mapping) else [expected]
        return {name for name, grad in case.grads.items() for t in tensors
                if grad is t or (isinstance(t, Tensor) and grad.shape == t.shape and bool(torch.equal(grad, t)))}

    def gradients_given(item: Item) -> set[str]:
        # true gradients, and anything that is not a forward value (the GRU's step oracle holds some)
        return {a for a in item.args if isinstance(a, str)
                and (a in case.grads or not isinstance(case.values.get(a), (Tensor, dict)) and a not in ("f",))}

    answers = {item.name: expected_names(item) for item in items}
    order = {item.name: index for index, item in enumerate(items)}
    remaining, ordered, revealed = list(items), [], set()
    while remaining:
        ready = [item for item in remaining
                 if not any(answers[other.name] & gradients_given(item) for other in remaining if other is not item)]
        chosen = min(ready or remaining, key=lambda i: (len(gradients_given(i) - revealed), order[i.name]))
        ordered.append(chosen)
        remaining.remove(chosen)
        revealed |= gradients_given(chosen)
    return ordered


def _select_output(item: Item, value: object) -> object:
    """The element of a returned tuple that ``item`` checks (returned tuples arrive as lists)."""
    if item.output is None:
        return value
    if isinstance(item.output, str):
        if isinstance(value, dict) and "__unsupported__" not in value:
            if item.output not in value:
                keys = ", ".join(repr(k) for k in value) or "none"
                return _Wrong(f"the returned dict has no key {item.output!r} (its keys: {keys})")
            return value[item.output]
        return _Wrong(f"expected the function to return a dict of tensors (this item checks "
                      f"{item.output!r}), received {_describe(value)}")
    if isinstance(value, list) and len(value) > item.output:
        return value[item.output]
    return _Wrong(f"expected the function to return a tuple of tensors (this item checks element "
                  f"{item.output}), received {_describe(value)}")


class _Wrong:
    """A return value of the wrong form, with the sentence that says so."""

    def __init__(self, message: str) -> None:
        self.message = message


def _describe(value: object) -> str:
    if isinstance(value, list):
        return f"a tuple of {len(value)}"
    if isinstance(value, dict) and "__unsupported__" in value:
        return f"a {value['__unsupported__']}"
    return f"a {type(value).__name__}"


def _check_case(item: Item, case: Case, value: object) -> list[CheckResult]:
    expected = item.expected_for(case)
    selected = _select_output(item, value)
    if isinstance(selected, _Wrong):
        return [CheckResult(name=item.name, passed=False, problem=selected.message)]
    received = _received(selected)
    if isinstance(expected, Mapping):
        if not isinstance(received, Mapping):
            return [compare(item.name, received, next(iter(expected.values())), item.tolerance, item.mistakes, case)]
        return [_missing_key(f"{item.name}[{key}]", key, received) if key not in received
                else compare(f"{item.name}[{key}]", received[key], ref, item.tolerance, item.mistakes, case, key)
                for key, ref in expected.items()]
    return [compare(item.name, received, expected, item.tolerance, item.mistakes, case)]


def _missing_key(name: str, key: str, received: Mapping[str, object]) -> CheckResult:
    keys = ", ".join(repr(k) for k in received) or "none"
    return CheckResult(name=name, passed=False, problem=f"the returned dict has no key {key!r} (its keys: {keys})")


def score_item(item: Item, cases: Sequence[Case], outcomes: Mapping[str, CallOutcome]) -> ItemReport:
    """All cases that check the item must pass for its points; the report explains the first failure."""
    report = ItemReport(item=item, earned=0.0,
                        hidden_labels=[c.label for c in cases[1:] if c.checks(item) and not c.random_upstream],
                        random_upstream_labels=[c.label for c in cases if c.checks(item) and c.random_upstream])
    for index, case in enumerate(cases):
        if not case.checks(item):
            continue
        outcome = outcomes.get(_call_key(item, index)) or CallOutcome(error="no result came back")
        report.called = sorted(set(report.called) | set(outcome.called))
        where = "on the notebook's batch" if index == 0 else f"on the {case.label}"
        if outcome.error:
            report.problem = f"{where}: {outcome.error}"
        elif outcome.mutated:
            report.problem = (f"{where}: the function changed its input {', '.join(outcome.mutated)} in place; "
                              "start from a copy (`x.clone()`) before using `+=` or indexing assignments")
        else:
            checks = _check_case(item, case, outcome.value)
            if index == 0:
                report.notebook_checks = checks
            report.failing_check = next((c for c in checks if not c.passed), None)
        if report.problem or report.failing_check:
            if index > 0:
                note = _hidden_note(case, where)
                report.problem = f"{note} ({report.problem})" if report.problem else note
            return report
    report.earned = item.points
    return report


def _hidden_note(case: Case, where: str) -> str:
    """What is known when the notebook's batch passed and a hidden case did not."""
    if case.random_upstream:
        return (f"right for the true upstream gradient but not {where}: the function must work for any "
                "gradient it receives, not only for the one the loss gives (where the answer may happen to "
                "be zero or simple)")
    return (f"right on the notebook's batch but not {where}, which has other sizes and values: a size or a "
            "value taken from the notebook instead of from the function's arguments fails there")


def grade(assignment: Assignment, source: FunctionSource, cases: Sequence[Case],
          items: Sequence[Item] | None = None) -> list[ItemReport]:
    """Score ``items`` (default: all) of ``assignment`` with functions from ``source``."""
    chosen = list(items if items is not None else assignment.items)
    all_functions = [i.function for i in assignment.items]
    outcomes = source.run(plan_calls(chosen, cases, all_functions))
    reports = [score_item(item, cases, outcomes) for item in chosen]
    _name_failing_helpers(assignment, reports, source, cases)
    return reports


def _name_failing_helpers(assignment: Assignment, reports: list[ItemReport], source: FunctionSource,
                          cases: Sequence[Case]) -> None:
    """When a failing answer called other graded functions that are wrong themselves, say so: the
    mistake to fix is in the helper. A function checked at several places (a layer used twice, a
    tuple's elements) is wrong if any of its items fails, and the note names those items. Items not
    graded in this run are graded here to find out."""
    items_of: dict[str, list[Item]] = {}
    for item in assignment.items:
        items_of.setdefault(item.function, []).append(item)
    passed = {r.item.name: r.passed for r in reports}
    needed = list({i.name: i for r in reports if not r.passed for f in r.called
                   for i in items_of.get(f, []) if i.name not in passed}.values())
    if needed:
        outcomes = source.run(plan_calls(needed, cases, list(items_of)))
        passed.update({item.name: score_item(item, cases, outcomes).passed for item in needed})
    for report in reports:
        if report.passed:
            continue
        broken = [i.name for f in report.called for i in items_of.get(f, []) if not passed.get(i.name, True)]
        if broken:
            note = (f"`{report.item.function}` calls functions whose own items fail ({', '.join(broken)}): "
                    "fix those first")
            report.problem = f"{report.problem}; {note}" if report.problem else note


def summary(assignment: Assignment, reports: Sequence[ItemReport]) -> str:
    """A table of every item with its points, and the first wrong step in backward order."""
    lines = [f"{assignment.title}", f"{'item':<20} {'points':>9}  verdict"]
    for r in reports:
        lines.append(f"{r.item.name:<20} {r.earned:>4g} / {r.item.points:<3g} {r.verdict()[:110]}")
    earned = sum(r.earned for r in reports)
    total = sum(r.item.points for r in reports)
    lines.append(f"{'total':<20} {earned:>4g} / {total:<3g}")
    first_wrong = next((r for r in reports if not r.passed), None)
    if first_wrong is not None:
        lines.append(f"first wrong step: {first_wrong.item.name} (exercise {first_wrong.item.exercise}); "
                     "each later item was checked with the true upstream gradient, so fix them one by one.")
    return "\n".join(lines)
