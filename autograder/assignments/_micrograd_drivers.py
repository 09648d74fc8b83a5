"""How the grader exercises a student's micrograd engine: drivers, and the engine the kit lends.

The micrograd exercises are a class (``Value``) and a few functions that use it, not tensor
functions. Each item names a *driver* here (``Item.driver``): kit code, run where the student's
code runs (their kernel for feedback, the sandboxed child for the grade), that receives the
student's objects, builds small expressions from the grader's secret numbers, and returns what it
read back as float64 tensors. The grader compares those with PyTorch autograd on the same
expressions (``micrograd.py``), as it does for every other assignment.

One mistake costs one item, so each driver isolates what it checks:

* an op's item calls only that op's forward and its ``_backward``, once, with a given upstream
  gradient: no ``backward()``, no other op;
* ``backward()`` runs on graphs whose nodes carry the kit's own linear ``_backward`` closures (so
  a wrong ``tanh`` cannot reach it), with diamonds, shared nodes, repeated children, deep chains;
* the accumulation item compares the student's op with itself (``a + a`` against ``x + y``), so
  it tests ``+=`` whatever the local derivative;
* the composed ops, the MLP and the training loop run with the kit's correct engine *lent* to
  the student's class for the length of the check (``lent_engine``): the student's ``Neuron`` and
  ``train`` call the kit's ``+``, ``*``, ``tanh`` and ``backward``. What is lent stops working when
  the check ends, so it cannot be kept and used to answer another item.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import CodeType
from typing import TypeVar

import torch
from torch import Tensor

from ..sandbox.guard import trusted_roots

Number = int | float
OPS = ("+", "*", "**", "exp", "tanh", "relu")
COMPOSED = ("neg", "sub", "sub_number", "truediv", "truediv_number", "radd", "rmul")
CONSTRUCTOR = "Value(data, _children=(), _op='')"


# ---------------------------------------------------------------- what the grader sends


@dataclass(frozen=True)
class LinearGraph:
    """A graph for ``backward()``: ``leaves`` (L,) values, then one node per row of ``children``.

    Node ``L + j`` has children ``children[j]`` (indices of earlier nodes; -1 is padding, a child may
    repeat) with weights ``weights[j]``: its data is the weighted sum of theirs, and its
    ``_backward`` adds ``weight * node.grad`` to each child. The last node is the root."""

    name: str
    leaves: Tensor     # (L,) float64
    children: Tensor   # (N, K) int64, -1 = none
    weights: Tensor    # (N, K) float64

    def edges(self, node: int) -> list[tuple[int, float]]:
        row = node - len(self.leaves)
        return [(int(c), float(w)) for c, w in zip(self.children[row].tolist(), self.weights[row].tolist())
                if c >= 0]

    @property
    def size(self) -> int:
        return len(self.leaves) + len(self.children)


@dataclass(frozen=True)
class MLPSpec:
    """An ``MLP(nin, nouts)``, its parameters in ``parameters()`` order, and a small data set."""

    nin: int
    nouts: tuple[int, ...]
    params: Tensor   # (P,) float64: layer by layer, neuron by neuron, its weights then its bias
    xs: Tensor       # (n, nin) float64
    ys: Tensor       # (n,) float64, each +1 or -1


@dataclass(frozen=True)
class TrainSpec:
    mlp: MLPSpec
    steps: int
    lr: float


def parameter_count(nin: int, nouts: Sequence[int]) -> int:
    sizes = [nin, *nouts]
    return sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(nouts)))


# ---------------------------------------------------------------- how checks are named (both sides)


def fmt(x: Number) -> str:
    """A number in a check's name: short, and the same on the grader's side and the student's."""
    return format(x, ".4g") if isinstance(x, float) else str(x)


def exponent(k: float, is_int: bool) -> Number:
    return int(k) if is_int else float(k)


