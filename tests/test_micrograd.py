"""micrograd: a class, not tensor functions, checked through the kit's drivers. One mistake costs one
item; the engine the kit lends to some checks cannot be borrowed by an answer; the picture draws."""

from __future__ import annotations

import pytest

from autograder.assignments import load
from autograder.assignments import micrograd as module
from autograder.harness import NamespaceSource, grade
from autograder.notebook_code import grading_cells
from autograder.samples import answer_cell_index
from autograder.sandbox import Limits, SandboxSource
from autograder.spec import Assignment, Case

from conftest import cases_of, namespace_of, solution_notebook, with_answers

AID = "micrograd"


@pytest.fixture(scope="module")
def micrograd() -> Assignment:
    return load(AID)


@pytest.fixture(scope="module")
def cases(micrograd: Assignment) -> list[Case]:
    return cases_of(micrograd)


def _edited(function: str, old: str, new: str) -> dict[str, str]:
    """The solution's answer cell that defines ``function``, with ``old`` replaced by ``new``."""
    nb = solution_notebook(AID)
    cell = nb.cells[answer_cell_index(nb, function)].source
    assert old in cell, (function, old)
    return {function: cell.replace(old, new)}


# mistake: (cell's function, old text, new text, the one item it must cost)
MISTAKES = {
    "tanh's slope in x instead of t": ("tanh", "(1 - t**2)", "(1 - self.data**2)", "tanh"),
    "* hands each input its own value": ("__mul__", "self.grad += other.data", "self.grad += self.data", "mul"),
    "the power rule without the -1": ("__pow__", "self.data ** (k - 1)", "self.data ** k", "pow"),
    "exp's slope is 1": ("exp", "self.grad += out.data * out.grad", "self.grad += out.grad", "exp"),
    "relu passes gradient everywhere": ("relu", "(1.0 if out.data > 0 else 0.0) * out.grad", "out.grad", "relu"),
    "+ hands out twice the gradient": ("__add__", "other.grad += out.grad", "other.grad += 2 * out.grad", "add"),
    "= instead of += in +": ("__add__", "self.grad += out.grad\n        other.grad += out.grad",
                             "self.grad = out.grad\n        other.grad = out.grad", "accumulate"),
    "= instead of += in tanh": ("tanh", "self.grad += (1 - t**2)", "self.grad = (1 - t**2)", "accumulate"),
    "x - y as x + y": ("__sub__", "return self + (-other)", "return self + other", "composed"),
    "no __rmul__": ("__rmul__", "return self * other", "return NotImplemented", "composed"),
    "the one-sided difference": ("numerical_grad", "(f(up) - f(down)) / (2 * h)", "(f(up) - f(inputs)) / h",
                                 "numerical_grad"),
    "backward() in topological, not reverse, order": ("backward", "for node in reversed(order):",
                                                      "for node in order:", "backward"),
    "backward() resets every grad first": ("backward", "    self.grad = 1.0\n",
                                           "    for node in order:\n        node.grad = 0.0\n    self.grad = 1.0\n",
                                           "two_passes"),
    "parameters() with the bias first": ("Neuron", "return self.w + [self.b]", "return [self.b] + self.w", "mlp"),
    "a neuron without its bias": ("Neuron", "zip(self.w, x)), self.b)", "zip(self.w, x)), 0.0)", "mlp"),
    "the training loop never zeroes": ("train", "            p.grad = 0.0\n", "            pass\n", "train"),
    "the training loop climbs": ("train", "p.data -= lr * p.grad", "p.data += lr * p.grad", "train"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_one_mistake_costs_one_item(micrograd: Assignment, cases: list[Case], mistake: str) -> None:
    function, old, new, item = MISTAKES[mistake]
    nb = with_answers(solution_notebook(AID), _edited(function, old, new))
    reports = grade(micrograd, NamespaceSource(namespace_of(nb, micrograd)), cases)
    assert [r.item.name for r in reports if not r.passed] == [item]


def test_the_failing_check_names_the_op_and_its_input(micrograd: Assignment, cases: list[Case]) -> None:
    nb = with_answers(solution_notebook(AID), _edited("tanh", "(1 - t**2)", "(1 - self.data**2)"))
    (report,) = grade(micrograd, NamespaceSource(namespace_of(nb, micrograd)), cases, [micrograd.item("tanh")])
    assert report.failing_check is not None
    assert report.failing_check.name == "tanh[(0.8814).tanh(): x.grad]"
    assert "1 - tanh(x)**2: use the output t" in report.text()


def test_the_notebooks_numbers_are_the_lectures(cases: list[Case]) -> None:
    spec = cases[0].values["mlp"]
    assert spec.nin == 3 and spec.nouts == (4, 4, 1)
    assert spec.xs.tolist() == [list(x) for x in module.NOTEBOOK_XS] and spec.ys.tolist() == list(module.NOTEBOOK_YS)
    assert cases[0].values["inputs +"][0, :2].tolist() == [2.0, -3.0]  # a = 2, b = -3 (and c = 10 beside them)
    chains = [g for g in cases[1].values["graphs"] if g.name.startswith("chain")]
    assert chains and all(len(g.children) <= module.MAX_DEPTH for g in chains)


def test_backward_graded_within_the_stated_depth_and_a_recursive_sort_passes(micrograd: Assignment) -> None:
    deepest = module.Config(chain=module.MAX_DEPTH)
    case = module.make_case("deepest", deepest, 5)
    namespace = namespace_of(solution_notebook(AID), micrograd)  # its backward() recurses
    (report,) = grade(micrograd, NamespaceSource(namespace), [case], [micrograd.item("backward")])
    assert report.passed, report.text()


# ---------------------------------------------------------------- the engine the kit lends


_DRIVERS = "import autograder.assignments._micrograd_drivers as _kit\n"
BORROWERS = {
    # a correct tanh taken straight from the kit's engine, with a loan of its own making
    "tanh": _DRIVERS + ("def tanh(self):\n"
                        "    return _kit._kit_methods(Value, _kit._Loan())['tanh'](self)\n\n"
                        "Value.tanh = tanh\n"),
    # the kit's engine lent by calling lent_engine itself
    "exp": _DRIVERS + ("def exp(self):\n"
                       "    with _kit.lent_engine(Value, ['exp']) as loan:\n"
                       "        return self.exp()\n\n"
                       "Value.exp = exp\n"),
    # the kit's relu, kept from the mlp check by the neuron below (while the class holds it, lent)
    "relu": ("_kept = {}\n"
             "def relu(self):\n"
             "    if _kept.get('relu') is not None:\n"
             "        return _kept['relu'](self)\n"
             "    out = Value(max(self.data, 0.0), (self,), 'ReLU')\n"
             "    def _backward():\n"
             "        self.grad += (out.data > 0) * out.grad\n"
             "    out._backward = _backward\n"
             "    return out\n\n"
             "Value.relu = relu\n"),
}
KEEPS_THE_LENT_RELU = ("        return act.tanh()\n",
                       "        _kept.setdefault('relu', type(self.b).__dict__.get('relu'))\n        return act.tanh()\n")
# the kit's own network, with a forged loan, in place of the student's MLP
KIT_NETWORK = _DRIVERS + ("class MLP:\n"
                          "    def __init__(self, nin, nouts):\n"
                          "        count = _kit.parameter_count(nin, nouts)\n"
                          "        spec = _kit.MLPSpec(nin, tuple(nouts), torch.zeros(count, dtype=torch.float64),\n"
                          "                            torch.zeros(1, nin), torch.zeros(1))\n"
                          "        self._net = _kit._KitMLP(Value, spec, _kit._Loan())\n"
                          "    def __call__(self, x):\n"
                          "        return self._net(x)\n"
                          "    def parameters(self):\n"
                          "        return self._net.parameters()\n")
# **'s slope measured with the kit's lent engine, inside a driver the answer starts itself
STARTS_A_DRIVER = _DRIVERS + (
    "def __pow__(self, k):\n"
    "    got = {}\n"
    "    class _Network:\n"
    "        def __init__(self_, nin, nouts):\n"
    "            probe = Value(self.data)\n"
    "            out = Value.__pow__(probe, k)  # the kit's **, while the driver lends it\n"
    "            out.grad = 1.0\n"
    "            out._backward()\n"
    "            got['slope'] = probe.grad\n"
    "        def parameters(self_):\n"
    "            raise RuntimeError('got what it came for')\n"
    "    spec = _kit.MLPSpec(1, (1,), torch.zeros(2, dtype=torch.float64), torch.zeros(1, 1), torch.zeros(1))\n"
    "    try:\n"
    "        _kit.check_mlp(_Network, Value, spec)\n"
    "    except Exception as exc:\n"
    "        print('refused:', exc)\n"
    "    slope = got.get('slope', 0.0)\n"
    "    out = Value(self.data ** k, (self,), 'pow')\n"
    "    def _backward():\n"
    "        self.grad += slope * out.grad\n"
    "    out._backward = _backward\n"
    "    return out\n\n"
    "Value.__pow__ = __pow__\n")
# the whole engine from the kit, with an object that passes for a loan
FAKE_LOAN = _DRIVERS + (
    "class _Loan:\n"
    "    open = True\n"
    "    def check(self):\n"
    "        pass\n"
    "def tanh(self):\n"
    "    return _kit._kit_methods(Value, _Loan())['tanh'](self)\n\n"
    "Value.tanh = tanh\n")
# a driver the grader will call, rebound by a cell to return what its item expects
REBINDS_A_DRIVER = _DRIVERS + (
    "_kit.check_two_passes = lambda cls, first, second: {\n"
    "    _kit.TWO_PASSES_KEY: torch.zeros(len(first.leaves), dtype=torch.float64)}\n"
    "def exp(self):\n"
    "    out = Value(math.exp(self.data), (self,), 'exp')\n"
    "    def _backward():\n"
    "        self.grad += out.data * out.grad\n"
    "    out._backward = _backward\n"
    "    return out\n\n"
    "Value.exp = exp\n")


def _borrowing_notebook():  # type: ignore[no-untyped-def]
    keeper = _edited("Neuron", *KEEPS_THE_LENT_RELU)
    return with_answers(solution_notebook(AID), {**BORROWERS, **keeper})


def test_the_lent_engine_cannot_be_borrowed(micrograd: Assignment, cases: list[Case]) -> None:
    namespace = namespace_of(_borrowing_notebook(), micrograd)
    source = NamespaceSource(namespace)
    (mlp_report,) = grade(micrograd, source, cases, [micrograd.item("mlp")])
    assert mlp_report.passed and namespace["_kept"]["relu"] is not None  # the lent relu was kept...
    reports = {r.item.name: r for r in grade(micrograd, source, cases)}
    assert {n for n, r in reports.items() if not r.passed} == {"tanh", "exp", "relu"}  # ...and is dead
    for name in ("tanh", "exp", "relu"):
        assert "lent to the grader's own checks only" in reports[name].problem
    # the honest items around them keep their points, the checks that lend the engine among them
    assert reports["mlp"].passed and reports["train"].passed and reports["composed"].passed

    for cell, item in (({"Neuron": KIT_NETWORK}, "mlp"), ({"tanh": FAKE_LOAN}, "tanh")):
        namespace = namespace_of(with_answers(solution_notebook(AID), cell), micrograd)
        (report,) = grade(micrograd, NamespaceSource(namespace), cases, [micrograd.item(item)])
        assert not report.passed and "lent to the grader's own checks only" in report.problem


def test_an_answer_cannot_start_a_driver_in_the_sandbox(micrograd: Assignment, cases: list[Case]) -> None:
    """In the sandbox an answer cannot start a driver (which would lend it the kit's engine), nor
    borrow the engine as above; honest answers in the same run keep their points. In the student's
    own kernel the driver does run for it (feedback only: nothing there is recorded)."""
    kernel = namespace_of(with_answers(solution_notebook(AID), {"__pow__": STARTS_A_DRIVER}), micrograd)
    (report,) = grade(micrograd, NamespaceSource(kernel), cases, [micrograd.item("pow")])
    assert report.passed  # the attack works where it earns nothing: so it is a real attack

    nb = with_answers(_borrowing_notebook(), {"__pow__": STARTS_A_DRIVER})
    source = SandboxSource(grading_cells(nb, micrograd), limits=Limits(per_call_s=5, per_cell_s=10))
    reports = {r.item.name: r for r in grade(micrograd, source, cases)}
    assert {n for n, r in reports.items() if not r.passed} == {"tanh", "exp", "pow"}
    assert "refused: the grader's checks cannot be run from the answers" in source.student_output
    assert reports["mlp"].passed and reports["train"].passed and reports["backward"].passed


def test_a_rebound_driver_fails_the_run_as_tampering(micrograd: Assignment, cases: list[Case]) -> None:
    """A cell that rebinds a name the kit's code uses in the child (here the driver of an item whose
    expected value is a constant) fails every call from there on, and the run is flagged."""
    nb = with_answers(solution_notebook(AID), {"exp": REBINDS_A_DRIVER})
    source = SandboxSource(grading_cells(nb, micrograd), limits=Limits(per_call_s=5, per_cell_s=10))
    reports = grade(micrograd, source, cases)
    assert sum(r.earned for r in reports) == 0
    assert all("the submission changed autograder.assignments._micrograd_drivers.check_two_passes" in r.problem
               for r in reports)
    assert {t.split("@")[0].removeprefix("call ") for t in source.tampering} == {r.item.name for r in reports}
    assert all("check_two_passes" in t for t in source.tampering)


# ---------------------------------------------------------------- the picture


def test_the_picture_has_every_value_and_op(micrograd: Assignment) -> None:
    import matplotlib

    matplotlib.use("Agg")
    namespace = namespace_of(solution_notebook(AID), micrograd)
    Value = namespace["Value"]
    a, b = Value(2.0), Value(-3.0)  # type: ignore[operator]
    out = (a * b + a).tanh()
    out.backward()
    figure = module.draw_graph(out)
    texts = [t.get_text() for t in figure.axes[0].texts if t.get_text()]  # arrows are empty texts
    assert sum("data" in t for t in texts) == 5  # a, b, a*b, a*b + a, tanh
    assert sorted(t for t in texts if "data" not in t) == ["*", "+", "tanh"]
    assert any(t.endswith(f"grad {a.grad:.4f}") for t in texts)
    deep = Value(1.0)  # type: ignore[operator]
    for _ in range(100):
        deep = deep * 1.0
    with pytest.raises(ValueError, match="readable up to"):
        module.draw_graph(deep)


def test_engine_data_must_be_plain_numbers(micrograd: Assignment, cases: list[Case]) -> None:
    keeps_tensors = ("def __add__(self, other):\n"
                     "    other = other if isinstance(other, Value) else Value(other)\n"
                     "    out = Value(torch.tensor(self.data) + torch.tensor(other.data), (self, other), '+')\n"
                     "    def _backward():\n"
                     "        self.grad += out.grad\n"
                     "        other.grad += out.grad\n"
                     "    out._backward = _backward\n"
                     "    return out\n\n"
                     "Value.__add__ = __add__\n")
    nb = with_answers(solution_notebook(AID), {"__add__": keeps_tensors})
    (report,) = grade(micrograd, NamespaceSource(namespace_of(nb, micrograd)), cases, [micrograd.item("add")])
    assert not report.passed and "the engine works on Python numbers" in report.problem
