"""Test plugin: routes that enqueue a task by name and read its result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, HTTPException

from opa import get_component, get_instance, get_router
from opa_driver_celery import UnknownTaskError

router = get_router()


@router.post("/enqueue/{name}")
def enqueue(name: str, args: Annotated[list[Any] | None, Body()] = None) -> dict[str, str]:
    try:
        result = get_component("celery").send_task(name, args or ())
    except UnknownTaskError as exc:
        raise HTTPException(404, str(exc)) from exc
    return {"id": result.id}


@router.post("/add")
def add(a: int, b: int) -> dict[str, str]:
    from jobs.tasks import add as add_task  # tasks.py needs the connected component

    return {"id": add_task.delay(a, b).id}


@router.get("/results/{task_id}")
def result(task_id: str) -> dict[str, Any]:
    found = get_instance("celery").AsyncResult(task_id)
    return {"state": found.state, "result": found.result if found.successful() else None}
