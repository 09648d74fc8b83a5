"""Autograd out of answers by outcome, not by a list of entry points; and a seal on the interpreter.

``no_graph_mode()`` is a ``TorchFunctionMode``: every torch call made from Python passes through it
(tensor methods, ``torch.*``, ``torch.nn.functional``, ``torch.ops.aten.*``, functorch's internals).
It refuses a call when its result carries autograd history (a ``grad_fn``), and refuses the ops that
*are* derivative formulas (``*_backward``) or forward-mode duals (``_make_dual``). Without a graph
there is nothing for ``backward()``, ``autograd.grad``, ``torch.func.grad/vjp/jacrev`` or the engine to
differentiate, whichever door is used, so the coverage does not depend on knowing the doors.

``seal_interpreter()`` keeps the mode in place. Python's audit hooks (PEP 578) cannot be
uninstalled; the one here refuses what would let code reach the mode or the grader's objects: frame
and traceback walking, ``gc`` object walks, ``ctypes``, new threads (thread-local state starts
without the mode), new processes, forged code objects, ``sys.settrace``/``setprofile`` and importing
torch's compiler stack. A profile hook, on C calls only, ends the process when student code calls a
private callable (a leading underscore) of any library, a method of autograd's engine or of a
``torch._C`` guard type, or when a library call that switches modes off is made on student code's
behalf. ``disarm_switches()`` replaces the ``torch._C`` context managers that switch torch-function
handling off (entering them runs no profiled call) by tripwires. Student code is any code that was
not loaded from a file of the Python installation or the kit. ARCHITECTURE.md says what this does
not cover.

Everything the checks use is captured in closures when they are built, so patching a module
attribute afterwards (``torch.Tensor.grad_fn = ...``) changes nothing here.
"""

from __future__ import annotations

import gc
import sys
import sysconfig
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode


class AutogradNotAllowed(RuntimeError):
    """Raised when an answer builds an autograd graph or calls a derivative formula."""


class ShortcutNotAllowed(RuntimeError):
    """Raised when an answer calls a library function its exercise asks the student to write."""


class Shortcuts:
    """The library functions an item's exercise reimplements (``Item.shortcuts``), which its answer
    must not call: ``"torch.nn.functional.unfold"``, ``"torch.Tensor.unfold"`` (found by import and
    attribute, and recognised by identity, whatever name or module the answer reaches them through,
    ``nn.Unfold`` included, since it calls ``F.unfold``) or ``"aten::im2col"`` (an operator,
    recognised by name through ``torch.ops.aten``). ``resolve`` looks every name up once, before any
    student code runs (a rebinding afterwards cannot hide a function); ``forbid`` then chooses the
    ones in force for the call about to run."""

    def __init__(self) -> None:
        self._known: dict[str, object] = {}            # name -> the function, looked up once
        self._objects: dict[int, str] = {}             # id of a forbidden function -> its name
        self._operators: dict[str, str] = {}           # aten operator name -> its declared name

    def resolve(self, names: Iterable[str]) -> Shortcuts:
        for name in names:
            if name not in self._known and not name.startswith("aten::"):
                self._known[name] = _look_up(name)
        return self

    def forbid(self, names: Iterable[str]) -> None:
        names = tuple(names)
        self.resolve(names)
        self._objects = {id(self._known[n]): n for n in names if not n.startswith("aten::")}
        self._operators = {n.removeprefix("aten::"): n for n in names if n.startswith("aten::")}

    def refused(self, func: object) -> str | None:
        """The declared name ``func`` is forbidden under, or None."""
        if not self._objects and not self._operators:
            return None
        name = self._objects.get(id(func))
        if name is None and self._operators and type(func).__module__ == "torch._ops":
            name = self._operators.get(str(getattr(func, "__name__", "")).split(".")[0])
        return name


def _look_up(name: str) -> object:
    """``"torch.nn.functional.unfold"`` -> the object: the longest importable module, then attributes."""
    import importlib

    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            value = getattr(value, attribute)
        return value
    raise ValueError(f"cannot find the function {name!r}")


class TamperingRefused(RuntimeError):
    """Raised when code tries to get at the interpreter's or the grader's internals."""


class FramesRefused(TamperingRefused, ValueError):
    """``sys._getframe`` and frame attributes while student code runs. A ValueError too, as
    ``sys._getframe`` raises when the stack is not deep enough: library code that looks at frames
    for a name (``collections.namedtuple``) handles it and carries on."""


