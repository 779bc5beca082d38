"""Item 2 of issue 7: load with nothing lost.

An HTTP load from a separate process against the Redis counter example, served by a real
``opa run`` (uvicorn): every response is a 200 and the counter ends at the request count.
Then 500 Celery tasks across two ``opa worker`` processes: every result arrives.

Every run uses its own key prefix, queue and node names on the shared Redis, deletes only
the keys it wrote (never a flush), and kills every process it started.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import yaml

from opa.testing import (
    LOCALHOST,
    LoggedProcess,
    bound_port,
    clean_environ,
    delete_keys,
    http_answers,
    wait_for,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "redis"
REQUESTS = 5000
CONCURRENCY = 32
LOAD_TIMEOUT = 120.0
TASKS = 500
TASKS_TIMEOUT = 90.0
START_TIMEOUT = 40.0
# The Celery test's own databases on the shared Redis: broker, results.
BROKER_DB, BACKEND_DB = 14, 15

# The load generator: a separate process, CONCURRENCY keep-alive HTTP/1.1 connections sharing
# a fixed number of GET requests; it prints one JSON line with statuses, bodies and timings.
LOAD_CLIENT = textwrap.dedent(
    '''
    """Send a fixed number of GETs over keep-alive connections; print the figures as JSON."""
    import asyncio
    import json
    import sys
    import time

    HOST, PORT, PATH = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    TOTAL, CONCURRENCY = int(sys.argv[4]), int(sys.argv[5])
    REQUEST = f"GET {PATH} HTTP/1.1\\r\\nHost: {HOST}:{PORT}\\r\\n\\r\\n".encode()


    async def one(reader, writer):
        writer.write(REQUEST)
        await writer.drain()
        head = await reader.readuntil(b"\\r\\n\\r\\n")
        lines = head.decode("latin-1").split("\\r\\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
        return status, body.decode()


    async def main():
        remaining = [TOTAL]
        statuses, bodies, latencies, errors = {}, [], [], []

        async def connection():
            reader = writer = None
            while remaining[0] > 0:
                remaining[0] -= 1
                started = time.perf_counter()
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(HOST, PORT)
                    status, body = await one(reader, writer)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                bodies.append(body)
            if writer is not None:
                writer.close()

        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        latencies.sort()

        def quantile(q):
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0

        print(json.dumps({
            "elapsed": elapsed,
            "statuses": {str(k): v for k, v in statuses.items()},
            "errors": errors[:20],
            "error_count": len(errors),
            "bodies": bodies,
            "p50": quantile(0.50),
            "p95": quantile(0.95),
        }))


    asyncio.run(main())
    '''
)

# The tasks of the Celery test's plugin package: each says which worker node ran it.
TASKS_MODULE = textwrap.dedent(
    '''
    """Load-test tasks: a trivial task that names the worker node that ran it."""

    from opa import get_instance

    celery = get_instance("celery")


    @celery.task(bind=True)
    def echo(self, index):
        return [index, self.request.hostname]
    '''
)


def with_db(url: str, db: int) -> str:
    """The same Redis server as *url*, on database *db*."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