def op_expression(op: str, x: float, y: Number, y_is_value: bool = True) -> str:
    """How a check names its expression: Values in parentheses, a plain number (or exponent) bare."""
    if op in ("exp", "tanh", "relu"):
        return f"({fmt(x)}).{op}()"
    return f"({fmt(x)}) {op} " + (f"({fmt(y)})" if y_is_value and op != "**" else fmt(y))


def op_keys(op: str, x: float, y: Number, y_is_value: bool) -> list[str]:
    """The quantities an op's check reads: the output's data, then each input Value's grad."""
    expr = op_expression(op, x, y, y_is_value)
    keys = [f"{expr}: data", f"{expr}: x.grad"]
    return keys + [f"{expr}: y.grad"] if y_is_value else keys


def composed_expressions(x: float, y: float, c: float) -> dict[str, str]:
    return {"neg": f"-({fmt(x)})", "sub": f"({fmt(x)}) - ({fmt(y)})", "sub_number": f"({fmt(x)}) - {fmt(c)}",
            "truediv": f"({fmt(x)}) / ({fmt(y)})", "truediv_number": f"({fmt(x)}) / {fmt(c)}",
            "radd": f"{fmt(c)} + ({fmt(x)})", "rmul": f"{fmt(c)} * ({fmt(x)})"}


def composed_uses_y(name: str) -> bool:
    return name in ("sub", "truediv")


ACCUMULATION_KEYS = {
    "a + a": "a + a: a.grad / (x.grad + y.grad of x + y)",
    "a * a": "a * a: a.grad / (x.grad + y.grad of x * y)",
}


def kept_key(op: str) -> str:
    return f"{op} adds to an earlier x.grad (share kept)"


# ---------------------------------------------------------------- reading the student's objects


def _number(value: object, what: str) -> float:
    """A Python number read from the student's engine (a tensor or array there is refused: the
    engine works on plain floats). Read as the number it is, not through a ``__float__`` of its own."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} is a {type(value).__name__}; the engine works on Python numbers "
                        "(int or float), with no tensors or arrays inside")
    return float.__float__(value) if isinstance(value, float) else float(int.__index__(value))


def _sequence(value: object) -> list[object] | None:
    """A returned list, tuple or array (``tolist``) as a list; None for anything else."""
    if isinstance(value, (list, tuple)):
        return list(value)
    tolist = getattr(value, "tolist", None)
    listed = tolist() if callable(tolist) else None
    return listed if isinstance(listed, list) else None


def _leaf(cls: type, data: float) -> object:
    value = cls(data)
    if not hasattr(value, "grad") or not hasattr(value, "data"):
        raise TypeError(f"Value({fmt(data)}) has no .data or .grad: keep the constructor {CONSTRUCTOR}")
    return value


def _node(cls: type, data: float, children: tuple[object, ...], op: str) -> object:
    try:
        return cls(data, children, op)
    except TypeError as exc:
        raise TypeError(f"Value(data, children, op) raised TypeError: {exc} (the checks build nodes with "
                        f"the constructor {CONSTRUCTOR} given in the notebook)") from None


def _is_value(obj: object, cls: type) -> bool:
    return isinstance(obj, cls)


def _grad(value: object, what: str) -> float:
    return _number(getattr(value, "grad", None), f"{what}.grad")


def _as_tensor(values: Sequence[float]) -> Tensor:
    return torch.tensor(list(values), dtype=torch.float64)


# ---------------------------------------------------------------- who may run a driver, and the lent engine's loans


class LentEngineExpired(RuntimeError):
    """The kit's engine was used outside the check that lent it."""


class DriverRefused(RuntimeError):
    """A driver called by the submission's own code, not by the grader."""


