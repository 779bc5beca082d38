"""The example's tasks, written as opa-stack's plugins wrote them: the app from
``get_instance("celery")`` at import time, Redis from ``get_instance("walrus")`` at run time.

With the walrus component switched off (``LOAD: no``, the README's no-server command), the
counter counts inside its task and reports through the result backend alone."""

# get_instance() returns Any, so @celery.task is an untyped decorator to mypy.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import json
import time
from typing import Any

from opa import get_component, get_instance

from . import namespaced

celery = get_instance("celery")


def redis_or_none() -> Any:
    """The walrus component's client, or None when the settings switch it off (LOAD: no).

    Any other state (skipped, down) still goes through get_instance, which raises: a Redis
    outage fails the task rather than silently counting elsewhere."""
    if get_component("walrus").status == "disabled":
        return None
    return get_instance("walrus")


@celery.task(bind=True)
def counter(self: Any, n: int, interval: float = 1.0) -> dict[str, Any]:
    """Increment the Redis counter *n* times, reporting PROGRESS (percent, current value).

    Each step is an increment, so a counter task delivered again after its worker died
    counts again: the package README explains why tasks should be idempotent.
    """
    db = redis_or_none()
    current = 0
    for step in range(1, n + 1):
        current = db.incr(namespaced("celery-task:counter")) if db is not None else step
        progress = {"percent": round(100 * step / n), "current": current}
        self.update_state(state="PROGRESS", meta=progress)
        if db is not None:
            message = {"task_id": self.request.id, **progress}
            db.set(namespaced("celery-task:progress"), json.dumps(message))
        if step < n:
            time.sleep(interval)
    return {"current": current, "worker": self.request.hostname}


@celery.task
def divider(a: float, b: float) -> float:
    """a / b; b=0 raises ZeroDivisionError, which the task state shows."""
    return a / b
