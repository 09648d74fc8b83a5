"""Cheating answers against the sandbox's autograd guard (``autograder/sandbox/guard.py``).

Each cheat gets a gradient from PyTorch instead of deriving it: autograd's entry points, derivative
formulas (``*_backward`` ops, ``torch.nn.grad``), or a first step that undoes or sidesteps the guard
(grad mode, the torch-function mode stack, frames, ``gc``, ``ctypes``, threads, processes, forged
code, patched hooks, TorchScript, cached top-level results). Every cheat must earn 0 points for its
item when the solution notebook, with the cheat in one answer cell, is graded in the sandbox.

A cheat is written once, as the body of a graded function, in terms of three local names that each
item's template sets: ``x0`` (where to differentiate), ``fn`` (what to differentiate) and ``g`` (the
upstream gradient); the correct answer is the vector-Jacobian product ``g . d fn(x) / dx`` at ``x0``.
So one cheat can stand in for any single-tensor item, and the cheats are packed into a few sandbox
runs, each replacing several different answers of one notebook (a sandbox start costs seconds). A
cheat that changes process-wide state when it works (``alone``) is graded last in its run, so it
cannot open the door for another cheat. Every run also grades an untouched honest answer, last,
which must keep its full points.

A cheat that escapes the guard is kept, marked ``xfail(strict=True)`` with the reason: the test
turns red when the hole is closed, so the mark is then removed rather than forgotten.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from autograder.harness import ItemReport, grade
from autograder.notebook_code import grading_cells
from autograder.sandbox import Limits, SandboxSource
from autograder.spec import Assignment, Case

from conftest import solution_notebook, with_answers

LIMITS = Limits(per_call_s=5, per_cell_s=10)
HONEST_CONTROL = "dlogprobs"  # left as the solution wrote it; graded last in every run

# Why a cheat earned nothing, as its feedback says it (any one of the phrases of a tuple).
NOT_ALLOWED = ("not allowed", "does not allow")              # the no-graph mode refused a graph or a formula
TAMPERED = ("tampered with the grader",)                     # the profile hook ended the process
REFUSED = ("not available while your code is graded",)       # the audit hook refused an event
FRAMES = ("frames and tracebacks cannot be inspected",)
NO_GRAPH = ("does not require grad", "requires_grad=False")                       # autograd's keys are excluded: no graph was recorded
# Which layer stops a cheat can change as the guard is hardened (a switch removed stops the cheat
# before the mode refuses it): any of these, or a wrong value, counts as the guard's doing. The
# cheats were checked to compute the right gradient without the guard.
GUARD_PHRASES = NOT_ALLOWED + TAMPERED + REFUSED + FRAMES + NO_GRAPH

# ---------------------------------------------------------------- items a cheat can stand in for

# item -> (x0, fn, g): the answer is g . d fn(x)/dx at x = x0, from the function's own arguments.
TEMPLATES: dict[str, tuple[str, str, str]] = {
    "dprobs": ("probs", "lambda x: x.log()", "dlogprobs"),
    "dh": ("torch.zeros(dlogits.shape[0], W2.shape[0])", "lambda x: x @ W2", "dlogits"),
    "dW2": ("torch.zeros(h.shape[1], dlogits.shape[1])", "lambda x: h @ x", "dlogits"),
    "db2": ("torch.zeros(dlogits.shape[1])", "lambda x: torch.zeros_like(dlogits) + x", "dlogits"),
    "dhpreact": ("torch.atanh(h)", "lambda x: torch.tanh(x)", "dh"),
    "dbngain": ("torch.ones(1, bnraw.shape[1])", "lambda x: x * bnraw", "dhpreact"),
    "dbnbias": ("torch.zeros(1, dhpreact.shape[1])", "lambda x: torch.zeros_like(dhpreact) + x", "dhpreact"),
    "dbnraw": ("torch.zeros_like(dhpreact)", "lambda x: bngain * x", "dhpreact"),
    "dbnvar_inv": ("torch.ones(1, bndiff.shape[1])", "lambda x: bndiff * x", "dbnraw"),
    "dbnvar": ("bnvar", "lambda x: (x + 1e-5) ** -0.5", "dbnvar_inv"),
    "dbnmeani": ("torch.zeros(1, dbndiff.shape[1])", "lambda x: torch.zeros_like(dbndiff) - x", "dbndiff"),
    "dembcat": ("torch.zeros(dhprebn.shape[0], W1.shape[0])", "lambda x: x @ W1", "dhprebn"),
    "dW1": ("torch.zeros(embcat.shape[1], dhprebn.shape[1])", "lambda x: embcat @ x", "dhprebn"),
    "db1": ("torch.zeros(dhprebn.shape[1])", "lambda x: torch.zeros_like(dhprebn) + x", "dhprebn"),
    "dcounts_sum_inv": ("torch.ones(counts.shape[0], 1)", "lambda x: counts * x", "dprobs"),
    "dcounts_sum": ("counts_sum", "lambda x: x ** -1", "dcounts_sum_inv"),
    "dnorm_logits": ("counts.log()", "lambda x: x.exp()", "dcounts"),
    "dlogit_maxes": ("torch.zeros(dnorm_logits.shape[0], 1)", "lambda x: torch.zeros_like(dnorm_logits) - x",
                     "dnorm_logits"),
    "ex2_dlogits": ("logits", "lambda x: F.cross_entropy(x, Yb)", "torch.tensor(1.0)"),
}


@dataclass(frozen=True)
class Cheat:
    id: str
    body: str                 # the graded function's body; x0, fn and g are set
    top: str = ""             # cell code before the function (runs once, at the cell's top level)
    item: str | None = None   # a cheat written for one item only; else any item of TEMPLATES
    says: tuple[str, ...] = ()  # the item's feedback contains one of these (why it earned nothing)
    alone: bool = False       # graded last in its run (it changes process-wide state when it works)
    escapes: str | None = None  # known hole: the reason for the strict xfail

    def cell(self, assignment: Assignment, item: str) -> tuple[str, str]:
        """(function name, answer cell source) for ``item``."""
        spec = assignment.item(item)
        x0, fn, g = TEMPLATES[item]
        body = textwrap.indent(textwrap.dedent(self.body).strip() + "\n", "    ")
        code = f"def {spec.function}({', '.join(spec.args)}):\n    x0, fn, g = {x0}, {fn}, {g}\n" + body
        top = textwrap.dedent(self.top).strip()
        return spec.function, (top + "\n\n" + code if top else code)


# ---------------------------------------------------------------- the cheats

def _code(*parts: str, indent: int = 0) -> str:
    """Pieces of code joined into one; ``indent`` indents the result (a block for the piece before).
    A piece that starts on a new line (a triple-quoted literal) is dedented; the others are kept."""
    text = "\n".join((textwrap.dedent(part) if part.startswith("\n") else part).strip("\n") for part in parts)
    return textwrap.indent(text + "\n", " " * indent)


# Pieces several cheats share.
_GRAD_UNGUARDED = """
with torch.enable_grad():
    x = x0.clone().requires_grad_(True)
    return torch.autograd.grad(fn(x), x, g)[0]
