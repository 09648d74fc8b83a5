"""Assignment ``micrograd``: a scalar autograd engine, built by the student and checked by the kit.

The first lecture of the course: derivatives by nudging, a ``Value`` class whose ops know their local
derivatives, ``backward()`` over a topological order, and a tiny MLP trained with nothing but that
engine. The exercises are a class and a few functions that use it, so each item names a driver
(``_micrograd_drivers``) that builds expressions from the student's class on the grader's numbers;
the references here are PyTorch autograd, in float64, on the same expressions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..hidden_cases import draw_configs, draw_seed
from ..mistakes import Mistake, scaled
from ..spec import Assignment, Case, Item, Sample, with_mistakes, with_standard_samples
from ..tolerances import Tolerance
from ._micrograd_drivers import (ACCUMULATION_KEYS, COMPOSED, OPS, LinearGraph, MLPSpec, SmoothFunction, TrainSpec,
                                 TWO_PASSES_KEY, composed_expressions, composed_uses_y, exponent,
                                 kept_key, op_keys, parameter_count)
from ._micrograd_picture import draw_graph

# Both sides compute in float64 with the same formulas: a right answer differs from torch by rounding
# only (1e-15 relative; 1e-16 absolute for tanh's slope at saturation, hence the atol), while a
# formula that is off, or a finite difference passed off as a derivative, misses by far more.
EXACT = Tolerance(rtol=1e-9, atol=1e-12)
# Training sums each neuron's inputs in the student's order (torch uses a matmul) for up to 19 steps:
# a parameter that ends near 0 can differ by ~1e-10 in absolute terms. A loop that forgets to zero
# the grads, or steps the wrong way, misses by 1e-2 or more.
TRAINED = Tolerance(rtol=1e-9, atol=1e-8)
MAX_DEPTH = 600  # the deepest graph backward() is graded on: a recursive sort stays within Python's ~1000 frames


@dataclass(frozen=True)
class Config:
    """The sizes of one case: the MLP's shape, its data set, the deep chain's length, training steps."""

    n_inputs: int = 3
    hidden1: int = 4
    hidden2: int = 4
    n_examples: int = 4
    chain: int = 500
    steps: int = 20


NOTEBOOK_CONFIG = Config()
NOTEBOOK_SEED = 1_000_003

# Hidden cases draw their sizes here (``hidden_cases.draw_distinct``: all different within a case, and
# each unlike the same size in the notebook's case and earlier hidden cases): small MLPs, so a check
# takes milliseconds; chains deep enough that an engine must not need more than it is graded on.
HIDDEN_SIZE_RANGES: Mapping[str, tuple[int, int]] = {
    "n_inputs": (2, 6), "hidden1": (2, 7), "hidden2": (2, 7), "n_examples": (3, 8),
    "chain": (300, MAX_DEPTH), "steps": (10, 19)}

# The lecture's data set: four examples of three inputs, each with a target of +1 or -1.
NOTEBOOK_XS = ((2.0, 3.0, -1.0), (3.0, -1.0, 0.5), (0.5, 1.0, 1.0), (1.0, 1.0, -1.0))
NOTEBOOK_YS = (1.0, -1.0, -1.0, 1.0)
NOTEBOOK_LR = 0.05


# ---------------------------------------------------------------- the grader's numbers


def _magnitude(rng: random.Random, low: float, high: float) -> float:
    """A signed number whose size is spread evenly over the decades between ``low`` and ``high``."""
    size = math.exp(rng.uniform(math.log(low), math.log(high)))
    return size if rng.random() < 0.5 else -size


def _upstream(rng: random.Random) -> float:
    return _magnitude(rng, 0.2, 3.0)


# The notebook's rows (x, y or exponent, upstream, y is a Value, exponent is an int): round numbers a
# student can check by hand, the lecture's a = 2, b = -3, c = 10 among them.
NOTEBOOK_OP_INPUTS: Mapping[str, tuple[tuple[float, float, float, float, float], ...]] = {
    "+": ((2.0, -3.0, 1.0, 1.0, 0.0), (2.0, 10.0, -2.0, 0.0, 0.0)),
    "*": ((2.0, -3.0, -2.0, 1.0, 0.0), (-3.0, 4.0, 1.5, 0.0, 0.0)),
    "**": ((4.0, 0.5, 1.0, 0.0, 0.0), (-3.0, 2.0, 2.0, 0.0, 1.0)),
    "exp": ((1.0, 0.0, 1.0, 0.0, 0.0), (-2.0, 0.0, 3.0, 0.0, 0.0)),
    "tanh": ((0.8814, 0.0, 1.0, 0.0, 0.0), (5.0, 0.0, 2.0, 0.0, 0.0)),
    "relu": ((-1.5, 0.0, 1.0, 0.0, 0.0), (2.5, 0.0, -2.0, 0.0, 0.0)),
}


def _op_inputs(op: str, rng: random.Random, count: int) -> Tensor:
    """(count, 5) rows: x, y (or exponent), upstream, y is a Value, exponent is an int. Signs, small
    and large sizes, tanh at saturation, relu on negatives, int and float exponents."""
    rows: list[tuple[float, float, float, float, float]] = []
    for i in range(count):
        g = _upstream(rng)
        if op in ("+", "*"):
            number_on_the_right = i == count - 1  # ``x + 2.5``: the op must wrap a plain number
            rows.append((_magnitude(rng, 1e-3, 1e2), _magnitude(rng, 1e-3, 1e2), g, 0.0 if number_on_the_right else 1.0, 0.0))
        elif op == "**":
            if i % 2 == 0:  # a float exponent on a positive base
                rows.append((abs(_magnitude(rng, 0.05, 20.0)), rng.choice((0.5, -0.5, 1.5, 2.5, -1.5)), g, 0.0, 0.0))
            else:
                rows.append((_magnitude(rng, 0.1, 10.0), float(rng.choice((2, 3, -1, -2))), g, 0.0, 1.0))
        elif op == "exp":
            rows.append((rng.uniform(-20.0, 20.0) if i % 2 else _magnitude(rng, 1e-3, 3.0), 0.0, g, 0.0, 0.0))
        elif op == "tanh":
            kinds = (lambda: _magnitude(rng, 4.0, 9.0), lambda: _magnitude(rng, 1e-3, 0.1),
                     lambda: _magnitude(rng, 0.1, 3.0))
            rows.append((kinds[i % 3](), 0.0, g, 0.0, 0.0))
        else:  # relu: half of the inputs negative, none exactly 0 (where the slope is a convention)
            x = abs(_magnitude(rng, 1e-2, 10.0))
            rows.append((-x if i % 2 == 0 else x, 0.0, g, 0.0, 0.0))
    return torch.tensor(rows, dtype=torch.float64)


def _op_expected(op: str, inputs: Tensor) -> dict[str, Tensor]:
    """PyTorch autograd on the same op: the output's data, then each input's grad."""
    expected: dict[str, Tensor] = {}
    for x_data, y, g, y_is_value, is_int in inputs.tolist():
        x = torch.tensor(x_data, dtype=torch.float64, requires_grad=True)
        y_num = exponent(y, bool(is_int)) if op == "**" else y
        other: Tensor | float = torch.tensor(y, dtype=torch.float64, requires_grad=True) if y_is_value else y_num
        out = {"+": lambda: x + other, "*": lambda: x * other, "**": lambda: x ** y_num, "exp": lambda: x.exp(),
               "tanh": lambda: x.tanh(), "relu": lambda: x.relu()}[op]()
        out.backward(torch.tensor(g, dtype=torch.float64))
        values = [out.detach(), x.grad]
        if isinstance(other, Tensor):
            values.append(other.grad)
        for key, value in zip(op_keys(op, x_data, y_num, bool(y_is_value)), values):
            expected[key] = value.detach().clone()
    return expected


def _composed_expected(inputs: Tensor) -> dict[str, Tensor]:
    expected: dict[str, Tensor] = {}
    for x_data, y_data, c, g in inputs.tolist():
        names = composed_expressions(x_data, y_data, c)
        for name in COMPOSED:
            x = torch.tensor(x_data, dtype=torch.float64, requires_grad=True)
            y = torch.tensor(y_data, dtype=torch.float64, requires_grad=True)
            out = {"neg": lambda: -x, "sub": lambda: x - y, "sub_number": lambda: x - c, "truediv": lambda: x / y,
                   "truediv_number": lambda: x / c, "radd": lambda: c + x, "rmul": lambda: c * x}[name]()
            (out * g).backward()
            expected[f"{names[name]}: data"] = out.detach().clone()
            expected[f"{names[name]}: x.grad"] = x.grad.detach().clone()  # type: ignore[union-attr]
            if composed_uses_y(name):
                expected[f"{names[name]}: y.grad"] = y.grad.detach().clone()  # type: ignore[union-attr]
    return expected


def _graph(name: str, leaves: Sequence[float], nodes: Sequence[Sequence[tuple[int, float]]]) -> LinearGraph:
    width = max(len(edges) for edges in nodes)
    children = [[c for c, _ in edges] + [-1] * (width - len(edges)) for edges in nodes]
    weights = [[w for _, w in edges] + [0.0] * (width - len(edges)) for edges in nodes]
    return LinearGraph(name, torch.tensor(list(leaves), dtype=torch.float64),
                       torch.tensor(children, dtype=torch.int64), torch.tensor(weights, dtype=torch.float64))


def _weight(rng: random.Random) -> float:
    return _magnitude(rng, 0.3, 2.0)


def _graphs(rng: random.Random, chain: int) -> list[LinearGraph]:
    """The graphs ``backward()`` is graded on (the kit's linear nodes; see ``_micrograd_drivers``)."""
    w = lambda: _weight(rng)  # noqa: E731
    leaf = lambda: _magnitude(rng, 0.1, 3.0)  # noqa: E731
    graphs = [
        # x feeds b and c, which meet again in d: x's grad is the sum over both paths
        _graph("diamond", [leaf()], [[(0, w())], [(0, w())], [(1, w()), (2, w())]]),
        # y = w1*x + w2*x: one node, the same child twice (micrograd's ``a + a``)
        _graph("one child used twice by one node", [leaf()], [[(0, w()), (0, w())], [(1, w())]]),
        # a, b leaves; e uses both; f and g reuse e and a; the root reads all three
        _graph("shared nodes", [leaf(), leaf()],
               [[(0, w()), (1, w())], [(2, w()), (0, w())], [(2, w()), (3, w()), (1, w())], [(4, w()), (3, w()), (2, w())]]),
    ]
    # a chain: its grad is the product of the weights, so they stay near +-1 to keep it finite
    steps = [[(i, math.copysign(math.exp(rng.gauss(0.0, 0.04)), rng.random() - 0.5))] for i in range(chain)]
    graphs.append(_graph(f"chain of {chain} nodes", [leaf()], steps))
    # a random graph: nodes not reached from the root keep grad 0
    leaves = [leaf() for _ in range(4)]
    nodes: list[list[tuple[int, float]]] = []
    for j in range(24):
        available = len(leaves) + j
        nodes.append([(rng.randrange(available), w()) for _ in range(rng.randint(1, 3))])
    graphs.append(_graph("random graph of 28 nodes", leaves, nodes))
    return graphs


def _linear_torch(graph: LinearGraph, leaves: list[Tensor] | None = None) -> list[Tensor]:
    nodes = list(leaves) if leaves is not None else [
        torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in graph.leaves.tolist()]
    for index in range(len(graph.leaves), graph.size):
        node = sum(weight * nodes[child] for child, weight in graph.edges(index))
        node.retain_grad()  # type: ignore[union-attr]
        nodes.append(node)  # type: ignore[arg-type]
    return nodes


def _grads(nodes: Sequence[Tensor]) -> Tensor:
    return torch.stack([n.grad if n.grad is not None else torch.zeros((), dtype=torch.float64) for n in nodes]).detach()


def _backward_expected(graphs: Sequence[LinearGraph]) -> dict[str, Tensor]:
    expected: dict[str, Tensor] = {}
    for graph in graphs:
        nodes = _linear_torch(graph)
        nodes[-1].backward()
        expected[graph.name] = _grads(nodes)
    return expected


def _two_passes_expected(first: LinearGraph, second: LinearGraph) -> dict[str, Tensor]:
    """One per leaf: what two passes leave on shared leaves is what each leaves alone, added (``.grad``
    accumulates, in PyTorch as in micrograd; only the training loop zeroes it), so the second pass
    keeps all of the first one's share."""
    return {TWO_PASSES_KEY: torch.ones(len(first.leaves), dtype=torch.float64)}


def _two_graphs(rng: random.Random) -> tuple[LinearGraph, LinearGraph]:
    leaves = [_magnitude(rng, 0.1, 3.0) for _ in range(3)]

    def nodes() -> list[list[tuple[int, float]]]:
        made: list[list[tuple[int, float]]] = []
        for j in range(5):
            made.append([(rng.randrange(3 + j), _weight(rng)) for _ in range(2)])
        made.append([(3 + j, _weight(rng)) for j in range(5)] + [(i, _weight(rng)) for i in range(3)])
        return made
    return _graph("first", leaves, nodes()), _graph("second", leaves, nodes())


# ---------------------------------------------------------------- the MLP: the same network in torch


def torch_mlp(params: Tensor, nin: int, nouts: Sequence[int], xs: Tensor) -> Tensor:
    """The students' ``MLP(nin, nouts)`` in torch, its parameters flat in ``parameters()`` order
    (layer by layer, neuron by neuron: weights, then bias); every neuron applies tanh. ``(n,)``."""
    sizes, offset, act = [nin, *nouts], 0, xs  # act: (n, nin)
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        block = params[offset: offset + fan_out * (fan_in + 1)].view(fan_out, fan_in + 1)  # (out, in + 1)
        offset += fan_out * (fan_in + 1)
        act = torch.tanh(act @ block[:, :fan_in].T + block[:, fan_in])  # (n, out)
    return act[:, 0]  # (n,): the last layer has one neuron


def torch_mlp_loss(params: Tensor, spec: MLPSpec) -> Tensor:
    """The squared-error loss the notebook uses: ``sum((model(x) - y)**2)`` over the data set."""
    return ((torch_mlp(params, spec.nin, spec.nouts, spec.xs) - spec.ys) ** 2).sum()


def _mlp_expected(spec: MLPSpec) -> dict[str, Tensor]:
    params = spec.params.clone().requires_grad_(True)
    outs = torch_mlp(params, spec.nin, spec.nouts, spec.xs)
    ((outs - spec.ys) ** 2).sum().backward()
    return {"model(x) for each example": outs.detach(),
            "parameter grads, in parameters() order": params.grad.detach().clone()}  # type: ignore[union-attr]


def _train_expected(spec: TrainSpec) -> dict[str, Tensor]:
    params, losses = spec.mlp.params.clone(), []
    for _ in range(spec.steps):
        leaf = params.clone().requires_grad_(True)
        loss = torch_mlp_loss(leaf, spec.mlp)
        (grad,) = torch.autograd.grad(loss, leaf)
        losses.append(loss.detach())
        params = params - spec.lr * grad  # the loss is read before the step, as the notebook's loop does
    return {"loss at each step": torch.stack(losses), "parameters after training": params.detach()}


def _mlp_spec(cfg: Config, rng: random.Random, notebook: bool) -> MLPSpec:
    nouts = (cfg.hidden1, cfg.hidden2, 1)
    count = parameter_count(cfg.n_inputs, nouts)
    params = torch.tensor([rng.uniform(-1.0, 1.0) for _ in range(count)], dtype=torch.float64)
    if notebook:
        xs, ys = torch.tensor(NOTEBOOK_XS, dtype=torch.float64), torch.tensor(NOTEBOOK_YS, dtype=torch.float64)
    else:
        xs = torch.tensor([[rng.uniform(-2.0, 2.0) for _ in range(cfg.n_inputs)] for _ in range(cfg.n_examples)],
                          dtype=torch.float64)
        ys = torch.tensor([rng.choice((-1.0, 1.0)) for _ in range(cfg.n_examples)], dtype=torch.float64)
    return MLPSpec(cfg.n_inputs, nouts, params, xs, ys)


# ---------------------------------------------------------------- cases


def make_case(label: str, cfg: Config, seed: int) -> Case:
    """Every input of every item, drawn from ``seed``, and PyTorch's answers on them."""
    rng = random.Random(seed)
    notebook = label == "the notebook's batch"
    f = SmoothFunction(tuple(rng.uniform(-2, 2) for _ in range(cfg.n_inputs)),
                       tuple(rng.uniform(-2, 2) for _ in range(cfg.n_inputs)), rng.uniform(0.5, 3.0),
                       tuple(rng.uniform(-1, 1) for _ in range(cfg.n_inputs)))
    numeric_inputs = torch.tensor([rng.uniform(-2.0, 2.0) for _ in range(cfg.n_inputs)], dtype=torch.float64)
    h = 1e-3 if notebook else rng.choice((1e-3, 5e-4, 2e-3))  # big enough that a one-sided difference misses
    ops = {op: torch.tensor(NOTEBOOK_OP_INPUTS[op], dtype=torch.float64) if notebook else _op_inputs(op, rng, 4)
           for op in OPS}
    accumulation = torch.tensor([[_magnitude(rng, 0.5, 2.0) for _ in range(4)]], dtype=torch.float64)
    composed = torch.tensor([(3.0, -2.0, 4.0, 1.5) if notebook else [_magnitude(rng, 0.3, 3.0) for _ in range(4)]],
                            dtype=torch.float64)
    graphs = _graphs(rng, cfg.chain)
    first, second = _two_graphs(rng)
    mlp = _mlp_spec(cfg, rng, notebook)
    train = TrainSpec(mlp, cfg.steps, NOTEBOOK_LR if notebook else rng.uniform(0.02, 0.1))

    values: dict[str, object] = {
        "f": f, "numeric_inputs": numeric_inputs, "h": h, **{f"inputs {op}": ops[op] for op in OPS},
        "accumulation_inputs": accumulation, "composed_inputs": composed, "graphs": graphs,
        "first_graph": first, "second_graph": second, "mlp": mlp, "train_spec": train}
    # The central difference, input by input, written here and nowhere an answer could call it.
    slopes = []
    for i in range(cfg.n_inputs):
        up, down = numeric_inputs.tolist(), numeric_inputs.tolist()
        up[i] += h
        down[i] -= h
        slopes.append((f(up) - f(down)) / (2 * h))
    expected: dict[str, object] = {
        "numerical_grad": torch.tensor(slopes, dtype=torch.float64),
        **{f"op {op}": _op_expected(op, ops[op]) for op in OPS},
        "accumulate": {key: torch.tensor(1.0, dtype=torch.float64)
                       for key in [*ACCUMULATION_KEYS.values(), *(kept_key(op) for op in OPS)]},
        "composed": _composed_expected(composed),
        "backward": _backward_expected(graphs),
        "two_passes": _two_passes_expected(first, second),
        "mlp": _mlp_expected(mlp),
        "train": _train_expected(train),
    }
    return Case(label=label, values={**values, "expected": expected}, grads={})


def hidden_configs(rng: random.Random) -> list[Config]:
    return draw_configs(rng, Config, NOTEBOOK_CONFIG, HIDDEN_SIZE_RANGES)


def make_cases(rng: random.Random) -> list[Case]:
    """The notebook's own numbers first (the rows a student sees), then ``HIDDEN_CASES`` drawn from ``rng``."""
    hidden = [make_case(f"hidden case {i} (MLP {c.n_inputs}-{c.hidden1}-{c.hidden2}-1 on {c.n_examples} examples, "
                        f"chain of {c.chain}, {c.steps} steps)", c, draw_seed(rng))
              for i, c in enumerate(hidden_configs(rng), start=1)]
    return [make_case("the notebook's batch", NOTEBOOK_CONFIG, NOTEBOOK_SEED), *hidden]


# ---------------------------------------------------------------- graded items


def _expected(name: str):  # type: ignore[no-untyped-def]
    return lambda case: case.values["expected"][name]  # type: ignore[index]


_DRIVERS = "autograder.assignments._micrograd_drivers"
_OP_ITEMS = {  # in the notebook's order
    "+": ("add", "check_add", "d(x + y)/dx = d(x + y)/dy = 1: each input gets out.grad as it is."),
    "*": ("mul", "check_mul", "d(x * y)/dx = y and d(x * y)/dy = x: each input gets the *other* one's data."),
    "tanh": ("tanh", "check_tanh", "d tanh(x)/dx = 1 - tanh(x)**2: use the output t, not x."),
    "exp": ("exp", "check_exp", "d(e**x)/dx = e**x: the output's own data."),
    "**": ("pow", "check_pow", "d(x**k)/dx = k * x**(k - 1), for int and float k alike."),
    "relu": ("relu", "check_relu", "relu passes the gradient where its output is positive, and nothing elsewhere."),
}

# Known mistakes (``mistakes.py``): each hint is shown only when the mistake reproduces the answer.
_MISTAKES: dict[str, tuple[Mistake, ...]] = {
    "accumulate": (
        scaled(lambda c: 0.5, "`a` got only one of its two shares: a `_backward` assigns its input's grad (=) where "
               "it must add to it (+=).", keys=tuple(ACCUMULATION_KEYS.values())),
        scaled(lambda c: 0.0, "the op's `_backward` threw away the share x.grad already held: it must add to it "
               "(+=), not assign.", keys=tuple(kept_key(op) for op in OPS)),
    ),
    "two_passes": (scaled(lambda c: 0.0, "the second backward() threw away what the first left on the leaves: "
                          "backward() must add to the grads it finds (zeroing them is the training loop's job).",
                          keys=(TWO_PASSES_KEY,)),),
}

ITEMS: tuple[Item, ...] = with_mistakes((
    # exercise 1: derivatives by nudging
    Item("numerical_grad", "numerical_grad", ("f", "numeric_inputs", "h"), 1, 1, tolerance=EXACT,
         hint="nudge one input at a time, both ways: (f(x + h) - f(x - h)) / (2h), every other input unchanged.",
         expected=_expected("numerical_grad"), driver=f"{_DRIVERS}:check_numerical_grad"),
    # exercise 2: each op's forward and local backward, on its own
    *(Item(name, "Value", (f"inputs {op}",), 1, 2, tolerance=EXACT, hint=hint, expected=_expected(f"op {op}"),
           driver=f"{_DRIVERS}:{driver}")
      for op, (name, driver, hint) in _OP_ITEMS.items()),
    Item("composed", "Value", ("composed_inputs",), 1, 2, tolerance=EXACT,
         hint="-x is x * -1, x - y is x + (-y), x / y is x * y**-1; c + x and c * x need __radd__ and __rmul__.",
         expected=_expected("composed"), driver=f"{_DRIVERS}:check_composed"),
    # exercise 3: backward() over the whole graph, and accumulation
    Item("backward", "Value", ("graphs",), 2, 3, tolerance=EXACT,
         hint=("order the nodes so each comes after everything it depends on (a topological sort from the root), "
               f"set root.grad = 1, then call every node's _backward in reverse order; graphs up to {MAX_DEPTH} deep."),
         expected=_expected("backward"), driver=f"{_DRIVERS}:check_backward"),
    Item("accumulate", "Value", ("accumulation_inputs",), 1, 3, tolerance=EXACT,
         hint="every _backward adds into .grad (+=): a Value used twice, or by two ops, gets both shares.",
         expected=_expected("accumulate"), driver=f"{_DRIVERS}:check_accumulation"),
    # exercise 4: a neural network on the engine, and training it
    Item("mlp", "MLP", ("mlp",), 2, 4, tolerance=EXACT, uses=("Value",),
         hint=("a neuron is tanh(w . x + b); parameters() lists, layer by layer and neuron by neuron, the weights "
               "and then the bias; with one output neuron, model(x) returns its Value."),
         expected=_expected("mlp"), driver=f"{_DRIVERS}:check_mlp"),
    Item("two_passes", "Value", ("first_graph", "second_graph"), 1, 4, tolerance=EXACT,
         hint="backward() adds to what .grad holds; zeroing the parameters' grads is the training loop's job.",
         expected=_expected("two_passes"), driver=f"{_DRIVERS}:check_two_passes"),
    Item("train", "train", ("train_spec",), 2, 4, tolerance=TRAINED, uses=("Value",),
         hint=("each step: forward pass and loss, zero every parameter's grad, loss.backward(), then "
               "p.data -= lr * p.grad; report the loss of each step, read before its update."),
         expected=_expected("train"), driver=f"{_DRIVERS}:check_train"),
), _MISTAKES)


# ---------------------------------------------------------------- bundled sample submissions

_PARTLY_RIGHT = {
    "__add__": (
        "def __add__(self, other):\n"
        "    other = other if isinstance(other, Value) else Value(other)\n"
        "    out = Value(self.data + other.data, (self, other), '+')\n"
        "    def _backward():\n"
        "        self.grad = out.grad   # overwrites: a + a, or a Value used twice, loses a share\n"
        "        other.grad = out.grad\n"
        "    out._backward = _backward\n"
        "    return out\n\n"
        "Value.__add__ = __add__\n"),
    "tanh": (
        "def tanh(self):\n"
        "    t = math.tanh(self.data)\n"
        "    out = Value(t, (self,), 'tanh')\n"
        "    def _backward():\n"
        "        self.grad += (1 - self.data**2) * out.grad   # x where tanh(x) belongs\n"
        "    out._backward = _backward\n"
        "    return out\n\n"
        "Value.tanh = tanh\n"),
}

_TORCH = {
    name: (f"def {name}(self{', k' if name == '__pow__' else ''}):\n"
           "    # the local derivative from PyTorch's autograd instead of by hand\n"
           f"    out = Value({expr}, (self,), {name!r})\n"
           "    def _backward():\n"
           "        x = torch.tensor(self.data, dtype=torch.float64, requires_grad=True)\n"
           f"        (slope,) = torch.autograd.grad({torch_expr}, x)\n"
           "        self.grad += slope.item() * out.grad\n"
           "    out._backward = _backward\n"
           "    return out\n\n"
           f"Value.{name} = {name}\n")
    for name, expr, torch_expr in (("tanh", "math.tanh(self.data)", "torch.tanh(x)"),
                                   ("exp", "math.exp(self.data)", "torch.exp(x)"),
                                   ("__pow__", "self.data**k", "x**k"))
}

SAMPLES: tuple[Sample, ...] = with_standard_samples(
    ITEMS,
    Sample("sample-partly-right", "overwrites .grad in + (instead of +=), and uses x for t in tanh's slope",
           replace=_PARTLY_RIGHT, expected_zero=("tanh", "accumulate")),
    Sample("sample-autograd", "takes the local derivatives of tanh, exp and ** from torch.autograd",
           replace=_TORCH, expected_zero=("pow", "exp", "tanh", "accumulate")),
)

ASSIGNMENT = Assignment(
    id="micrograd",
    title="micrograd: a scalar autograd engine by hand",
    items=ITEMS,
    make_cases=make_cases,
    samples=SAMPLES,
    hidden_size_ranges=HIDDEN_SIZE_RANGES,
    # writing backward() and each op's _backward is the exercise: the static review does not flag them
    review_allows=frozenset({"backward", "_backward"}),
)

__all__ = ["ASSIGNMENT", "Config", "MAX_DEPTH", "NOTEBOOK_CONFIG", "NOTEBOOK_LR", "NOTEBOOK_SEED", "NOTEBOOK_XS",
           "NOTEBOOK_YS", "MLPSpec", "draw_graph", "torch_mlp", "torch_mlp_loss"]
