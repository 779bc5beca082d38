"""Core runs the driver compliance suite on its own tiny TCP echo drivers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib.metadata import Distribution, EntryPoint
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import pytest

from opa import Driver
from opa.testing import DriverComplianceSuite, closed_port
from tcp_driver import AsyncTcpEchoDriver, EchoServer, TcpEchoDriver


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EchoServer]:
    """A line-echo server for this module's tests."""
    with EchoServer() as server:
        yield server


class _FakeDistribution(Distribution):
    """An installed-looking distribution whose only content is one opa.drivers entry point."""

    def __init__(self, name: str, entry_point: str) -> None:
        self._files = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n",
            "entry_points.txt": f"[opa.drivers]\n{entry_point}\n",
        }

    def read_text(self, filename: str) -> str | None:
        return self._files.get(filename)

    def locate_file(self, path: str | PathLike[str]) -> Path:
        raise FileNotFoundError(path)


class TestTcpEchoCompliance(DriverComplianceSuite):
    """The sync echo driver, found through the entry point of a faked distribution."""

    driver_name = "tcp-echo"
    distribution: ClassVar[str | None] = "opa-driver-tcp-echo"
    driver: ClassVar[type[Driver]] = TcpEchoDriver

    def entry_points(self) -> Iterable[EntryPoint]:
        target = f"{self.driver.__module__}:{self.driver.__qualname__}"
        assert self.distribution is not None
        dist = _FakeDistribution(self.distribution, f"{self.driver_name} = {target}")
        return dist.entry_points

    @pytest.fixture
    def live_options(self, echo_server: EchoServer) -> dict[str, Any]:
        return {"URL": echo_server.url, "SOCKET_TIMEOUT": 2}

    def unreachable_options(self) -> dict[str, Any]:
        return {"URL": f"tcp://127.0.0.1:{closed_port()}"}

    def credential_options(self, password: str) -> dict[str, Any]:
        return {"URL": f"tcp://opa:{password}@127.0.0.1:{closed_port()}"}

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        url = "tcp://127.0.0.1:7"
        return [
            ({"URL": "http://127.0.0.1:7"}, "URL"),
            ({"URL": url, "SOCKET_TIMEOUT": 0}, "SOCKET_TIMEOUT"),
            ({"URL": url, "SOCKET_TIMEOUT": "soon"}, "SOCKET_TIMEOUT"),
            ({"URL": url, "RETRIES": 3}, "RETRIES"),
        ]


class TestAsyncTcpEchoCompliance(TestTcpEchoCompliance):
    """The async echo driver, through the same cases."""

    driver_name = "tcp-echo-async"
    distribution = "opa-driver-tcp-echo-async"
    driver = AsyncTcpEchoDriver