"""
# Every torch-function mode off (the grader's and the call's), autograd, the modes back.
_POP_ALL_AND_GRAD = """
modes = []
while torch._C._len_torch_function_stack():
    modes.append(torch._C._pop_torch_function_stack())
try:
    with torch.enable_grad():
        x = x0.clone().requires_grad_(True)
        return torch.autograd.grad(fn(x), x, g)[0]
finally:
    for mode in reversed(modes):
        torch._C._push_on_torch_function_stack(mode)
"""
# From any frame of the call, reach the sandbox's main(): its module's ``os`` is what on_tamper
# exits through. A fake ``os`` makes the profile hook's verdicts harmless; then the modes go.
_NEUTER_FROM_FRAME = """
import types
while fr is not None and "on_tamper" not in fr.f_locals:
    fr = fr.f_back
fr.f_globals["os"] = types.SimpleNamespace(_exit=lambda status: None)
""" + _POP_ALL_AND_GRAD
# The profile hook's on_tamper, found in its closure, replaced; then the modes go.
_NEUTER_PROFILE = """
for cell in profile.__closure__:
    if getattr(cell.cell_contents, "__name__", "") == "check_c_call":
        for inner in cell.cell_contents.__closure__:
            if getattr(inner.cell_contents, "__name__", "") == "on_tamper":
                inner.cell_contents = lambda reason: None
