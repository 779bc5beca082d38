"""Item 1 of issue 7: the fault matrix, one test per row, each with its outcome and time bound.

Every bound is generous (the configured timeout plus slack for a loaded CI machine): the
tests prove a fault never hangs, not how fast opa is. Each prints what it measured, which
docs/reliability.md reports.
"""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faults
import httpx
import pytest
from fastapi.testclient import TestClient
from faults import (
    OpaRun,
    PrivateRabbitMQ,
    SilentProxy,
    connected,
    disconnected_at,
    marker_component,
    write_settings,
)

import opa.testing._ports
from opa._errors import OpaError, PluginError
from opa.testing import (
    LOCALHOST,
    RedisServer,
    ServiceUnavailable,
    TestServices,
    build_app,
    skip_or_fail,
)
from opa.testing._ports import holding_closed_port, port_accepts

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Seconds added to every configured timeout: Python start-up of `opa run`, a loaded machine.
SLACK = 15.0
# The rows below measure what the drivers' own timeouts bound, request after request: the
# component breaker, which answers 503 at once after the first outage, is off for them
# (test_breaker.py covers it).
NO_BREAKER = {"COMPONENT_BREAKER": False}
# Fast-failing Redis options, as an operator who wants outages reported quickly sets them.
REDIS_OPTS: dict[str, Any] = {
    "SOCKET_TIMEOUT": 1,
    "CONNECT_TIMEOUT": 1,
    "RETRIES": 2,
    "RETRY_BACKOFF_BASE": 0.05,
    "RETRY_BACKOFF_CAP": 0.2,
}
# A request through those options: one connect or reply timeout, and every retry's backoff.
REDIS_REQUEST_BOUND = 3 * 1 + 0.2 + 0.2 + 2.0


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def figure(row: str, **values: float | int | str) -> None:
    """Print one row's measured figures (``pytest -s`` shows them; the report quotes them)."""
    text = ", ".join(
        f"{key}={value:.2f}s" if isinstance(value, float) else f"{key}={value}"
        for key, value in values.items()
    )
    print(f"\nFIGURE {row}: {text}")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private Redis this test may stop and start; never the shared one."""
    with TestServices() as services:
        try:
            yield services.start_redis()
        except ServiceUnavailable as error:
            skip_or_fail(str(error))


# --- A backend down at start-up ---------------------------------------------------------


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that refuses connections, held for the test so no server can appear on it."""
    with holding_closed_port() as port:
        yield port


def closed_port_components(port: int, load: str, timeout: float) -> dict[str, Any]:
    """Every backend driver, each pointed at *port*, where nothing listens."""
    redis = f"redis://{LOCALHOST}:{port}/0"
    mongodb = f"mongodb://{LOCALHOST}:{port}/faults"
    broker = f"amqp://guest:guest@{LOCALHOST}:{port}//"
    components = {
        "walrus": ("redis-walrus", {"URL": redis}),
        "aioredis": ("redis-aioredis", {"URL": redis}),
        "celery": ("celery", {"BROKER_URL": broker, "BACKEND_URL": redis}),
        "motor": ("mongodb-async-motor", {"URL": mongodb}),
        "pymongo": ("mongodb-async-pymongo", {"URL": mongodb}),
    }
    return {
        name.upper(): {"LOAD": load, "DRIVER": driver, "TIMEOUT": timeout, "OPTS": opts}
        for name, (driver, opts) in components.items()
    }


def test_backend_down_at_startup_under_load_auto(plugins: Path, refused_port: int) -> None:
    """LOAD auto, nothing listening: the app starts at once and /health reports each skipped."""
    check_timeout = 1.0
    components = closed_port_components(refused_port, "auto", timeout=5)
    app = build_app(
        {
            "PLUGIN_PATHS": [str(plugins)],
            "COMPONENT_CHECK_TIMEOUT": check_timeout,
            "OPTIONAL_COMPONENTS": components,
        }
    )
    started = time.monotonic()
    with TestClient(app) as client:
        startup = time.monotonic() - started
        health = client.get("/health")
        assert client.get("/slow").status_code == 200  # the app itself serves
    assert health.status_code == 200
    entries = health.json()["components"]
    assert set(entries) == {name.lower() for name in components}
    for name, entry in entries.items():
        assert entry["status"] == "skipped" and entry["detail"] == "unreachable", (name, entry)
    assert startup < check_timeout + SLACK, f"start-up took {startup:.2f}s"
    figure("down-at-start-auto", components=len(components), startup=startup)


