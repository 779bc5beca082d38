"""Helpers of test_faults.py: `opa run` in a subprocess, silent hosts and a plugin marker driver."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import yaml

from opa.testing import (
    LOCALHOST,
    LoggedProcess,
    ServiceUnavailable,
    bound_port,
    clean_environ,
    free_port,
    http_answers,
    wait_for,
)
from opa.testing._ports import (
    PortTaken,
    listening_ports,
    listens_on,
    on_free_port,
    port_taken_by_another,
)
from opa.testing._services import log_tail

# A plugin driver that leaves a trace of its connect and disconnect: "<MARKER>.connected" and
# "<MARKER>.disconnected", each holding the time.monotonic() of the call (CLOCK_MONOTONIC is
# one clock for every process of the machine, so the test can compare it with its own).
MARKER_PLUGIN = '''"""The fault tests' marker driver, and a route that takes about a second."""

import asyncio
import time
from pathlib import Path

from opa import Driver, get_router

router = get_router()
ARRIVED = 0
EVERYONE = asyncio.Event()


@router.get("/slow")
async def slow(together: int = 1) -> dict:
    """Once *together* requests have arrived, each takes a second."""
    global ARRIVED
    ARRIVED += 1
    if ARRIVED >= together:
        EVERYONE.set()
    await asyncio.wait_for(EVERYONE.wait(), 60)
    await asyncio.sleep(1.0)
    return {"finished": time.monotonic()}


@router.get("/arrived")
async def arrived() -> int:
    """How many /slow requests have arrived so far."""
    return ARRIVED


class MarkerDriver(Driver):
    name = "fault-marker"
    is_async = False

    def connect(self) -> None:
        Path(f"{self.opts.MARKER}.connected").write_text(repr(time.monotonic()))
        self.instance = self.opts.MARKER

    def disconnect(self) -> None:
        Path(f"{self.opts.MARKER}.disconnected").write_text(repr(time.monotonic()))
