"""Each driver declares the default ports of its URL schemes; LOAD auto probes those."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from loguru import logger

from opa._component_config import ComponentSpec
from opa._components import Components, Status
from opa._driver_registry import DriverRegistry
from opa._drivers import Driver, DriverOptions, check_driver_class, hosts_of
from opa._errors import ComponentError, DriverError
from support import free_port, listening_port


class UrlOptions(DriverOptions):
    URL: str


def probe_driver(ports: dict[str, int]) -> type[Driver]:
    """A driver that connects to nothing and declares *ports* for its schemes."""

    class PortProbe(Driver):
        name = "port-probe"
        is_async = False
        Options = UrlOptions
        default_ports: ClassVar[dict[str, int]] = ports

        def connect(self) -> None:
            self.instance = self.opts.URL

    return PortProbe


def started(ports: dict[str, int], url: str, load: str = "yes") -> Components:
    registry = DriverRegistry([])
    registry.add_plugin_driver(probe_driver(ports), "tests")
    spec = ComponentSpec(name="store", load=load, driver="port-probe", opts={"URL": url})
    group = Components([spec], registry, check_timeout=1.0)
    asyncio.run(group.start())
    return group


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


def test_a_url_without_a_port_is_probed_on_the_drivers_declared_port() -> None:
    """A closed declared port stops a required component, and the error names that port."""
    port = free_port()
    with pytest.raises(ComponentError, match=rf"127\.0\.0\.1:{port} is unreachable"):
        started({"store": port}, "store://127.0.0.1/0")


def test_a_listening_declared_port_lets_the_component_connect() -> None:
    """The declared port accepts, so the component connects."""
    with listening_port() as port:
        group = started({"store": port}, "store://127.0.0.1/0")
    assert group.get("store").status is Status.OK


def test_an_undeclared_scheme_without_a_port_is_not_probed_and_says_why(
    warnings_logged: list[str],
) -> None:
    """No port known: the component connects unchecked, with a warning that says what to do."""
    group = started({"store": 1}, "other://db-host/0")
    assert group.get("store").status is Status.OK
    assert warnings_logged == [
        "component 'store': host 'db-host' is not checked before connecting: driver "
        "'port-probe' declares no default port for URL scheme 'other'; write the port in the URL"
    ]


def test_an_undeclared_scheme_with_a_port_is_probed_there() -> None:
    """A port written in the URL is probed whatever the scheme."""
    port = free_port()
    with pytest.raises(ComponentError, match=rf"127\.0\.0\.1:{port} is unreachable"):
        started({}, f"other://127.0.0.1:{port}/0")


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("redis://:pw@cache:6380/0", [("cache", 6380)]),
        ("redis://cache", [("cache", 6379)]),
        ("mongodb://u:p@a:1,b/db", [("a", 1), ("b", 27017)]),
        ("amqp://guest:guest@[::1]:5673//", [("::1", 5673)]),
        ("amqp://[::1]//", [("::1", None)]),
        ("nats://queue", [("queue", None)]),
        ("redis+sentinel://cache", [("cache", 6379)]),
        ("mongodb+motor://db:1/x", [("db", 1)]),
        ("mongodb+srv://cluster.example/db", []),
        ("unix:///tmp/redis.sock", []),
    ],
)
def test_hosts_come_from_the_url_and_the_declared_ports(
    url: str, hosts: list[tuple[str, int | None]]
) -> None:
    """Host and port are read from the URL; a missing port is the declared one, else None."""
    assert hosts_of(url, {"redis": 6379, "mongodb": 27017}) == hosts


@pytest.mark.parametrize("port", [0, 70000, "6379"])
def test_a_declared_port_that_is_no_port_is_refused(port: Any) -> None:
    """default_ports values must be ints from 1 to 65535; the error names scheme and value."""
    with pytest.raises(DriverError, match=rf"default_ports\['store'\] is {port!r}; a port is"):
        check_driver_class(probe_driver({"store": port}), "tests")