def test_backend_down_at_startup_under_load_yes(
    tmp_path: Path, opa_runs: list[OpaRun], refused_port: int
) -> None:
    """LOAD yes, nothing listening: `opa run` exits non-zero within the component's TIMEOUT,
    with one line naming the component and no traceback."""
    timeout = 3.0
    component = closed_port_components(refused_port, "yes", timeout)["WALRUS"]
    settings = write_settings(
        tmp_path / "settings",
        {"PLUGIN_ENTRY_POINTS": False, "OPTIONAL_COMPONENTS": {"CACHE_DOWN": component}},
    )
    run = OpaRun(settings, tmp_path / "opa-run.log")
    opa_runs.append(run)
    code = run.wait(timeout + SLACK)
    seconds = time.monotonic() - run.started
    output = run.output()
    assert code != 0, output
    assert "Traceback" not in output, output
    naming = [line for line in output.splitlines() if "'cache_down'" in line]
    assert len(naming) == 1, output
    assert "opa start-up failed" in naming[0] and "pre-check failed" in naming[0], output
    assert seconds < timeout + SLACK
    figure("down-at-start-yes", exit_code=code, exit=seconds, line=naming[0].strip()[:120])


# --- A backend goes down while serving and comes back ----------------------------------


@pytest.mark.timeout(180)
def test_redis_outage_while_serving_fails_fast_and_recovers(
    redis_server: RedisServer,
) -> None:
    """The Redis counter example on a private Redis: stopped, each request is a 503 within
    the driver's timeouts and /health is 503; started again, the same app serves."""
    prefix = unique("opa-faults:")
    component = {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {"URL": redis_server.url}}
    component["OPTS"].update(REDIS_OPTS)
    app = build_app(
        {
            **NO_BREAKER,
            "PLUGIN_PATHS": [str(EXAMPLES / "redis")],
            "EXAMPLE_KEY_PREFIX": prefix,
            "OPTIONAL_COMPONENTS": {
                "WALRUS": component,
                "AIOREDIS": {**component, "DRIVER": "redis-aioredis"},
            },
        }
    )
    routes = ["/counter-sync?key=sync", "/counter-async?key=async"]
    with TestClient(app) as client:
        for route in routes:
            assert client.get(route).json() == 1
        redis_server.stop()
        slowest = 0.0
        for route in routes:
            for _ in range(3):  # the first request on dead pooled connections, then fresh ones
                response, seconds = timed(client.get, route)
                assert response.status_code == 503, response.text
                assert "backend unavailable" in response.json()["detail"]
                assert seconds < REDIS_REQUEST_BOUND, f"{route} took {seconds:.2f}s to fail"
                slowest = max(slowest, seconds)
        health = client.get("/health")
        assert health.status_code == 503
        assert {e["status"] for e in health.json()["components"].values()} == {"unavailable"}

        redis_server.start()
        back = time.monotonic()
        for route in routes:
            # The private Redis keeps nothing on disk, so its counters start again at 1.
            assert client.get(route).json() == 1
        recovery = time.monotonic() - back
        assert client.get("/health").json()["status"] == "ok"
    figure("redis-outage", slowest_503=slowest, first_requests_after_restart=recovery)


CELERY_ROUTE = '''"""Publishes a task by name through the celery component."""

from opa import get_instance, get_router

router = get_router()


@router.post("/publish")
def publish() -> dict:
    return {"id": get_instance("celery").send_task("faults.noop").id}
'''


def rabbitmq_binary() -> str:
    binary = shutil.which("rabbitmq-server") or shutil.which(
        "rabbitmq-server", path="/usr/sbin:/usr/local/sbin:/opt/homebrew/sbin"
    )
    if binary is None:
        skip_or_fail("no rabbitmq-server binary to start a private broker with")
    return binary


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[PrivateRabbitMQ]:
    """A private RabbitMQ this module may stop and restart; never the shared one."""
    broker = PrivateRabbitMQ(rabbitmq_binary())
    try:
        try:
            seconds = broker.start()
        except ServiceUnavailable as error:
            skip_or_fail(str(error))
        figure("private-rabbitmq", start=seconds)
        yield broker
    finally:
        broker.close()


