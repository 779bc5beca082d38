"""Helpers for the celery driver's tests: unique names, settings folders, worker processes.

Every test run names its queues, Redis keys and worker nodes with a fresh id, so it never
meets another run (or another engineer's) on the shared RabbitMQ and Redis, and removes
what it created. Every wait is bounded, and every process started here is killed, with its
children, when the test ends.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis
import yaml

from opa.testing import LoggedProcess, delete_keys, wait_for

PLUGINS = Path(__file__).with_name("plugins")
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "celery-task"
START_TIMEOUT = 40.0
STOP_TIMEOUT = 20.0
# Our own database numbers on the shared Redis: 11 broker, 12 results, 13 task effects.
BROKER_DB, BACKEND_DB, STORE_DB = 11, 12, 13


def redis_db(url: str, db: int) -> str:
    """The same Redis server as *url*, on database *db*."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


@dataclass
class Run:
    """The unique names of one test: a queue, a key prefix and worker node names.

    Queues declared on an AMQP broker are listed in ``amqp_queues`` as (broker, queue), so
    the ``run`` fixture deletes them afterwards.
    """

    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    amqp_queues: list[tuple[str, str]] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return f"opa-test-{self.id}"

    @property
    def prefix(self) -> str:
        return f"opa-test-{self.id}:"

    def node(self, role: str = "w") -> str:
        return f"{role}-{self.id}@%h"


def celery_component(
    broker: str, backend: str | None, run: Run, load: str = "yes", **settings: Any
) -> dict[str, Any]:
    """A ``celery`` component on *broker*, consuming the run's own queue."""
    own: dict[str, Any] = {"task_default_queue": run.queue, "result_expires": 600}
    if backend and backend.startswith("redis"):
        own["result_backend_transport_options"] = {"global_keyprefix": run.prefix}
    if broker.startswith("redis"):
        own["broker_transport_options"] = {"global_keyprefix": run.prefix}
    own.update(settings)
    if broker.startswith("amqp"):
        run.amqp_queues.append((broker, run.queue))
    opts: dict[str, Any] = {"BROKER_URL": broker, "SETTINGS": own}
    if backend:
        opts["BACKEND_URL"] = backend
    return {"LOAD": load, "DRIVER": "celery", "TIMEOUT": 10, "OPTS": opts}


def store_component(redis_url: str) -> dict[str, Any]:
    """The test plugin's ``store`` component: a Redis client the tasks use while they run."""
    return {"LOAD": "yes", "DRIVER": "test-store", "OPTS": {"URL": redis_db(redis_url, STORE_DB)}}


def write_settings(folder: Path, components: Mapping[str, Any], **settings: Any) -> Path:
    """A settings folder whose components replace opa's defaults (none of theirs connects)."""
    folder.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "PLUGIN_PATHS": [str(PLUGINS)],
        "OPTIONAL_COMPONENTS": dict(components),
    }
    values.update(settings)
    (folder / "settings.yaml").write_text(yaml.safe_dump({"default": values}), encoding="utf-8")
    return folder


def opa_worker_command(*args: str) -> list[str]:
    """``opa worker ...`` run by this interpreter."""
    return [sys.executable, "-m", "opa", "worker", *args]


def celery_worker_command(*args: str, app: str = "opa_driver_celery.worker") -> list[str]:
    """``celery -A <app> worker ...`` run by this interpreter."""
    return [sys.executable, "-m", "celery", "-A", app, "worker", *args]


def worker_args(run: Run, *queues: str, role: str = "w", concurrency: int = 2) -> list[str]:
    """Options every test worker takes: its own node name, and no chatter with other workers."""
    args = ["-l", "info", "-c", str(concurrency), "-n", run.node(role)]
    args += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    if queues:
        args += ["-Q", ",".join(queues)]
    return args


class Process(LoggedProcess):
    """A worker (or flower) process; ``close()`` kills its group, pool children included."""

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until Celery logs that the worker is ready; fail early if it died."""

        def ready() -> bool:
            self.check_alive()
            return " ready." in self.output()

        wait_for(ready, timeout, f"worker start-up (log {self.log})", every=0.2)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit status, waiting at most *timeout*."""
        return super().wait(timeout)


@contextmanager
def started(
    command: list[str], env: Mapping[str, str], cwd: Path, log: Path, ready: bool = True
) -> Iterator[Process]:
    """Run *command* for the block (waiting for "ready" unless told not to), then kill it."""
    process = Process(command, log, env=env, cwd=cwd)
    try:
        if ready:
            process.wait_ready()
        yield process
    finally:
        process.close()


def run_counts(url: str, key: str) -> dict[int, int]:
    """The hash *key* of the Redis database at *url* as {task index: times it ran}."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        counts = cast(dict[str, str], client.hgetall(key))
    finally:
        client.close()
    return {int(index): int(count) for index, count in counts.items()}


def delete_keys_at(url: str, prefix: str) -> None:
    """Remove every key under *prefix* from the Redis database at *url*."""
    client = redis.Redis.from_url(url)
    try:
        delete_keys(client, prefix)
    finally:
        client.close()


def delete_queues(queues: list[tuple[str, str]]) -> None:
    """Remove each (broker, queue) pair's queue, and its exchange, from its AMQP broker.

    A broker that does not answer (the tests' closed ports) holds no queue to remove.
    """
    from celery import Celery
    from kombu.exceptions import OperationalError

    for broker, queue in queues:
        app = Celery(broker=broker, set_as_current=False)
        with app.connection_for_write() as connection:
            try:
                connection.ensure_connection(max_retries=0)
            except OperationalError:
                continue
            channel = connection.default_channel
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


@contextmanager
def client_app(component: Mapping[str, Any]) -> Iterator[Any]:
    """The Celery app a component's OPTS build, for the test to send tasks with.

    Built by the driver outside any opa app, so it has the component's settings and no
    tasks of its own.
    """
    from opa.testing import make_driver
    from opa_driver_celery import CeleryDriver

    driver = make_driver(CeleryDriver, component["OPTS"], "celery")
    driver.connect()
    app = driver.instance
    try:
        yield app
    finally:
        driver.disconnect()
