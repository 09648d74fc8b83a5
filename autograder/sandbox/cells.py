"""Run notebook cells the way a Jupyter kernel does, recording each cell's outputs as nbformat dicts.

Used inside the sandbox, in place of a kernel: one process runs the student's cells (for the
feedback's outputs) and then calls the graded functions (for the verdicts), so student code runs once
per submission. IPython's ``InteractiveShell`` gives the same semantics as ipykernel (magics, ``_``,
``display()``, the value of a cell's last expression, IPython's tracebacks); only where outputs go is
changed. Output is capped in bytes per cell, so a huge print cannot blow up the graded notebook.
"""

from __future__ import annotations

import io
import sys
import traceback
from typing import Any

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

Output = dict[str, Any]  # one nbformat v4 output


class OutputSink:
    """The outputs of the cell being run, merged like Jupyter's (consecutive stream text joins)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.outputs: list[Output] = []
        self.size = 0
        self.truncated = False

    def _room(self, text: str) -> str:
        room = self.max_bytes - self.size
        if len(text.encode("utf-8", "replace")) > room:
            text = text.encode("utf-8", "replace")[:max(room, 0)].decode("utf-8", "ignore")
            self.truncated = True
        self.size += len(text.encode("utf-8", "replace"))
        return text

    def stream(self, name: str, text: str) -> None:
        if self.truncated:
            return
        text = self._room(text)
        if self.outputs and self.outputs[-1]["output_type"] == "stream" and self.outputs[-1]["name"] == name:
            self.outputs[-1]["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def rich(self, output: Output) -> None:
        if self.truncated:
            return
        size = sum(len(str(v)) for v in output.get("data", {}).values())
        if self.size + size > self.max_bytes:
            self.truncated = True
            return
        self.size += size
        self.outputs.append(output)

    def take(self) -> list[Output]:
        outputs = self.outputs
        if self.truncated:
            outputs.append({"output_type": "stream", "name": "stdout",
                            "text": f"\n[grader] output cut off after {self.max_bytes} bytes\n"})
        self.outputs, self.size, self.truncated = [], 0, False
        return outputs


class _Stream(io.TextIOBase):
    def __init__(self, sink: OutputSink, name: str) -> None:
        self.sink, self.name = sink, name

    def write(self, text: str) -> int:
        self.sink.stream(self.name, str(text))
        return len(text)

    def writable(self) -> bool:
        return True


class _Publisher(DisplayPublisher):
    sink: OutputSink

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):  # type: ignore[no-untyped-def]
        self.sink.rich({"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})})

    def clear_output(self, wait: bool = False) -> None:
        self.sink.outputs.clear()


class _ResultHook(DisplayHook):
    sink: OutputSink

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(self, format_dict, md_dict=None) -> None:  # type: ignore[no-untyped-def]
        self.sink.rich({"output_type": "execute_result", "data": dict(format_dict),
                        "metadata": dict(md_dict or {}), "execution_count": self.shell.execution_count})

    def finish_displayhook(self) -> None:
        pass


class CellRunner:
    """One IPython shell; ``run(source)`` returns the cell's outputs."""

    def __init__(self, max_bytes_per_cell: int = 200_000) -> None:
        config = Config()
        config.HistoryManager.enabled = False
        config.InteractiveShell.colors = "nocolor"
        self.sink = OutputSink(max_bytes_per_cell)
        self.shell = InteractiveShell.instance(config=config)
        # A terminal shell computes only text/plain; a notebook wants every format (HTML, images).
        self.shell.display_formatter.active_types = list(self.shell.display_formatter.format_types)
        publisher = _Publisher(shell=self.shell)
        publisher.sink = self.sink
        self.shell.display_pub = publisher
        hook = _ResultHook(shell=self.shell, cache_size=0)
        hook.sink = self.sink
        self.shell.displayhook = hook
        self.shell.display_trap.hook = hook  # what run_cell installs as sys.displayhook
        # IPython's own traceback pages (stack_data) walk frames and source at length; a plain
        # traceback is enough for feedback and keeps the sealed interpreter's frame rules simple.
        self.shell.showtraceback = self._show_error  # type: ignore[method-assign]
        self.stdout, self.stderr = _Stream(self.sink, "stdout"), _Stream(self.sink, "stderr")

    @property
    def namespace(self) -> dict[str, object]:
        return self.shell.user_ns

    def _show_error(self, exc_tuple: object = None, *args: object, **kwargs: object) -> None:
        etype, evalue, tb = sys.exc_info() if not isinstance(exc_tuple, tuple) else exc_tuple
        if evalue is None:
            return
        # The frames of this shell are not the student's: start at the first cell frame.
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<"):
            tb = tb.tb_next
        lines = traceback.format_exception(etype, evalue, tb)
        self.sink.rich({"output_type": "error", "ename": getattr(etype, "__name__", str(etype)),
                        "evalue": str(evalue)[:2000], "traceback": [line[:4000] for line in lines][-30:]})

    def run(self, source: str) -> tuple[list[Output], bool]:
        """Run one cell; returns its outputs and whether it raised."""
        sys.stdout, sys.stderr = self.stdout, self.stderr
        try:
            result = self.shell.run_cell(source, store_history=False)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        return self.sink.take(), not result.success
