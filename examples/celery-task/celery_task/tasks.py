"""The example's tasks, written as opa-stack's plugins wrote them: the app from
``get_instance("celery")`` at import time, Redis from ``get_instance("walrus")`` at run time."""

# get_instance() returns Any, so @celery.task is an untyped decorator to mypy.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import json
import time
from typing import Any

from opa import get_instance

from . import namespaced

celery = get_instance("celery")


@celery.task(bind=True)
def counter(self: Any, n: int, interval: float = 1.0) -> dict[str, Any]:
    """Increment the Redis counter *n* times, reporting PROGRESS (percent, current value).

    Each step is an increment, so a counter task delivered again after its worker died
    counts again: the package README explains why tasks should be idempotent.
    """
    db = get_instance("walrus")
    current = 0
    for step in range(1, n + 1):
        current = db.incr(namespaced("celery-task:counter"))
        progress = {"percent": round(100 * step / n), "current": current}
        self.update_state(state="PROGRESS", meta=progress)
        message = {"task_id": self.request.id, **progress}
        db.set(namespaced("celery-task:progress"), json.dumps(message))
        if step < n:
            time.sleep(interval)
    return {"current": current, "worker": self.request.hostname}


@celery.task
def divider(a: float, b: float) -> float:
    """a / b; b=0 raises ZeroDivisionError, which the task state shows."""
    return a / b
