"""The component breaker: an outage marks a component down, 503s come at once, pings revive it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from opa._breaker import BreakerSettings
from opa._component_config import ComponentSpec
from opa._components import Components, Status
from opa._driver_registry import DriverRegistry
from opa._errors import ConfigError
from support import make_app, write_plugin
from tcp_driver import AsyncTcpEchoDriver, EchoServer, TcpEchoDriver

# Two drivers for a line-echo server, sync and async, each raising the builtin OSError family
# as its outage errors (so two components share one exception type), and routes that use them.
PLUGIN = """
import asyncio
import socket

from typing import Annotated, Any

from opa import ComponentUnavailableError, Driver, Instance, get_component, get_instance, get_router

router = get_router()


class EchoDriver(Driver):
    name = "echo"
    is_async = False

    def connect(self):
        self.instance = self.opts

    def ping(self):
        echo(self.opts, b"ping")

    def unavailable_errors(self):
        return (OSError,)


class PartialEchoDriver(EchoDriver):
    # As a cluster's driver: an outage error may be one node's, so the breaker pings first.
    name = "echo-partial"

    def is_partial_outage(self, error):
        return True


class AsyncEchoDriver(Driver):
    name = "echo-async"
    is_async = True

    async def connect(self):
        self.instance = self.opts

    async def ping(self):
        await echo_async(self.opts, b"ping")

    def unavailable_errors(self):
        return (OSError,)


def echo(opts, line):
    with socket.create_connection((opts.HOST, opts.PORT), timeout=opts.SOCKET_TIMEOUT) as sock:
        sock.sendall(line + b"\\n")
        return sock.makefile("rb").readline().strip().decode()


async def echo_async(opts, line):
    async with asyncio.timeout(opts.SOCKET_TIMEOUT):
        reader, writer = await asyncio.open_connection(opts.HOST, opts.PORT)
        try:
            writer.write(line + b"\\n")
            return (await reader.readline()).strip().decode()
        finally:
            writer.close()


@router.get("/echo/{name}")
async def route(name: str):
    opts = get_instance(name)
    if get_component(name).is_async:
        return await echo_async(opts, b"hello")
    return await asyncio.to_thread(echo, opts, b"hello")


@router.get("/typed")
def typed(store: Annotated[Any, Instance("store")]):
    return store.HOST


@router.get("/echo-unheld/{name}")
async def unheld(name: str):
    # Only the address is kept: no frame of an error's traceback holds the instance.
    host, port, timeout = address(get_instance(name))
    return await asyncio.to_thread(echo_at, host, port, timeout)


def address(opts):
    return opts.HOST, opts.PORT, opts.SOCKET_TIMEOUT


def echo_at(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"hello\\n")
        return sock.makefile("rb").readline().strip().decode()


@router.get("/fail/{name}")
def fail(name: str):
    opts = get_instance(name)
    raise ConnectionResetError(f"a passing error on {opts.HOST}")


@router.get("/echo-or-fallback/{name}")
def fallback(name: str):
    # Plugin code that handles the outage itself, and tells opa about it.
    try:
        return echo(get_instance(name), b"hello")
    except ComponentUnavailableError:
        return "fallback"
    except OSError:
        get_component(name).report_outage()
        return "fallback"
