"""examples/background-task over HTTP against a real Redis: tasks take turns under the lock."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opa.testing import build_app

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "background-task"


@pytest.fixture
def client(redis_url: str, redis_prefix: str) -> Iterator[TestClient]:
    """The example as its settings folder configures it, on the test Redis and key prefix."""
    settings = {
        "PLUGIN_PATHS": [str(EXAMPLE)],
        "TASKS_KEY_PREFIX": redis_prefix,
        # Merged into the example's components: only the URL changes.
        "OPTIONAL_COMPONENTS": {"dynaconf_merge": True, "WALRUS": {"OPTS": {"URL": redis_url}}},
    }
    with TestClient(build_app(settings, settings_dir=EXAMPLE / "settings")) as test_client:
        yield test_client


@pytest.mark.timeout(60)
def test_tasks_run_one_at_a_time(client: TestClient) -> None:
    """Three tasks queued at once run one after another, and /tasks/running names each."""
    names = ["first", "second", "third"]
    seen: set[str] = set()
    with ThreadPoolExecutor(max_workers=len(names)) as threads:
        # The test client returns once a request's background task has run, so each
        # request waits in its own thread while this one watches the running task.
        queued = [
            threads.submit(client.post, "/tasks", params={"name": name, "seconds": 0.4})
            for name in names
        ]
        while not all(future.done() for future in queued):
            running = client.get("/tasks/running").json()["running"]
            if running is not None:
                seen.add(running)
            time.sleep(0.05)
    assert [future.result().status_code for future in queued] == [202, 202, 202]
    assert client.get("/tasks/running").json() == {"running": None}
    assert seen and seen <= set(names)

    done = client.get("/tasks/done").json()
    assert sorted(task["name"] for task in done) == sorted(names)
    for earlier, later in itertools.pairwise(done):
        assert later["started"] >= earlier["finished"], f"{later} overlapped {earlier}"


@pytest.mark.parametrize(
    "params",
    [{"name": "x" * 65}, {"name": "bad name"}, {"name": "ok", "seconds": 3}, {"seconds": 1}],
)
def test_bad_task_requests_are_refused(client: TestClient, params: dict[str, object]) -> None:
    """A task name that is missing, too long or odd, or work beyond the lock's TTL, gets 422."""
    assert client.post("/tasks", params=params).status_code == 422
