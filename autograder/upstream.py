"""Random upstream gradients: no item can be passed by an answer that ignores what flows into it.

An item's function receives the *true* gradient of the tensors its input feeds (its upstream). For
some items that true gradient has a structure that makes the right answer vanish: every function
downstream of the softmax ignores a shift of a row, so ``dlogit_maxes`` is zero up to rounding, and
batch normalisation subtracts the batch mean right after ``+ b1``, so ``db1`` is too. Returning
zeros, or the negated answer, would pass there.

So every item that receives an upstream gradient is also checked on a *random-upstream case*: the
same forward pass, with every gradient taken by autograd of

    L = sum over the item's upstream tensors U of <R_U, U>,   R_U ~ N(0, s_U^2) of U's shape,

instead of the loss. The item's inputs (``dU = R_U``, and the other true gradients of ``L``) and its
expected answer (``dX = dL/dX``) then still obey the chain rule the function implements, because
``L`` reaches ``X`` only through ``X``'s consumers, but nothing special is left in them. ``s_U`` is
the root mean square of U's true gradient in the same case, so the numbers keep the sizes (and the
float32 rounding) of the real ones. Items with the same upstream tensors share a case; items without
one (the loss's own gradient, the composed backward pass) need none.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .hidden_cases import draw_seed
from .reference import Upstream, named_tensors
from .spec import Case, Item


def upstream_tensors(item: Item, case: Case, aliases: Mapping[str, str] = {}) -> tuple[str, ...]:
    """The forward tensors whose gradients ``item``'s function receives: an argument ``d<name>`` that
    the case holds as a gradient is the gradient of ``<name>``, unless ``aliases`` says whose it is
    (``dH`` is the gradient of ``hs``; ``dx1_ln2`` is what reaches ``x1`` through ``ln2``)."""
    found: list[str] = []
    for arg in item.args:
        if isinstance(arg, str) and arg in case.grads:
            name = aliases.get(arg, arg[1:])
            if name not in found:
                found.append(name)
    return tuple(sorted(found))


def random_weights(scales: Mapping[str, float], seed: int) -> Upstream:
    """``R_U ~ N(0, s_U^2)`` for each named forward tensor ``U``, in its shape and dtype, from one seed."""
    def draw(f: object) -> dict[str, Tensor]:
        named = named_tensors(f)
        g = torch.Generator().manual_seed(seed)
        return {name: scale * torch.randn(named[name].shape, generator=g, dtype=named[name].dtype)
                for name, scale in sorted(scales.items())}
    return draw


def _rms(case: Case, name: str) -> float:
    """The root mean square of the true gradient of ``name`` in ``case``, or 1 if it has none."""
    grad = case.grads.get(f"d{name}")
    size = float(grad.pow(2).mean().sqrt()) if grad is not None and grad.numel() else 0.0
    return size if 0.0 < size < float("inf") else 1.0


def random_upstream_cases(items: Sequence[Item], base: Case, seed: int, remake: Callable[[str, Upstream], Case],
                          aliases: Mapping[str, str] = {}) -> list[Case]:
    """One random-upstream case per distinct set of upstream tensors among ``items``, each checking
    only the items with that set. ``base`` is the hidden case whose forward pass ``remake(label_suffix,
    upstream)`` rebuilds, with its gradients taken of ``upstream``'s random linear function
    (``reference``); the random weights have the sizes of ``base``'s true gradients."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for item in items:
        names = upstream_tensors(item, base, aliases)
        if names:
            groups.setdefault(names, []).append(item.name)
    cases: list[Case] = []
    for number, (names, item_names) in enumerate(sorted(groups.items())):
        scales = {name: _rms(base, name) for name in names}
        made = remake(f"random upstream gradient of {', '.join(names)}", random_weights(scales, seed + number))
        cases.append(Case(label=made.label, values=made.values, grads=made.grads, items=frozenset(item_names),
                          random_upstream=names))
    return cases


@dataclass(frozen=True)
class SmallScale:
    """One more case, for the items whose formula holds batchnorm's eps: the second hidden case's
    sizes and seed, with ``change`` (Config fields) making the normalised inputs' variance small,
    where a dropped eps shows (at the usual scale it is off by ~1e-5 relative, inside the tolerance)."""

    items: frozenset[str]
    change: Mapping[str, object]
    says: str  # what the case's label adds


def assemble_cases(rng: random.Random, items: Sequence[Item], make_case: Callable[..., Case],
                   label: Callable[[int, Any], str], notebook: tuple[Any, int],
                   hidden_configs: Callable[[random.Random], list[Any]], aliases: Mapping[str, str] = {},
                   small: SmallScale | None = None) -> list[Case]:
    """An assignment's cases, in order: the notebook's batch (``notebook``: its config and seed), the
    hidden cases (configs, then seeds, drawn from ``rng``), the small-scale case if any, and the
    random-upstream cases on the first hidden case's forward pass. ``make_case(label, config, seed,
    upstream=None)`` is the assignment's; ``label(i, config)`` names hidden case i."""
    configs = hidden_configs(rng)
    seeds = [draw_seed(rng) for _ in configs]
    hidden = [make_case(label(i, c), c, seed) for i, (c, seed) in enumerate(zip(configs, seeds), start=1)]
    cases = [make_case("the notebook's batch", *notebook), *hidden]
    if small is not None:
        made = make_case(f"{label(2, configs[1])} with {small.says}", dataclasses.replace(configs[1], **small.change),
                         seeds[1])
        cases.append(dataclasses.replace(made, items=small.items))
    return cases + random_upstream_cases(
        items, hidden[0], draw_seed(rng),
        lambda what, upstream: make_case(f"{label(1, configs[0])} with a {what}", configs[0], seeds[0], upstream),
        aliases)
