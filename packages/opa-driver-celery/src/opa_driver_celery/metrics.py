"""Task metrics of a worker (opa's setting ``METRICS``): tasks by name and outcome, and
how long they ran, from Celery's task signals.

The worker serves them on ``METRICS_WORKER_PORT`` (``opa.serve_worker_metrics``), adding
up its pool processes, which write to the metrics folder set before they are forked.
The metrics are made only once that folder is set, and only with the setting on.
"""

from __future__ import annotations

import os
import time
from typing import Any

from opa import PluginManager, WorkerMetrics, serve_worker_metrics

STATES = {
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "RETRY": "retried",
    "IGNORED": "ignored",
    "REJECTED": "rejected",
}
"""Celery's state after a run (``task_postrun``), as the ``state`` label says it."""
REVOKED = "revoked"
# Seconds: from a quick task to an hour-long batch.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class TaskMetrics:
    """The metrics and the signal handlers that feed them, on *registry* (prometheus-
    client's default one unless given)."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Histogram

        registry = registry if registry is not None else REGISTRY
        self.tasks = Counter(
            "opa_celery_tasks",
            "Tasks the worker finished, by task name and outcome.",
            ["task", "state"],
            registry=registry,
        )
        self.runtime = Histogram(
            "opa_celery_task_duration_seconds",
            "Time each task ran in the worker, whatever its outcome, by task name.",
            ["task"],
            buckets=BUCKETS,
            registry=registry,
        )
        # task id -> when it started, in the process running it (a pool child, or a thread).
        self._started: dict[str, float] = {}

    def started(self, task_id: str, **_: Any) -> None:
        self._started[task_id] = time.perf_counter()

    def finished(self, task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
        start = self._started.pop(task_id, None)
        self.tasks.labels(task.name, STATES.get(state or "", str(state).lower())).inc()
        if start is not None:
            self.runtime.labels(task.name).observe(time.perf_counter() - start)

    def revoked(self, sender: Any = None, **_: Any) -> None:
        """A revoked task, which never ran (or was terminated); its name is a known one."""
        name = getattr(sender, "name", None)
        if name:
            self.tasks.labels(name, REVOKED).inc()


def start_task_metrics(manager: PluginManager) -> WorkerMetrics | None:
    """In a worker's main process, before its pool starts: serve the metrics, count tasks.

    None with ``METRICS`` off: nothing is imported or connected then.
    """
    exported = serve_worker_metrics(manager)
    if exported is None:
        return None
    from celery import signals

    metrics = TaskMetrics()

    def child_ends(**_: Any) -> None:
        exported.process_ended(os.getpid())

    def worker_ends(**_: Any) -> None:
        exported.close()

    # Strong references (weak=False): the bound methods and closures live only here.
    signals.task_prerun.connect(metrics.started, weak=False)
    signals.task_postrun.connect(metrics.finished, weak=False)
    signals.task_revoked.connect(metrics.revoked, weak=False)
    signals.worker_process_shutdown.connect(child_ends, weak=False)
    signals.worker_shutdown.connect(worker_ends, weak=False)
    return exported