@pytest.mark.timeout(300)
def test_a_private_rabbitmq_whose_port_is_taken_starts_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The eaddrinuse race: the broker's first port is taken before it binds; it is not
    mistaken for ready (someone else accepts there) and starts on a fresh port."""
    with socket.socket() as squatter:
        squatter.bind((LOCALHOST, faults.free_port()))
        squatter.listen(8)
        taken = squatter.getsockname()[1]
        picks = iter([taken])
        real_free_port = opa.testing._ports.free_port
        monkeypatch.setattr(
            opa.testing._ports, "free_port", lambda: next(picks, None) or real_free_port()
        )
        broker = PrivateRabbitMQ(rabbitmq_binary())
        try:
            try:
                seconds = broker.start()
            except ServiceUnavailable as error:
                skip_or_fail(str(error))
            assert broker.port != taken
            assert port_accepts(broker.port)
            figure("private-rabbitmq-port-taken", start=seconds)
        finally:
            broker.close()


@pytest.mark.timeout(300)
def test_rabbitmq_outage_while_serving_fails_fast_and_recovers(
    rabbitmq: PrivateRabbitMQ, tmp_path: Path
) -> None:
    """A celery component on a private RabbitMQ: stopped, publishing answers 503 within its
    connection timeout and retries and /health is 503; started again, publishing works."""
    (tmp_path / f"{unique('faults_publish_')}.py").write_text(CELERY_ROUTE)
    connect_timeout = 2.0
    settings = {
        "broker_connection_timeout": connect_timeout,
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
    }
    component = {
        "LOAD": "yes",
        "DRIVER": "celery",
        "TIMEOUT": 10,
        "OPTS": {"BROKER_URL": rabbitmq.url, "APP_NAME": unique("faults-"), "SETTINGS": settings},
    }
    app = build_app(
        {
            **NO_BREAKER,
            "PLUGIN_PATHS": [str(tmp_path)],
            "HEALTH_TIMEOUT": 5,
            "OPTIONAL_COMPONENTS": {"CELERY": component},
        }
    )
    # Connect, then up to two retries of it, each its timeout, then the backoff.
    bound = 3 * connect_timeout + 0.4 + 3.0
    with TestClient(app) as client:
        assert client.post("/publish").status_code == 200
        rabbitmq.stop()
        slowest = 0.0
        for _ in range(3):
            response, seconds = timed(client.post, "/publish")
            assert response.status_code == 503, response.text
            assert "celery" in response.json()["detail"]
            assert seconds < bound, f"publishing took {seconds:.2f}s to fail"
            slowest = max(slowest, seconds)
        health, health_seconds = timed(client.get, "/health")
        assert health.status_code == 503
        assert health.json()["components"]["celery"]["status"] == "unavailable"
        assert health_seconds < 5 + 3.0

        rabbitmq.start()
        back = time.monotonic()
        response = client.post("/publish")
        recovery = time.monotonic() - back
        assert response.status_code == 200, response.text
        assert client.get("/health").json()["status"] == "ok"
    figure("rabbitmq-outage", slowest_503=slowest, health=health_seconds, first_after=recovery)


# --- A host that accepts TCP and never answers ------------------------------------------


@pytest.mark.parametrize("driver", ["redis-walrus", "redis-aioredis"])
def test_silent_host_at_startup_is_bounded_by_the_timeout(
    driver: str, tmp_path: Path, opa_runs: list[OpaRun]
) -> None:
    """LOAD yes on a listener that accepts and reads nothing: the TCP pre-check passes, and
    `opa run` still exits non-zero within the component's TIMEOUT, naming it, though the
    driver's own socket timeouts are longer."""
    silent = SilentProxy()
    try:
        timeout = 2.0
        opts = {"URL": f"redis://{LOCALHOST}:{silent.port}/0"}
        opts.update(SOCKET_TIMEOUT=60, CONNECT_TIMEOUT=60)
        component = {"LOAD": "yes", "DRIVER": driver, "TIMEOUT": timeout, "OPTS": opts}
        settings = write_settings(
            tmp_path / "settings",
            {"PLUGIN_ENTRY_POINTS": False, "OPTIONAL_COMPONENTS": {"SILENT": component}},
        )
        run = OpaRun(settings, tmp_path / "opa-run.log")
        opa_runs.append(run)
        code = run.wait(timeout + SLACK)
        seconds = time.monotonic() - run.started
    finally:
        silent.close()
    output = run.output()
    assert code != 0, output
    assert "Traceback" not in output, output
    assert f"component 'silent' (redis://{LOCALHOST}:{silent.port}/0) did not connect" in output
    assert seconds < timeout + SLACK
    figure(f"silent-host-startup[{driver}]", exit_code=code, exit=seconds)


