"""What the kit's own code in the sandboxed child looks up at run time, watched for changes.

In the child, the kit's code (``invoke``, micrograd's drivers and the engine they lend) runs in the
same interpreter as the submission, and finds most of what it uses by name when it runs: its
modules' globals, ``torch``, ``torch.Tensor``'s methods, the builtins. A submission that rebinds
one of those names (``drivers.check_two_passes = lambda *a: ...``, ``torch.tensor = ...``) would
have the kit compute what the submission wants. ``KitState`` records, before the first student
line runs, the identity of every value in those namespaces, the contents of the closures and the
defaults of the kit's functions (where micrograd's guards are bound); the child compares before
and after each graded call, and a change fails that call and every later one as tampering.

Comparisons go through C (``map(id, ...)``): the profile hook the guard installs sees only calls
made from Python code, so watching thousands of names costs microseconds, not a hook per name.
"""

from __future__ import annotations

import builtins
import operator
import sys
import types
from collections.abc import Iterator, Mapping

import torch

# Libraries the kit's code in the child calls by attribute, besides its own modules; and torch's C
# binding modules, from which torch looks a function up by name when it hands a call to the
# torch-function mode (a name rebound there would change what the guard's mode is shown: a declared
# shortcut, ``Item.shortcuts``, called under another identity).
WATCHED_LIBRARIES = ("builtins", "math", "functools", "torch", "torch.nn.functional", "torch._C._nn",
                     "torch._C._linalg", "torch._C._special", "torch._C._fft", "torch._C._nested",
                     "torch._C._sparse")
_BUILTIN_NAMES = frozenset(vars(builtins))
_CACHES = frozenset({"__slotnames__"})  # what pickling (``torch.save``) caches on a class


def _namespaces(extra: Mapping[str, Mapping[str, object]]
                ) -> Iterator[tuple[str, Mapping[str, object], bool, bool]]:
    """(name, namespace, is the kit's own, may it gain names) for everything watched."""
    for name, module in sorted(sys.modules.items()):
        if (name == "autograder" or name.startswith("autograder.")) and module is not None:
            yield name, vars(module), True, True
    for name, namespace in extra.items():
        yield name, namespace, True, True
    for name in WATCHED_LIBRARIES:
        yield name, vars(sys.modules[name]), False, True  # modules gain names as submodules load
    # a name set on the class shadows torch's C methods (``torch.Tensor.clone = ...``): none may appear
    yield "torch.Tensor", torch.Tensor.__dict__, False, False


def _kit_functions(namespace: Mapping[str, object], module: str) -> list[types.FunctionType]:
    """The kit's functions defined in ``module``, and the methods of its classes."""
    found: list[types.FunctionType] = []
    for value in list(namespace.values()):
        if isinstance(value, types.FunctionType) and value.__module__ == module:
            found.append(value)
        elif isinstance(value, type) and value.__module__ == module:
            found += [v for v in vars(value).values() if isinstance(v, types.FunctionType)]
    return found


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # an empty cell: a name bound later in the enclosing function
        return False
    return True


_contents = operator.attrgetter("cell_contents")
_defaults = operator.attrgetter("__defaults__")
_kwdefaults = operator.attrgetter("__kwdefaults__")


class _Record:
    """One namespace as it was: its names and the identity of each value; for the kit's own
    modules, also what its functions carry besides their code (closure contents, defaults)."""

    def __init__(self, name: str, namespace: Mapping[str, object], own: bool, grows: bool) -> None:
        self.name, self.namespace, self.own, self.grows = name, namespace, own, grows
        self.keys, self.values = tuple(namespace), tuple(namespace.values())  # values held: ids stay unique
        self.ids, self.key_set = tuple(map(id, self.values)), frozenset(self.keys)
        self.functions = _kit_functions(namespace, name) if own else []
        self.cells = [c for fn in self.functions for c in fn.__closure__ or () if _filled(c)]
        self.bound = self._bound()

    def _bound(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return (tuple(map(id, map(_contents, self.cells))), tuple(map(id, map(_defaults, self.functions))),
                tuple(map(id, map(_kwdefaults, self.functions))))

    def change(self) -> str | None:
        namespace = self.namespace
        # by name, not by position: IPython takes builtins such as ``exit`` out while a cell runs and
        # puts the same objects back, which reorders the namespace without changing it
        if tuple(map(id, map(namespace.get, self.keys))) != self.ids:
            changed = next((k for k, v in zip(self.keys, self.values) if namespace.get(k) is not v), "a name")
            return f"{self.name}.{changed}"
        if not self.grows and len(namespace) != len(self.keys):
            added = namespace.keys() - self.key_set - _CACHES
            if added or len(namespace) < len(self.keys):
                return f"{self.name}.{min(added, default='a name')}"
        if self.own:
            # a name added to a kit module that shadows a builtin changes what its code calls
            shadowing = _BUILTIN_NAMES.intersection(namespace.keys() - self.key_set)
            if shadowing:
                return f"{self.name}.{min(shadowing)}"
            if self._bound() != self.bound:
                return f"{self.name}: a function's closure or defaults"
        return None


class KitState:
    """A record of the watched namespaces; ``first_change()`` names the first thing that differs."""

    def __init__(self, extra: Mapping[str, Mapping[str, object]] | None = None) -> None:
        """``extra``: namespaces of the kit's code that ``sys.modules`` does not list under the kit's
        name (the cold child runs as ``__main__``, which IPython then replaces in ``sys.modules``)."""
        self._records = [_Record(*entry) for entry in _namespaces(extra or {})]

    def first_change(self) -> str | None:
        for record in self._records:
            changed = record.change()
            if changed:
                return changed
        return None