'''


def marker_component(marker: Path) -> dict[str, Any]:
    return {"LOAD": "yes", "DRIVER": "fault-marker", "OPTS": {"MARKER": str(marker)}}


def connected(marker: Path) -> bool:
    return Path(f"{marker}.connected").exists()


def disconnected_at(marker: Path) -> float | None:
    path = Path(f"{marker}.disconnected")
    return float(path.read_text()) if path.exists() else None


def write_settings(folder: Path, values: Mapping[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.yaml").write_text(yaml.safe_dump({"default": dict(values)}))
    return folder


class OpaRun(LoggedProcess):
    """`python -m opa run` on a settings folder, in its own session, output in a file.

    It binds port 0, so the kernel picks a port no one else holds; ``wait_serving()`` reads
    the port back from the process (``port`` is 0 until then), passing over *metrics_port*,
    which the process may listen on too (METRICS_PORT). *args* go after ``opa run``'s own.
    """

    def __init__(
        self,
        settings_dir: Path,
        log: Path,
        environ: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        metrics_port: int | None = None,
    ) -> None:
        command = [sys.executable, "-m", "opa", "run", "--host", LOCALHOST, "--port", "0", *args]
        env = clean_environ(settings_dir, **(environ or {}))
        super().__init__(command, log, env=env, cwd=settings_dir)
        self.port = 0
        self.metrics_port = metrics_port
        self.started = time.monotonic()

    def _app_port(self, timeout: float) -> int:
        if self.metrics_port is None:
            return bound_port(self.popen, "opa run", timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.popen.poll() is None:
            ports = (listening_ports(self.popen.pid) or set()) - {self.metrics_port}
            if ports:
                return min(ports)
            time.sleep(0.05)
        raise ServiceUnavailable(f"opa run listened on no port but METRICS_PORT in {timeout:g}s")

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Until /health answers (a 503 is an answer); fail with the log when it never does."""
        deadline = time.monotonic() + timeout

        def serving() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"opa run exited early:\n{self.tail()}")
            if not self.port:
                try:
                    self.port = self._app_port(deadline - time.monotonic())
                except ServiceUnavailable as error:
                    raise AssertionError(f"{error}:\n{self.tail()}") from None
            return http_answers(f"http://{LOCALHOST}:{self.port}/health", timeout=2)

        wait_for(serving, timeout, f"opa run serving (log {self.log})")

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)


class SilentProxy:
    """A TCP listener of the test's own that forwards to *target* until it goes silent.

    Silent, it still accepts connections, but reads nothing and answers nothing, on new
    connections and on those it was forwarding: a host that hangs, not one that is down.
    """

    def __init__(self, target: tuple[str, int] | None = None) -> None:
        self.target = target
        self.silent = target is None
        self.listener = socket.create_server((LOCALHOST, 0))
        self.port: int = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self.listener]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, None)
        while not self._closed.is_set():
            for key, _ in selector.select(timeout=0.1):
                if key.data is None:
                    self._accept(selector)
                elif not self.silent:
                    self._forward(selector, key.fileobj, key.data)  # type: ignore[arg-type]
            if self.silent:
                time.sleep(0.05)  # hold every socket open, read nothing
        selector.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        client, _ = self.listener.accept()
        self._sockets.append(client)
        if self.silent or self.target is None:
            return
        upstream = socket.create_connection(self.target)
        self._sockets.append(upstream)
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)

    def _forward(self, selector: selectors.BaseSelector, source: socket.socket, to: Any) -> None:
        try:
            data = source.recv(65536)
            if data:
                to.sendall(data)
                return
        except OSError:
            pass
        for sock in (source, to):
            with suppress(KeyError, ValueError):
                selector.unregister(sock)
            sock.close()

    def go_silent(self) -> None:
        self.silent = True

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        for sock in self._sockets:
            with suppress(OSError):
                sock.close()


class PrivateRabbitMQ:
    """A rabbitmq-server of the test's own on a free port, which it may stop and start again.

    Its node name, data, logs and Erlang cookie live in a folder of its own, so the shared
    broker on 5672 is never touched. ``stop()`` then ``start()`` keeps the port and the data.
    At the first start, a port taken before the broker binds it (AMQP or distribution) is
    given up for fresh ones (``on_free_port``); the broker is ready once its own Erlang VM
    listens, not whoever answers on the port.
    """

    START_TIMEOUT = 90.0

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.folder = Path(tempfile.mkdtemp(prefix="opa-rabbitmq-"))
        # Run as root, rabbitmq-server drops to the rabbitmq user, who must write here too.
        self.folder.chmod(0o777)
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "enabled_plugins").chmod(0o666)
        self.port = 0
        node = f"opa-faults-{uuid.uuid4().hex[:8]}@localhost"
        folder = str(self.folder)
        self.env = {
            **os.environ,
            "HOME": folder,
            "RABBITMQ_NODENAME": node,
            "RABBITMQ_NODE_IP_ADDRESS": LOCALHOST,
            "RABBITMQ_MNESIA_BASE": f"{folder}/mnesia",
            "RABBITMQ_LOG_BASE": f"{folder}/log",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{folder}/enabled_plugins",
            "RABBITMQ_CONFIG_FILE": f"{folder}/rabbitmq",
            "RABBITMQ_PID_FILE": f"{folder}/rabbitmq.pid",
            "RABBITMQ_FEATURE_FLAGS_FILE": f"{folder}/feature_flags",
            "RABBITMQ_PLUGINS_EXPAND_DIR": f"{folder}/plugins-expand",
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{LOCALHOST}:{self.port}//"

    def start(self) -> float:
        """Start the broker and wait until its AMQP port accepts; the seconds it took."""
        started = time.monotonic()
        if self.port:
            self._start_on(self.port)
        else:
            self.port = on_free_port(self._start_on, "private rabbitmq-server")
        return time.monotonic() - started

    def _beam_pid(self) -> int | None:
        with suppress(OSError, ValueError):
            return int((self.folder / "rabbitmq.pid").read_text().strip())
        return None

    def _listening(self, port: int) -> bool:
        pid = self._beam_pid()
        return pid is not None and listens_on(pid, port)

    def _bind_failed(self) -> bool:
        logs = [self.folder / "output.log", *(self.folder / "log").glob("*.log")]
        return any(port_taken_by_another(log) for log in logs)

    def _start_on(self, port: int) -> int:
        if self.env.get("RABBITMQ_NODE_PORT") != str(port):
            self.env["RABBITMQ_NODE_PORT"] = str(port)
            self.env["RABBITMQ_DIST_PORT"] = str(free_port())
            for log in [self.folder / "output.log", *(self.folder / "log").glob("*.log")]:
                log.unlink(missing_ok=True)  # a bind failure is read from them
        started = time.monotonic()
        with (self.folder / "output.log").open("ab") as output:
            self._process = subprocess.Popen(
                [self.binary],
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self._process
        deadline = started + self.START_TIMEOUT
        while not self._listening(port):
            if process.poll() is not None or time.monotonic() > deadline or self._bind_failed():
                taken = self._bind_failed()
                self.stop(port)
                tail = log_tail(self.folder / "output.log")
                error = PortTaken if taken else ServiceUnavailable
                raise error(f"private rabbitmq-server on port {port} did not start: {tail}")
            time.sleep(0.2)
        return port

    def stop(self, port: int | None = None) -> None:
        """Stop the broker; the port refuses connections after.

        Run as root, rabbitmq-server re-executes itself as the rabbitmq user in a session of
        its own, so the Erlang VM is found by its pid file, not through the started process.
        """
        process, self._process = self._process, None
        if process is None:
            return
        beam = self._beam_pid()
        pids = [process.pid] if beam is None else [beam, process.pid]
        port = port or self.port
        for signum in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)
            deadline = time.monotonic() + 30
            while any(listens_on(pid, port) for pid in pids) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not any(listens_on(pid, port) for pid in pids):
                break
        (self.folder / "rabbitmq.pid").unlink(missing_ok=True)
        with suppress(subprocess.TimeoutExpired):
            process.wait(10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


REDIS_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "redis"


def serve_redis_example(
    redis_url: str,
    folder: Path,
    socket_timeout: float,
    health_timeout: float,
    args: tuple[str, ...] = (),
    **extra: Any,
) -> OpaRun:
    """``opa run`` serving examples/redis on *redis_url* through both Redis drivers, with
    quick probes (and *extra* settings, and *args* to ``opa run``), once it answers."""
    opts = {"URL": redis_url, "SOCKET_TIMEOUT": socket_timeout, "CONNECT_TIMEOUT": socket_timeout}
    settings = {
        "PLUGIN_PATHS": [str(REDIS_EXAMPLE)],
        "PLUGIN_ENTRY_POINTS": False,
        "EXAMPLE_KEY_PREFIX": f"opa-faults:{uuid.uuid4().hex[:8]}:",
        "HEALTH_TIMEOUT": health_timeout,
        "COMPONENT_PROBE_INTERVAL": 0.2,
        "COMPONENT_PROBE_MAX_INTERVAL": 1.0,
        "LOG_LEVEL": "WARNING",
        **extra,
        "OPTIONAL_COMPONENTS": {
            "WALRUS": {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": opts},
            "AIOREDIS": {"LOAD": "yes", "DRIVER": "redis-aioredis", "OPTS": opts},
        },
    }
    metrics_port = extra.get("METRICS_PORT")
    run = OpaRun(
        write_settings(folder / "settings", settings),
        folder / "opa.log",
        args=args,
        metrics_port=metrics_port,
    )
    run.wait_serving()
    return run
