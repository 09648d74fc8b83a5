"""Hidden cases are drawn at grading time: reproducible per student under the course secret, different
between students, within each assignment's declared ranges, and never computable at home."""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import asdict, fields, is_dataclass
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import Tensor

from autograder.assignments import assignment_ids, load
from autograder.harness import NamespaceSource, grade
from autograder.hidden_cases import (HIDDEN_CASES, SEED_LIMIT, course_rng, draw_distinct, draw_seed,
                                     fresh_rng)
from autograder.spec import Assignment, Case

from conftest import namespace_of, solution_notebook

SECRET = "a course secret"
DRAWS = 200  # hidden configs drawn per assignment (sizes only: cheap)

# Every axis size of a case, restated here rather than read from the modules: the drawn sizes plus
# the ones computed from them, and the vocabulary. They must all differ within a case.
AXES: dict[str, Callable[[Any], list[int]]] = {
    "mlp_backprop": lambda c: [c.block_size, c.n_embd, c.n_hidden, c.batch_size, c.block_size * c.n_embd, 27],
    "cnn_backprop": lambda c: [c.batch_size, c.context, c.n_embd, c.h1, c.h2, (c.context + 1) // 2,
                               3 * c.n_embd, 3 * c.h1, 9],
    "gru_backprop": lambda c: [c.batch_size, c.context, c.n_embd, c.hidden, 3 * c.hidden, 27],
    "micrograd": lambda c: [c.n_inputs, c.hidden1, c.hidden2, c.n_examples, c.chain, c.steps],
    "gpt_backprop": lambda c: [c.batch_size, c.context, c.n_head, c.head_size, c.n_head * c.head_size,
                               3 * c.n_head * c.head_size, 4 * c.n_head * c.head_size, 27],
}


def module_of(aid: str) -> ModuleType:
    return importlib.import_module(f"autograder.assignments.{aid}")


def tensors(case: Case) -> dict[str, Tensor]:
    """Every input and reference gradient of a case, by path (into dicts, lists and dataclasses:
    micrograd's inputs are graphs and network specs)."""
    named: dict[str, Tensor] = {}

    def walk(path: str, value: object) -> None:
        if isinstance(value, Tensor):
            named[path] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{path}[{k}]", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{path}[{i}]", v)
        elif is_dataclass(value) and not isinstance(value, type):
            for f in fields(value):
                walk(f"{path}.{f.name}", getattr(value, f.name))

    for k, v in case.values.items():
        if k != "f":  # a forward pass (f) repeats the tensors named beside it
            walk(k, v)
    return {**named, **{f"grad:{k}": v for k, v in case.grads.items()}}


def same_tensors(a: Case, b: Case) -> bool:
    ta, tb = tensors(a), tensors(b)
    return ta.keys() == tb.keys() and all(ta[k].shape == tb[k].shape and torch.equal(ta[k], tb[k]) for k in ta)


# ---------------------------------------------------------------- the random sources


def test_course_rng_is_a_function_of_secret_assignment_and_student() -> None:
    def draws(secret: str, aid: str, student: str) -> list[int]:
        rng = course_rng(secret, aid, student)
        return [draw_seed(rng) for _ in range(4)]

    alice = draws(SECRET, "mlp_backprop", "alice")
    assert draws(SECRET, "mlp_backprop", "alice") == alice
    assert draws(SECRET, "mlp_backprop", "bob") != alice
    assert draws("another secret", "mlp_backprop", "alice") != alice
    assert draws(SECRET, "cnn_backprop", "alice") != alice
    # the separator keeps the fields apart: ("ab", "c") is not ("a", "bc")
    assert draws(SECRET, "ab", "c") != draws(SECRET, "a", "bc")
    assert all(0 <= s < SEED_LIMIT for s in alice)


def test_fresh_rng_differs_every_time() -> None:
    assert len({draw_seed(fresh_rng()) for _ in range(8)}) == 8


def test_draw_distinct_respects_ranges_forbidden_derived_unlike_and_accept() -> None:
    ranges = {"a": (1, 6), "b": (1, 6), "c": (2, 9)}
    notebook = {"a": 1, "b": 2, "c": 3}
    for k in range(DRAWS):
        sizes = draw_distinct(random.Random(k), ranges, forbidden=(4,), derived=lambda s: {"2a": 2 * s["a"]},
                              unlike=[notebook], accept=lambda s: s["c"] % 2 == 1)
        every = [*sizes.values(), 2 * sizes["a"]]
        assert all(low <= sizes[name] <= high for name, (low, high) in ranges.items())
        assert len(set(every)) == len(every) and 4 not in every
        assert all(sizes[name] != notebook[name] for name in ranges) and sizes["c"] % 2 == 1


def test_draw_distinct_refuses_ranges_that_cannot_differ() -> None:
    with pytest.raises(ValueError, match="widen the ranges"):
        draw_distinct(random.Random(0), {"a": (3, 4), "b": (3, 4), "c": (3, 4)})


# ---------------------------------------------------------------- each assignment's drawn sizes


@pytest.mark.parametrize("aid", assignment_ids())
def test_drawn_sizes_are_in_range_distinct_and_unlike_the_notebook(aid: str) -> None:
    module, assignment = module_of(aid), load(aid)
    ranges = assignment.hidden_size_ranges
    notebook = asdict(module.NOTEBOOK_CONFIG)
    assert set(AXES) == set(assignment_ids()) and ranges
    seen: set[tuple[int, ...]] = set()
    for k in range(DRAWS):
        configs = module.hidden_configs(random.Random(k))
        assert len(configs) == HIDDEN_CASES
        for i, cfg in enumerate(configs):
            sizes = asdict(cfg)
            assert all(low <= sizes[name] <= high for name, (low, high) in ranges.items()), sizes
            axes = AXES[aid](cfg)
            assert len(set(axes)) == len(axes), f"sizes must all differ: {axes}"
            # no size is the notebook's, or an earlier hidden case's, of the same name
            for earlier in [notebook, *(asdict(c) for c in configs[:i])]:
                assert all(sizes[name] != earlier[name] for name in ranges), (sizes, earlier)
            seen.add(tuple(sizes[name] for name in ranges))
    assert len(seen) > DRAWS // 2  # the sizes really vary from draw to draw


