"""The serving layer: head limits, head deadlines, the connection cap and the storm line."""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h11
import pytest
import uvicorn
from uvicorn.lifespan.on import LifespanOn
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

import opa._serve
from opa._config import load_settings
from opa._errors import OpaError
from opa._log import log, setup_logging
from opa._serve import UVICORN_STARTUP_FAILED, serve
from opa._settings_model import MAX_LIMIT_BYTES
from opa.serving import (
    ACCEPT_ERROR,
    SWEEP_FLOOR,
    SWEEP_INTERVAL,
    ConnectionGuard,
    GuardedH11Protocol,
    ServingLimits,
    connection_cap,
    guarded_protocol,
    serving_limits,
    sweep_interval,
)
from opa.testing import LOCALHOST

LIMITS = ServingLimits(
    header_timeout=5.0,
    max_request_line=256,
    max_header_bytes=512,
    max_connections=64,
    shutdown_grace=1.0,
)
# Generous: the machine is shared; these bound a hang, they do not measure speed.
PROMPT = 5.0


async def hello_app(scope: Any, receive: Any, send: Any) -> None:
    """/hello answers at once; /sleep/<seconds> first sleeps."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.startswith("/sleep/"):
        await asyncio.sleep(float(path.rsplit("/", 1)[1]))
    body = b"hello"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Served:
    port: int
    guard: ConnectionGuard
    paths: list[str]


@contextmanager
def serving(
    limits: ServingLimits = LIMITS, cap: int | None = None, access_log: bool = False
) -> Iterator[Served]:
    """uvicorn with the guarded protocol in a thread, on a port of its own."""
    guard = ConnectionGuard(limits, cap or limits.max_connections)
    paths: list[str] = []

    async def recording_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            paths.append(scope["path"])
        await hello_app(scope, receive, send)

    config = uvicorn.Config(
        recording_app,
        http=guarded_protocol(guard),
        lifespan="off",
        log_config=None,
        access_log=access_log,
    )
    server = uvicorn.Server(config)
    listener = socket.create_server((LOCALHOST, 0), backlog=4096)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        yield Served(listener.getsockname()[1], guard, paths)
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection((LOCALHOST, port), timeout=30)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(port: int, head: bytes, piece: int = 0, pause: float = 0.0) -> bytes:
    """Send *head* (in pieces of *piece* bytes, *pause* apart, when piece > 0); the answer."""
    with connect(port) as sock:
        pieces = [head[i : i + piece] for i in range(0, len(head), piece)] if piece else [head]
        try:
            for each in pieces:
                sock.sendall(each)
                time.sleep(pause)
        except OSError:
            pass  # the server answered and closed before the rest arrived
        return read_until_closed(sock)


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


def head(target: str = "/hello", headers: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "host: x", "connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def target_of_line(length: int) -> str:
    """A target whose request line "GET <target> HTTP/1.1" is *length* bytes."""
    return "/hello?q=" + "a" * (length - len("GET /hello?q= HTTP/1.1"))


def pad_for_headers(length: int) -> list[tuple[str, str]]:
    """A header that brings head()'s headers to *length* bytes (name, value, ": ", CRLF)."""
    base = len("host") + len("x") + len("connection") + len("close") + 8
    return [("x-pad", "p" * (length - base - len("x-pad") - 4))]


# --- the uvicorn and h11 names the layer builds on ---------------------------------------