class _Loan:
    """One check's loan of the kit's engine (see ``_guards``)."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


def _guards() -> tuple[Callable[[object], None], Callable[[], None], Callable[[Iterable[CodeType]], None]]:
    """The loan check and the driver gate, made once at import (before any student line runs) as
    closures over what they use: a submission that rebinds this module's names changes neither."""
    getframe, loan_type, roots = sys._getframe, _Loan, tuple(trusted_roots())
    child_main = ("autograder/sandbox/child.py", "main")
    lenders: list[frozenset[CodeType]] = []

    def verify(loan: object) -> None:
        """The kit's engine answers only for a loan the kit made, still open, and held (as the
        local ``loan``) by the driver that lent it, while that driver runs: its frame is on the
        stack. Methods kept after the check, or a loan made by an answer, raise."""
        if type(loan) is loan_type and loan.open and lenders:  # type: ignore[attr-defined]
            frame = getframe(2)
            while frame is not None:
                if frame.f_code in lenders[0] and frame.f_locals.get("loan") is loan:
                    return
                frame = frame.f_back
        raise LentEngineExpired("the kit's engine is lent to the grader's own checks only, while they run")

    def gate() -> None:
        """In the sandboxed child (its main loop at the bottom of the stack), a driver runs only when
        the grader calls it: with no student code below it. An answer that starts a driver itself
        (to have the kit's engine lent to it) is refused. In a student's kernel the check cell is
        below the driver, and nothing checked there is recorded, so nothing is refused."""
        frame, student_below = getframe(2), False
        while frame is not None:
            code = frame.f_code
            if code.co_name == child_main[1] and code.co_filename.endswith(child_main[0]):
                if student_below:
                    raise DriverRefused("the grader's checks cannot be run from the answers")
                return
            student_below = student_below or not code.co_filename.startswith(roots)
            frame = frame.f_back

    def register(codes: Iterable[CodeType]) -> None:
        if lenders:
            raise RuntimeError("the drivers that lend the engine are registered once, at import")
        lenders.append(frozenset(codes))

    return verify, gate, register


_verify, _gate, _register_lenders = _guards()
F = TypeVar("F", bound=Callable[..., object])


def _driver(fn: F) -> F:
    """A driver: ``fn``, run only after the gate lets it (``_guards``)."""
    gate = _gate

    @functools.wraps(fn)
    def driver(*args: object) -> object:
        gate()
        return fn(*args)
    return driver  # type: ignore[return-value]


# ---------------------------------------------------------------- ops: one op, its _backward, once


def _apply(cls: type, op: str, x: object, y: object) -> object:
    if op == "+":
        return x + y  # type: ignore[operator]
    if op == "*":
        return x * y  # type: ignore[operator]
    if op == "**":
        return x ** y  # type: ignore[operator]
    return getattr(x, op)()


def _run_op(cls: type, op: str, x_data: float, y: Number, y_is_value: bool, upstream: float,
            prior: float = 0.0) -> tuple[float, float, float | None]:
    """``out = x <op> y`` with the student's op, then ``out._backward()`` with ``out.grad = upstream``;
    ``x.grad`` starts at ``prior``. Returns out.data, x.grad and y.grad (None for a plain number)."""
    expr = op_expression(op, x_data, y, y_is_value)
    x = _leaf(cls, x_data)
    x.grad = prior  # type: ignore[attr-defined]
    other = _leaf(cls, float(y)) if y_is_value else y
    out = _apply(cls, op, x, other)
    if not _is_value(out, cls):
        raise TypeError(f"{expr} returned a {type(out).__name__}, not a Value")
    data = _number(out.data, f"({expr}).data")  # type: ignore[attr-defined]
    out.grad = upstream  # type: ignore[attr-defined]
    backward = getattr(out, "_backward", None)
    if not callable(backward):
        raise TypeError(f"({expr})._backward is not callable: every Value needs one (the constructor sets a no-op)")
    backward()
    y_grad = _grad(other, "y") if y_is_value else None
    return data, _grad(x, "x"), y_grad


