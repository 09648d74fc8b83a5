"""What an assignment declares: its graded items and how to make the grader's own inputs.

An assignment is one module in ``autograder/assignments/`` exposing ``ASSIGNMENT``. Its items are
the gradients a student writes; each names the student's function, the inputs it receives, its
points and (optionally) a tolerance, all in one declaration.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import Tensor

from .tolerances import Tolerance

if TYPE_CHECKING:
    from .mistakes import Mistake


@dataclass(frozen=True)
class Case:
    """One set of inputs made by the grader: a seed and sizes, run through the trusted forward pass.

    ``values`` holds everything a student function may receive (data, parameters, forward
    intermediates, and structured bundles such as a forward namespace); ``grads`` holds autograd's
    gradient of every tensor, keyed ``"d" + name``.
    """

    label: str
    values: Mapping[str, object]
    grads: Mapping[str, Tensor]
    # A case made for some items only (a random-upstream case, or one where batchnorm's eps shows);
    # None: every item is checked on it.
    items: frozenset[str] | None = None
    # In a random-upstream case (``upstream.py``), the forward tensors whose gradients are random.
    random_upstream: tuple[str, ...] = ()

    def checks(self, item: "Item") -> bool:
        return self.items is None or item.name in self.items

    def resolve(self, name: str | int) -> object:
        """An argument by name: a true upstream gradient if it is one, else a forward value."""
        if not isinstance(name, str):
            return name
        if name in self.grads:
            return self.grads[name]
        if name in self.values:
            return self.values[name]
        raise KeyError(f"case {self.label!r} has no value or gradient named {name!r}")


Expected = Tensor | Mapping[str, Tensor]


@dataclass(frozen=True)
class Item:
    """One graded gradient (or a small group returned as a dict).

    ``name`` is also the ``grade_id`` of the notebook cell that checks it. By default the expected
    answer is autograd's gradient ``case.grads[name]``; ``expected`` overrides that.
    """

    name: str
    function: str
    args: tuple[str | int, ...]  # names resolved from the case; ints (a stride, a padding) passed as they are
    points: float
    exercise: int
    tolerance: Tolerance | None = None
    hint: str | None = None  # shown whenever this item fails
    expected: Callable[[Case], Expected] | None = None
    output: int | str | None = None  # the function returns a tuple (dict); this item checks that element (key)
    # An exercise that is a class (micrograd's ``Value``), not a tensor function: the kit's ``driver``
    # ("module:function", kit code) is called as ``driver(student object, *used objects, *args)`` in
    # place of the student's function, builds what it checks from the student's objects, and returns
    # tensors. ``uses`` names further student objects it needs (the ``MLP`` a ``train`` loop trains).
    driver: str | None = None
    uses: tuple[str, ...] = ()
    # Wrong answers students give here, each with the hint shown when it reproduces what was received.
    mistakes: tuple["Mistake", ...] = ()
    # Library functions this exercise asks the student to write (``"torch.nn.functional.unfold"``,
    # ``"torch.Tensor.unfold"``, ``"aten::im2col"``): an answer that calls one scores zero on the item,
    # with a message saying so (``sandbox.guard.Shortcuts``).
    shortcuts: tuple[str, ...] = ()

    def expected_for(self, case: Case) -> Expected:
        return self.expected(case) if self.expected is not None else case.grads[self.name]


def with_mistakes(items: tuple[Item, ...], mistakes: Mapping[str, tuple["Mistake", ...]]) -> tuple[Item, ...]:
    """``items``, each with the known mistakes listed under its name (every name must be an item's)."""
    unknown = set(mistakes) - {item.name for item in items}
    if unknown:
        raise KeyError(f"mistakes declared for items that do not exist: {sorted(unknown)}")
    return tuple(dataclasses.replace(item, mistakes=item.mistakes + tuple(mistakes.get(item.name, ())))
                 for item in items)


@dataclass(frozen=True)
class Assignment:
    """Everything the grader knows about one assignment.

    ``make_cases(rng)`` returns the notebook's own batch first (public: the rows a student sees),
    then ``hidden_cases.HIDDEN_CASES`` cases whose seeds and sizes are drawn from ``rng``, so no
    answer can be computed ahead of grading (see ``hidden_cases``).
    """

    id: str
    title: str
    items: tuple[Item, ...]
    make_cases: Callable[[random.Random], list[Case]]
    # Cells with this tag are demonstrations (training, plots, sampling) that the grader skips.
    skip_tag: str = "grader-skip"
    samples: tuple["Sample", ...] = field(default=())
    # Inclusive (low, high) of each size a hidden case draws, by Config field: for docs and tests.
    hidden_size_ranges: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # Names the static review (``static_review``) does not flag in this assignment's answers: in
    # micrograd, writing ``backward`` and ``_backward`` is the exercise itself.
    review_allows: frozenset[str] = frozenset()

    def item(self, name: str) -> Item:
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(f"assignment {self.id!r} has no item {name!r}; items: {[i.name for i in self.items]}")

    @property
    def total_points(self) -> float:
        return sum(i.points for i in self.items)


@dataclass(frozen=True)
class Sample:
    """A bundled sample submission, made from the solution notebook by replacing some answers.

    ``replace`` maps a function name to the code of its whole answer cell. ``corrupt`` writes a
    notebook that is not valid JSON. ``expected_zero`` lists items the sample must score zero on.
    """

    student: str
    description: str
    base: str = "solution"  # "solution" or "release"
    replace: Mapping[str, str] = field(default_factory=dict)
    corrupt: bool = False
    expected_zero: tuple[str, ...] = ()


def with_standard_samples(items: tuple[Item, ...], *specific: Sample) -> tuple[Sample, ...]:
    """Every assignment's bundled samples: the full solution, the untouched release, the assignment's
    own ``specific`` ones (partly right, cheating), and a notebook file that is not valid JSON."""
    everything = tuple(i.name for i in items)
    return (Sample("sample-solution", "the full solution", base="solution"),
            Sample("sample-release", "the untouched release: nothing answered", base="release",
                   expected_zero=everything),
            *specific,
            Sample("sample-broken", "a notebook file that is not valid JSON (cut off mid-way)", corrupt=True,
                   expected_zero=everything))
