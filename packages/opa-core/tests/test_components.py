"""Components: LOAD modes, concurrency, timeouts, health, shutdown and sync mode."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest

from opa._component_config import ComponentSpec, parse_components
from opa._components import Components, Status
from opa._driver_registry import DriverRegistry
from opa._drivers import Driver, DriverOptions
from opa._errors import ComponentError, ComponentUnavailableError, ConfigError, OptionsError
from opa._log import setup_logging
from opa.testing import build_app
from support import free_port, listening_port

EVENTS: list[str] = []


class TcpOptions(DriverOptions):
    URL: str
    CONNECT_DELAY: float = 0.0


class TcpDriver(Driver):
    """Opens a real TCP connection to URL's host and port; ping reconnects."""

    name = "tcp"
    is_async = False
    Options = TcpOptions

    def _open(self) -> socket.socket:
        parts = urlsplit(self.opts.URL)
        return socket.create_connection((parts.hostname, parts.port), timeout=1)

    def connect(self) -> None:
        self.instance = self._open()
        EVENTS.append(f"connect {self.component}")

    def ping(self) -> None:
        self._open().close()

    def disconnect(self) -> None:
        self.instance.close()
        EVENTS.append(f"disconnect {self.component}")


class AsyncMemoryDriver(Driver):
    name = "async-memory"
    is_async = True

    async def connect(self) -> None:
        await asyncio.sleep(0)
        self.instance = {"async": True}

    async def disconnect(self) -> None:
        EVENTS.append(f"disconnect {self.component}")


BARRIER = threading.Barrier(2, timeout=5)


class BarrierDriver(Driver):
    """Each connect waits for another: it only succeeds if two connect at once."""

    name = "barrier"

    def connect(self) -> None:
        BARRIER.wait()
        self.instance = object()


class HangingDriver(Driver):
    name = "hanging"
    is_async = True

    async def connect(self) -> None:
        await asyncio.sleep(3600)


class FailingDriver(Driver):
    name = "failing"

    def connect(self) -> None:
        raise RuntimeError(f"cannot talk to {self.opts.URL}")


def components(*specs: ComponentSpec, **kwargs: Any) -> Components:
    registry = DriverRegistry([])
    for cls in (TcpDriver, AsyncMemoryDriver, BarrierDriver, HangingDriver, FailingDriver):
        registry.add_plugin_driver(cls, "tests")
    return Components(list(specs), registry, **kwargs)


def spec(
    name: str, driver: str, load: str = "yes", timeout: float = 5, **opts: Any
) -> ComponentSpec:
    return ComponentSpec(name=name, load=load, driver=driver, opts=opts, timeout=timeout)


@pytest.fixture(autouse=True)
def clear_events() -> None:
    EVENTS.clear()
    BARRIER.reset()


def test_a_reachable_component_connects_and_stops() -> None:
    """LOAD yes connects over TCP, the instance is reachable, and stop disconnects it."""
    with listening_port() as port:
        group = components(spec("cache", "tcp", URL=f"redis://127.0.0.1:{port}"))
        asyncio.run(group.start())
        assert isinstance(group.get("CACHE").instance, socket.socket)
        asyncio.run(group.stop())
    assert EVENTS == ["connect cache", "disconnect cache"]
    with pytest.raises(ComponentUnavailableError, match="'cache' is stopped"):
        _ = group.get("cache").instance


def test_auto_skips_an_unreachable_host() -> None:
    """LOAD auto with nothing listening skips the component and says why."""
    group = components(spec("cache", "tcp", load="auto", URL=f"redis://127.0.0.1:{free_port()}"))
    asyncio.run(group.start())
    component = group.get("cache")
    assert component.status is Status.SKIPPED
    assert component.detail == "unreachable"
    with pytest.raises(ComponentUnavailableError, match="skipped"):
        _ = component.instance


def test_auto_treats_a_failure_after_the_check_as_an_error() -> None:
    """LOAD auto with a reachable host that then fails to connect stops start-up."""
    with listening_port() as port:
        group = components(spec("svc", "failing", load="auto", URL=f"redis://127.0.0.1:{port}"))
        with pytest.raises(ComponentError, match=r"'svc' .* failed to connect: RuntimeError"):
            asyncio.run(group.start())