def test_silent_host_while_serving_is_bounded_by_the_timeouts(
    redis_server: RedisServer,
) -> None:
    """Both Redis drivers connected through a proxy to a real Redis; the proxy then accepts
    and forwards nothing: each request is a 503 within SOCKET_TIMEOUT, /health a 503 within
    HEALTH_TIMEOUT; once it forwards again (new connections), the app serves."""
    proxy = SilentProxy((LOCALHOST, redis_server.port))
    try:
        url = f"redis://{LOCALHOST}:{proxy.port}/0"
        component = {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {"URL": url, **REDIS_OPTS}}
        health_timeout = 2.0
        app = build_app(
            {
                **NO_BREAKER,
                "PLUGIN_PATHS": [str(EXAMPLES / "redis")],
                "EXAMPLE_KEY_PREFIX": unique("opa-faults:"),
                "HEALTH_TIMEOUT": health_timeout,
                "OPTIONAL_COMPONENTS": {
                    "WALRUS": component,
                    "AIOREDIS": {**component, "DRIVER": "redis-aioredis"},
                },
            }
        )
        routes = ["/counter-sync", "/counter-async"]
        with TestClient(app) as client:
            for route in routes:
                assert client.get(route).status_code == 200
            proxy.go_silent()
            with ThreadPoolExecutor(max_workers=len(routes)) as threads:
                futures = [threads.submit(timed, client.get, route) for route in routes]
                results = [future.result() for future in futures]
            for route, (response, seconds) in zip(routes, results, strict=True):
                assert response.status_code == 503, (route, response.text)
                assert 1 <= seconds < REDIS_REQUEST_BOUND, f"{route}: {seconds:.2f}s"
            health, health_seconds = timed(client.get, "/health")
            assert health.status_code == 503
            for entry in health.json()["components"].values():
                assert entry["status"] == "unavailable", entry
            assert health_seconds < health_timeout + 3.0
    finally:
        proxy.close()
    slowest = max(seconds for _, seconds in results)
    figure("silent-host-serving", slowest_503=slowest, health=health_seconds)


# --- SIGTERM while requests are in flight -----------------------------------------------


def sigterm_in_flight(plugins: Path, tmp_path: Path, opa_runs: list[OpaRun]) -> dict[str, Any]:
    """`opa run` with two marker components; five one-second requests; SIGTERM mid-flight."""
    markers = [tmp_path / "first", tmp_path / "second"]
    settings = write_settings(
        tmp_path / "settings",
        {
            "PLUGIN_PATHS": [str(plugins)],
            "PLUGIN_ENTRY_POINTS": False,
            "OPTIONAL_COMPONENTS": {
                "FIRST": marker_component(markers[0]),
                "SECOND": marker_component(markers[1]),
            },
        },
    )
    run = OpaRun(settings, tmp_path / "opa-run.log")
    opa_runs.append(run)
    run.wait_serving()
    assert all(connected(marker) for marker in markers)

    def request() -> tuple[int, float]:
        response = httpx.get(f"http://{LOCALHOST}:{run.port}/slow?together=5", timeout=90)
        status = response.status_code
        return status, response.json()["finished"] if status == 200 else 0.0

    with ThreadPoolExecutor(max_workers=5) as threads:
        futures = [threads.submit(request) for _ in range(5)]
        # All five inside the route, held until the fifth arrives, then a second each.
        deadline = time.monotonic() + 30
        while httpx.get(f"http://{LOCALHOST}:{run.port}/arrived").json() < 5:
            assert time.monotonic() < deadline, "five /slow requests did not arrive in 30s"
            time.sleep(0.02)
        assert not any(future.done() for future in futures)
        signalled = time.monotonic()
        run.terminate()
        results = [future.result() for future in futures]
    code = run.wait(30)
    return {
        "results": results,
        "code": code,
        "exited": time.monotonic() - signalled,
        "disconnected": [disconnected_at(marker) for marker in markers],
        "output": run.output(),
    }