"""

SOCKET_TIMEOUT = 3.0
# A 503 that did not wait for SOCKET_TIMEOUT: generous, for a shared and noisy machine.
AT_ONCE = SOCKET_TIMEOUT / 2
BOUND = 30.0


def component(driver: str, server: EchoServer, load: str = "yes") -> dict[str, Any]:
    opts = {"HOST": server.host, "PORT": server.port, "SOCKET_TIMEOUT": SOCKET_TIMEOUT}
    return {"LOAD": load, "DRIVER": driver, "OPTS": opts}


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    write_plugin(folder, f"echo_breaker_{tmp_path.name[-12:].replace('-', '_')}", PLUGIN)
    return folder


@pytest.fixture
def servers() -> Iterator[tuple[EchoServer, EchoServer]]:
    with EchoServer() as first, EchoServer() as second:
        yield first, second


def app_with(plugins: Path, components: dict[str, Any], **settings: Any) -> Any:
    settings = {
        "HEALTH_TIMEOUT": 0.5,
        "COMPONENT_PROBE_INTERVAL": 0.05,
        "COMPONENT_PROBE_MAX_INTERVAL": 0.2,
        **settings,
    }
    return make_app(PLUGIN_PATHS=[str(plugins)], OPTIONAL_COMPONENTS=components, **settings)


def timed(call: Callable[[], Response]) -> tuple[Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {BOUND:g}s"
        time.sleep(0.02)


def state(client: TestClient, name: str) -> str:
    status: str = client.get("/health").json()["components"][name]["status"]
    return status


@pytest.mark.parametrize("driver", ["echo", "echo-async"])
def test_a_stalled_backend_is_marked_down_answers_at_once_and_comes_back(
    plugins: Path, servers: tuple[EchoServer, EchoServer], driver: str
) -> None:
    """A stalled backend: the first request waits its socket timeout, then the component is
    down, requests answer 503 at once and /health says down; resumed, it serves again."""
    server, _ = servers
    app = app_with(plugins, {"STORE": component(driver, server)})
    with TestClient(app) as client:
        assert client.get("/echo/store").json() == "hello"
        server.stall()
        first = client.get("/echo/store")
        assert first.status_code == 503
        assert first.json() == {"detail": "backend unavailable for component 'store'"}
        wait_for(lambda: state(client, "store") == "down", "marking the component down")
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        entry = health.json()["components"]["store"]
        assert entry == {"status": "down", "load": "yes", "detail": entry["detail"]}
        # Why: the request's error, until the first ping that follows it fails too.
        assert entry["detail"] in ("TimeoutError in a request", "no answer to a ping within 0.5s")
        for path in ["/echo/store"] * 4 + ["/typed"]:  # get_instance, then Instance()
            response, seconds = timed(lambda path=path: client.get(path))
            assert response.status_code == 503
            assert response.json()["detail"].startswith("component 'store' is down: ")
            assert seconds < AT_ONCE, f"a 503 of a down component took {seconds:.2f}s"
        server.resume()
        wait_for(lambda: client.get("/echo/store").status_code == 200, "serving it again")
        assert client.get("/health").json() == {
            "status": "ok",
            "components": {"store": {"status": "ok", "load": "yes"}},
        }


@pytest.mark.parametrize("route", ["/echo", "/echo-unheld"])
def test_a_healthy_component_raising_the_same_type_stays_up(
    plugins: Path, servers: tuple[EchoServer, EchoServer], route: str
) -> None:
    """Two components whose drivers raise one exception type: the stalled one goes down, the
    other stays up and serves, whether the error's traceback holds the stalled one's
    instance (it is put down to it) or not (both are pinged first)."""
    stalled, healthy = servers
    components = {"STALLED": component("echo", stalled), "HEALTHY": component("echo", healthy)}
    app = app_with(plugins, components)
    with TestClient(app) as client:
        stalled.stall()
        response = client.get(f"{route}/stalled")
        assert response.json() == {
            "detail": "backend unavailable for component 'stalled' or 'healthy'"
        }
        wait_for(lambda: state(client, "stalled") == "down", "marking 'stalled' down")
        assert state(client, "healthy") == "ok"
        assert client.get("/echo/healthy").json() == "hello"
        assert app.state.opa.components.get("healthy").status is Status.OK


def test_an_outage_error_from_a_healthy_backend_marks_nothing_down(
    plugins: Path, servers: tuple[EchoServer, EchoServer]
) -> None:
    """An outage error while the backend answers its ping (one that was passing) leaves the
    component up."""
    server, _ = servers
    app = app_with(plugins, {"STORE": component("echo", server)})
    with TestClient(app) as client:
        store = app.state.opa.components.get("store")
        store.report_outage()
        wait_for(lambda: not store.breaker._watches, "the ping that follows the report")
        assert store.status is Status.OK
        assert client.get("/echo/store").json() == "hello"


def test_a_passing_error_in_a_request_costs_only_a_moment_of_503s(
    plugins: Path, servers: tuple[EchoServer, EchoServer]
) -> None:
    """An outage error from a route while the backend is fine: the component is marked down,
    pinged at once, and served again."""
    server, _ = servers
    app = app_with(plugins, {"STORE": component("echo", server)})
    with TestClient(app) as client:
        assert client.get("/fail/store").status_code == 503
        wait_for(lambda: client.get("/echo/store").status_code == 200, "serving it again")
        assert state(client, "store") == "ok"


def test_a_partial_outage_is_pinged_before_the_component_is_marked_down(
    plugins: Path, servers: tuple[EchoServer, EchoServer]
) -> None:
    """An outage error the driver calls partial (one node of a cluster) answers 503, but while
    the component's ping succeeds it stays up and the next request is served; once the ping
    fails too, it is marked down as any other."""
    server, _ = servers
    app = app_with(plugins, {"STORE": component("echo-partial", server)})
    with TestClient(app) as client:
        store = app.state.opa.components.get("store")
        assert client.get("/fail/store").status_code == 503
        assert store.status is Status.OK
        assert client.get("/echo/store").json() == "hello"
        wait_for(lambda: not store.breaker._watches, "the ping that follows the error")
        assert store.status is Status.OK
        server.stall()
        assert client.get("/echo/store").status_code == 503
        wait_for(lambda: state(client, "store") == "down", "marking the component down")
        server.resume()
        wait_for(lambda: client.get("/echo/store").status_code == 200, "serving it again")


def test_plugin_code_that_catches_the_error_reports_it_and_falls_back_at_once(
    plugins: Path, servers: tuple[EchoServer, EchoServer]
) -> None:
    """A route that catches the outage itself calls report_outage(): the component goes down,
    and the route's fallback then comes at once, from ComponentUnavailableError."""
    server, _ = servers
    app = app_with(plugins, {"STORE": component("echo", server)})
    with TestClient(app) as client:
        server.stall()
        assert client.get("/echo-or-fallback/store").json() == "fallback"
        wait_for(lambda: state(client, "store") == "down", "marking the component down")
        response, seconds = timed(lambda: client.get("/echo-or-fallback/store"))
        assert response.json() == "fallback"
        assert seconds < AT_ONCE, f"the fallback of a down component took {seconds:.2f}s"