def check_op(op: str, cls: type, inputs: Tensor) -> dict[str, Tensor]:
    """``inputs`` (k, 5): x, y (or the exponent), upstream gradient, whether y is a Value, whether
    the exponent is an int. One op of the student's, its forward and its local backward only."""
    results: dict[str, Tensor] = {}
    for x, y, g, y_is_value, is_int in inputs.tolist():
        y_num = exponent(y, bool(is_int)) if op == "**" else y
        data, x_grad, y_grad = _run_op(cls, op, x, y_num, bool(y_is_value), g)
        keys = op_keys(op, x, y_num, bool(y_is_value))
        for key, value in zip(keys, (data, x_grad, y_grad)):
            results[key] = torch.tensor(value, dtype=torch.float64)
    return results


@_driver
def check_add(cls: type, inputs: Tensor) -> dict[str, Tensor]:
    return check_op("+", cls, inputs)


@_driver
def check_mul(cls: type, inputs: Tensor) -> dict[str, Tensor]:
    return check_op("*", cls, inputs)


@_driver
def check_pow(cls: type, inputs: Tensor) -> dict[str, Tensor]:
    return check_op("**", cls, inputs)


@_driver
def check_exp(cls: type, inputs: Tensor) -> dict[str, Tensor]:
    return check_op("exp", cls, inputs)


@_driver
def check_tanh(cls: type, inputs: Tensor) -> dict[str, Tensor]:
    return check_op("tanh", cls, inputs)


@_driver
def check_relu(cls: type, inputs: Tensor) -> dict[str, Tensor]:
    return check_op("relu", cls, inputs)


# ---------------------------------------------------------------- accumulation: the op against itself


@_driver
def check_accumulation(cls: type, inputs: Tensor) -> dict[str, Tensor]:
    """``inputs`` (k, 4): a value, a second value, an upstream gradient, an earlier grad. Ratios
    that are 1 when every ``_backward`` adds (``+=``) into ``.grad``, whatever its local derivative:

    * ``a + a`` (one Value on both sides) against ``x + y`` with the same numbers: ``a`` must
      receive both shares; the same for ``a * a``;
    * an op run on an ``x`` whose grad already holds an earlier share must keep it.
    ``+`` and ``*`` are required; the other ops are checked when they run."""
    results: dict[str, Tensor] = {}
    (a, b, g, prior), *_ = inputs.tolist()
    for op in ("+", "*"):
        x = _leaf(cls, a)
        out = _apply(cls, op, x, x)
        out.grad = g  # type: ignore[attr-defined]
        out._backward()  # type: ignore[attr-defined]
        _, x_grad, y_grad = _run_op(cls, op, a, a, True, g)
        both = x_grad + (y_grad or 0.0)
        if both == 0.0:
            raise ValueError(f"x {op} y gives x and y no gradient at all: its own item comes first")
        results[ACCUMULATION_KEYS[f"a {op} a"]] = torch.tensor(_grad(x, "a") / both, dtype=torch.float64)
    for op in OPS:
        y: Number = b if op in ("+", "*") else 2
        try:
            _, fresh, _ = _run_op(cls, op, a, y, op in ("+", "*"), g)
            _, kept, _ = _run_op(cls, op, a, y, op in ("+", "*"), g, prior=prior)
            ratio = (kept - fresh) / prior
        except TimeoutError:
            raise
        except Exception:
            if op in ("+", "*"):
                raise
            ratio = 1.0  # an op that does not run cannot be checked here: its own item fails instead
        results[kept_key(op)] = torch.tensor(ratio, dtype=torch.float64)
    return results


# ---------------------------------------------------------------- backward(): the kit's closures, the student's order


def _linear_backward(node: object, edges: list[tuple[object, float]]) -> Callable[[], None]:
    def _backward() -> None:
        for child, weight in edges:
            child.grad += weight * node.grad  # type: ignore[attr-defined]
    return _backward