@pytest.mark.timeout(120)
def test_sigterm_lets_requests_finish_then_disconnects(
    plugins: Path, tmp_path: Path, opa_runs: list[OpaRun]
) -> None:
    """Five one-second requests in flight at SIGTERM: each completes with 200, then both
    components disconnect (after the last request finished), and the process ends."""
    run = sigterm_in_flight(plugins, tmp_path, opa_runs)
    assert [status for status, _ in run["results"]] == [200] * 5, run["output"]
    last_finished = max(finished for _, finished in run["results"])
    for when in run["disconnected"]:
        assert when is not None, f"a component was not disconnected:\n{run['output']}"
        assert when > last_finished
    assert "all components disconnected" in run["output"]
    assert run["exited"] < 1.0 + 5 + SLACK  # the requests' second, then SHUTDOWN_TIMEOUT at most
    figure("sigterm", requests=5, exit_after_signal=run["exited"], exit_code=run["code"])


@pytest.mark.timeout(120)
def test_sigterm_exits_0(plugins: Path, tmp_path: Path, opa_runs: list[OpaRun]) -> None:
    """After that clean shutdown, `opa run` exits with status 0."""
    run = sigterm_in_flight(plugins, tmp_path, opa_runs)
    assert [status for status, _ in run["results"]] == [200] * 5, run["output"]
    assert run["code"] == 0, run["output"]


# --- A plugin's start-up code raises ----------------------------------------------------

FAILING_SETUP = '''"""A plugin whose Setup class raises."""

from opa import Setup


class Explodes(Setup):
    def __init__(self, app):
        super().__init__(app)
        raise RuntimeError("the setup of this plugin failed")
'''

FAILING_IMPORT = '''"""A plugin that imports a module that does not exist."""

import opa_faults_no_such_module  # noqa: F401
'''


def failing_plugin_app(plugins: Path, source: str, tmp_path: Path) -> tuple[Any, str, Path]:
    """An app config with the marker component and a plugin of *source*; its file name."""
    name = unique("fault_broken_")
    (plugins / f"{name}.py").write_text(source)
    marker = tmp_path / "marker"
    settings = {
        "PLUGIN_PATHS": [str(plugins)],
        "OPTIONAL_COMPONENTS": {"MARKED": marker_component(marker)},
    }
    return settings, name, marker


def test_plugin_setup_raising_fails_startup_and_disconnects(plugins: Path, tmp_path: Path) -> None:
    """A Setup that raises fails start-up at once, and the component that had connected is
    disconnected: nothing is left connected."""
    settings, _, marker = failing_plugin_app(plugins, FAILING_SETUP, tmp_path)
    app = build_app(settings)
    started = time.monotonic()
    expected = "RuntimeError: the setup of this plugin failed"
    with pytest.raises(OpaError, match=expected), TestClient(app):
        pass
    seconds = time.monotonic() - started
    assert connected(marker) and disconnected_at(marker) is not None
    assert seconds < 5 + SLACK
    figure("setup-raises", failed_after=seconds)


def test_plugin_setup_raising_names_the_plugin(plugins: Path, tmp_path: Path) -> None:
    """The start-up error of a raising Setup is an opa error that names its plugin."""
    settings, name, _ = failing_plugin_app(plugins, FAILING_SETUP, tmp_path)
    with pytest.raises(Exception) as failure, TestClient(build_app(settings)):
        pass
    assert isinstance(failure.value, OpaError), repr(failure.value)
    assert name in str(failure.value)


def test_plugin_import_error_names_the_plugin_and_connects_nothing(
    plugins: Path, tmp_path: Path, opa_runs: list[OpaRun]
) -> None:
    """A plugin whose import fails: building the app raises a PluginError naming the plugin
    and the missing module before any component connects; `opa run` says so in one line."""
    settings, name, marker = failing_plugin_app(plugins, FAILING_IMPORT, tmp_path)
    with pytest.raises(PluginError) as failure:
        build_app(settings)
    assert name in str(failure.value) and "opa_faults_no_such_module" in str(failure.value)
    assert not connected(marker)

    run = OpaRun(write_settings(tmp_path / "settings", settings), tmp_path / "log")
    opa_runs.append(run)
    code = run.wait(SLACK)
    seconds = time.monotonic() - run.started
    output = run.output()
    assert code != 0 and "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and name in errors[0], output
    assert not connected(marker)
    figure("import-error", exit_code=code, exit=seconds, line=errors[0][:90])