def test_yes_fails_fast_on_an_unreachable_host_with_the_url_masked() -> None:
    """LOAD yes on a closed port is an error naming the component, password masked."""
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    group = components(spec("cache", "tcp", URL=url))
    with pytest.raises(ComponentError) as caught:
        asyncio.run(group.start())
    message = str(caught.value)
    assert "'cache'" in message and "pre-check failed" in message
    assert "hunter2" not in message and "user:***@" in message


def test_no_is_never_touched() -> None:
    """LOAD no neither resolves the driver nor connects."""
    group = components(spec("cache", "not-even-installed", load="no"))
    asyncio.run(group.start())
    assert group.get("cache").status is Status.DISABLED


def test_a_missing_driver_is_skipped_under_auto_and_fatal_under_yes() -> None:
    """An uninstalled driver is a notice under auto and an error with the install line under yes."""
    auto = components(spec("walrus", "redis-walrus", load="auto"))
    asyncio.run(auto.start())
    assert auto.get("walrus").status is Status.SKIPPED
    assert "pip install opa-driver-redis-walrus" in auto.get("walrus").detail
    required = components(spec("walrus", "redis-walrus"))
    with pytest.raises(
        ComponentError, match="install it with: pip install opa-driver-redis-walrus"
    ):
        asyncio.run(required.start())
    unknown = components(spec("thing", "made-up-driver"))
    with pytest.raises(ComponentError, match="no driver named 'made-up-driver'"):
        asyncio.run(unknown.start())


def test_components_connect_concurrently() -> None:
    """Two components connect at the same time (each waits for the other)."""
    group = components(spec("one", "barrier"), spec("two", "barrier"))
    asyncio.run(group.start())
    assert {c.status for c in group} == {Status.OK}


def test_each_component_is_bounded_by_its_timeout() -> None:
    """A connect that never returns fails after the component's TIMEOUT, naming it."""
    group = components(spec("slow", "hanging", timeout=0.2))

    async def run() -> None:
        async with asyncio.timeout(10):  # the test itself must never hang
            await group.start()

    with pytest.raises(ComponentError, match=r"'slow' .* did not connect within 0.2s"):
        asyncio.run(run())


def test_a_failure_disconnects_what_already_connected() -> None:
    """When one component fails, the others are disconnected: nothing half-started."""
    with listening_port() as port:
        group = components(
            spec("good", "tcp", URL=f"redis://127.0.0.1:{port}"),
            spec("bad", "hanging", timeout=0.3),
        )
        with pytest.raises(ComponentError, match="'bad'"):
            asyncio.run(group.start())
    assert "disconnect good" in EVENTS
    assert group.get("good").driver is not None
    assert group.get("good").driver.instance is None


def test_sync_mode_skips_async_drivers() -> None:
    """In a worker or shell, async drivers are skipped and sync ones connect."""
    with listening_port() as port:
        group = components(
            spec("cache", "tcp", URL=f"redis://127.0.0.1:{port}"),
            spec("motorish", "async-memory"),
        )
        group.start_sync()
        assert group.get("cache").status is Status.OK
        assert group.get("motorish").status is Status.SKIPPED
        assert "sync context" in group.get("motorish").detail
        group.stop_sync()