def build_linear(cls: type, graph: LinearGraph, leaves: list[object] | None = None) -> list[object]:
    """The graph's nodes as the student's Values (``leaves`` reused if given), each internal node
    with the kit's linear ``_backward``."""
    nodes: list[object] = leaves if leaves is not None else [_leaf(cls, v) for v in graph.leaves.tolist()]
    nodes = list(nodes)
    for index in range(len(graph.leaves), graph.size):
        edges = [(nodes[c], w) for c, w in graph.edges(index)]
        data = sum(w * child.data for child, w in edges)  # type: ignore[attr-defined]
        node = _node(cls, data, tuple(child for child, _ in edges), "lin")
        node._backward = _linear_backward(node, edges)  # type: ignore[attr-defined]
        nodes.append(node)
    return nodes


@_driver
def check_backward(cls: type, graphs: Sequence[LinearGraph]) -> dict[str, Tensor]:
    """Each graph built fresh, the student's ``root.backward()`` once; every node's grad."""
    results: dict[str, Tensor] = {}
    for graph in graphs:
        nodes = build_linear(cls, graph)
        nodes[-1].backward()  # type: ignore[attr-defined]
        results[graph.name] = _as_tensor([_grad(n, f"node {i}") for i, n in enumerate(nodes)])
    return results


TWO_PASSES_KEY = "share of the first pass each leaf keeps after the second: (both - second alone) / first alone"


@_driver
def check_two_passes(cls: type, first: LinearGraph, second: LinearGraph) -> dict[str, Tensor]:
    """Two graphs over the same leaves, ``backward()`` on each root, nothing zeroed in between: the
    leaves must still hold the first pass's gradient, plus the second's. Each leaf's ratio (both
    passes - the second alone) / the first alone is 1 when ``backward()`` adds, and 0 when it throws
    away what it found. Measured against the student's own single passes, so a mistake inside
    ``backward()`` that still adds costs the ``backward`` item, not this one."""

    def leaf_grads(graphs: Sequence[LinearGraph]) -> list[float]:
        leaves = [_leaf(cls, v) for v in first.leaves.tolist()]
        for graph in graphs:
            build_linear(cls, graph, leaves)[-1].backward()  # type: ignore[attr-defined]
        return [_grad(v, f"leaf {i}") for i, v in enumerate(leaves)]

    first_alone, second_alone = leaf_grads([first]), leaf_grads([second])
    if not all(first_alone):
        raise ValueError("backward() leaves a leaf's grad at 0 on a graph that reaches it: the backward item "
                         "comes first")
    both = leaf_grads([first, second])
    return {TWO_PASSES_KEY: _as_tensor([(b - s) / f for f, s, b in zip(first_alone, second_alone, both)])}


# ---------------------------------------------------------------- the engine the kit lends


def topological_order(root: object) -> list[object]:
    """Every Value reachable from ``root`` through ``_prev``, children before parents: depth-first,
    without recursion, so graphs of any depth. The lent ``backward`` and the graph picture use it."""
    order: list[object] = []
    seen: set[int] = set()
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in node._prev)  # type: ignore[attr-defined]
    return order


