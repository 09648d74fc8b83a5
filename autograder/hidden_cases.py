"""Where the hidden cases' seeds and sizes come from: a random source, never a fixed table.

Sizes and seeds written into the package would let a student compute every hidden answer at home
and return it from a table keyed by input shape. So every hidden case is drawn at grading time:

* ``course_rng`` for the recorded grade: keyed by a course secret, so a re-grade of the same
  student draws the same cases, two students draw different ones, and nobody without the secret
  can compute them;
* ``fresh_rng`` for the student's own checks (``grader.check``, ``pytest``): new cases every run,
  so passing them says the answer is general, not that it matches one batch.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any, TypeVar

C = TypeVar("C")

HIDDEN_CASES = 2  # hidden cases per item, after the notebook's own batch
SEED_LIMIT = 2**31  # torch seeds are drawn from [0, SEED_LIMIT)
MAX_TRIES = 10_000  # ranges that cannot give distinct sizes fail loudly instead of looping forever


def course_seed(secret: str, assignment_id: str, student: str) -> int:
    """The seed of one student's hidden cases for one assignment: deterministic, so a re-grade gives
    the same verdict, and unpredictable without ``secret`` (a grading worker gets this number, never
    the secret). The NUL separator keeps ("ab", "c") and ("a", "bc") apart."""
    digest = hmac.new(secret.encode(), f"{assignment_id}\0{student}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest, "big")


def seeded_rng(seed: int) -> random.Random:
    return random.Random(seed)


def course_rng(secret: str, assignment_id: str, student: str) -> random.Random:
    """The grader's source for one student's submission of one assignment (see ``course_seed``)."""
    return seeded_rng(course_seed(secret, assignment_id, student))


def fresh_rng() -> random.Random:
    """A source nobody can predict, for self-checks: different cases every run."""
    return random.Random(int.from_bytes(os.urandom(32), "big"))


def draw_seed(rng: random.Random) -> int:
    """A seed for ``torch.Generator().manual_seed``: the case's parameters and batch."""
    return rng.randrange(SEED_LIMIT)


def draw_distinct(rng: random.Random, ranges: Mapping[str, tuple[int, int]], forbidden: Iterable[int] = (),
                  *, derived: Callable[[Mapping[str, int]], Mapping[str, int]] | None = None,
                  unlike: Iterable[Mapping[str, int]] = (),
                  accept: Callable[[Mapping[str, int]], bool] | None = None) -> dict[str, int]:
    """One size per name, each from its inclusive ``(low, high)`` range, redrawn until all differ.

    Distinct sizes make a mistake on the wrong axis (a transpose, a sum over the wrong dim) fail on
    the shape instead of slipping through a square matrix. ``forbidden`` are sizes every tensor
    already has (a vocabulary). ``derived`` maps drawn sizes to sizes computed from them (``3H``, a
    strided width) that must differ too. ``unlike`` are earlier cases' sizes, every drawn name in each
    (the notebook's, the previous hidden case's): each size, drawn or derived, differs from the one of the same name
    there, so an answer that hard-codes a size (``n = 32``) fails every hidden case. ``accept`` is
    any further condition a model needs (the CNN's odd context length).
    """
    banned = set(forbidden)
    derive = derived or (lambda sizes: {})
    earlier = [{**e, **derive(e)} for e in unlike]
    for _ in range(MAX_TRIES):
        sizes = {name: rng.randint(low, high) for name, (low, high) in ranges.items()}
        every = {**sizes, **derive(sizes)}
        values = list(every.values())
        if (len(set(values)) == len(values) and banned.isdisjoint(values)
                and all(e.get(name) != size for e in earlier for name, size in every.items())
                and (accept is None or accept(sizes))):
            return sizes
    raise ValueError(f"no distinct sizes found in {dict(ranges)} (forbidden {sorted(banned)}) "
                     f"after {MAX_TRIES} draws: widen the ranges")


def draw_configs(rng: random.Random, make: Callable[..., C], notebook: Any, ranges: Mapping[str, tuple[int, int]],
                 forbidden: Iterable[int] = (), *,
                 derived: Callable[[Mapping[str, int]], Mapping[str, int]] | None = None,
                 accept: Callable[[int, Mapping[str, int]], bool] | None = None) -> list[C]:
    """``HIDDEN_CASES`` configurations (``make(**sizes)``) drawn with ``draw_distinct``, each unlike the
    notebook's configuration (a dataclass) and the hidden ones before it; ``accept(i, sizes)`` is any
    further condition on the i-th (0-based) hidden case."""
    configs: list[C] = []
    for index in range(HIDDEN_CASES):
        earlier = [asdict(c) for c in (notebook, *configs)]
        condition = None if accept is None else (lambda sizes, i=index: accept(i, sizes))
        configs.append(make(**draw_distinct(rng, ranges, forbidden, derived=derived, unlike=earlier,
                                            accept=condition)))
    return configs