def test_health_reports_ok_then_unavailable_when_the_backend_goes() -> None:
    """health() pings connected components: ok while up, unavailable once the server closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    group = components(spec("cache", "tcp", URL=f"redis://127.0.0.1:{port}"), health_timeout=2)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        await group.start()
        before = await group.health()
        server.close()
        after = await group.health()
        await group.stop()
        return before, after

    before, after = asyncio.run(scenario())
    assert before["cache"]["status"] == "ok"
    assert after["cache"] == {
        "status": "unavailable",
        "load": "yes",
        "detail": "ping failed (ConnectionRefusedError)",
    }


def test_an_override_replaces_the_instance_for_a_block() -> None:
    """override() stands a test double in for a component, then restores it."""
    group = components(spec("cache", "tcp", load="auto", URL=f"redis://127.0.0.1:{free_port()}"))
    asyncio.run(group.start())
    with group.override("cache", "double"):
        assert group.get("cache").instance == "double"
    with pytest.raises(ComponentUnavailableError):
        _ = group.get("cache").instance


def test_unknown_component_lists_the_configured_ones() -> None:
    """Asking for a name that is not configured lists those that are."""
    group = components(spec("cache", "tcp", load="no"))
    with pytest.raises(
        ComponentUnavailableError, match=r"no component named 'db' .*\(configured: cache\)"
    ):
        group.get("db")


def test_invalid_options_name_the_component_and_option_without_echoing_values() -> None:
    """Bad OPTS are refused before connecting, naming component and option, never the value."""
    group = components(spec("cache", "tcp", URL="redis://x:secretpw@h", CONNECT_DELAY="soon"))
    with pytest.raises(OptionsError) as caught:
        asyncio.run(group.start())
    message = str(caught.value)
    assert message.startswith("component 'cache' (driver tcp): setting ")
    assert "OPTS.CONNECT_DELAY (OPA_OPTIONAL_COMPONENTS__CACHE__OPTS__CONNECT_DELAY)" in message
    assert message.endswith("; found str")
    assert "soon" not in message and "secretpw" not in message
    missing = components(spec("cache", "tcp"))
    with pytest.raises(
        OptionsError, match=r"OPTS\.URL \(\S+\): expected a value \(it is required\); found nothing"
    ):
        asyncio.run(missing.start())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"C": {"LOAD": "maybe", "DRIVER": "tcp"}},
            "setting OPTIONAL_COMPONENTS.C.LOAD (OPA_OPTIONAL_COMPONENTS__C__LOAD): "
            "expected one of auto, yes, no; found str 'maybe'",
        ),
        (
            {"C": {"LOAD": "yes"}},
            "setting OPTIONAL_COMPONENTS.C.DRIVER (OPA_OPTIONAL_COMPONENTS__C__DRIVER): "
            "expected the name of the driver to use; found null",
        ),
        (
            {"C": {"LOAD": "yes", "DRIVER": "tcp", "URL": "redis://u:pw@h"}},
            "setting OPTIONAL_COMPONENTS.C.URL (OPA_OPTIONAL_COMPONENTS__C__URL): expected only "
            "DRIVER, LOAD, OPTS, TIMEOUT in a component (driver options go under OPTS); found str",
        ),
        (
            {"C": {"DRIVER": "tcp", "OPTS": "x"}},
            "setting OPTIONAL_COMPONENTS.C.OPTS (OPA_OPTIONAL_COMPONENTS__C__OPTS): "
            "expected a mapping of driver options; found str",
        ),
        (
            {"C": {"DRIVER": "tcp", "TIMEOUT": "never"}},
            "setting OPTIONAL_COMPONENTS.C.TIMEOUT (OPA_OPTIONAL_COMPONENTS__C__TIMEOUT): "
            "expected a number of seconds above 0 and at most 3600; found str 'never'",
        ),
        (
            {"c": {"DRIVER": "tcp", "TIMEOUT": float("nan")}},
            "setting OPTIONAL_COMPONENTS.c.TIMEOUT (OPA_OPTIONAL_COMPONENTS__C__TIMEOUT): "
            "expected a number of seconds above 0 and at most 3600; found float nan",
        ),
        (
            {"C": "redis://"},
            "setting OPTIONAL_COMPONENTS.C (OPA_OPTIONAL_COMPONENTS__C): "
            "expected a mapping with LOAD, DRIVER and OPTS; found str 'redis://'",
        ),
        (
            ["C"],
            "setting OPTIONAL_COMPONENTS (OPA_OPTIONAL_COMPONENTS): "
            "expected a mapping of component names to their settings; found list",
        ),
    ],
)
def test_malformed_component_configuration_names_the_culprit(raw: Any, message: str) -> None:
    """Each mistake is a ConfigError naming the setting, its variable, expected and found."""
    with pytest.raises(ConfigError) as error:
        parse_components(raw, 10)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (["C"], "list"),
        ("C", "str 'C'"),
        (7, "int 7"),
        (1.5, "float 1.5"),
        (True, "bool True"),
        (("C",), "tuple"),
    ],
)
def test_a_component_list_is_named_as_a_plain_type(value: Any, kind: str) -> None:
    """OPTIONAL_COMPONENTS of the wrong type names the Python type, never dynaconf's class."""
    with pytest.raises(ConfigError, match=f"; found {kind}$"):
        parse_components(value, 10)