def _kit_methods(cls: type, loan: _Loan, verify: Callable[[object], None] = _verify
                 ) -> dict[str, Callable[..., object]]:
    """Correct ops and ``backward`` for the student's class: what the other items are checked with.
    Each of them, and each ``_backward`` they attach, first asks ``verify`` (bound at import)."""

    class _Checked:  # so every lent method starts with the same call
        def check(self) -> None:
            verify(loan)
    loan_check = _Checked()

    def wrap(other: object) -> object:
        return other if isinstance(other, cls) else cls(other)

    def make(data: float, children: tuple[object, ...], op: str, local: Callable[[], None]) -> object:
        out = _node(cls, data, children, op)

        def checked() -> None:
            verify(loan)
            local()
        out._backward = checked  # type: ignore[attr-defined]
        return out

    def add(self: object, other: object) -> object:
        loan_check.check()
        other = wrap(other)
        out: object = None

        def local() -> None:
            self.grad += out.grad  # type: ignore[attr-defined]
            other.grad += out.grad  # type: ignore[attr-defined]
        out = make(self.data + other.data, (self, other), "+", local)  # type: ignore[attr-defined]
        return out

    def mul(self: object, other: object) -> object:
        loan_check.check()
        other = wrap(other)
        out: object = None

        def local() -> None:
            self.grad += other.data * out.grad  # type: ignore[attr-defined]
            other.grad += self.data * out.grad  # type: ignore[attr-defined]
        out = make(self.data * other.data, (self, other), "*", local)  # type: ignore[attr-defined]
        return out

    def power(self: object, k: Number) -> object:
        loan_check.check()
        out: object = None

        def local() -> None:
            self.grad += k * self.data ** (k - 1) * out.grad  # type: ignore[attr-defined]
        out = make(self.data ** k, (self,), f"**{k}", local)  # type: ignore[attr-defined]
        return out

    def unary(name: str, forward: Callable[[float], float], slope: Callable[[float, float], float]
              ) -> Callable[[object], object]:
        def op(self: object) -> object:
            loan_check.check()
            out: object = None

            def local() -> None:
                self.grad += slope(self.data, out.data) * out.grad  # type: ignore[attr-defined]
            out = make(forward(self.data), (self,), name, local)  # type: ignore[attr-defined]
            return out
        return op

    def backward(self: object) -> None:
        loan_check.check()
        order = topological_order(self)
        self.grad = 1.0  # type: ignore[attr-defined]
        for node in reversed(order):
            node._backward()  # type: ignore[attr-defined]

    return {
        "__add__": add, "__radd__": add, "__mul__": mul, "__rmul__": mul, "__pow__": power,
        "__neg__": lambda self: mul(self, -1.0),
        "__sub__": lambda self, other: add(self, mul(wrap(other), -1.0)),
        "__rsub__": lambda self, other: add(mul(self, -1.0), other),
        "__truediv__": lambda self, other: mul(self, power(wrap(other), -1)),
        "__rtruediv__": lambda self, other: mul(power(self, -1), other),
        "exp": unary("exp", math.exp, lambda x, out: out),
        "tanh": unary("tanh", math.tanh, lambda x, out: 1.0 - out * out),
        "relu": unary("ReLU", lambda x: x if x > 0 else 0.0, lambda x, out: 1.0 if out > 0 else 0.0),
        "backward": backward,
    }


_MISSING = object()


@contextmanager
def lent_engine(cls: type, methods: Sequence[str]) -> Iterator[_Loan]:
    """The kit's own ``methods`` on the student's class for the length of the block, then the
    student's own back (and the lent ones dead, even if something kept them). The driver must hold
    the loan in a local named ``loan`` (``with lent_engine(...) as loan``): that is how a lent
    method knows the check that lent it is still running."""
    if not isinstance(cls, type):
        raise TypeError(f"Value must be a class, not a {type(cls).__name__}")
    loan = _Loan()
    kit = _kit_methods(cls, loan)
    saved = {name: cls.__dict__.get(name, _MISSING) for name in methods}
    try:
        for name in methods:
            setattr(cls, name, kit[name])
        yield loan
    finally:
        loan.open = False
        for name, original in saved.items():
            if original is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, original)


BASIC = ("__add__", "__mul__", "__pow__", "backward")  # what the composed ops are built on
EVERYTHING = (*BASIC, "__radd__", "__rmul__", "__neg__", "__sub__", "__rsub__", "__truediv__", "__rtruediv__",
              "exp", "tanh", "relu")


def _apply_composed(name: str, x: object, y: object, c: float) -> object:
    return {"neg": lambda: -x, "sub": lambda: x - y, "sub_number": lambda: x - c,  # type: ignore[operator]
            "truediv": lambda: x / y, "truediv_number": lambda: x / c,  # type: ignore[operator]
            "radd": lambda: c + x, "rmul": lambda: c * x}[name]()  # type: ignore[operator]


