"""The second, independent line against autograd and tampering: read the answer cells, run nothing.

The sandbox refuses autograd by what code *does*. This module flags what code *says*: autograd
APIs, derivative formulas, and the tools of interpreter tampering (frames, ``gc``, ``ctypes``,
``__code__``/``__closure__``, dynamic ``exec``/``getattr`` on strings). A flag does not change a
score: it marks the submission for manual review in formgrader, with the reasons, because a false
positive (an answer that mentions ``backward`` in a comment) must not cost points.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# Names whose mere use in an answer deserves a human look.
_AUTOGRAD_NAMES = {"backward", "autograd", "grad_fn", "requires_grad", "requires_grad_", "enable_grad",
                   "set_grad_enabled", "inference_mode", "func", "functorch", "vjp", "jvp", "jacrev", "jacfwd",
                   "forward_ad", "make_dual", "retain_grad", "register_hook"}
_TAMPER_NAMES = {"_getframe", "currentframe", "f_back", "f_locals", "f_globals", "tb_frame", "gi_frame",
                 "get_objects", "get_referrers", "get_referents", "ctypes", "__code__", "__closure__",
                 "__globals__", "__builtins__", "_C", "setprofile", "settrace", "getprofile", "addaudithook",
                 "__subclasses__", "importlib", "marshal", "subprocess", "_pop_mode", "DisableTorchFunction",
                 "_dynamo", "_python_dispatch", "overrides", "sys_getframe"}
_DYNAMIC = {"exec", "eval", "compile", "__import__"}
_FORMULA = re.compile(r"(_backward|backward_data)$")


@dataclass(frozen=True)
class Finding:
    cell: int
    line: int
    reason: str

    def __str__(self) -> str:
        return f"cell {self.cell}, line {self.line}: {self.reason}"


def review(cells: list[tuple[int, str]], allowed: frozenset[str] = frozenset()) -> list[Finding]:
    """Findings in the given ``(cell index, source)`` answer cells; cells that do not parse are skipped
    (they fail in the sandbox on their own). ``allowed`` names are the exercise itself (micrograd's
    ``backward`` and ``_backward``: ``Assignment.review_allows``) and are not flagged."""
    findings: list[Finding] = []
    for index, source in cells:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                for part in [p for m in modules + [a.name for a in node.names] for p in m.split(".")]:
                    if part in _AUTOGRAD_NAMES or part in _TAMPER_NAMES:
                        findings.append(Finding(index, node.lineno, f"imports `{part}`"))
                for module in modules + [a.name for a in node.names if isinstance(node, ast.Import)]:
                    if _kit_internal(module):
                        findings.append(Finding(index, node.lineno, f"imports the grader's internals `{module}`"))
                continue
            name = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name)
                    else node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None)
            if not isinstance(name, str):
                continue
            line = getattr(node, "lineno", 0)
            if name in allowed:
                continue
            if name == "func" and not isinstance(node, ast.Attribute):
                continue  # a variable called func; torch.func is an attribute
            if name in _AUTOGRAD_NAMES or _FORMULA.search(name) and isinstance(node, ast.Attribute):
                findings.append(Finding(index, line, f"uses `{name}` (autograd)"))
            elif name in _TAMPER_NAMES:
                findings.append(Finding(index, line, f"uses `{name}` (interpreter internals)"))
            elif isinstance(node, ast.Name) and name in _DYNAMIC:
                findings.append(Finding(index, line, f"uses `{name}` (runs code built at run time)"))
            elif isinstance(node, ast.Name) and name in ("getattr", "setattr") and _has_non_literal_name(tree, node):
                findings.append(Finding(index, line, f"uses `{name}` (attribute chosen at run time)"))
    unique: dict[tuple[int, str], Finding] = {}
    for f in findings:
        unique.setdefault((f.cell, f.reason), f)
    return list(unique.values())


def _kit_internal(module: str) -> bool:
    """A private module of the kit (``autograder.assignments._micrograd_drivers``, ``autograder.sandbox``):
    answers have no business there (the notebooks import public helpers in given cells)."""
    parts = module.split(".")
    return parts[0] == "autograder" and any(p.startswith("_") or p == "sandbox" for p in parts[1:])


def _has_non_literal_name(tree: ast.AST, name_node: ast.AST) -> bool:
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and call.func is name_node and len(call.args) >= 2:
            return not isinstance(call.args[1], ast.Constant)
    return False