@pytest.mark.parametrize(
    ("value", "kind"), [(["redis://"], "list"), (None, "null"), (3, "int 3"), ("url", "str 'url'")]
)
def test_a_component_of_the_wrong_type_names_a_plain_type(value: Any, kind: str) -> None:
    """A component that is not a mapping is reported with the plain name of its type."""
    with pytest.raises(ConfigError, match=f"OPTIONAL_COMPONENTS.C .*; found {kind}$"):
        parse_components({"C": value}, 10)


def test_a_list_from_the_settings_is_called_a_list() -> None:
    """Through dynaconf (which wraps lists in its DataList), the message still says list."""
    with pytest.raises(ConfigError, match=r"OPTIONAL_COMPONENTS\): .*; found list$"):
        build_app({"OPTIONAL_COMPONENTS": ["redis", "celery"]})


def test_yaml_booleans_for_load_are_read_as_yes_and_no() -> None:
    """YAML turns an unquoted yes/no into booleans; LOAD accepts them as meant."""
    specs = parse_components({"A": {"LOAD": True, "DRIVER": "x"}, "B": {"LOAD": False}}, 10)
    assert [s.load for s in specs] == ["yes", "no"]


def test_start_up_logs_mask_credentials() -> None:
    """Connecting logs the target with its password masked, at every level."""
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    try:
        with listening_port() as port:
            group = components(spec("cache", "tcp", URL=f"redis://u:topsecret@127.0.0.1:{port}"))
            asyncio.run(group.start())
            asyncio.run(group.stop())
    finally:
        setup_logging("INFO")
    output = stream.getvalue()
    assert "component 'cache' connected (redis://u:***@127.0.0.1" in output
    assert "topsecret" not in output


def test_a_forked_child_reconnects_its_sync_components() -> None:
    """After a fork, the child connects afresh (the driver thread pool is renewed)."""
    import os

    with listening_port() as port:
        group = components(
            spec("cache", "tcp", URL=f"redis://127.0.0.1:{port}"), spec("keep", "barrier", "no")
        )
        group.start_sync()
        parent_socket = group.get("cache").instance
        pid = os.fork()
        if pid == 0:  # the child: exit status tells the parent what happened
            fresh = group.reconnect_after_fork(keep=["keep"])
            renewed = group.get("cache").instance
            ok = renewed is not parent_socket and fresh.get("cache").status is Status.OK
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        group.stop_sync()
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("url", ["redis://[::1", "redis://u:pw-1@[::1]:port/0"])
@pytest.mark.parametrize("load", ["auto", "yes"])
def test_an_address_that_cannot_be_split_is_a_component_error(url: str, load: str) -> None:
    """A URL urllib refuses stops start-up with a ComponentError naming the component."""
    group = components(spec("cache", "tcp", load=load, URL=url))
    with pytest.raises(ComponentError, match="'cache': cannot read the address") as caught:
        asyncio.run(group.start())
    assert "pw-1" not in str(caught.value)
    assert group.get("cache").status is Status.FAILED


@pytest.mark.parametrize("url", ["redis://127.0.0.1:99999", f"redis://{'a' * 64}.invalid:1"])
def test_an_impossible_address_is_unreachable_not_a_crash(url: str) -> None:
    """A port over 65535 or a host label IDNA refuses: skipped under auto, an error under yes."""
    auto = components(spec("cache", "tcp", load="auto", URL=url))
    asyncio.run(auto.start())
    assert auto.get("cache").status is Status.SKIPPED
    required = components(spec("cache", "tcp", load="yes", URL=url))
    with pytest.raises(ComponentError, match="is not a valid address"):
        asyncio.run(required.start())