@_driver
def check_composed(cls: type, inputs: Tensor) -> dict[str, Tensor]:
    """``-x``, ``x - y``, ``x / y``, ``c + x``, ``c * x`` (and a number on the right), written by the
    student on top of ``+``, ``*`` and ``**``, which the kit lends (with ``backward``) here."""
    results: dict[str, Tensor] = {}
    for x_data, y_data, c, g in inputs.tolist():
        names = composed_expressions(x_data, y_data, c)
        for name in COMPOSED:
            with lent_engine(cls, BASIC) as loan:  # noqa: F841  (found by the lent methods)
                x, y = _leaf(cls, x_data), _leaf(cls, y_data)
                out = _apply_composed(name, x, y, c)
                if not _is_value(out, cls):
                    raise TypeError(f"{names[name]} returned a {type(out).__name__}, not a Value")
                data = _number(out.data, f"({names[name]}).data")  # type: ignore[attr-defined]
                (out * g).backward()  # type: ignore[operator]  # upstream g, through the kit's *
                grads = [_grad(x, "x")] + ([_grad(y, "y")] if composed_uses_y(name) else [])
            results[f"{names[name]}: data"] = torch.tensor(data, dtype=torch.float64)
            for label, value in zip(("x.grad", "y.grad"), grads):
                results[f"{names[name]}: {label}"] = torch.tensor(value, dtype=torch.float64)
    return results


# ---------------------------------------------------------------- the MLP and its training loop


def _model(mlp_class: type, spec: MLPSpec) -> tuple[object, list[object]]:
    """The student's ``MLP(nin, nouts)`` with the grader's parameters put in through ``parameters()``."""
    model = mlp_class(spec.nin, list(spec.nouts))
    params = list(model.parameters())  # type: ignore[attr-defined]
    expected = parameter_count(spec.nin, spec.nouts)
    if len(params) != expected:
        raise ValueError(f"MLP({spec.nin}, {list(spec.nouts)}).parameters() gave {len(params)} values; "
                         f"expected {expected}: every neuron's weights, then its bias, layer by layer")
    for p, value in zip(params, spec.params.tolist()):
        p.data = value  # type: ignore[attr-defined]
    return model, params


def _outputs(model: object, spec: MLPSpec, cls: type) -> list[object]:
    outs = [model(x) for x in spec.xs.tolist()]  # type: ignore[operator]
    if outs and not _is_value(outs[0], cls):
        raise TypeError(f"model(x) returned a {type(outs[0]).__name__}; with one output neuron it returns "
                        "that neuron's Value itself, not a list")
    return outs


@_driver
def check_mlp(mlp_class: type, cls: type, spec: MLPSpec) -> dict[str, Tensor]:
    """The student's MLP on the kit's engine: its outputs, and every parameter's gradient after one
    ``backward()`` of the squared-error loss (the kit builds the loss)."""
    with lent_engine(cls, EVERYTHING) as loan:  # noqa: F841  (found by the lent methods)
        model, params = _model(mlp_class, spec)
        outs = _outputs(model, spec, cls)
        loss = sum(((out - y) ** 2 for out, y in zip(outs, spec.ys.tolist())), cls(0.0))
        loss.backward()  # type: ignore[attr-defined]
        return {"model(x) for each example": _as_tensor([_number(o.data, "model(x).data") for o in outs]),  # type: ignore[attr-defined]
                "parameter grads, in parameters() order": _as_tensor([_grad(p, "parameter") for p in params])}


