"""Call one student function the way a hidden check must: on copies, with autograd off and forbidden.

This module is imported both in the student's kernel (feedback) and in the sandboxed child process
(the trusted grade): the same call, the same autograd refusal, the same report in both. It never raises for anything the student's code
does: errors, autograd use, in-place changes to inputs and odd return types are all reported in the
returned ``CallOutcome``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import traceback
import types
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class CallOutcome:
    """What happened when the student's function ran on one case. ``value`` is plain data only."""

    value: object = None
    error: str | None = None
    mutated: list[str] = field(default_factory=list)
    used_autograd: bool = False
    timed_out: bool = False
    called: list[str] = field(default_factory=list)  # other graded functions the answer called

    def to_plain(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_plain(cls, data: dict) -> "CallOutcome":
        """From what a (sandboxed, untrusted) process sent back: only the known fields, texts capped."""
        known = {f.name for f in dataclasses.fields(cls)}
        outcome = cls(**{k: v for k, v in data.items() if k in known})
        if outcome.error is not None:
            outcome.error = str(outcome.error)[:2000]
        outcome.mutated = [str(m)[:200] for m in list(outcome.mutated or [])[:20]]
        outcome.called = [str(c)[:200] for c in list(outcome.called or [])[:50]]
        return outcome


@contextlib.contextmanager
def autograd_forbidden(shortcuts: Sequence[str] = ()) -> Iterator[tuple[list[str], list[str]]]:
    """Within the block, grad mode is off and any autograd graph or derivative formula is refused,
    and so are the library functions ``shortcuts`` names (``guard.no_graph_mode``); the two lists
    yielded collect what was refused: autograd, and shortcuts."""
    from .sandbox.guard import Shortcuts, no_graph_mode

    refused: list[str] = []
    shortcut_calls: list[str] = []
    if os.environ.get("BACKPROP_KIT_SANDBOX") == "1":
        # The sandbox's own mode is on for the whole process (and records refusals, and chooses the
        # shortcuts in force, itself); pushing another would need the mode-stack functions that the
        # sandbox removes.
        with torch.no_grad():
            yield refused, shortcut_calls
        return
    policy = Shortcuts()
    policy.forbid(shortcuts)
    with torch.no_grad(), no_graph_mode(refused.append, policy, shortcut_calls.append):
        yield refused, shortcut_calls


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TimeoutError in the running code after ``seconds`` (main thread on Unix only)."""
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds:g} s (an endless loop?)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def clone_tree(x: object) -> object:
    """A deep copy of tensors inside dicts, lists, tuples and namespaces; tensors lose any grad."""
    if isinstance(x, Tensor):
        return x.detach().clone()
    if isinstance(x, dict):
        return {k: clone_tree(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(clone_tree(v) for v in x)
    if isinstance(x, types.SimpleNamespace):
        return types.SimpleNamespace(**{k: clone_tree(v) for k, v in vars(x).items()})
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.replace(x, **{f.name: clone_tree(getattr(x, f.name)) for f in dataclasses.fields(x)})
    return x


def _changed_paths(before: object, after: object, path: str) -> list[str]:
    """Where ``after`` differs from ``before`` (tensor values, shapes, dtypes), as readable paths."""
    if isinstance(before, Tensor):
        same = (isinstance(after, Tensor) and after.shape == before.shape and after.dtype == before.dtype
                and bool(torch.equal(after, before)))
        return [] if same else [path]
    if isinstance(before, dict) and isinstance(after, dict):
        return [p for k in before for p in _changed_paths(before[k], after.get(k), f"{path}[{k!r}]")]
    if isinstance(before, types.SimpleNamespace) or (dataclasses.is_dataclass(before) and not isinstance(before, type)):
        return [p for k, v in vars(before).items() for p in _changed_paths(v, getattr(after, k, None), f"{path}.{k}")]
    return []


def plain_value(value: object) -> object:
    """Reduce a return value to plain data the grader can load safely: tensors (detached copies),
    dicts of them, or a short description of anything else."""
    if isinstance(value, Tensor):
        return value.detach().clone().as_subclass(Tensor)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)) and all(isinstance(v, Tensor) for v in value):
        return [plain_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"__unsupported__": type(value).__name__}


def _student_traceback(exc: BaseException) -> str:
    """The exception and the last frame that ran student code (not the kit's own frames)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "autograder" not in f.filename]
    where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames and frames[-1].line else ""
    return f"{type(exc).__name__}: {exc}{where}"


@contextlib.contextmanager
def recording_calls(namespace: MutableMapping[str, object] | None, names: Sequence[str],
                    called: list[str]) -> Iterator[None]:
    """Within the block, calls to the functions ``names`` in ``namespace`` are recorded in ``called``."""
    # Plain functions only: a class stood in for by a recording function would break the student's
    # own ``isinstance(other, Value)``.
    originals = {n: namespace[n] for n in names
                 if namespace is not None and isinstance(namespace.get(n), types.FunctionType)}

    def wrap(name: str, fn: Callable[..., object]) -> Callable[..., object]:
        def recorded(*args: object, **kwargs: object) -> object:
            if name not in called:
                called.append(name)
            return fn(*args, **kwargs)
        return recorded

    for name, fn in originals.items():
        namespace[name] = wrap(name, fn)  # type: ignore[index]
    try:
        yield
    finally:
        for name, fn in originals.items():
            namespace[name] = fn  # type: ignore[index]


def shortcut_message(name: str) -> str:
    return f"the answer calls `{name}`, which this exercise asks you to write yourself"


def invoke(fn: Callable[..., object], args: Sequence[object], arg_names: Sequence[str | int],
           seconds: float | None = None, namespace: MutableMapping[str, object] | None = None,
           watch: Sequence[str] = (), shortcuts: Sequence[str] = ()) -> CallOutcome:
    """Run ``fn(*copies of args)`` with autograd and the library functions ``shortcuts`` forbidden,
    and report what happened, including which of the functions ``watch`` (looked up in
    ``namespace``) it called."""
    pristine = [clone_tree(a) for a in args]
    working = [clone_tree(a) for a in args]
    outcome = CallOutcome()
    with autograd_forbidden(shortcuts) as (refused, shortcut_calls), recording_calls(namespace, watch, outcome.called):
        try:
            with time_limit(seconds):
                value = fn(*working)
            outcome.value = plain_value(value)
        except TimeoutError as exc:
            outcome.timed_out = True
            outcome.error = str(exc)
        except NotImplementedError:
            outcome.error = "not answered yet (the function raises NotImplementedError)"
        except NameError as exc:
            outcome.error = (f"{_student_traceback(exc)}; the function must work from its arguments alone "
                             "(hidden checks call it on the grader's inputs, where notebook variables are not the same)")
        except (Exception, SystemExit) as exc:
            outcome.error = _student_traceback(exc)
    outcome.used_autograd = bool(refused)
    if shortcut_calls:
        outcome.error = shortcut_message(shortcut_calls[0])
    if refused:
        outcome.error = f"the answer uses {refused[0]}, which this exercise does not allow"
    for name, before, after in zip(arg_names, pristine, working):
        outcome.mutated += _changed_paths(before, after, str(name))
    return outcome