def test_the_library_names_the_guard_builds_on_still_exist() -> None:
    """uvicorn, h11 and asyncio still have what opa.serving and opa.serve rely on."""
    for method in ("connection_made", "connection_lost", "_unset_keepalive_if_required"):
        assert callable(getattr(H11Protocol, method, None)), f"H11Protocol.{method} is gone"
    source = inspect.getsource(H11Protocol.__init__)
    for attribute in ("self.conn =", "self.loop =", "self.transport", "self.connections ="):
        assert attribute in source, f"H11Protocol no longer sets {attribute}"
    handle_events = inspect.getsource(H11Protocol.handle_events)
    assert "self.conn.next_event()" in handle_events and "self.cycle = " in handle_events
    assert h11.RemoteProtocolError("x", error_status_hint=431).error_status_hint == 431
    assert isinstance(h11.Connection(h11.SERVER).trailing_data, tuple)
    assert ACCEPT_ERROR in inspect.getsource(asyncio.selector_events), "asyncio's accept line"
    assert "timeout graceful shutdown exceeded" in inspect.getsource(uvicorn.Server.shutdown)
    # opa.serve: a failed start-up told by Server.started and held back until then.
    server = uvicorn.Server(uvicorn.Config(hello_app, log_config=None))
    assert server.started is False, "Server.started"
    assert "self.started = True" in inspect.getsource(uvicorn.Server.startup)
    assert UVICORN_STARTUP_FAILED in inspect.getsource(LifespanOn.startup)
    # The record _CutRequests drops: a cancelled request's error, logged on uvicorn.error.
    assert 'getLogger("uvicorn.error")' in inspect.getsource(H11Protocol.__init__)
    run_asgi = inspect.getsource(RequestResponseCycle.run_asgi)
    assert "except BaseException as exc" in run_asgi and "exc_info=exc" in run_asgi


# --- settings -----------------------------------------------------------------------------


def test_defaults_give_the_documented_limits() -> None:
    """The packaged defaults parse into the documented limits."""
    limits = serving_limits(load_settings())
    assert limits == ServingLimits(10.0, 8192, 32768, 4096, 20.0)


def test_the_cap_is_lowered_to_fit_the_open_file_limit_with_a_warning() -> None:
    """Under a 1024 open-file limit, MAX_CONNECTIONS 4096 becomes 426, and a line says why."""
    lines: list[str] = []
    sink = log.add(lines.append, level="WARNING", format="{message}")
    try:
        cap = connection_cap(replace(LIMITS, max_connections=4096), 1024)
        kept = connection_cap(replace(LIMITS, max_connections=100), 1024)
    finally:
        log.remove(sink)
    assert (cap, kept) == (426, 100)
    assert len(lines) == 1 and "MAX_CONNECTIONS=4096" in lines[0] and "ulimit -Hn" in lines[0]


# --- request line and header limits --------------------------------------------------------


@pytest.mark.parametrize("piece", [0, 37], ids=["at-once", "in-pieces"])
def test_request_line_limit_is_414_at_limit_plus_one(piece: int) -> None:
    """A request line of MAX_REQUEST_LINE bytes is served; one byte more is 414, no route run."""
    with serving() as served:
        fits = exchange(served.port, head(target_of_line(256)), piece, 0.001)
        over = exchange(served.port, head(target_of_line(257)), piece, 0.001)
    assert status(fits) == 200
    assert status(over) == 414
    assert len(served.paths) == 1


@pytest.mark.parametrize("piece", [0, 37], ids=["at-once", "in-pieces"])
def test_header_limit_is_431_at_limit_plus_one(piece: int) -> None:
    """Headers of MAX_HEADER_BYTES bytes are served; one byte more is 431, no route run."""
    with serving() as served:
        fits = exchange(served.port, head(headers=pad_for_headers(512)), piece, 0.001)
        over = exchange(served.port, head(headers=pad_for_headers(513)), piece, 0.001)
    assert status(fits) == 200
    assert status(over) == 431
    assert len(served.paths) == 1


def test_a_long_trickled_request_line_is_414_before_it_ends() -> None:
    """A request line that never ends is cut with 414 once it passes the limits."""
    with serving() as served, connect(served.port) as sock:
        sock.sendall(b"GET /hello?q=")
        for _ in range(100):
            try:
                sock.sendall(b"a" * 64)
            except OSError:
                break
            time.sleep(0.001)
        answer = read_until_closed(sock)
    assert status(answer) == 414
    assert served.paths == []