class _KitMLP:
    """The network ``train`` is checked with: the kit's, on the student's Values and the lent
    engine, so a mistake in the student's ``MLP`` costs the ``mlp`` item only. Like the lent
    methods, it works only while the check that lent the engine runs."""

    def __init__(self, cls: type, spec: MLPSpec, loan: _Loan, verify: Callable[[object], None] = _verify) -> None:
        self._check = functools.partial(verify, loan)
        self._params = [cls(value) for value in spec.params.tolist()]
        self._sizes = [spec.nin, *spec.nouts]

    def parameters(self) -> list[object]:
        self._check()
        return list(self._params)

    def zero_grad(self) -> None:
        self._check()
        for p in self._params:
            p.grad = 0.0  # type: ignore[attr-defined]

    def __call__(self, x: Sequence[object]) -> object:
        self._check()
        act, offset = list(x), 0
        for fan_in, fan_out in zip(self._sizes, self._sizes[1:]):
            layer = []
            for _ in range(fan_out):
                w, b = self._params[offset: offset + fan_in], self._params[offset + fan_in]
                offset += fan_in + 1
                layer.append(sum((wi * xi for wi, xi in zip(w, act)), b).tanh())  # type: ignore[attr-defined]
            act = layer
        return act[0] if len(act) == 1 else act


@_driver
def check_train(train: Callable[..., object], cls: type, spec: TrainSpec) -> dict[str, Tensor]:
    """The student's ``train(model, xs, ys, steps, lr)`` on the kit's network and engine: the loss it
    reports at each step, and the parameters it leaves."""
    with lent_engine(cls, EVERYTHING) as loan:
        model = _KitMLP(cls, spec.mlp, loan)
        params = model.parameters()
        returned = train(model, spec.mlp.xs.tolist(), spec.mlp.ys.tolist(), spec.steps, spec.lr)
        losses = _sequence(returned)
        if losses is None or len(losses) != spec.steps:
            raise TypeError(f"train(...) must return a list of {spec.steps} losses (one per step), "
                            f"returned a {type(returned).__name__}"
                            + (f" of {len(losses)}" if losses is not None else ""))
        values = [_number(getattr(v, "data", v), f"loss at step {i}") for i, v in enumerate(losses)]
        return {"loss at each step": _as_tensor(values),
                "parameters after training": _as_tensor([_number(p.data, "parameter") for p in params])}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the numerical gradient


@dataclass(frozen=True)
class SmoothFunction:
    """``f(inputs) = sum_i a_i x_i**2 + sum_i b_i x_i x_{i+1} + c * tanh(sum_i d_i x_i)``: smooth,
    with curvature in every direction, so a one-sided difference misses by much more than rounding."""

    a: tuple[float, ...]
    b: tuple[float, ...]
    c: float
    d: tuple[float, ...]

    def __call__(self, inputs: Sequence[float]) -> float:
        x = list(inputs)
        n = len(x)
        total = sum(self.a[i] * x[i] ** 2 for i in range(n))
        total += sum(self.b[i] * x[i] * x[(i + 1) % n] for i in range(n))
        return total + self.c * math.tanh(sum(self.d[i] * x[i] for i in range(n)))

    def torch(self, x: Tensor) -> Tensor:
        n = len(x)
        a, b, d = (torch.tensor(v, dtype=x.dtype) for v in (self.a, self.b, self.d))
        return (a * x**2).sum() + (b * x * x.roll(-1)).sum() + self.c * torch.tanh((d * x).sum()) if n else x.sum()


@_driver
def check_numerical_grad(numerical_grad: Callable[..., object], f: SmoothFunction, inputs: Tensor,
                         h: float) -> Tensor:
    values = inputs.tolist()
    slopes = _sequence(numerical_grad(f, list(values), h))
    if slopes is None or len(slopes) != len(values):
        raise TypeError(f"numerical_grad(f, inputs, h) must return a list of {len(values)} slopes, one per input")
    return _as_tensor([_number(s, f"slope {i}") for i, s in enumerate(slopes)])


# The drivers that lend the engine: ``verify`` looks for their frames (their own code, not the gate's).
_register_lenders(fn.__wrapped__.__code__ for fn in (check_composed, check_mlp, check_train))  # type: ignore[attr-defined]
