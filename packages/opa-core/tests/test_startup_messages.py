"""LOAD auto hides no mistake: skips are warnings, /health says degraded, and every start-up
error with a likely fix names it."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opa._component_config import ComponentSpec
from opa._components import Components, Status
from opa._driver_registry import DriverRegistry
from opa._drivers import Driver, DriverOptions
from opa._errors import ComponentError
from opa._health import overall_status
from opa.testing import captured_logs
from support import free_port, listening_port, make_app, without_installed_driver


class UrlOptions(DriverOptions):
    URL: str


class ProbeDriver(Driver):
    """Connects to nothing; its reachability check is what the tests exercise."""

    name = "probe"
    is_async = False
    Options = UrlOptions

    def connect(self) -> None:
        self.instance = self.opts.URL


class SleepyDriver(Driver):
    name = "sleepy"
    is_async = True
    Options = UrlOptions

    async def connect(self) -> None:
        await asyncio.sleep(3600)


class RefusedDriver(Driver):
    name = "refused"
    Options = UrlOptions

    def connect(self) -> None:
        raise PermissionError("authentication failed")


class AsyncProbeDriver(ProbeDriver):
    name = "async-probe"
    is_async = True

    async def connect(self) -> None:
        self.instance = self.opts.URL


def components(*specs: ComponentSpec, check_timeout: float = 1.0) -> Components:
    registry = DriverRegistry([])
    for cls in (ProbeDriver, SleepyDriver, RefusedDriver, AsyncProbeDriver):
        registry.add_plugin_driver(cls, "tests")
    return Components(list(specs), registry, check_timeout=check_timeout)


def spec(name: str, driver: str, load: str = "yes", **opts: Any) -> ComponentSpec:
    return ComponentSpec(name=name, load=load, driver=driver, opts=opts, timeout=0.3)


def start_error(group: Components) -> str:
    with pytest.raises(ComponentError) as caught:
        asyncio.run(group.start())
    return str(caught.value)


def warnings_of(output: str) -> list[str]:
    return [line for line in output.splitlines() if "| WARNING " in line]


@contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: connecting there hangs, as with a saturated host."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = int(server.getsockname()[1])
        waiting = []
        for _ in range(4):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            waiting.append(client)
        try:
            yield port
        finally:
            for client in waiting:
                client.close()


# --- /health's overall status -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "load", "overall"),
    [
        ("ok", "yes", ("ok", 200)),
        ("disabled", "no", ("ok", 200)),
        ("skipped", "auto", ("degraded", 200)),
        ("down", "auto", ("degraded", 200)),
        ("unavailable", "auto", ("degraded", 200)),
        ("down", "yes", ("unavailable", 503)),
        ("unavailable", "yes", ("unavailable", 503)),
        ("failed", "auto", ("unavailable", 503)),
        ("failed", "yes", ("unavailable", 503)),
    ],
)
def test_health_status_follows_the_table_in_the_docs(
    status: str, load: str, overall: tuple[str, int]
) -> None:
    """Each component state gives the top-level status docs/concepts.md lists for it."""
    entries = {"one": {"status": status, "load": load}, "fine": {"status": "ok", "load": "yes"}}
    assert overall_status(entries) == overall


def test_the_worst_component_decides() -> None:
    """A degraded and an unavailable component together are unavailable."""
    entries = {
        "gone": {"status": "skipped", "load": "auto"},
        "down": {"status": "down", "load": "yes"},
    }
    assert overall_status(entries) == ("unavailable", 503)


def test_health_is_degraded_for_an_unreachable_or_misspelled_auto_component(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An app whose auto components were skipped (one unreachable, one with a misspelled
    driver) answers /health 200 with "degraded", each component saying why."""
    without_installed_driver(monkeypatch, "redis-walrus", "redis-aioredis")
    components = {
        "GONE": {"LOAD": "auto", "DRIVER": "redis-walrus", "OPTS": {"URL": "redis://h/0"}},
        "TYPO": {"LOAD": "auto", "DRIVER": "redis-walrsu"},
        "OFF": {"LOAD": "no", "DRIVER": "redis-walrus"},
    }
    with TestClient(make_app(OPTIONAL_COMPONENTS=components)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["components"]["typo"] == {
        "status": "skipped",
        "load": "auto",
        "detail": "no driver named 'redis-walrsu' is installed; did you mean 'redis-walrus'? "
        "install it with: pip install opa-driver-redis-walrus",
    }
    assert body["components"]["off"]["status"] == "disabled"


# --- Skipped components are warnings ---------------------------------------------------


def test_a_misspelled_driver_is_a_warning_that_suggests_the_installed_name() -> None:
    """A DRIVER one letter off an installed one: skipped under auto with a WARNING that asks
    "did you mean"; under yes, the same words stop start-up."""
    with captured_logs() as logs:
        group = components(spec("store", "prboe", load="auto", URL="tcp://h:1"))
        asyncio.run(group.start())
    assert group.get("store").status is Status.SKIPPED
    assert [line.split(" - ", 1)[1] for line in warnings_of(logs.getvalue())] == [
        "skipping component 'store': no driver named 'prboe' is installed; did you mean 'probe'?"
    ]
    message = start_error(components(spec("store", "prboe", URL="tcp://h:1")))
    assert (
        message == "component 'store': no driver named 'prboe' is installed; did you mean 'probe'?"
    )


def test_a_driver_name_like_no_other_lists_the_installed_ones() -> None:
    """A DRIVER close to no name: the message lists the drivers there are."""
    message = start_error(components(spec("store", "cassandra-xyz", URL="tcp://h:1")))
    assert message == (
        "component 'store': no driver named 'cassandra-xyz' is installed; installed drivers: "
        "async-probe, probe, refused, sleepy (`opa drivers` lists them with their distributions)"
    )


def test_an_unreachable_auto_component_is_a_warning_asking_whether_the_server_runs() -> None:
    """An auto component whose host refuses: a WARNING naming it, its masked address, whether
    the server is running, and LOAD no to stop trying."""
    port = free_port()
    url = f"redis://user:s3cret@127.0.0.1:{port}/0"
    with captured_logs() as logs:
        asyncio.run(components(spec("cache", "probe", load="auto", URL=url)).start())
    (line,) = warnings_of(logs.getvalue())
    expected = (
        rf"skipping component 'cache' \(redis://user:\*\*\*@127\.0\.0\.1:{port}/0\): "
        rf"127\.0\.0\.1:{port} is unreachable \(.+\); is the server running there\? "
        r"\(set its LOAD to no if it is not wanted\)"
    )
    assert re.fullmatch(expected, line.split(" - ", 1)[1]), line


def test_an_async_component_skipped_in_a_sync_context_is_a_warning() -> None:
    """A worker or shell skips async drivers, and says so at WARNING."""
    with listening_port() as port, captured_logs() as logs:
        group = components(spec("motorish", "async-probe", URL=f"redis://127.0.0.1:{port}"))
        group.start_sync()
        group.stop_sync()
    (line,) = warnings_of(logs.getvalue())
    assert "skipping component 'motorish': async driver; not connected in a sync context" in line


# --- Start-up errors suggest their fix -------------------------------------------------


def test_a_refused_required_component_asks_whether_the_server_runs() -> None:
    """LOAD yes on a closed port: the error asks whether the server is running there."""
    port = free_port()
    message = start_error(components(spec("cache", "probe", URL=f"redis://u:pw@127.0.0.1:{port}")))
    expected = (
        rf"component 'cache' \(redis://u:\*\*\*@127\.0\.0\.1:{port}\): pre-check failed: "
        rf"127\.0\.0\.1:{port} is unreachable \(.+\); is the server running there\?"
    )
    assert re.fullmatch(expected, message), message


def test_a_host_slow_to_accept_suggests_component_check_timeout() -> None:
    """A host that does not accept within the check's bound: the error names
    COMPONENT_CHECK_TIMEOUT."""
    with full_backlog() as port:
        group = components(
            spec("cache", "probe", URL=f"redis://127.0.0.1:{port}"), check_timeout=0.2
        )
        message = start_error(group)
    assert message.endswith(
        f"pre-check failed: 127.0.0.1:{port} did not accept a connection within 0.2s; is the "
        "server running there? If it is slow to accept, raise COMPONENT_CHECK_TIMEOUT"
    )


def test_a_connect_that_times_out_suggests_the_timeout_settings() -> None:
    """A connect that outlasts TIMEOUT: the error names TIMEOUT and COMPONENT_TIMEOUT."""
    with listening_port() as port:
        message = start_error(components(spec("slow", "sleepy", URL=f"redis://127.0.0.1:{port}")))
    assert message == (
        f"component 'slow' (redis://127.0.0.1:{port}) did not connect within 0.3s; is the server "
        "there answering? If it is slow, raise the component's TIMEOUT (or COMPONENT_TIMEOUT "
        "for all)"
    )


def test_a_failed_connect_suggests_checking_the_options() -> None:
    """A connect that raises: the error gives the reason and points at the OPTS."""
    with listening_port() as port:
        message = start_error(components(spec("db", "refused", URL=f"redis://127.0.0.1:{port}")))
    assert message == (
        f"component 'db' (redis://127.0.0.1:{port}) failed to connect: PermissionError: "
        "authentication failed; check the server there is the one its OPTS expect "
        "(address, credentials)"
    )


def test_an_address_that_cannot_be_read_points_at_the_url() -> None:
    """A URL urllib cannot split: the error says to fix the URL in OPTS."""
    message = start_error(components(spec("cache", "probe", URL="redis://[::1")))
    assert message.endswith("; fix the URL in its OPTS")


def test_an_impossible_port_points_at_the_options() -> None:
    """A port over 65535: the error says to fix the host or port."""
    message = start_error(components(spec("cache", "probe", URL="redis://127.0.0.1:99999")))
    assert re.search(r"is not a valid address \(.*port.*\); fix the host or port in OPTS$", message)