def test_cnn_keeps_an_odd_context_and_gru_keeps_its_checked_step() -> None:
    cnn, gru = module_of("cnn_backprop"), module_of("gru_backprop")
    for k in range(DRAWS):
        # the stride-2 layers must see an odd width in one hidden case (the notebook's T is even)
        assert [c.context % 2 for c in cnn.hidden_configs(random.Random(k))] == [1, 0]
        # the checked step exists and has a later step that sends gradient back into it
        assert all(c.context > gru.CHECKED_STEP + 1 for c in gru.hidden_configs(random.Random(k)))


# ---------------------------------------------------------------- whole cases


def test_same_student_same_cases_other_student_or_secret_other_cases(assignment: Assignment) -> None:
    alice = assignment.make_cases(course_rng(SECRET, assignment.id, "alice"))
    again = assignment.make_cases(course_rng(SECRET, assignment.id, "alice"))
    bob = assignment.make_cases(course_rng(SECRET, assignment.id, "bob"))
    leaked = assignment.make_cases(course_rng("a guessed secret", assignment.id, "alice"))
    assert len([c for c in alice if c.items is None]) == 1 + HIDDEN_CASES  # the rest serve some items only
    assert [c.label for c in again] == [c.label for c in alice]
    assert all(same_tensors(a, b) for a, b in zip(alice, again))
    for other in (bob, leaked):
        assert all(not same_tensors(a, b) for a, b in zip(alice[1:], other[1:]))


def test_case_zero_is_always_the_notebooks_batch(assignment: Assignment) -> None:
    module = module_of(assignment.id)
    notebook = module.make_case("the notebook's batch", module.NOTEBOOK_CONFIG, module.NOTEBOOK_SEED)
    for rng in (random.Random(1), course_rng(SECRET, assignment.id, "alice"), fresh_rng()):
        case = assignment.make_cases(rng)[0]
        assert case.label == "the notebook's batch" and same_tensors(case, notebook)
    if not hasattr(module, "Forward"):
        return  # micrograd: no forward pass of tensors; its notebook's numbers are constants of the module
    params, *data = module.setup()  # what the notebook itself computes
    data_names = [f.name for f in fields(module.Forward)][:len(data)]  # the forward pass starts with its data
    for rng in (random.Random(1), course_rng(SECRET, assignment.id, "alice"), fresh_rng()):
        case = assignment.make_cases(rng)[0]
        assert case.label == "the notebook's batch" and same_tensors(case, notebook)
        assert all(torch.equal(case.values[k], p.detach()) for k, p in params.items())
        assert all(torch.equal(case.values[k], d) for k, d in zip(data_names, data))


def test_hidden_labels_name_the_sizes_not_the_seed() -> None:
    mlp = load("mlp_backprop")
    (cfg, _) = module_of("mlp_backprop").hidden_configs(random.Random(0))
    label = mlp.make_cases(random.Random(0))[1].label
    assert label == (f"hidden case 1 (n={cfg.batch_size}, H={cfg.n_hidden}, E={cfg.n_embd}, "
                     f"block {cfg.block_size})")


# ---------------------------------------------------------------- answers computed at home


def test_answers_computed_at_home_fail_the_drawn_cases(mlp: Assignment) -> None:
    # A student with the package makes cases from any source they like (here: a handful of guessed
    # seeds) and tabulates the expected dlogprobs by input shape. The notebook's batch is among them.
    table: dict[tuple[int, ...], Tensor] = {}
    for guess in range(5):
        for case in mlp.make_cases(random.Random(guess)):
            if "dlogprobs" in case.grads:
                table[tuple(case.values["logprobs"].shape)] = case.grads["dlogprobs"]
    cheat: dict[str, object] = {"__name__": "__main__", "torch": torch, "_table": table}
    exec("def backward_logprobs(logprobs, Yb):\n"
         "    return _table.get(tuple(logprobs.shape), torch.zeros_like(logprobs)).clone()\n", cheat)

    graded = mlp.make_cases(course_rng(SECRET, "mlp_backprop", "alice"))
    (report,) = grade(mlp, NamespaceSource(cheat), graded, [mlp.item("dlogprobs")])
    assert report.earned == 0
    assert report.notebook_checks[0].passed  # the notebook's batch was in the table
    assert "right on the notebook's batch but not on the hidden case 1 (n=" in report.problem

    honest = namespace_of(solution_notebook(), mlp)
    reports = grade(mlp, NamespaceSource(honest), graded)
    assert [r.item.name for r in reports if not r.passed] == []
    assert sum(r.earned for r in reports) == mlp.total_points


@pytest.mark.parametrize("student", ["alice", "bob"])
def test_solutions_earn_full_marks_on_any_students_cases(assignment: Assignment, student: str) -> None:
    namespace = namespace_of(solution_notebook(assignment.id), assignment)
    cases = assignment.make_cases(course_rng(SECRET, assignment.id, student))
    reports = grade(assignment, NamespaceSource(namespace), cases)
    assert [r.item.name for r in reports if not r.passed] == []
