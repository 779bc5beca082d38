"""The examples/celery-task plugin, with real workers on RabbitMQ and Redis as result backend.

The API side runs in process (TestClient); the workers are `opa worker` processes on the
example's own settings, pointed at this run's names.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from celery_support import (
    BACKEND_DB,
    EXAMPLE,
    STORE_DB,
    Process,
    Run,
    opa_worker_command,
    redis_db,
    started,
    worker_args,
)
from opa import get_instance
from opa.testing import build_app, chunked_body, clean_environ, wait_for

TASK_TIMEOUT = 30.0


def example_settings(rabbitmq_url: str, redis_url: str, run: Run) -> dict[str, Any]:
    """The example's settings file, pointed at this run's queues, keys and databases."""
    text = (EXAMPLE / "settings" / "settings.yaml").read_text(encoding="utf-8")
    settings: dict[str, Any] = yaml.safe_load(text)["default"]
    settings["PLUGIN_PATHS"] = [str(EXAMPLE)]
    settings["EXAMPLE_NAMESPACE"] = run.prefix
    components = settings["OPTIONAL_COMPONENTS"]
    components["CELERY"]["OPTS"].update(
        BROKER_URL=rabbitmq_url,
        BACKEND_URL=redis_db(redis_url, BACKEND_DB),
        SETTINGS={"result_backend_transport_options": {"global_keyprefix": run.prefix}},
    )
    components["WALRUS"]["OPTS"]["URL"] = redis_db(redis_url, STORE_DB)
    run.amqp_queues += [(rabbitmq_url, run.prefix + "counter"), (rabbitmq_url, run.prefix + "math")]
    return settings


class Example:
    """The example's API in process, and a way to start its workers as processes."""

    def __init__(self, tmp_path: Path, settings: dict[str, Any], run: Run) -> None:
        self.tmp_path = tmp_path
        self.run = run
        folder = tmp_path / "settings"
        folder.mkdir()
        (folder / "settings.yaml").write_text(yaml.safe_dump({"default": settings}))
        self.env = clean_environ(folder)
        self.client = TestClient(build_app({**settings, "PLUGIN_ENTRY_POINTS": True}))
        self.workers = ExitStack()

    def worker(self, queue: str) -> Process:
        """An `opa worker` consuming only the example's queue *queue*."""
        args = worker_args(self.run, self.run.prefix + queue, role=queue, concurrency=1)
        log = self.tmp_path / f"{queue}.log"
        command = opa_worker_command(*args)
        return self.workers.enter_context(started(command, self.env, self.tmp_path, log))

    def enqueue(self, path: str) -> str:
        response = self.client.post(path)
        assert response.status_code == 200, response.text
        task_id: str = response.json()["id"]
        return task_id

    def state(self, task_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(f"/tasks/{task_id}").json()
        return body

    def finished(self, task_id: str, seen: list[str] | None = None) -> dict[str, Any]:
        """The task's final state, polled (every state passed through goes to *seen*)."""

        def done() -> dict[str, Any] | None:
            state = self.state(task_id)
            if seen is not None:
                seen.append(state["state"])
            return state if state["state"] in ("SUCCESS", "FAILURE") else None

        return wait_for(done, TASK_TIMEOUT, f"task {task_id} finishing", every=0.05)


@pytest.fixture
def example(tmp_path: Path, rabbitmq_url: str, redis_url: str, run: Run) -> Iterator[Example]:
    """The example started against this run's names; its workers are stopped afterwards."""
    example = Example(tmp_path, example_settings(rabbitmq_url, redis_url, run), run)
    with example.client, example.workers:
        yield example


def test_counter_reports_progress_and_succeeds(example: Example) -> None:
    """counter reports PROGRESS (percent, current value) then SUCCESS, and its last message."""
    example.worker("counter")
    task_id = example.enqueue("/counter?n=5&interval=0.3")
    seen: list[str] = []
    final = example.finished(task_id, seen)
    assert final["state"] == "SUCCESS", final
    assert final["result"]["current"] == 5
    assert "PROGRESS" in seen, f"no PROGRESS state observed: {sorted(set(seen))}"
    progress = example.client.get("/counter/progress").json()
    assert progress == {"task_id": task_id, "percent": 100, "current": 5}


def test_divider_succeeds_and_fails_on_zero(example: Example) -> None:
    """divider returns a/b, and b=0 ends in FAILURE with the ZeroDivisionError visible."""
    example.worker("math")
    assert example.finished(example.enqueue("/divider?a=6&b=3"))["result"] == 2.0
    failed = example.finished(example.enqueue("/divider?a=1&b=0"))
    assert failed["state"] == "FAILURE"
    assert failed["error"] == "ZeroDivisionError: float division by zero"


def test_an_unknown_task_name_answers_404(example: Example) -> None:
    """Enqueueing a name no tasks.py registered is refused with the registered names."""
    response = example.client.post("/tasks/celery_task.tasks.multiply", json={"args": [2, 3]})
    assert response.status_code == 404
    assert "celery_task.tasks.counter" in response.json()["detail"]


def test_a_task_enqueued_by_name_gets_its_args_and_kwargs(example: Example) -> None:
    """POST /tasks/{name} with args and kwargs runs the task with both."""
    example.worker("math")
    call = {"args": [6], "kwargs": {"b": 3}}
    response = example.client.post("/tasks/celery_task.tasks.divider", json=call)
    assert response.status_code == 200, response.text
    assert example.finished(response.json()["id"])["result"] == 2.0


DIVIDER = "/tasks/celery_task.tasks.divider"


@pytest.mark.parametrize(
    "body",
    [
        [6, 3],
        {"args": [6, 3], "queue": "elsewhere"},
        {"args": list(range(21))},
        {"kwargs": {f"k{i}": i for i in range(21)}},
        {"args": [[6], 3]},
        {"args": [{"a": 6}]},
        {"args": ["x" * 1001]},
        {"kwargs": {"not an identifier": 1}},
        {"args": "6, 3"},
    ],
    ids=[
        "bare-list",
        "unknown-field",
        "too-many-args",
        "too-many-kwargs",
        "nested-list",
        "object-argument",
        "long-string",
        "bad-kwarg-name",
        "args-not-a-list",
    ],
)
def test_a_task_call_is_validated(example: Example, body: Any) -> None:
    """Unknown fields, too many or non-scalar arguments, long strings and bad names: 422."""
    response = example.client.post(DIVIDER, json=body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("content", [b"1e999", b"NaN", b'{"args": [NaN]}', b"{"])
def test_a_task_call_that_is_not_json_is_refused(example: Example, content: bytes) -> None:
    """Invalid JSON, and JSON numbers that are not finite, are 422."""
    headers = {"content-type": "application/json"}
    assert example.client.post(DIVIDER, content=content, headers=headers).status_code == 422


def test_a_task_name_must_look_like_one(example: Example) -> None:
    """A task name with characters no Python name has is a 422 before the broker is asked."""
    response = example.client.post("/tasks/celery_task.tasks.divider;rm", json={"args": [1, 2]})
    assert response.status_code == 422
    assert example.client.post(f"/tasks/{'x' * 201}").status_code == 422


def over_the_cap() -> Iterator[bytes]:
    """A JSON body of unknown length (sent chunked) that passes 16 KiB."""
    return chunked_body(b'{"args": ["', b"x" * 1000, 20, b'"]}')


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_task_call_over_16_kib_is_413(example: Example, chunked: bool) -> None:
    """A body over the example's 16 KiB cap is refused with 413, however it is sent."""
    content: Any = over_the_cap() if chunked else b"".join(over_the_cap())
    headers = {"content-type": "application/json"}
    response = example.client.post(DIVIDER, content=content, headers=headers)
    assert response.status_code == 413
    assert response.json()["detail"] == "request body too large: the limit is 16384 bytes"


def test_a_math_worker_never_runs_counter(example: Example) -> None:
    """A worker on the math queue leaves counter waiting until a counter worker comes."""
    example.worker("math")
    counting = example.enqueue("/counter?n=1&interval=0")
    assert example.finished(example.enqueue("/divider?a=1&b=4"))["result"] == 0.25
    assert example.state(counting)["state"] == "PENDING"
    assert get_instance("walrus").get(example.run.prefix + "celery-task:counter") is None
    example.worker("counter")
    final = example.finished(counting)
    assert final["state"] == "SUCCESS"
    assert final["result"]["worker"].startswith(f"counter-{example.run.id}@")
