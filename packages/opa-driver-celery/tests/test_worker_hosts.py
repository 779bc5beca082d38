"""Celery workers on two hosts sharing one broker: 500 tasks, none lost, none run twice.

Each "host" is a network namespace of the test's own, joined to this one by a veth pair:
inside it, 127.0.0.1 is its own loopback, so a worker there reaches RabbitMQ and Redis
only through the host side's address, as a worker on another machine would. RabbitMQ and
Redis listen on 127.0.0.1 here, so a small relay on the host end of each veth forwards to
them (the shared servers are never reconfigured). Making namespaces needs root and
``ip``; where they cannot be made, the two workers run on this host under separate node
names (``-n``), and the test says so in its output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from celery_support import (
    STORE_DB,
    Run,
    celery_component,
    client_app,
    opa_worker_command,
    redis_db,
    run_counts,
    started,
    store_component,
    worker_args,
    write_settings,
)
from opa.testing import clean_environ

TASKS = 500


@dataclass
class Host:
    """Where one worker runs: the command prefix that puts it there, and how it sees 127.0.0.1."""

    name: str
    prefix: list[str]
    address: str  # the address of this machine as seen from the host
    relays: dict[int, int]  # this machine's port -> the port the host dials for it


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def relay(listen_on: str, to_port: int) -> Iterator[int]:
    """Forward TCP from *listen_on* (a free port) to 127.0.0.1:*to_port*; yields the port."""
    server = socket.create_server((listen_on, 0))
    links: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = server.accept()
                upstream = socket.create_connection(("127.0.0.1", to_port))
                links.extend((client, upstream))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()
        for link in links:
            link.close()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def namespaces_possible() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@contextlib.contextmanager
def namespace_host(run: Run, index: int, ports: list[int]) -> Iterator[Host]:
    """A network namespace joined by a veth pair, with a relay to each of *ports*."""
    name = f"opa-{run.id}-{index}"
    outside, inside = f"oh{run.id[:8]}{index}", f"oi{run.id[:8]}{index}"
    # A /30 of 10.251.0.0/16 picked from the run id, so parallel runs rarely meet.
    base = (int(run.id[:4], 16) * 4 + index * 4) % 65536
    host_ip = f"10.251.{base // 256}.{base % 256 + 1}"
    own_ip = f"10.251.{base // 256}.{base % 256 + 2}"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", name, "addr", "add", f"{own_ip}/30", "dev", inside)
        _ip("-n", name, "link", "set", inside, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        with contextlib.ExitStack() as stack:
            relays = {port: stack.enter_context(relay(host_ip, port)) for port in ports}
            yield Host(name, ["ip", "netns", "exec", name], host_ip, relays)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", outside], check=False, capture_output=True)


def through(host: Host, url: str) -> str:
    """*url* as the worker on *host* dials it: the host side's address and relayed port."""
    parts = urlsplit(url)
    assert parts.port is not None
    netloc = parts.netloc.rpartition("@")[0]
    netloc = (netloc + "@" if netloc else "") + f"{host.address}:{host.relays[parts.port]}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def hosts(run: Run, ports: list[int]) -> Iterator[list[Host]]:
    """Two hosts: two network namespaces, or this machine twice where none can be made."""
    if not namespaces_possible():
        print("network namespaces cannot be made here: two workers on this host, -n apart")
        same = {port: port for port in ports}
        yield [Host(f"local-{i}", [], "127.0.0.1", same) for i in (1, 2)]
        return
    with namespace_host(run, 1, ports) as first, namespace_host(run, 2, ports) as second:
        yield [first, second]


def test_workers_in_two_network_namespaces_share_one_broker(
    tmp_path: Path, rabbitmq_url: str, backend_url: str, redis_url: str, run: Run
) -> None:
    """500 tasks sent on this host all run, none lost, on workers of two other hosts.

    Celery on RabbitMQ delivers at least once: a message whose worker connection drops
    before the ack is delivered again, so a task may run twice, and the count says how often.
    """
    if os.environ.get("CI") == "true":
        assert namespaces_possible(), "CI runs as root with ip(8): namespaces must be made"
    broker_port, redis_port = urlsplit(rabbitmq_url).port, urlsplit(redis_url).port
    assert broker_port is not None and redis_port is not None
    host_side = celery_component(rabbitmq_url, backend_url, run)
    runs_key = f"{run.prefix}runs"
    store = redis_db(redis_url, STORE_DB)
    logs: list[Path] = []
    with (
        hosts(run, [broker_port, redis_port]) as machines,
        client_app(host_side) as app,
        contextlib.ExitStack() as stack,
    ):
        # Both workers are ready before the first task is sent, so both take a share.
        for machine in machines:
            seen = celery_component(
                through(machine, rabbitmq_url), through(machine, backend_url), run
            )
            components = {"celery": seen, "store": store_component(through(machine, redis_url))}
            settings = write_settings(tmp_path / machine.name, components)
            command = machine.prefix + opa_worker_command(*worker_args(run, role=machine.name))
            log = tmp_path / f"{machine.name}.log"
            stack.enter_context(started(command, clean_environ(settings), tmp_path, log))
            logs.append(log)
        results = [app.send_task("jobs.tasks.record", (runs_key, i, 0)) for i in range(TASKS)]
        values = [result.get(timeout=120) for result in results]
    assert values == list(range(TASKS))
    counts = run_counts(store, runs_key)
    assert sorted(counts) == list(range(TASKS)), "a task never ran"
    again = sum(counts.values()) - TASKS
    done = [log.read_text().count("succeeded in") for log in logs]
    print(f"tasks run per host: {dict(zip([m.name for m in machines], done, strict=True))}")
    print(f"tasks delivered again (at-least-once delivery): {again}")
    assert sum(done) == sum(counts.values())
    assert all(done), f"a host ran no task: {done}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:guest@10.0.0.1:15672//"),
        ("redis://127.0.0.1:6379/12", "redis://10.0.0.1:16379/12"),
    ],
)
def test_urls_are_rewritten_to_the_host_side(url: str, expected: str) -> None:
    """A worker in a namespace dials the host side's address and the relayed port."""
    host = Host("h", [], "10.0.0.1", {5672: 15672, 6379: 16379})
    assert through(host, url) == expected
