"""Worker mode with real worker processes: `opa worker`, `celery -A`, brokers and failures."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from celery_support import (
    STORE_DB,
    Run,
    celery_component,
    celery_worker_command,
    client_app,
    opa_worker_command,
    redis_db,
    run_counts,
    started,
    store_component,
    worker_args,
    write_settings,
)
from opa.testing import bound_port, clean_environ, closed_port, wait_for

RESULT_TIMEOUT = 30.0


def test_opa_worker_runs_plugin_tasks_with_components_connected_after_fork(
    tmp_path: Path, rabbitmq_url: str, backend_url: str, redis_url: str, run: Run
) -> None:
    """`opa worker` runs plugin tasks, pool processes connect their own components, logs masked."""
    celery = celery_component(rabbitmq_url, backend_url, run)
    settings = write_settings(
        tmp_path / "settings", {"celery": celery, "store": store_component(redis_url)}
    )
    command = opa_worker_command(*worker_args(run))
    with (
        client_app(celery) as app,
        started(command, clean_environ(settings), tmp_path, tmp_path / "worker.log") as worker,
    ):
        assert app.send_task("jobs.tasks.add", (2, 3)).get(timeout=RESULT_TIMEOUT) == 5
        ran = app.send_task("jobs.tasks.where").get(timeout=RESULT_TIMEOUT)
        assert ran["pid"] != worker.popen.pid, "the task ran in the worker's main process"
        assert ran["store_connected_in"] == ran["pid"], "the store was connected before the fork"
        secret = f"pw-{run.id}"
        app.send_task("jobs.tasks.announce", (f"redis://:{secret}@cache:6379/0",)).get(timeout=30)
    output = worker.output()
    assert "connecting to redis://:***@cache:6379/0" in output
    assert secret not in output


@pytest.mark.parametrize("module", ["opa.worker", "opa_driver_celery.worker"])
def test_celery_command_serves_the_same_app(
    tmp_path: Path, rabbitmq_url: str, backend_url: str, run: Run, module: str
) -> None:
    """`celery -A opa.worker worker` (or the driver module) serves the same plugins and settings."""
    celery = celery_component(rabbitmq_url, backend_url, run)
    settings = write_settings(tmp_path / "settings", {"celery": celery, "store": {"LOAD": "no"}})
    command = celery_worker_command(*worker_args(run, concurrency=1), app=module)
    with (
        client_app(celery) as app,
        started(command, clean_environ(settings), tmp_path, tmp_path / "worker.log") as worker,
    ):
        assert app.send_task("jobs.tasks.add", (20, 22)).get(timeout=RESULT_TIMEOUT) == 42
    assert "jobs.tasks.add" in worker.output()  # the banner lists the plugin's tasks


def test_redis_as_broker(tmp_path: Path, redis_broker_url: str, backend_url: str, run: Run) -> None:
    """A Redis broker carries tasks to an `opa worker` and back through the Redis backend."""
    celery = celery_component(redis_broker_url, backend_url, run)
    settings = write_settings(tmp_path / "settings", {"celery": celery, "store": {"LOAD": "no"}})
    command = opa_worker_command(*worker_args(run, concurrency=1))
    with (
        client_app(celery) as app,
        started(command, clean_environ(settings), tmp_path, tmp_path / "worker.log"),
    ):
        assert app.send_task("jobs.tasks.add", (1, 1)).get(timeout=RESULT_TIMEOUT) == 2


def test_embedded_sqlite_broker_and_backend(tmp_path: Path, run: Run) -> None:
    """With no server at all, SQLite files serve as broker and result backend for a worker."""
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    backend = f"db+sqlite:///{tmp_path / 'results.sqlite'}"
    celery = celery_component(broker, backend, run)
    settings = write_settings(tmp_path / "settings", {"celery": celery, "store": {"LOAD": "no"}})
    command = opa_worker_command(*worker_args(run, concurrency=1))
    with (
        client_app(celery) as app,
        started(command, clean_environ(settings), tmp_path, tmp_path / "worker.log"),
    ):
        assert app.send_task("jobs.tasks.add", (3, 4)).get(timeout=RESULT_TIMEOUT) == 7


@pytest.mark.parametrize("launcher", ["opa", "celery"])
def test_a_worker_without_a_celery_component_exits_at_once(tmp_path: Path, launcher: str) -> None:
    """With no celery component configured, the worker says so and exits non-zero."""
    settings = write_settings(tmp_path / "settings", {"store": {"LOAD": "no"}})
    command = opa_worker_command() if launcher == "opa" else celery_worker_command()
    with started(
        command, clean_environ(settings), tmp_path, tmp_path / "w.log", ready=False
    ) as worker:
        assert worker.wait(timeout=30) == 1
    output = worker.output()
    assert "error: no component with DRIVER: celery is configured" in output
    assert "Traceback" not in output


def test_a_worker_whose_broker_is_down_exits_at_once(tmp_path: Path, run: Run) -> None:
    """A skipped celery component (LOAD auto, broker down) ends the worker with the masked URL."""
    port = closed_port()
    broker = f"amqp://opa:{run.id}@127.0.0.1:{port}//"
    celery = celery_component(broker, None, run, load="auto")
    settings = write_settings(tmp_path / "settings", {"celery": celery})
    command = opa_worker_command(*worker_args(run))
    with started(
        command, clean_environ(settings), tmp_path, tmp_path / "w.log", ready=False
    ) as worker:
        assert worker.wait(timeout=30) == 1
    output = worker.output()
    assert f"error: component 'celery' (amqp://opa:***@127.0.0.1:{port}//) was skipped" in output
    assert run.id not in output.replace(run.node(), "")


def test_flower_runs_on_the_worker_app(
    tmp_path: Path, rabbitmq_url: str, backend_url: str, run: Run
) -> None:
    """`celery -A opa_driver_celery.worker flower` serves its dashboard on the same app."""
    celery = celery_component(rabbitmq_url, backend_url, run)
    settings = write_settings(tmp_path / "settings", {"celery": celery, "store": {"LOAD": "no"}})
    command = [sys.executable, "-m", "celery", "-A", "opa_driver_celery.worker", "flower"]
    command += ["--port=0", "--address=127.0.0.1"]
    with started(
        command, clean_environ(settings), tmp_path, tmp_path / "f.log", ready=False
    ) as flower:
        port = bound_port(flower.popen, "flower", 40)

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1).text == "OK"
            except httpx.HTTPError:
                return False

        wait_for(healthy, 40, "flower answering /healthcheck", every=0.5)


@pytest.mark.parametrize(
    "stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"]
)
def test_no_task_is_lost_when_a_worker_stops_part_way(
    tmp_path: Path,
    rabbitmq_url: str,
    backend_url: str,
    redis_url: str,
    run: Run,
    stop_signal: signal.Signals,
) -> None:
    """50 tasks all finish across a worker stopped part-way and the next; SIGKILL repeats some."""
    celery = celery_component(rabbitmq_url, backend_url, run)
    components = {"celery": celery, "store": store_component(redis_url)}
    env = clean_environ(write_settings(tmp_path / "settings", components))
    concurrency = 2
    runs_key = f"{run.prefix}runs"
    store = redis_db(redis_url, STORE_DB)
    with client_app(celery) as app:
        results = [app.send_task("jobs.tasks.record", (runs_key, i, 0.2)) for i in range(50)]
        first = opa_worker_command(*worker_args(run, role="first", concurrency=concurrency))
        with started(first, env, tmp_path, tmp_path / "first.log") as worker:
            wait_for(lambda: len(run_counts(store, runs_key)) >= 10, 60, "10 tasks run")
            worker.signal(stop_signal)
            worker.wait(timeout=60)
        done_before = len(run_counts(store, runs_key))
        assert done_before < 50, "the first worker finished everything: nothing was interrupted"
        second = opa_worker_command(*worker_args(run, role="second", concurrency=concurrency))
        with started(second, env, tmp_path, tmp_path / "second.log"):
            deadline = time.monotonic() + 90
            values = [r.get(timeout=max(1.0, deadline - time.monotonic())) for r in results]
    assert values == list(range(50))
    counts = run_counts(store, runs_key)
    assert sorted(counts) == list(range(50)), "a task never ran"
    twice = sorted(index for index, count in counts.items() if count == 2)
    print(f"{stop_signal.name}: {done_before} tasks had run at the stop; ran twice: {twice}")
    assert set(counts.values()) <= {1, 2}
    if stop_signal == signal.SIGTERM:
        assert not twice, f"a warm shutdown ran tasks twice: {twice}"
    else:
        assert len(twice) <= concurrency, f"more tasks ran twice than were running: {twice}"
