"""The celery-task example: routes that enqueue two tasks and report on them.

``counter`` goes to the queue ``counter`` and ``divider`` to ``math`` (the hook below), so
each kind of work can have workers of its own.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from celery import Celery
from fastapi import Body, HTTPException, Query

from opa import Hook, config, get_component, get_instance, get_router
from opa_driver_celery import UnknownTaskError

router = get_router()


def namespaced(name: str) -> str:
    """A queue name or Redis key, behind the example's namespace."""
    return f"{config.get('EXAMPLE_NAMESPACE', '')}{name}"


class RouteTasks(Hook):
    """Sends each task to its own queue."""

    name = "driver.celery.setup"

    def run(self, app: Celery) -> Celery:
        app.conf.task_routes = {
            f"{__name__}.tasks.counter": {"queue": namespaced("counter")},
            f"{__name__}.tasks.divider": {"queue": namespaced("math")},
        }
        return app


@router.post("/counter")
def enqueue_counter(
    n: Annotated[int, Query(ge=1, le=1000)] = 10,
    interval: Annotated[float, Query(ge=0, le=60)] = 1.0,
) -> dict[str, str]:
    """Count to *n* in Redis, one step every *interval* seconds."""
    from .tasks import counter  # tasks.py needs the connected component: import on use

    return {"id": counter.delay(n, interval).id}


@router.post("/divider")
def enqueue_divider(a: float, b: float) -> dict[str, str]:
    """Divide *a* by *b*; b=0 ends in a FAILURE state."""
    from .tasks import divider

    return {"id": divider.delay(a, b).id}


@router.post("/tasks/{name}")
def enqueue_by_name(name: str, args: Annotated[list[Any] | None, Body()] = None) -> dict[str, str]:
    """Enqueue any registered task by name; an unknown name is a 404."""
    try:
        return {"id": get_component("celery").send_task(name, args or ()).id}
    except UnknownTaskError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/tasks/{task_id}")
def task_state(task_id: str) -> dict[str, Any]:
    """A task's state, with its progress, result or error (unknown ids read as PENDING)."""
    result = get_instance("celery").AsyncResult(task_id)
    body: dict[str, Any] = {"id": task_id, "state": result.state}
    if result.state == "PROGRESS":
        body["progress"] = result.info
    elif result.successful():
        body["result"] = result.result
    elif result.failed():
        body["error"] = f"{type(result.result).__name__}: {result.result}"
    return body


@router.get("/counter/progress")
def last_progress() -> dict[str, Any]:
    """The last progress message any counter task wrote."""
    message = get_instance("walrus").get(namespaced("celery-task:progress"))
    if message is None:
        raise HTTPException(404, "no counter task has reported progress yet")
    progress: dict[str, Any] = json.loads(message)
    return progress