@pytest.mark.parametrize("piece", [0, 4096], ids=["at-once", "trickled"])
def test_a_100kb_url_does_not_hold_another_client(piece: int) -> None:
    """While one client sends a 100 KB URL, another's /hello is answered promptly."""
    defaults = replace(LIMITS, max_request_line=8192, max_header_bytes=32768)
    hostile = head("/hello?q=" + "a" * 100_000)
    with serving(defaults) as served, ThreadPoolExecutor(2) as threads:
        attack = threads.submit(exchange, served.port, hostile, piece, 0.02)
        started = time.monotonic()
        answer = exchange(served.port, head())
        waited = time.monotonic() - started
        assert status(attack.result(timeout=30)) == 414
    assert status(answer) == 200
    assert waited < PROMPT


@pytest.mark.parametrize("piece", [0, 4096], ids=["at-once", "trickled"])
def test_a_100kb_url_served_and_access_logged_does_not_hold_another_client(
    piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With MAX_REQUEST_LINE at its 1 MiB maximum, a 100 KB URL reaches the route and its
    access line goes through opa's masking sink, while other clients' /hello is answered
    promptly, before and after that line."""
    limits = replace(LIMITS, max_request_line=MAX_LIMIT_BYTES, max_header_bytes=32768)
    hostile = head("/hello?q=" + "a" * 100_000)
    # As `opa run` leaves it, whatever earlier servers of this process did to it.
    access_logger = logging.getLogger("uvicorn.access")
    monkeypatch.setattr(access_logger, "propagate", True)
    monkeypatch.setattr(access_logger, "handlers", [])
    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    try:
        with serving(limits, access_log=True) as served, ThreadPoolExecutor(1) as threads:
            attack = threads.submit(exchange, served.port, hostile, piece, 0.02)
            waits, answers = [], []
            while not waits or not attack.done():
                started = time.monotonic()
                answers.append(status(exchange(served.port, head())))
                waits.append(time.monotonic() - started)
            assert status(attack.result(timeout=30)) == 200
            started = time.monotonic()
            answers.append(status(exchange(served.port, head())))
            waits.append(time.monotonic() - started)
    finally:
        setup_logging("INFO")
    assert set(answers) == {200}
    assert max(waits) < PROMPT, waits
    access = [line for line in stream.getvalue().splitlines() if "/hello?q=aaa" in line]
    assert len(access) == 1 and "[cut: " in access[0], [line[:300] for line in access]


def test_connections_on_a_socket_of_protocol_zero_send_without_delay() -> None:
    """A connection accepted on a listening socket made as uvicorn makes it (protocol number
    0, which asyncio does not set TCP_NODELAY for: the sockets of opa run --workers) has
    Nagle's algorithm off, so no answer waits for the client's delayed ACK."""
    with serving() as served, connect(served.port) as sock:
        sock.sendall(head().replace(b"connection: close", b"connection: keep-alive"))
        assert status(sock.recv(65536)) == 200
        [protocol] = served.guard.open
        accepted = protocol.transport.get_extra_info("socket")
        assert accepted.proto == 0  # what asyncio skips: the case under test
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_malformed_heads_are_400_without_a_line_each() -> None:
    """Garbage heads get 400 before any route, and no line each in the log."""
    lines: list[str] = []
    sink = log.add(lines.append, level="WARNING", format="{message}")
    try:
        with serving() as served:
            answers = [exchange(served.port, b"NOT HTTP AT ALL\r\n\r\n") for _ in range(20)]
    finally:
        log.remove(sink)
    assert {status(answer) for answer in answers} == {400}
    assert served.paths == []
    assert not any("Invalid HTTP request" in line for line in lines), lines


# --- head deadline --------------------------------------------------------------------------


def test_a_slow_head_is_cut_with_408_after_header_timeout() -> None:
    """A client that trickles header lines is answered 408 and closed after HEADER_TIMEOUT."""
    limits = replace(LIMITS, header_timeout=1.0)
    with serving(limits) as served:
        started = time.monotonic()  # before connecting: the head's clock cannot start earlier
        with connect(served.port) as sock:
            sock.sendall(b"GET /hello HTTP/1.1\r\n")
            sock.settimeout(0.2)
            answer = b""
            while time.monotonic() - started < 30:
                try:
                    sock.sendall(b"x-slow: 1\r\n")
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                answer += chunk
        took = time.monotonic() - started
    assert status(answer) == 408
    assert 1.0 <= took < 1.0 + PROMPT
    assert served.paths == []


def test_the_next_head_on_a_kept_alive_connection_has_the_same_deadline() -> None:
    """After a response, a keep-alive connection's next head must also arrive in time."""
    limits = replace(LIMITS, header_timeout=1.0)
    with serving(limits) as served, connect(served.port) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        first = sock.recv(65536)
        started = time.monotonic()
        sock.sendall(b"GET /hello HTTP/1.1\r\nhost: x\r\n")
        answer = read_until_closed(sock)
        took = time.monotonic() - started
    assert status(first) == 200
    assert status(answer) == 408
    assert took < 1.0 + PROMPT


def test_a_failing_sweep_is_one_masked_line_and_head_deadlines_go_on() -> None:
    """A sweep that raises is logged once, masked, with its traceback; later sweeps still cut
    a slow head with 408."""
    stream = io.StringIO()
    setup_logging("INFO", stream=stream)
    try:
        with serving(replace(LIMITS, header_timeout=1.0)) as served:
            sweep, failures = served.guard.sweep, []

            def sweep_failing_twice(now: float) -> None:
                if len(failures) < 2:
                    failures.append(now)
                    raise RuntimeError("sweep broke near redis://:s3cr3tpw@cache:6379/0")
                sweep(now)

            served.guard.sweep = sweep_failing_twice  # type: ignore[method-assign]
            with connect(served.port) as sock:
                sock.sendall(b"GET /hello HTTP/1.1\r\nhost: x\r\n")
                answer = read_until_closed(sock)
    finally:
        setup_logging("INFO")
    output = stream.getvalue()
    assert len(failures) == 2
    assert status(answer) == 408
    assert output.count("sweep failed") == 1, output
    assert "RuntimeError: sweep broke near" in output and "s3cr3tpw" not in output, output


def test_the_sweep_interval_has_a_floor_for_a_tiny_header_timeout() -> None:
    """A quarter of HEADER_TIMEOUT between sweeps, never under SWEEP_FLOOR nor over a second."""
    assert sweep_interval(0.001) == SWEEP_FLOOR
    assert sweep_interval(1.0) == 0.25
    assert sweep_interval(60.0) == SWEEP_INTERVAL


# --- connection cap ---------------------------------------------------------------------------


def test_over_the_cap_a_new_client_is_refused_at_once() -> None:
    """With the cap taken by requests in flight, a new client gets a 503 promptly."""
    with serving(cap=4) as served, ExitStack() as stack:
        for _ in range(4):
            busy = stack.enter_context(connect(served.port))
            busy.sendall(b"GET /sleep/20 HTTP/1.1\r\nhost: x\r\n\r\n")
        deadline = time.monotonic() + 30
        while len(served.paths) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        answer = exchange(served.port, head())
        waited = time.monotonic() - started
    assert status(answer) == 503
    assert waited < PROMPT


def test_over_the_cap_the_oldest_waiting_head_makes_room() -> None:
    """A connection that waited over a second for its head is evicted for a new client."""
    with serving(cap=4) as served, ExitStack() as stack:
        slow = [stack.enter_context(connect(served.port)) for _ in range(4)]
        for sock in slow:
            sock.sendall(b"GET /hello HTTP/1.1\r\n")
        time.sleep(1.2)  # eviction spares heads younger than a second
        answer = exchange(served.port, head())
        slow[0].settimeout(30)
        evicted = read_until_closed(slow[0])
    assert status(answer) == 200
    assert status(evicted) == 503


# --- the storm line ----------------------------------------------------------------------------


def test_a_storm_is_reported_in_one_line() -> None:
    """Many refusals and asyncio accept errors make one line with their counts, not many."""
    lines: list[str] = []
    sink = log.add(lines.append, level="WARNING", format="{message}")
    loop = asyncio.new_event_loop()
    try:
        guard = ConnectionGuard(LIMITS, 8)
        guard.counts["refused"] += 500
        guard.watch(loop)
        for _ in range(300):
            loop.call_exception_handler({"message": ACCEPT_ERROR, "exception": OSError(24)})
        guard.report()
        guard.report()  # nothing new: nothing said
    finally:
        log.remove(sink)
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    assert len(lines) == 1, lines
    assert "500 connections refused over MAX_CONNECTIONS=8" in lines[0]
    assert "300 accept errors" in lines[0]


def test_the_import_string_form_builds_its_guard_from_settings() -> None:
    """--http opa.serving:GuardedH11Protocol reads the limits from the process's settings."""
    assert GuardedH11Protocol.guard is None
    try:
        assert GuardedH11Protocol.guard_of().limits.max_request_line == 8192
    finally:
        GuardedH11Protocol.guard = None


# --- a failed start-up (opa.serve) -------------------------------------------------------------

FAILING_LIFESPAN = """
from contextlib import asynccontextmanager

from starlette.applications import Starlette


@asynccontextmanager
async def lifespan(app):
    raise RuntimeError("cannot reach redis://:s3cr3tpw@cache:6379/0")
    yield


app = Starlette(lifespan=lifespan)
"""

SILENT_LIFESPAN_FAILURE = """
async def app(scope, receive, send):
    await receive()
    await send({"type": "lifespan.startup.failed", "message": ""})
"""

OPA_ERROR_ON_IMPORT = """
from opa._entry_errors import exit_on_opa_error
from opa._errors import PluginError

with exit_on_opa_error():
    raise PluginError("plugin 'broken' failed to import: no module named 'nowhere'")
"""


def serve_app(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """opa._serve.serve() on the module *source* instead of opa.main, on port 0."""
    module = f"serve_app_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(opa._serve, "APP", f"{module}:app")
    serve(load_settings(), host=LOCALHOST, port=0, reload=False, log_level="info")


def test_a_failed_lifespan_is_one_opa_error_and_its_traceback_goes_to_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start-up failed by an error that is not opa's raises one OpaError naming it, on every
    uvicorn in range; what uvicorn said meanwhile is logged at DEBUG, masked."""
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    try:
        with pytest.raises(OpaError) as failed:
            serve_app(FAILING_LIFESPAN, tmp_path, monkeypatch)
    finally:
        setup_logging("INFO")
    assert str(failed.value) == (
        "opa start-up failed: RuntimeError: cannot reach redis://:s3cr3tpw@cache:6379/0"
    )
    output = stream.getvalue()
    held = [line for line in output.splitlines() if "held back from uvicorn" in line]
    assert held and "DEBUG" in held[0], output
    assert "Traceback" in output and "in lifespan" in output, output
    assert "s3cr3tpw" not in output, output


def test_a_lifespan_failing_without_a_message_is_still_one_opa_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start-up failed with no message is an OpaError saying where to look, not a silent
    exit."""
    with pytest.raises(OpaError, match="uvicorn stopped before serving; --log-level debug"):
        serve_app(SILENT_LIFESPAN_FAILURE, tmp_path, monkeypatch)


def test_opa_mains_own_error_line_is_not_followed_by_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An opa error while uvicorn imports the app ends serve() with opa.main's one line and
    its status 1, untouched."""
    with pytest.raises(SystemExit) as exited:
        serve_app(OPA_ERROR_ON_IMPORT, tmp_path, monkeypatch)
    assert exited.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert errors == ["error: plugin 'broken' failed to import: no module named 'nowhere'"]