""" + _POP_ALL_AND_GRAD
# _POP_ALL_AND_GRAD as the source of a function ``vjp(x0, fn, g)``, for code that forges a filename.
_VJP_SOURCE = repr("import torch\ndef vjp(x0, fn, g):\n" + textwrap.indent(textwrap.dedent(_POP_ALL_AND_GRAD), "    "))
# A graph built where no mode looks, stashed, then differentiated through the modes (autograd.grad
# on a graph that exists makes no new graph, and the engine then runs below the guard's own frame).
_SPY = """
stash = {}
class Spy(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        # called from the bottom mode's func(...): no mode is active here
        if "y" not in stash:
            with torch.enable_grad():
                x = x0.detach().clone().requires_grad_(True)
                stash["x"], stash["y"] = x, fn(x)
        return torch.zeros(())
torch.neg(torch.zeros(()).as_subclass(Spy))
"""

# Autograd with the guard sidestepped, given the three C types the tripwires were meant to keep away:
# torch-function handling off, the dispatch keys forced to the current ones less autograd's, and the
# engine's run_backward called from C (itertools.starmap: no profiled call). The `with` is left on an
# exception: a normal exit calls __exit__ through a profiled CALL, an exception does not.
_FORCE_GUARD_PIECES = """
import itertools
def vjp_below_the_guard(disable_torch_function, force_dispatch_keys, engine_type):
    include = next(itertools.starmap(torch._C._dispatch_tls_local_include_set, [()]))
    exclude = next(itertools.starmap(torch._C._dispatch_tls_local_exclude_set, [()]))
    keys, key = torch._C.DispatchKeySet, torch._C.DispatchKey
    exclude = exclude - keys(key.AutogradFunctionality) - keys(key.AutogradOther) - keys(key.AutogradNestedTensor)
    class Leave(Exception):
        pass
    out = []
    try:
        with disable_torch_function(), force_dispatch_keys(include, exclude), torch.enable_grad():
            x = x0.detach().clone().requires_grad_(True)
            run = engine_type().run_backward
            out.append(next(itertools.starmap(run, [((fn(x),), (g,), False, False, (x,), False, False)]))[0])
            raise Leave
    except Leave:
        pass
    return out[0].detach()
"""

CHEATS: list[Cheat] = [
    # -- autograd's entry points, used plainly
    Cheat("tensor.backward", """
        with torch.enable_grad():
            x = x0.clone().requires_grad_(True)
            fn(x).backward(g)
        return x.grad
        """, says=NOT_ALLOWED),
    Cheat("autograd.grad", _GRAD_UNGUARDED, says=NOT_ALLOWED),
    Cheat("autograd.backward", """
        with torch.enable_grad():
            x = x0.clone().requires_grad_(True)
            torch.autograd.backward([fn(x)], [g])
        return x.grad
        """, says=NOT_ALLOWED),
    Cheat("autograd.functional.vjp", "return torch.autograd.functional.vjp(fn, x0, g)[1]", says=NOT_ALLOWED),
    Cheat("autograd.functional.jacobian", """
        J = torch.autograd.functional.jacobian(fn, x0)
        return torch.tensordot(g, J, dims=g.dim())
        """, says=NOT_ALLOWED),
    Cheat("func.grad", "return torch.func.grad(lambda x: (fn(x) * g).sum())(x0)", says=NOT_ALLOWED),
    Cheat("func.vjp", """
        _, pull = torch.func.vjp(fn, x0)
        return pull(g)[0]
        """, says=NOT_ALLOWED),
    Cheat("func.jacrev", "return torch.tensordot(g, torch.func.jacrev(fn)(x0), dims=g.dim())", says=NOT_ALLOWED),
    Cheat("func.jacfwd", "return torch.tensordot(g, torch.func.jacfwd(fn)(x0), dims=g.dim())", says=NOT_ALLOWED),
    Cheat("func.jvp over a basis", """
        basis = torch.eye(x0.numel()).view(-1, *x0.shape)
        cols = torch.func.vmap(lambda v: torch.func.jvp(fn, (x0,), (v,))[1])(basis)
        return (cols * g).flatten(1).sum(1).view_as(x0)
        """, says=NOT_ALLOWED + TAMPERED),
    Cheat("autograd.forward_ad", """
        import torch.autograd.forward_ad as fwAD
        out = torch.empty(x0.numel())
        with fwAD.dual_level():
            for i in range(x0.numel()):
                t = torch.zeros(x0.numel())
                t[i] = 1.0
                y = fn(fwAD.make_dual(x0, t.view_as(x0)))
                out[i] = (fwAD.unpack_dual(y).tangent * g).sum()
        return out.view_as(x0)
        """, says=NOT_ALLOWED + TAMPERED),
    Cheat("autograd.Function subclass", """
        class Through(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return fn(x)
            @staticmethod
            def backward(ctx, gy):
                return gy
        with torch.enable_grad():
            x = x0.clone().requires_grad_(True)
            return torch.autograd.grad(fn(Through.apply(x)), x, g)[0]
        """, says=NOT_ALLOWED),
    # -- derivative formulas that PyTorch ships
    Cheat("aten.tanh_backward", "return torch.ops.aten.tanh_backward(dh, h)", item="dhpreact", says=NOT_ALLOWED),
    Cheat("aten.tanh_backward.default", "return torch.ops.aten.tanh_backward.default(dh, h)",
          item="dhpreact", says=NOT_ALLOWED),
    Cheat("aten._log_softmax_backward_data", """
        n = logits.shape[0]
        logp = torch.log_softmax(logits, 1)
        dlogp = -torch.nn.functional.one_hot(Yb, logits.shape[1]).float() / n
        return torch.ops.aten._log_softmax_backward_data(dlogp, logp, 1, logits.dtype)
        """, item="ex2_dlogits", says=NOT_ALLOWED),
    Cheat("nn.grad.conv1d_input", """
        n, H = dlogits.shape[0], W2.shape[0]
        weight = W2.T.unsqueeze(-1)   # (V, H, 1): h @ W2 as a 1x1 convolution
        return torch.nn.grad.conv1d_input((n, H, 1), weight, dlogits.unsqueeze(-1)).squeeze(-1)
        """, item="dh", says=NOT_ALLOWED),
    # -- grad mode switched back on
    Cheat("set_grad_enabled(True)", """
        torch.set_grad_enabled(True)
        x = x0.clone().requires_grad_(True)
        return torch.autograd.grad(fn(x), x, g)[0]
        """, says=NOT_ALLOWED),
    Cheat("enable_grad decorator", """
        @torch.enable_grad()
        def vjp():
            x = x0.clone().requires_grad_(True)
            return torch.autograd.grad(fn(x), x, g)[0]
        return vjp()
        """, says=NOT_ALLOWED),
    Cheat("inference_mode(False)", """
        with torch.inference_mode(False), torch.set_grad_enabled(True):
            x = x0.clone().requires_grad_(True)
            return torch.autograd.grad(fn(x), x, g)[0]
        """, says=NOT_ALLOWED),
    Cheat("torch._C._set_grad_enabled", """
        torch._C._set_grad_enabled(True)
        x = x0.clone().requires_grad_(True)
        return torch.autograd.grad(fn(x), x, g)[0]
        """, says=TAMPERED),
    # -- the engine itself, on a graph smuggled past the modes (see "tensor subclass spy")
    Cheat("engine.run_backward", _code(_SPY, """
        x, y = stash["x"], stash["y"]
        torch.autograd.Variable._execution_engine.run_backward((y,), (g,), False, False, (x,), False, False)
        return x.grad
        """), says=TAMPERED + NOT_ALLOWED),  # NOT_ALLOWED once the spy's graph is refused too
    # -- the modes popped, disabled or patched
    Cheat("torch._C._pop_torch_function_stack", _POP_ALL_AND_GRAD, says=TAMPERED),
    Cheat("torch.overrides._pop_mode", _code("""
        import torch.overrides as ov
        modes = [ov._pop_mode(), ov._pop_mode()]
        try:
        """, _code(_GRAD_UNGUARDED, indent=4), """
        finally:
            for m in reversed(modes):
                ov._push_mode(m)
        """), says=TAMPERED),
    Cheat("mode.__exit__", _code("""
        import torch.overrides as ov
        modes = ov._get_current_function_mode_stack()
        for m in reversed(modes):
            m.__exit__(None, None, None)
        try:
        """, _code(_GRAD_UNGUARDED, indent=4), """
        finally:
            for m in modes:
                m.__enter__()
        """), says=TAMPERED),
    Cheat("overrides._pop_mode_temporarily", """
        import torch.overrides as ov
        with ov._pop_mode_temporarily(), ov._pop_mode_temporarily():  # both: the grader's and the call's
            with torch.enable_grad():
                x = x0.clone().requires_grad_(True)
                y = fn(x)
        return torch.autograd.grad(y, x, g)[0]   # the engine then runs below the guard's own frame
        """),
    Cheat("_python_dispatch._disable_current_modes", _code("""
        from torch.utils._python_dispatch import _disable_current_modes
        with _disable_current_modes():
        """, _code(_GRAD_UNGUARDED, indent=4)), says=NOT_ALLOWED),
    Cheat("with DisableTorchFunction()", """
        with torch._C.DisableTorchFunction(), torch.enable_grad():
            x = x0.clone().requires_grad_(True)
            return torch.autograd.grad(fn(x), x, g)[0]
        """, says=TAMPERED),
    Cheat("DisableTorchFunction from object.__subclasses__()", """
        switch = next(c for c in object.__subclasses__() if c.__name__ == "DisableTorchFunction")
        class Leave(Exception):
            pass
        try:
            with switch():             # made, entered and (on an exception) left without a profiled call
                with torch.enable_grad():
                    x = x0.clone().requires_grad_(True)
                    y = fn(x)
                raise Leave
        except Leave:
            pass
        return torch.autograd.grad(y, x, g)[0]
        """),
    Cheat("with DisableTorchFunctionSubclass()", _code("""
        with torch._C.DisableTorchFunctionSubclass():
        """, _code(_GRAD_UNGUARDED, indent=4)), says=NOT_ALLOWED),
    Cheat("mode closure patched", """
        import torch.overrides as ov
        for mode in ov._get_current_function_mode_stack():
            for cell in type(mode).__torch_function__.__closure__:
                if getattr(cell.cell_contents, "__name__", "") == "refuse":
                    cell.cell_contents = lambda label: None
        with torch.enable_grad():
            x = x0.clone().requires_grad_(True)
            fn(x).backward(g)
        return x.grad
        """, alone=True),
    # -- a graph smuggled past the modes
    Cheat("in-place op, refusal caught", """
        x = probs.clone().requires_grad_(True)
        y = torch.zeros_like(probs)
        with torch.enable_grad():
            for step in (lambda: y.copy_(x), lambda: y.log_()):
                try:
                    step()          # the op runs, then the mode refuses its result: y keeps its grad_fn
                except Exception:
                    pass
        return torch.autograd.grad(y, x, g)[0]
        """, item="dprobs", says=NOT_ALLOWED),
    Cheat("tensor subclass spy", _code(_SPY, """
        return torch.autograd.grad(stash["y"], stash["x"], g)[0]
        """)),
    # -- frames
    Cheat("sys._getframe", "import sys\nfr = sys._getframe()\n" + _NEUTER_FROM_FRAME, says=FRAMES + TAMPERED),
    Cheat("inspect.currentframe", "import inspect\nfr = inspect.currentframe()\n" + _NEUTER_FROM_FRAME,
          says=FRAMES + TAMPERED),
    Cheat("traceback.walk_stack", "import traceback\nfr = next(traceback.walk_stack(None))[0]\n" + _NEUTER_FROM_FRAME,
          says=FRAMES + TAMPERED),
    Cheat("exception.__traceback__.tb_frame", _code("""
        try:
            raise ValueError
        except ValueError as e:
            fr = e.__traceback__.tb_frame.f_back
        """, _NEUTER_FROM_FRAME), says=FRAMES + TAMPERED),
    Cheat("logging.currentframe", "import logging\nfr = logging.currentframe()\n" + _NEUTER_FROM_FRAME,
          alone=True),
    # -- the interpreter's other doors
    Cheat("gc.get_objects", _code("""
        import gc
        for mode in [o for o in gc.get_objects() if isinstance(o, torch.overrides.TorchFunctionMode)]:
            for cell in type(mode).__torch_function__.__closure__:
                if getattr(cell.cell_contents, "__name__", "") == "refuse":
                    cell.cell_contents = lambda label: None
        """, _GRAD_UNGUARDED), says=REFUSED),
    Cheat("gc.get_referrers", _code("""
        import gc
        gc.get_referrers(torch.overrides.TorchFunctionMode)
        """, _GRAD_UNGUARDED), says=REFUSED),
    Cheat("ctypes PyEval_SetProfile", _code("""
        import ctypes
        ctypes.pythonapi.PyEval_SetProfile(None, None)
        """, _POP_ALL_AND_GRAD), says=REFUSED),
    Cheat("threading.Thread", """
        import threading
        out = {}
        def work():  # a new thread starts with no torch-function mode and no profile hook
            with torch.enable_grad():
                x = x0.clone().requires_grad_(True)
                out["g"] = torch.autograd.grad(fn(x), x, g)[0]
        t = threading.Thread(target=work)
        t.start()
        t.join()
        return out["g"]
        """),
    Cheat("os.fork", """
        import os, pickle
        r, w = os.pipe()
        if os.fork() == 0:
            with torch.enable_grad():
                x = x0.clone().requires_grad_(True)
                os.write(w, pickle.dumps(torch.autograd.grad(fn(x), x, g)[0].tolist()))
            os._exit(0)
        os.close(w)
        return torch.tensor(pickle.loads(os.read(r, 1 << 24)))
        """, says=REFUSED),
    Cheat("multiprocessing (fork)", """
        import multiprocessing, os, pickle
        r, w = os.pipe()
        def work():
            with torch.enable_grad():
                x = x0.clone().requires_grad_(True)
                os.write(w, pickle.dumps(torch.autograd.grad(fn(x), x, g)[0].tolist()))
        multiprocessing.get_context("fork").Process(target=work).start()
        os.close(w)
        return torch.tensor(pickle.loads(os.read(r, 1 << 24)))
        """, says=REFUSED),
    Cheat("subprocess python", """
        import json, subprocess, sys
        code = ("import json, sys, torch; d = json.load(sys.stdin); x = torch.tensor(d['x'], requires_grad=True); "
                "y = (" + SUBPROCESS_FN + ")(x); y.backward(torch.tensor(d['g'])); print(json.dumps(x.grad.tolist()))")
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps({"x": x0.tolist(), "g": g.tolist()}),
                             capture_output=True, text=True).stdout
        return torch.tensor(json.loads(out))
        """, item="dcounts_sum", says=REFUSED),
    Cheat("os.system", _code("""
        import os
        os.system("true")
        """, _GRAD_UNGUARDED), says=REFUSED),
    Cheat("os.posix_spawn", _code("""
        import os, sys
        os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], {})
        """, _GRAD_UNGUARDED), says=REFUSED),
    Cheat("_posixsubprocess.fork_exec", """
        _to_server.write(json.dumps({"x": x0.tolist(), "g": g.tolist()}) + "\\n")
        _to_server.flush()
        return torch.tensor(json.loads(_from_server.readline()))
        """, top="""
        # A server: a new interpreter (this one's binary, even where the sandbox hides its path) that
        # imports torch once, then answers each call's vector-Jacobian product with autograd.
        import json, os, sys, _posixsubprocess
        _code = ("import json, sys; sys.path[:0] = json.loads(sys.argv[1]); import torch\\n"
                 "print('ready', flush=True)\\n"
                 "for line in sys.stdin:\\n"
                 "    d = json.loads(line); x = torch.tensor(d['x'], requires_grad=True)\\n"
                 "    (" + FORK_EXEC_FN + ")(x).backward(torch.tensor(d['g']))\\n"
                 "    print(json.dumps(x.grad.tolist()), flush=True)\\n")
        _exe = f"/proc/{os.getpid()}/exe"
        _in_r, _in_w = os.pipe()
        _out_r, _out_w = os.pipe()
        _err_r, _err_w = os.pipe()
        _posixsubprocess.fork_exec([os.fsencode(a) for a in (_exe, "-c", _code, json.dumps(sys.path))],
                                   [os.fsencode(_exe)], True, (), None, None, _in_r, -1, -1, _out_w, -1, -1,
                                   _err_r, _err_w, False, False, -1, None, None, None, -1, None, False)
        for _fd in (_in_r, _out_w, _err_r, _err_w):
            os.close(_fd)
        _to_server, _from_server = os.fdopen(_in_w, "w"), os.fdopen(_out_r)
        assert _from_server.readline() == "ready\\n"
        """, item="dbnvar"),
    # -- forged library code
    Cheat("compile with a library filename", """
        import sysconfig
        ns = {}
        exec(compile(VJP_SOURCE, sysconfig.get_paths()["stdlib"] + "/_answer_helper.py", "exec"), ns)
        return ns["vjp"](x0, fn, g)
        """, says=REFUSED),
    Cheat("code.replace(co_filename=...)", """
        import sysconfig
        code = compile(VJP_SOURCE, "<answer>", "exec")
        code = code.replace(co_filename=sysconfig.get_paths()["stdlib"] + "/_answer_helper.py")
        ns = {}
        exec(code, ns)
        return ns["vjp"](x0, fn, g)
        """, says=REFUSED),
    Cheat("importlib loader with a stdlib filename", """
        import importlib.abc, importlib.util, sysconfig
        class Loader(importlib.abc.SourceLoader):
            def get_filename(self, name):
                return sysconfig.get_paths()["stdlib"] + "/_answer_helper.py"
            def get_data(self, path):
                return VJP_SOURCE.encode()
        spec = importlib.util.spec_from_loader("_answer_helper", Loader())
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)   # compiled and run by <frozen importlib>: both trusted
        return module.vjp(x0, fn, g)
        """),
    Cheat("TorchScript", """
        from typing import List, Optional
        @torch.jit.script
        def vjp(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
            gs: List[Optional[torch.Tensor]] = [g]
            r = torch.autograd.grad([x.exp()], [x], gs)[0]
            assert r is not None
            return r
        with torch.enable_grad():
            return vjp(x0.clone().requires_grad_(True), g)
        """, item="dnorm_logits"),
    # -- patched hooks and modules
    Cheat("torch.Tensor.grad_fn patched", _code("""
        torch.Tensor.grad_fn = property(lambda self: None)
        try:
        """, _code(_GRAD_UNGUARDED, indent=4), """
        finally:
            del torch.Tensor.grad_fn
        """), says=NOT_ALLOWED),
    Cheat("sys.getprofile() closure", "import sys\nprofile = sys.getprofile()\n" + _NEUTER_PROFILE, says=TAMPERED),
    Cheat("sys.getprofile() via itertools.starmap", _code("""
        import itertools, sys
        profile = next(itertools.starmap(sys.getprofile, [()]))  # called from C: no c_call event
        """, _NEUTER_PROFILE), alone=True),
    Cheat("profile hook made to raise", _code("""
        class Odd(list):
            @property
            def __class__(self):     # the hook's isinstance(owner, ...) raises; Python unsets a raising hook
                raise ValueError
        try:
            Odd().append(1)
        except Exception:
            pass
        """, _POP_ALL_AND_GRAD), says=TAMPERED),
    Cheat("importlib.reload(torch)", _code("""
        import importlib
        importlib.reload(torch)
        """, _GRAD_UNGUARDED), says=REFUSED),
    Cheat("sys.modules entries deleted", """
        import sys
        for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
            del sys.modules[name]
        import torch as fresh
        with fresh.enable_grad():
            x = x0.clone().requires_grad_(True)
            return fresh.autograd.grad(fn(x), x, g)[0]
        """, alone=True, says=("crashed the grading process",)),
    # -- autograd at the cell's top level, on the notebook's batch, cached for the function
    Cheat("top-level autograd, cached", """
        if torch.equal(probs, f.probs):
            return CACHED          # the notebook's batch: autograd's answer from the top of the cell
        return dlogprobs / probs   # hidden cases: not what this cheat is about
        """, top="""
        with torch.enable_grad():
            _f = forward(params, Xb, Yb)
            _f.probs.retain_grad()
            _f.loss.backward()
        CACHED = _f.probs.grad.clone()
        """, item="dprobs", says=("`backward_probs` is not defined",)),  # the cell stopped at the refusal
    # -- round 3: the removed switches are still reachable, and the grader's own data is readable
    Cheat("dispatch-key guard and engine from type.__subclasses__", _code(_FORCE_GUARD_PIECES, """
        found = {}
        seen, todo = set(), [object]
        while todo:
            try:
                subs = type.__subclasses__(todo.pop())
            except TypeError:
                continue
            for c in subs:
                if id(c) not in seen:
                    seen.add(id(c))
                    todo.append(c)
                    if getattr(c, "__module__", None) == "torch._C":
                        found[c.__name__] = c
        return vjp_below_the_guard(found["DisableTorchFunction"], found["_ForceDispatchKeyGuard"],
                                   found["_EngineBase"])
        """)),
    Cheat("job.pt read from the job folder", """
        import os
        spec = torch.load("/tmp/job/job.pt" if os.path.exists("/tmp/job/job.pt") else "job.pt", weights_only=False)
        case = next(key.split("@")[1] for key, function, args, names, watch in spec["calls"]
                    if function == "backward_hpreact" and args[1].shape == g.shape and torch.equal(args[1], g))
        return next(args[list(names).index("dhpreact")].clone() for key, function, args, names, watch in spec["calls"]
                    if key.split("@")[1] == case and "dhpreact" in names)   # the true gradient given to dbngain...
        """, item="dhpreact"),
]

# Names the cheats' code uses for text made here.
_SUBSTITUTIONS = {"VJP_SOURCE": _VJP_SOURCE,
                  "SUBPROCESS_FN": repr(TEMPLATES["dcounts_sum"][1]),
                  "FORK_EXEC_FN": repr(TEMPLATES["dbnvar"][1])}


def _with_substitutions(cheat: Cheat) -> Cheat:
    body, top = cheat.body, cheat.top
    for name, value in _SUBSTITUTIONS.items():
        body, top = body.replace(name, value), top.replace(name, value)
    return Cheat(**{**cheat.__dict__, "body": body, "top": top})


CHEATS = [_with_substitutions(c) for c in CHEATS]
assert len({c.id for c in CHEATS}) == len(CHEATS)


# ---------------------------------------------------------------- packing the cheats into sandbox runs

def plan_runs(cheats: list[Cheat]) -> list[dict[str, Cheat]]:
    """Runs of ``{item: cheat}``, in grading order, each cheat on an item of its own in its run.
    Cheats written for one item are placed first; an ``alone`` cheat is graded last in its run (only
    the honest control after it), so whatever it changes cannot help another cheat."""
    alone = [c for c in cheats if c.alone]
    runs: list[dict[str, Cheat]] = [{} for _ in range(max(1, len(alone)))]
    for cheat in sorted((c for c in cheats if not c.alone), key=lambda c: c.item is None):
        # round robin from the emptiest run, so the runs (and their restarts) stay about even
        for run in sorted(runs, key=len):
            free = [i for i in TEMPLATES if i not in run] if cheat.item is None else [cheat.item]
            if free[0] not in run:
                run[free[0]] = cheat
                break
        else:
            runs.append({cheat.item or next(iter(TEMPLATES)): cheat})
    for cheat, run in zip(alone, runs):
        run[cheat.item or next(i for i in TEMPLATES if i not in run)] = cheat
    return runs


RUNS = plan_runs(CHEATS)


@dataclass
class Outcome:
    """A cheat's item report, the sandbox it ran in, and the honest control of the same run."""

    report: ItemReport
    source: SandboxSource
    control: ItemReport


_GRADED: dict[int, dict[str, Outcome]] = {}


def graded(mlp: Assignment, cases: list[Case], cheat: Cheat) -> Outcome:
    """The outcome of ``cheat``, grading its whole run once (and caching every cheat of that run)."""
    number = next(n for n, run in enumerate(RUNS) if cheat in run.values())
    if number not in _GRADED:
        run = RUNS[number]
        nb = with_answers(solution_notebook(), dict(c.cell(mlp, item) for item, c in run.items()))
        source = SandboxSource(grading_cells(nb, mlp), require="limits", limits=LIMITS)
        reports = {r.item.name: r for r in grade(mlp, source, cases,
                                                  [mlp.item(i) for i in [*run, HONEST_CONTROL]])}
        _GRADED[number] = {c.id: Outcome(reports[item], source, reports[HONEST_CONTROL]) for item, c in run.items()}
    return _GRADED[number][cheat.id]


def _param(cheat: Cheat) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=f"escapes the guard: {cheat.escapes}")] if cheat.escapes else []
    return pytest.param(cheat, id=cheat.id, marks=marks)


