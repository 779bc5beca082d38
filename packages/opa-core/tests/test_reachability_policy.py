"""A driver's ``reachable_when``: every target must answer (the default), or any one."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from opa._component_config import ComponentSpec
from opa._components import Components, Status
from opa._driver_registry import DriverRegistry
from opa._drivers import Driver, check_driver_class
from opa._errors import ComponentError, DriverError
from support import free_port, listening_port


class EveryHostDriver(Driver):
    """Connects without I/O; what the check lets through is what the test looks at."""

    name = "every-host"
    default_ports: ClassVar[dict[str, int]] = {}

    def connect(self) -> None:
        self.instance = "connected"


class SeedListDriver(EveryHostDriver):
    name = "seed-list"
    reachable_when = "any"


def start(driver: str, load: str, *ports: int) -> Components:
    """A started group of one component whose URL names a host for each of *ports*."""
    url = "tcp://user:hunter2@" + ",".join(f"127.0.0.1:{port}" for port in ports)
    registry = DriverRegistry([])
    for cls in (EveryHostDriver, SeedListDriver):
        registry.add_plugin_driver(cls, "tests")
    spec = ComponentSpec(name="db", load=load, driver=driver, opts={"URL": url}, timeout=5)
    group = Components([spec], registry)
    asyncio.run(group.start())
    return group


def test_any_connects_when_one_seed_answers_and_others_are_down() -> None:
    """reachable_when = "any": one listening seed among closed ones is enough for LOAD auto."""
    with listening_port() as port:
        group = start("seed-list", "auto", free_port(), port, free_port())
    assert group.get("db").status is Status.OK
    assert group.get("db").instance == "connected"


def test_all_skips_when_one_host_is_down() -> None:
    """The default needs every host: one closed port skips the component under LOAD auto."""
    with listening_port() as port:
        group = start("every-host", "auto", port, free_port())
    assert (group.get("db").status, group.get("db").detail) == (Status.SKIPPED, "unreachable")


def test_any_with_no_seed_answering_names_every_host_masked() -> None:
    """With no seed answering, LOAD yes fails naming each host it probed, password masked."""
    first, second = free_port(), free_port()
    with pytest.raises(ComponentError) as caught:
        start("seed-list", "yes", first, second)
    message = str(caught.value)
    assert "pre-check failed: none of the 2 hosts answered" in message
    assert f"127.0.0.1:{first} is unreachable" in message
    assert f"127.0.0.1:{second} is unreachable" in message
    assert "hunter2" not in message


def test_any_with_no_seed_answering_skips_under_auto() -> None:
    """No seed answering under LOAD auto is a skip, as for a single host."""
    group = start("seed-list", "auto", free_port(), free_port())
    assert group.get("db").status is Status.SKIPPED


def test_an_unknown_policy_is_refused_naming_the_class() -> None:
    """reachable_when other than "all" or "any" is a DriverError naming the driver class."""

    class Sloppy(EveryHostDriver):
        name = "sloppy"
        reachable_when = "most"

    with pytest.raises(DriverError, match=r"Sloppy \(tests\): reachable_when is 'most'; expected"):
        check_driver_class(Sloppy, "tests")