def test_shutdown_stops_the_pings_of_a_down_component(
    plugins: Path, servers: tuple[EchoServer, EchoServer]
) -> None:
    """Shutting down while a component is down (its backend still stalled) cancels its ping
    task and disconnects it."""
    server, _ = servers
    app = app_with(plugins, {"STORE": component("echo-async", server)})
    with TestClient(app) as client:
        server.stall()
        client.get("/echo/store")
        wait_for(lambda: state(client, "store") == "down", "marking the component down")
        breaker = app.state.opa.components.breaker
        assert list(breaker._watches) == ["store"]
    assert breaker._watches == {}
    assert app.state.opa.components.get("store").status is Status.STOPPED


@pytest.mark.parametrize("breaker", [False, True])
def test_polling_health_of_a_stalled_sync_backend_holds_one_ping_thread(
    plugins: Path, servers: tuple[EchoServer, EchoServer], breaker: bool
) -> None:
    """/health polled while a sync backend stalls (breaker on or off) waits on the ping that
    is stuck rather than starting another in a new driver thread; resumed, it answers ok."""
    server, _ = servers
    store = component("echo", server)
    store["OPTS"]["SOCKET_TIMEOUT"] = BOUND  # the ping stays stuck until the server resumes
    app = app_with(plugins, {"STORE": store}, HEALTH_TIMEOUT=0.2, COMPONENT_BREAKER=breaker)
    with TestClient(app) as client:
        driver = app.state.opa.components.get("store").driver
        ping, threads = driver.ping, []

        def recorded_ping() -> None:
            threads.append(threading.current_thread().name)
            ping()

        driver.ping = recorded_ping
        server.stall()
        # Five /health polls at least, and time for the breaker's pings (its pause is 0.2s
        # at most) when it is on.
        polls, window_ends = 0, time.monotonic() + 1.0
        while polls < 5 or time.monotonic() < window_ends:
            assert state(client, "store") == ("down" if breaker else "unavailable")
            polls += 1
        assert len(threads) == 1, f"{len(threads)} ping threads for one stalled component"
        server.resume()
        wait_for(lambda: state(client, "store") == "ok", "answering /health again")


def test_with_the_breaker_off_every_request_waits_as_before(
    plugins: Path, servers: tuple[EchoServer, EchoServer]
) -> None:
    """COMPONENT_BREAKER false: nothing is marked down, each request meets the outage
    itself, and /health says unavailable."""
    server, _ = servers
    app = app_with(plugins, {"STORE": component("echo-async", server)}, COMPONENT_BREAKER=False)
    with TestClient(app) as client:
        server.stall()
        for _ in range(2):
            response, seconds = timed(lambda: client.get("/echo/store"))
            assert response.json() == {"detail": "backend unavailable for component 'store'"}
            assert seconds >= SOCKET_TIMEOUT * 0.9
        assert state(client, "store") == "unavailable"
        assert app.state.opa.components.breaker is None


