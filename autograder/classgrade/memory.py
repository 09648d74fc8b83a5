"""Peak memory of a process and everything it started (a grading worker and its sandboxes).

Sampled in a background thread with psutil: the sum of resident set sizes over the process tree.
Pages a forked sandbox shares with its zygote are counted in both, so the figure is an upper bound.
"""

from __future__ import annotations

import threading

import psutil


def tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and its descendants now (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakMemory:
    """The highest ``tree_rss`` of each watched process seen while running (sampled every ``every`` s)."""

    def __init__(self, pids: dict[str, int], every: float = 0.2) -> None:
        self.pids = pids
        self.peaks = {name: 0 for name in pids}
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="peak-memory")

    def _sample(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], tree_rss(pid))
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