# ---------------------------------------------------------------- the tests

def test_the_cheats_cover_enough_doors() -> None:
    assert len(CHEATS) >= 25
    assert all(c.item is None or c.item in TEMPLATES for c in CHEATS)
    assert HONEST_CONTROL not in TEMPLATES  # never replaced by a cheat
    assert not any(c.alone and c.top for c in CHEATS)  # top-level code would run before the others' calls


@pytest.mark.parametrize("cheat", [_param(c) for c in CHEATS])
def test_cheat_earns_nothing(mlp: Assignment, mlp_cases: list[Case], cheat: Cheat) -> None:
    outcome = graded(mlp, mlp_cases, cheat)
    report = outcome.report
    assert report.earned == 0, f"{cheat.id} earned {report.earned} for {report.item.name}: it escapes the guard"
    problem = report.problem or ""
    if cheat.says:
        stopped = any(phrase in problem for phrase in cheat.says + GUARD_PHRASES)
        assert stopped or (not problem and report.failing_check is not None), \
            f"{cheat.id}: unexpected feedback {problem!r}"
    if TAMPERED[0] in problem:  # a process ended by the guard is also recorded for manual review
        assert any(f"call {report.item.name}@" in line for line in outcome.source.tampering), outcome.source.tampering


def test_top_level_autograd_is_refused_in_the_cell(mlp: Assignment, mlp_cases: list[Case]) -> None:
    """The cell itself fails: the guard is on before the first student line runs."""
    outcome = graded(mlp, mlp_cases, next(c for c in CHEATS if c.id == "top-level autograd, cached"))
    errors = [str(o.get("evalue", "")) for outs, failed in outcome.source.cell_outputs.values() if failed
              for o in outs if o.get("output_type") == "error"]
    assert any(phrase in e for e in errors for phrase in GUARD_PHRASES), errors


@pytest.mark.parametrize("run", range(len(RUNS)), ids=[f"run{n}" for n in range(len(RUNS))])
def test_honest_answer_in_the_same_run_keeps_its_points(mlp: Assignment, mlp_cases: list[Case], run: int) -> None:
    cheat = next(iter(RUNS[run].values()))
    control = graded(mlp, mlp_cases, cheat).control
    assert control.passed, f"the honest {HONEST_CONTROL} lost points next to {cheat.id}: {control.problem}"
