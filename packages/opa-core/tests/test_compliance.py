"""Core runs the driver compliance suite on its own tiny TCP echo drivers."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from importlib.metadata import Distribution, EntryPoint
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import pytest

from opa import Component, Driver
from opa.testing import DriverComplianceSuite, closed_port
from tcp_driver import AsyncTcpEchoDriver, BlindTcpEchoDriver, EchoServer, TcpEchoDriver

pytest_plugins = ["pytester"]


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

    timeout_options: ClassVar[dict[str, Any]] = {"SOCKET_TIMEOUT": 0.5}
    opt_outs: ClassVar[dict[str, str]] = {
        "refused-login": "the line-echo protocol has no login and no database",
        "client-import": "it speaks TCP through the standard library: no client library",
    }

    def round_trip(self, component: Component, token: str) -> Any:
        return component.instance.echo(token.encode())


class TestAsyncTcpEchoCompliance(TestTcpEchoCompliance):
    """The async echo driver, through the same cases."""

    driver_name = "tcp-echo-async"
    distribution = "opa-driver-tcp-echo-async"
    driver = AsyncTcpEchoDriver


class _BlindCompliance(TestTcpEchoCompliance):
    """The echo driver whose unavailable_errors() is (): not collected, run by hand below."""

    driver_name = "tcp-echo-blind"
    distribution = "opa-driver-tcp-echo-blind"
    driver = BlindTcpEchoDriver


def test_a_driver_that_covers_no_outage_error_fails_and_is_told_what_to_add(
    echo_server: EchoServer,
) -> None:
    """unavailable_errors() returning () fails the dropped-connections case, naming the class."""
    suite = _BlindCompliance()
    with pytest.raises(pytest.fail.Exception) as caught:
        suite.test_dropped_connections_answer_503({"URL": echo_server.url, "SOCKET_TIMEOUT": 2})
    message = str(caught.value)
    assert "BlindTcpEchoDriver.unavailable_errors() does not cover" in message, message
    assert "Add builtins.ConnectionError" in message, message
    assert "answers such a request 500 instead of 503" in message, message


def test_overriding_a_case_to_skip_it_is_refused() -> None:
    """A driver's suite cannot replace a case (to skip it, say): the class is refused."""
    with pytest.raises(TypeError, match="test_the_instance_serves_concurrent_calls") as caught:

        class _Dodging(TestTcpEchoCompliance):
            def test_the_instance_serves_concurrent_calls(self, live_options: Any) -> None:
                pytest.skip("not thread-safe")

    assert "opt_outs" in str(caught.value)


def test_a_skip_mark_on_the_class_is_refused() -> None:
    """A skip mark on a driver's suite class is refused: cases leave only through opt_outs."""
    with pytest.raises(TypeError, match=r"pytest\.mark\.skip"):

        class _Skipping(TestTcpEchoCompliance):
            pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.skip("later")]


@pytest.mark.parametrize(
    ("opt_outs", "expected"),
    [
        ({"threads": "we never use threads"}, "'threads', which is no case of the suite"),
        ({"recovery": "  "}, "opt_outs['recovery'] gives no reason"),
    ],
)
def test_an_opt_out_needs_a_known_case_and_a_reason(
    opt_outs: dict[str, str], expected: str
) -> None:
    """An opt-out naming no case, or giving no reason, fails the suite's cases."""

    class _BadOptOut(TestTcpEchoCompliance):
        pass

    _BadOptOut.opt_outs = opt_outs
    with pytest.raises(pytest.fail.Exception, match=re.escape(expected)):
        _BadOptOut().test_opt_outs_name_cases_and_give_reasons()
    with pytest.raises(pytest.fail.Exception, match=re.escape(expected)):
        _BadOptOut().test_the_instance_serves_concurrent_calls({"URL": "tcp://127.0.0.1:7"})


def test_only_declared_opt_outs_skip_and_the_report_says_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as pytest runs it, with CI=true: the outage cases skip only where opted out, each
    with its reason in the report; every other case runs."""
    pytester.makepyfile(
        test_echo_suite="""
        from test_compliance import TestTcpEchoCompliance as TestEcho, echo_server
        """
    )
    folder = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", folder)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    declared = TestTcpEchoCompliance.opt_outs
    assert outcomes.get("skipped") == len(declared), result.stdout.str()
    assert not outcomes.get("failed"), result.stdout.str()
    for case, reason in declared.items():
        result.stdout.fnmatch_lines([f"*TestTcpEchoCompliance opts out of '{case}': {reason}*"])


@pytest.mark.parametrize("library", ["pytest"])
def test_the_suite_without_the_testing_extra_names_the_install_line(library: str) -> None:
    """Asking for the suite (help() does) without pytest says to install the extra."""
    script = (
        f"import sys; sys.modules[{library!r}] = None\n"
        "import opa.testing\n"
        "help(opa.testing.DriverComplianceSuite)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"ImportError: opa.testing.DriverComplianceSuite needs {library}, which is not "
        "installed: pip install 'opa-core[testing]'"
    ), done.stderr
