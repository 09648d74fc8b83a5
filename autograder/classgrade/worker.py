"""What runs on a Dask grading worker: plans, each in a fork of the worker's warm sandbox process.

A worker pays its start-up once: ``WarmWorker`` (a Dask worker plugin) imports torch and the kit and
starts the worker's zygote (``sandbox.launch.ForkServer``) as soon as the worker joins; every
``grade_on_worker`` after that forks a sandboxed child from it. Workers get plans, never the course
secret or the gradebook: a plan carries its hidden cases' seed, and the verdicts go back to the
coordinator, the only process that writes grades.
"""

from __future__ import annotations

import os
import threading
import time

from distributed.diagnostics.plugin import WorkerPlugin

from ..sandbox import Limits, choose, launch
from .plan import GradingPlan, Verdicts


class WarmWorker(WorkerPlugin):
    name = "backprop-kit-warm-sandbox"

    def __init__(self, require: str, hide: list[str], limits: Limits) -> None:
        self.require, self.hide, self.limits = require, hide, limits

    def setup(self, worker: object) -> None:
        import torch  # noqa: F401  (paid once per worker, not per submission)

        with _ONE_RUN_AT_A_TIME:
            launch.use_warm_processes()
            launcher = launch.launcher_for(choose(self.require), list(self.hide), self.limits.resources)
            if isinstance(launcher, launch.ForkServer):
                launcher.start_now()

    def teardown(self, worker: object) -> None:
        launch.close_warm()


# One zygote serves one run at a time: a worker of an existing cluster may run several tasks at once
# in threads, and they take turns (ours are single-threaded).
_ONE_RUN_AT_A_TIME = threading.Lock()


def grade_on_worker(plan: GradingPlan) -> Verdicts:
    """Run one plan in this worker's warm sandbox; the verdicts, with where the time went."""
    start = time.perf_counter()
    with _ONE_RUN_AT_A_TIME:
        launch.use_warm_processes()  # a worker without the plugin (an existing cluster) warms up here
        verdicts = plan.run()
    verdicts.timings = {"worker_seconds": time.perf_counter() - start, "worker_pid": float(os.getpid()),
                        "zygote_starts": float(launch.warm_starts())}
    return verdicts
