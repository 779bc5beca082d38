"""The celery-task example: routes that enqueue two tasks and report on them.

``counter`` goes to the queue ``counter`` and ``divider`` to ``math`` (the hook below), so
each kind of work can have workers of its own.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from celery import Celery
from fastapi import HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from opa import Hook, config, get_component, get_instance, get_router, limit_body
from opa_driver_celery import UnknownTaskError

MAX_BODY = 16 * 1024
MAX_ARGUMENTS = 20
# A request body past MAX_BODY is a 413, cut off as it arrives (never buffered whole).
router = get_router(route_class=limit_body(MAX_BODY))

# Task arguments are JSON scalars of bounded size: what reaches the broker stays small.
Argument = (
    Annotated[StrictStr, Field(max_length=1000)]
    | Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
    | Annotated[float, Field(allow_inf_nan=False, strict=True)]
    | StrictBool
    | None
)
ArgumentName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
TaskName = Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,199}$")]


class TaskCall(BaseModel):
    """The arguments of a task enqueued by name; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    args: list[Argument] = Field(default_factory=list, max_length=MAX_ARGUMENTS)
    kwargs: dict[ArgumentName, Argument] = Field(default_factory=dict, max_length=MAX_ARGUMENTS)


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
def enqueue_by_name(name: TaskName, call: TaskCall | None = None) -> dict[str, str]:
    """Enqueue any registered task by name with ``{"args": [...], "kwargs": {...}}``.

    An unknown name is a 404; a body over 16 KiB a 413; more than 20 arguments, an argument
    that is not a JSON scalar, a string over 1,000 characters or an unknown field a 422.
    """
    call = call or TaskCall()
    try:
        return {"id": get_component("celery").send_task(name, call.args, call.kwargs).id}
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