def echo_components(driver: str, server: EchoServer) -> Components:
    """One component STORE of a tcp-echo driver on *server*, with the breaker enabled."""
    registry = DriverRegistry([])
    for cls in (TcpEchoDriver, AsyncTcpEchoDriver):
        registry.add_plugin_driver(cls, "tests")
    spec = ComponentSpec(name="store", load="yes", driver=driver, opts={"URL": server.url})
    group = Components([spec], registry, health_timeout=0.5)
    group.enable_breaker(BreakerSettings(first_pause=0.05, longest_pause=0.2))
    return group


def test_an_outage_just_as_a_ping_task_ends_starts_another(
    servers: tuple[EchoServer, EchoServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request failing after the ping task served the component again, but before anything
    saw the task end, marks it down and starts a new ping task, which serves it again."""
    server, _ = servers
    group = echo_components("tcp-echo-async", server)

    async def scenario() -> None:
        await group.start()
        store, breaker = group.get("store"), group.breaker
        assert breaker is not None
        mark_up = store.mark_up

        def mark_up_with_a_request_failing_next() -> bool:
            # The failure is queued in the task's last step: it runs before what its end
            # schedules, as a request's exception handler already waiting on the loop would.
            loop = asyncio.get_running_loop()
            loop.call_soon(breaker.trip, store, "ConnectionResetError in a request")
            monkeypatch.undo()
            return mark_up()

        monkeypatch.setattr(store, "mark_up", mark_up_with_a_request_failing_next)
        try:
            breaker.trip(store, "ConnectionResetError in a request")
            first = breaker._watches["store"]
            await first
            assert store.status is Status.DOWN
            second = breaker._watches.get("store")
            assert second is not None, "a down component has no ping task"
            assert second is not first
            await asyncio.wait_for(second, BOUND)
            assert store.status is Status.OK
        finally:
            await group.stop()

    asyncio.run(scenario())


def test_an_outage_reported_from_a_thread_after_the_loop_closed_is_ignored(
    servers: tuple[EchoServer, EchoServer],
) -> None:
    """report_outage() from a worker thread once the serving loop has closed (the app is
    going away) returns quietly instead of raising into the caller's route."""
    server, _ = servers
    group = echo_components("tcp-echo", server)
    asyncio.run(group.start())  # the loop closes with the breaker still armed
    store = group.get("store")
    errors: list[BaseException] = []

    def report() -> None:
        try:
            store.report_outage()
        except BaseException as exc:  # whatever escapes is what the route would meet
            errors.append(exc)

    reporter = threading.Thread(target=report)
    reporter.start()
    reporter.join(BOUND)
    assert errors == []
    assert store.status is Status.OK
    group.stop_sync()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"COMPONENT_PROBE_INTERVAL": -1},
            "setting COMPONENT_PROBE_INTERVAL (OPA_COMPONENT_PROBE_INTERVAL): expected a number "
            "of seconds above 0 and at most 3600; found int -1",
        ),
        (
            {"COMPONENT_PROBE_MAX_INTERVAL": "soon"},
            "setting COMPONENT_PROBE_MAX_INTERVAL (OPA_COMPONENT_PROBE_MAX_INTERVAL): expected a "
            "number of seconds above 0 and at most 3600; found str 'soon'",
        ),
        (
            {"COMPONENT_PROBE_INTERVAL": 10, "COMPONENT_PROBE_MAX_INTERVAL": 1},
            "setting COMPONENT_PROBE_MAX_INTERVAL (1s) is shorter than COMPONENT_PROBE_INTERVAL "
            "(10s); raise the longest or lower the first (OPA_COMPONENT_PROBE_MAX_INTERVAL)",
        ),
    ],
)
def test_bad_probe_intervals_name_the_setting(settings: dict[str, Any], message: str) -> None:
    """A probe interval that is not a positive number, or a longest below the first, is a
    ConfigError naming the setting and its variable."""
    with pytest.raises(ConfigError) as caught:
        make_app(**settings)
    assert str(caught.value) == message