# Ops that are derivative formulas or forward-mode AD: refused by name, whatever path calls them.
_FORMULA_MARKERS = ("backward", "_make_dual", "_unpack_dual", "_fw_primal")


def no_graph_mode(on_refusal: object = None, shortcuts: Shortcuts | None = None,
                  on_shortcut: object = None) -> TorchFunctionMode:
    """A fresh mode that refuses autograd graphs and derivative formulas, and the functions
    ``shortcuts`` forbids. ``on_refusal(label)`` and ``on_shortcut(name)``, if given, are called
    before raising (the harness records what was refused)."""
    grad_fn_of = torch._C.TensorBase.grad_fn.__get__  # the C getter: a Python-level patch cannot shadow it
    tensor_type = torch._C.TensorBase
    builtin_isinstance, builtin_getattr, builtin_str = isinstance, getattr, str
    markers = _FORMULA_MARKERS
    forbidden = shortcuts.refused if shortcuts is not None else (lambda func: None)

    def leaves(value: object, depth: int = 0) -> Iterable[object]:
        if depth > 4:
            return
        if builtin_isinstance(value, (tuple, list)):
            for v in value:
                yield from leaves(v, depth + 1)
        elif builtin_isinstance(value, dict):
            for v in value.values():
                yield from leaves(v, depth + 1)
        else:
            yield value

    def refuse(label: str) -> None:
        if callable(on_refusal):
            on_refusal(label)
        raise AutogradNotAllowed(f"{label} is not allowed here: this exercise asks you to derive the gradient "
                                 "yourself (autograd is off while answers are checked)")

    def refuse_shortcut(name: str) -> None:
        if callable(on_shortcut):
            on_shortcut(name)
        raise ShortcutNotAllowed(f"`{name}` is what this exercise asks you to write yourself, so your answer "
                                 "may not call it")

    class NoGraph(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            shortcut = forbidden(func)
            if shortcut is not None:
                refuse_shortcut(shortcut)
            name = builtin_str(builtin_getattr(func, "__name__", func))
            if any(m in name for m in markers):
                refuse(f"`{name}` (a derivative formula)")
            # A graph built while this mode was somehow out of the way still cannot be used: no torch
            # call (``autograd.grad`` included) may take a tensor that carries autograd history.
            for leaf in leaves((args, kwargs)):
                if builtin_isinstance(leaf, tensor_type) and grad_fn_of(leaf) is not None:
                    refuse(f"a tensor that carries a backward graph (a notebook variable made by "
                           f"`forward_with_grads`, or built with autograd) passed to `{name}`")
            result = func(*args, **(kwargs or {}))
            for leaf in leaves(result):
                if builtin_isinstance(leaf, tensor_type) and grad_fn_of(leaf) is not None:
                    refuse(f"autograd (`{name}` recorded a backward graph)")
            return result

    return NoGraph()


# What switches autograd back on, or the no-graph mode off, or computes a derivative by formula, by
# where it lives. The child replaces every reference to these, in every loaded module and class, by a
# tripwire before student code runs: what no Python object refers to cannot be called, even from C
# (``map``, ``itertools.starmap``), and entering a C context manager runs no profiled call, so removal
# is the only sure way. (The torch-function mode stack itself stays: ``handle_torch_function`` needs it.)
_SWITCHES: dict[str, tuple[str, ...]] = {
    "torch._C": (
        # dispatch keys (the autograd keys are excluded for the whole process) and dispatch modes
        "_dispatch_tls_set_dispatch_key_excluded", "_dispatch_tls_set_dispatch_key_included",
        "_ExcludeDispatchKeyGuard", "_IncludeDispatchKeyGuard", "_SetExcludeDispatchKeyGuard",
        "_ForceDispatchKeyGuard", "_PreserveDispatchKeyGuard", "_RestorePythonTLSSnapshot", "_InferenceMode",
        "_dispatch_library", "_set_dispatch_mode", "_unset_dispatch_mode", "_push_on_torch_dispatch_stack",
        "_pop_torch_dispatch_stack", "_DisableTorchDispatch", "_DisableFuncTorch",
        # torch-function handling switched off wholesale
        "DisableTorchFunction", "_EnableTorchFunction", "_disabled_torch_function_impl",
        "_disabled_torch_dispatch_impl",
        # autograd's engine and forward-mode levels
        "_ImperativeEngine", "_enter_dual_level", "_exit_dual_level",
        # TorchScript: a scripted function runs autograd in C++, out of any mode's sight
        "CompilationUnit", "_jit_script_compile", "_jit_script_class_compile", "_jit_script_compile_overload",
        "_jit_script_interface_compile"),
    # functorch's transforms put autograd back on inside their layers
    "torch._C._functorch": ("_grad_increment_nesting", "_grad_decrement_nesting", "_jvp_increment_nesting",
                            "_jvp_decrement_nesting", "_wrap_for_grad", "_unwrap_for_grad",
                            "_set_dynamic_layer_keys_included", "push_dynamic_layer_stack",
                            "pop_dynamic_layer_stack", "pop_dynamic_layer_stack_and_undo_to_depth"),
    "torch.jit": ("script", "trace", "trace_module", "load", "freeze", "script_if_tracing"),
    "torch": ("compile",),
    "torch.nn.grad": ("conv1d_input", "conv1d_weight", "conv2d_input", "conv2d_weight", "conv3d_input",
                      "conv3d_weight"),
    # new threads start without the process's autograd state (thread-local), new processes without
    # the guard at all (the kernel refuses both too: see isolation.forbid_new_tasks)
    "_thread": ("start_new_thread", "start_new", "start_joinable_thread"),
    "_posixsubprocess": ("fork_exec",),
    "os": ("fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve", "system", "spawnv", "spawnve",
           # signals by process file descriptor raise no audit event (os.kill does): the warm sandbox's
           # zygote shares the child's PID namespace
           "pidfd_open"),
    "signal": ("pidfd_send_signal", "pthread_kill"),
}
# Modules whose functions named ``*backward*`` are derivative formulas (``torch._C._nn.tanh_backward``).
_FORMULA_MODULES = ("torch", "torch._C", "torch._C._nn", "torch._C._VariableFunctions", "torch._C._linalg",
                    "torch._C._special", "torch._C._fft", "torch._C._sparse", "torch._C._nested")


# pybind11 types (mutable, unlike torch's static C types) that would put autograd's dispatch keys
# back, found by name or by walking ``type.__subclasses__()``: making or entering one trips.
_KEY_CHANGING_TYPES = ("_ForceDispatchKeyGuard", "_IncludeDispatchKeyGuard", "_SetExcludeDispatchKeyGuard",
                       "_PreserveDispatchKeyGuard", "_RestorePythonTLSSnapshot", "_InferenceMode",
                       "_DisableTorchDispatch", "_DisableFuncTorch", "_EnableTorchFunction")


def _seal_types(on_tamper: Callable[[str], None]) -> None:
    """Make the key-changing types trip when made or entered, and the sandbox's own
    ``_AutoDispatchBelowAutograd`` (and any other) trip when left: the exclusion stays."""
    def tripping(label: str) -> Callable[..., None]:
        def tripped(self: object, *args: object, **kwargs: object) -> None:
            on_tamper(f"used `{label}`, which the grading sandbox removes")
        return tripped
    for name in _KEY_CHANGING_TYPES:
        kind = getattr(torch._C, name, None)
        if kind is not None:
            for method in ("__init__", "__enter__"):
                setattr(kind, method, tripping(f"torch._C.{name}"))
    torch._C._AutoDispatchBelowAutograd.__exit__ = tripping("leaving torch._C._AutoDispatchBelowAutograd")


def _seal_op_namespaces(on_tamper: Callable[[str], None]) -> None:
    """``torch.ops.<namespace>.<op>`` made anew (a fresh ``_OpNamespace``) must not hand out a
    derivative formula either."""
    from torch._ops import _OpNamespace

    original = _OpNamespace.__getattr__

    def guarded(self: object, name: str) -> object:
        if "backward" in name:
            on_tamper(f"looked up the derivative formula `{name}`, which the grading sandbox removes")
        return original(self, name)
    _OpNamespace.__getattr__ = guarded  # type: ignore[method-assign]


def _formula_names() -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for module_name in _FORMULA_MODULES:
        module = sys.modules.get(module_name)
        if module is not None:
            found[module_name] = tuple(n for n in dir(module) if "backward" in n and callable(getattr(module, n)))
    return found


def exclude_autograd_for_good() -> object:
    """Exclude the autograd dispatch keys for this thread, for the rest of its life: no op records a
    graph, whatever grad mode says, whichever API or C path runs it. Returns the guard object, which
    the caller keeps alive (and out of reach: ``disarm_switches`` removes what could undo it)."""
    guard = torch._C._AutoDispatchBelowAutograd()
    guard.__enter__()
    return guard


class _Tripwire:
    """Stands where a switch was: making, calling, entering or reading it ends the process."""

    def __init__(self, name: str, on_tamper: Callable[[str], None]) -> None:
        object.__setattr__(self, "_trip", lambda: on_tamper(f"used `{name}`, which the grading sandbox removes"))

    def __call__(self, *args: object, **kwargs: object) -> None:
        self._trip()

    def __getattr__(self, attribute: str) -> object:
        self._trip()
        return None

    def __enter__(self) -> None:
        self._trip()

    def __exit__(self, *exc: object) -> None:
        self._trip()


def disarm_switches(on_tamper: Callable[[str], None]) -> list[str]:
    """Replace each switch in ``_SWITCHES`` (and autograd's engine object), wherever a loaded module
    or class holds it, by a tripwire. Returns the names replaced."""
    targets = {**_SWITCHES, **_formula_names()}
    originals: dict[int, str] = {}
    for module_name, names in targets.items():
        module = sys.modules.get(module_name)
        for name in names:
            value = getattr(module, name, None) if module is not None else None
            if value is not None:
                originals[id(value)] = f"{module_name}.{name}"
    engine = torch.autograd.variable.Variable._execution_engine
    originals[id(engine)] = "autograd's engine"
    keep = [engine] + [getattr(sys.modules.get(m), n, None) for m, ns in targets.items() for n in ns]
    # torch.ops.aten creates its op packets on first use: put tripwires there for the formulas first
    for op in torch._C._dispatch_get_all_op_names():
        namespace, _, name = op.partition("::")
        if namespace == "aten" and "backward" in name:
            setattr(torch.ops.aten, name.split(".")[0], _Tripwire(f"torch.ops.aten.{name}", on_tamper))
    _seal_types(on_tamper)
    _seal_op_namespaces(on_tamper)
    replaced: list[str] = []  # ``keep`` holds the originals until the scan ends: ids stay unique
    with warnings.catch_warnings():  # some modules warn when their deprecated attributes are looked at
        warnings.simplefilter("ignore")
        _replace_everywhere(originals, on_tamper, replaced)
    del keep
    return replaced


def _replace_everywhere(originals: dict[int, str], on_tamper: Callable[[str], None], replaced: list[str]) -> None:
    for module in list(sys.modules.values()):
        holders = [module] + [v for v in vars(module).values() if isinstance(v, type)] if module else []
        for holder in holders:
            try:
                items = list(vars(holder).items())
            except TypeError:
                continue
            for attribute, value in items:
                label = originals.get(id(value))
                if label is None:
                    continue
                try:
                    setattr(holder, attribute, _Tripwire(label, on_tamper))
                    replaced.append(f"{getattr(holder, '__name__', holder)}.{attribute}")
                except (AttributeError, TypeError):
                    pass  # a C type's attribute: unreachable by name once its module's is gone


def trusted_roots(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Folders whose files hold library code: the standard library, site-packages, the kit."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(str(Path(__file__).resolve().parents[1]))  # the autograder package
    roots |= {str(Path(p)) for p in extra}
    return tuple(sorted(r.rstrip("/") + "/" for r in roots))


# Audit events refused outright once the interpreter is sealed.
_REFUSED_EVENTS = frozenset({
    "sys._current_frames", "sys.settrace", "sys.setprofile", "sys.addaudithook",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "_thread.start_new_thread", "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn",
    "os.spawn", "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata", "ctypes.cdata/buffer",
    "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at", "ctypes.set_errno", "ctypes.get_errno",
    "ctypes.seh_exception", "ctypes.PyObj_FromPtr", "cpython.PyInterpreterState_Clear",
    "cpython._PySys_ClearAuditHooks", "cpython.run_interactivehook",
    "socket.__new__", "socket.connect", "socket.bind",
})
# Restricted attributes (CPython raises ``object.__getattr__`` for them) that lead to frames.
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
_WATCHED_EVENTS = frozenset({"sys._getframe", "object.__getattr__", "object.__setattr__", "object.__delattr__",
                             "code.__new__", "compile", "function.__new__", "exec"})
# torch._C functions that change which modes or dispatch keys are active, or run the engine.
_SENSITIVE_WORDS = ("pop_torch_function", "pop_torch_dispatch", "pop_mode", "set_torch_function_mode",
                    "set_dispatch_mode", "unset_dispatch_mode", "dispatch_tls_set", "_set_torch_dispatch",
                    "run_backward", "enter_dual_level", "disabled_torch_function", "disabled_torch_dispatch")
# torch._C types that switch autograd, dispatch or torch-function handling on or off.
_GUARD_TYPE_WORDS = ("Disable", "Guard", "Exclude", "Include", "Mode", "Inference", "Dispatch", "Functorch",
                     "Dual", "Enable", "Engine")


def seal_interpreter(roots: tuple[str, ...], on_tamper: Callable[[str], None]) -> None:
    """Irreversibly install the audit hook and the profile hook described in the module docstring.

    Call it once, after the kit and torch are imported and before the first student line runs. A
    refused audit event raises in the offending code. A refused call seen by the profile hook calls
    ``on_tamper(reason)``, which must end the process: Python unsets a profile hook that raises."""
    getframe = sys._getframe
    startswith, endswith = str.startswith, str.endswith
    builtin_isinstance, builtin_getattr, builtin_str, builtin_type = isinstance, getattr, str, type
    refused_events, frame_attributes = _REFUSED_EVENTS, _FRAME_ATTRIBUTES
    code_type = builtin_type(seal_interpreter.__code__)
    tensor_base = torch._C.TensorBase
    engine_type = type(torch.autograd.Variable._execution_engine)  # torch._C._EngineBase, not exported by name
    guard_types = tuple(t for t in (builtin_getattr(torch._C, n, None) for n in dir(torch._C))
                        if builtin_isinstance(t, type) and any(w in t.__name__ for w in _GUARD_TYPE_WORDS))
    hook_readers = frozenset({"getprofile", "gettrace", "_getframe", "_current_frames", "_current_exceptions"})
    inside = [False]
    frame_helpers = tuple(r + name for r in roots for name in ("inspect.py", "traceback.py"))
    # torch's compiler stack keeps the switches of ``_SWITCHES`` in its own tables: not for student code.
    compiler_modules = ("torch._dynamo", "torch._inductor", "torch._export", "torch.export", "torch.compiler")

    def trusted_file(filename: object) -> bool:
        return builtin_isinstance(filename, builtin_str) and (startswith(filename, roots)
                                                              or startswith(filename, "<frozen "))

    def frames_go_to_student(frame: object) -> bool:
        """Whether frames found by ``frame`` end up in student code: it is student code, or a helper
        whose job is to hand frames out (``inspect``, ``traceback``, ``logging.currentframe``) working
        for student code. A frame in student hands leads, through ``f_back``, to the grader's own
        (its locals, its hooks). Library code that looks at frames for itself (``typing``,
        ``logging``'s caller lookup, ``warnings``) is left alone."""
        while frame is not None and (startswith(frame.f_code.co_filename, frame_helpers)  # type: ignore[attr-defined]
                                     or frame.f_code.co_name == "currentframe"):  # type: ignore[attr-defined]
            frame = frame.f_back  # type: ignore[attr-defined]
        return frame is not None and not trusted_file(frame.f_code.co_filename)  # type: ignore[attr-defined]

    def relevant(event: str, args: tuple) -> bool:
        """Whether an event could be tampering, from its arguments alone."""
        if event == "sys._getframe":
            return True
        if event == "object.__getattr__":
            return args[1] in frame_attributes or args[1] == "__code__"
        if event in ("object.__setattr__", "object.__delattr__"):
            return args[1] in ("__code__", "__closure__", "__defaults__", "__kwdefaults__")
        if event in ("code.__new__", "compile"):
            return trusted_file(args[1])
        if event == "function.__new__":
            return trusted_file(args[0].co_filename)
        return builtin_isinstance(args[0], code_type) and trusted_file(args[0].co_filename)  # exec

    def matches_its_file(source: object, filename: str) -> bool:
        try:
            with open(filename, "rb") as fh:
                text = fh.read()
        except OSError:
            return False
        if builtin_isinstance(source, builtin_str):
            source = source.encode("utf-8")
        return not builtin_isinstance(source, bytes) or source == text

    def audit(event: str, args: tuple) -> None:
        if inside[0]:
            return
        inside[0] = True
        try:
            if event in refused_events or startswith(event, "ctypes."):
                raise TamperingRefused(f"{event} is not available while your code is graded")
            if event == "import" and startswith(builtin_str(args[0]), compiler_modules):
                importer = getframe(1)
                while importer is not None and startswith(importer.f_code.co_filename, "<frozen importlib"):
                    importer = importer.f_back
                if importer is not None and not trusted_file(importer.f_code.co_filename):
                    raise TamperingRefused(f"importing {args[0]} is not available while your code is graded")
                return
            if event not in _WATCHED_EVENTS or not relevant(event, args):
                return  # decided without looking at frames: most events end here
            caller = getframe(1)  # the Python code whose action raised the event (0 is this hook)
            student_caller = not trusted_file(caller.f_code.co_filename)
            if event == "sys._getframe" or event == "object.__getattr__" and args[1] in frame_attributes:
                # Frames lead to the grader's locals. The grader formats tracebacks after student
                # code has returned; while it runs, no frame is handed out, whoever asks.
                if frames_go_to_student(caller):
                    raise FramesRefused("frames and tracebacks cannot be inspected while your code is graded")
            elif event in ("object.__setattr__", "object.__delattr__"):
                # a function's code or closure, whoever asks; its defaults (where the kit binds its
                # guards, such as micrograd's loan check), when student code asks
                if args[1] in ("__code__", "__closure__") or student_caller:
                    raise TamperingRefused(f"changing .{args[1]} is not available while your code is graded")
            elif event == "compile" and not student_caller and not matches_its_file(args[0], args[1]):
                # importlib compiles what a loader returns under the name the loader gives: code
                # that claims a library file must be that file's text
                raise TamperingRefused("code that claims to come from an installed library cannot be made here")
            elif student_caller:
                raise TamperingRefused(f"{event} on library code is not available while your code is graded")
        finally:
            inside[0] = False

    torch_root = str(Path(torch.__file__).parent) + "/"
    gc_isenabled, gc_disable, gc_enable = gc.isenabled, gc.disable, gc.enable

    def sensitive(name: str, owner: object) -> bool:
        return builtin_isinstance(owner, guard_types) or any(w in name for w in _SENSITIVE_WORDS)

    def private(name: object) -> bool:
        return (builtin_isinstance(name, builtin_str) and startswith(name, "_")
                and not (startswith(name, "__") and endswith(name, "__")))

    def profile(frame, event: str, arg: object) -> None:  # type: ignore[no-untyped-def]
        # Only C calls: looking at a Python "call" event's caller crashes CPython 3.11 now and then.
        if event != "c_call":
            return
        # A garbage collection started inside a profile callback, in the middle of a C call, can
        # crash CPython 3.11: no collection while this callback runs.
        collecting = gc_isenabled()
        gc_disable()
        try:
            check_c_call(frame, arg)
        finally:
            if collecting:
                gc_enable()

    def check_c_call(frame, arg: object) -> None:  # type: ignore[no-untyped-def]
        owner = builtin_getattr(arg, "__self__", None)
        name = builtin_getattr(arg, "__name__", "")
        if trusted_file(frame.f_code.co_filename):
            if sensitive(name, owner):
                # A library function that switches the guard off, called on behalf of student code
                # (``torch.overrides._pop_mode`` and friends): look for student code just above.
                caller, hops = frame, 0
                while caller is not None and hops < 6 and startswith(caller.f_code.co_filename, torch_root):
                    caller, hops = caller.f_back, hops + 1
                if caller is not None and not trusted_file(caller.f_code.co_filename):
                    on_tamper(f"switched off the autograd guard through `{name}`")
            return
        if (builtin_isinstance(owner, engine_type) or builtin_isinstance(owner, guard_types)
                or name in hook_readers or (private(name) and not builtin_isinstance(owner, tensor_base))):
            on_tamper(f"called `{name}`, which is internal to a library")

    sys.setprofile(profile)
    sys.addaudithook(audit)  # last: from here on, sys.setprofile itself is refused