def write_settings(folder: Path, values: Mapping[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.yaml").write_text(yaml.safe_dump({"default": dict(values)}))
    return folder


@pytest.fixture
def counter_server(redis_url: str, tmp_path: Path) -> Iterator[tuple[int, str, redis.Redis]]:
    """`opa run` serving the Redis example on a free port; yields (port, key prefix, client)."""
    prefix = f"opa-load-{uuid.uuid4().hex[:12]}:"
    components = {
        "WALRUS": {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {"URL": redis_url}},
        "AIOREDIS": {"LOAD": "yes", "DRIVER": "redis-aioredis", "OPTS": {"URL": redis_url}},
    }
    settings = {
        "EXAMPLE_KEY_PREFIX": prefix,
        "PLUGIN_PATHS": [str(EXAMPLE)],
        "LOG_LEVEL": "WARNING",
        "OPTIONAL_COMPONENTS": components,
    }
    folder = write_settings(tmp_path / "settings", settings)
    log = tmp_path / "server.log"
    client = redis.Redis.from_url(redis_url)
    command = [sys.executable, "-m", "opa", "run", "--host", LOCALHOST, "--port", "0"]
    try:
        with LoggedProcess(command, log, env=clean_environ(folder)) as server:
            port = bound_port(server.popen, f"`opa run` (log {log})", START_TIMEOUT)

            def healthy() -> bool:
                server.check_alive()
                return http_answers(f"http://{LOCALHOST}:{port}/health")

            wait_for(healthy, START_TIMEOUT, f"`opa run` start-up (log {log})")
            yield port, prefix, client
            server.check_alive()
    finally:
        delete_keys(client, prefix)
        client.close()


@pytest.mark.parametrize("route", ["counter-async", "counter-sync"])
def test_http_load_loses_no_increment(
    counter_server: tuple[int, str, redis.Redis], route: str, tmp_path: Path
) -> None:
    """REQUESTS GETs at CONCURRENCY: all 200, each count seen once, the counter ends at REQUESTS."""
    port, prefix, client = counter_server
    key = f"load-{route}"
    script = tmp_path / "load_client.py"
    script.write_text(LOAD_CLIENT)
    path = f"/{route}?key={key}"
    command = [sys.executable, str(script), LOCALHOST, str(port), path]
    command += [str(REQUESTS), str(CONCURRENCY)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=LOAD_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)

    assert figures["error_count"] == 0, figures["errors"]
    assert figures["statuses"] == {"200": REQUESTS}, figures["statuses"]
    # Each INCR answered a different value: no two requests shared or lost an increment.
    assert sorted(int(body) for body in figures["bodies"]) == list(range(1, REQUESTS + 1))
    stored = client.get(f"{prefix}counter:{key}")
    assert stored is not None and int(stored) == REQUESTS

    rate = REQUESTS / figures["elapsed"]
    print(
        f"\nLOAD /{route}: {REQUESTS} requests, concurrency {CONCURRENCY}, "
        f"{figures['elapsed']:.2f}s, {rate:.0f} req/s, "
        f"p50 {figures['p50'] * 1000:.1f} ms, p95 {figures['p95'] * 1000:.1f} ms, "
        f"errors 0, counter {int(stored)}"
    )


def test_celery_tasks_across_two_workers_all_arrive(redis_url: str, tmp_path: Path) -> None:
    """TASKS tasks on a queue consumed by two `opa worker` processes: every result arrives."""
    from celery import Celery
    from celery.result import ResultSet

    run = uuid.uuid4().hex[:12]
    queue, prefix, package = f"opa-load-{run}", f"opa-load-{run}:", f"loadtasks_{run}"
    broker, backend = with_db(redis_url, BROKER_DB), with_db(redis_url, BACKEND_DB)
    celery_settings: dict[str, Any] = {
        "task_default_queue": queue,
        "broker_transport_options": {"global_keyprefix": prefix},
        "result_backend_transport_options": {"global_keyprefix": prefix},
        "result_expires": 600,
        "worker_enable_remote_control": False,
    }
    plugins = tmp_path / "plugins"
    (plugins / package).mkdir(parents=True)
    (plugins / package / "__init__.py").write_text('"""Load-test plugin: tasks only."""\n')
    (plugins / package / "tasks.py").write_text(TASKS_MODULE)
    component = {
        "LOAD": "yes",
        "DRIVER": "celery",
        "TIMEOUT": 10,
        "OPTS": {"BROKER_URL": broker, "BACKEND_URL": backend, "SETTINGS": celery_settings},
    }
    settings = {
        "PLUGIN_PATHS": [str(plugins)],
        "LOG_LEVEL": "INFO",
        "OPTIONAL_COMPONENTS": {"CELERY": component},
    }
    folder = write_settings(tmp_path / "settings", settings)
    env = clean_environ(folder)

    # The sender: a plain Celery client on the same broker, backend, queue and key prefix.
    sender = Celery(f"sender-{run}", broker=broker, backend=backend)
    sender.conf.update(celery_settings)
    sender.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    clients = [redis.Redis.from_url(broker), redis.Redis.from_url(backend)]
    try:
        with (
            worker(env, tmp_path, run, "a", queue) as first,
            worker(env, tmp_path, run, "b", queue) as second,
        ):
            for process in (first, second):

                def ready(process: LoggedProcess = process) -> bool:
                    process.check_alive()
                    return " ready." in process.output()

                wait_for(ready, START_TIMEOUT, f"worker start-up (log {process.log})")

            started = time.perf_counter()
            results = ResultSet(
                [
                    sender.send_task(f"{package}.tasks.echo", args=[i], queue=queue)
                    for i in range(TASKS)
                ]
            )
            values = results.join(timeout=TASKS_TIMEOUT, propagate=True, interval=0.05)
            elapsed = time.perf_counter() - started
            first.check_alive()
            second.check_alive()
            results.forget()
    finally:
        sender.close()
        for client in clients:
            delete_keys(client, prefix)
            client.close()

    assert sorted(index for index, _ in values) == list(range(TASKS))
    nodes = {node for _, node in values}
    # Both workers took part (node names are "<role>-<run>@<host>").
    assert {node.split("@", 1)[0] for node in nodes} == {f"a-{run}", f"b-{run}"}, nodes
    per_node = {node: sum(1 for _, n in values if n == node) for node in sorted(nodes)}
    print(
        f"\nCELERY: {TASKS} tasks, 2 workers x 2 processes, all {len(values)} results in "
        f"{elapsed:.2f}s, {TASKS / elapsed:.0f} tasks/s, per worker {per_node}"
    )


def worker(env: Mapping[str, str], folder: Path, run: str, role: str, queue: str) -> LoggedProcess:
    """An `opa worker` process (2 pool processes) consuming *queue*, killed when closed."""
    command = [sys.executable, "-m", "opa", "worker", "-l", "info", "-c", "2"]
    command += ["-n", f"{role}-{run}@%h", "-Q", queue]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    return LoggedProcess(command, folder / f"worker-{role}.log", env=env)
