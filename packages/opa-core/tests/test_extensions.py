"""Extension points: entry-point loading, CLI commands, the worker hint, component events."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from fake_distributions import make_distribution
from opa import _extensions
from opa._breaker import BreakerSettings
from opa._cli import cli
from opa._component_config import ComponentSpec
from opa._components import Component, Components, Status
from opa._driver_registry import DriverRegistry
from opa._errors import ComponentError, PluginError
from opa._extensions import build_extensions, extensions
from opa._known_drivers import command_hint
from opa.hookspecs import hookimpl
from support import free_port
from tcp_driver import EchoServer, TcpEchoDriver


class Recorder:
    """An extension that writes down every component event it is told about."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    @hookimpl
    def opa_component_connected(self, component: Component) -> None:
        self.events.append(("connected", component.name))

    @hookimpl
    def opa_component_failed(self, component: Component, error: str) -> None:
        self.events.append(("failed", component.name, error))

    @hookimpl
    def opa_component_down(self, component: Component, error: str) -> None:
        self.events.append(("down", component.name, error))

    @hookimpl
    def opa_component_recovered(self, component: Component, elapsed: float) -> None:
        self.events.append(("recovered", component.name, elapsed))

    @hookimpl
    def opa_component_disconnected(self, component: Component) -> None:
        self.events.append(("disconnected", component.name))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    plugin = Recorder()
    extensions().register(plugin)
    try:
        yield plugin
    finally:
        extensions().unregister(plugin)


def echo_components(url: str) -> Components:
    registry = DriverRegistry([])
    registry.add_plugin_driver(TcpEchoDriver, "tests")
    spec = ComponentSpec(name="echo", load="yes", driver="tcp-echo", opts={"URL": url}, timeout=5)
    return Components([spec], registry, health_timeout=0.3)


def names(events: list[tuple[Any, ...]]) -> list[str]:
    return [event[0] for event in events]


def test_connected_is_told_after_a_component_connects(recorder: Recorder) -> None:
    """Extensions hear `opa_component_connected` once the component passed validation."""
    with EchoServer() as server:
        group = echo_components(server.url)
        asyncio.run(group.start())
        assert recorder.events == [("connected", "echo")]
        assert group.get("echo").status is Status.OK
        asyncio.run(group.stop())


class ConnectTimer:
    """An extension that takes the connect time `opa_component_connected` offers."""

    def __init__(self) -> None:
        self.elapsed: list[float] = []

    @hookimpl
    def opa_component_connected(self, component: Component, elapsed: float) -> None:
        self.elapsed.append(elapsed)


def test_connected_offers_the_connect_time_to_who_asks_for_it(recorder: Recorder) -> None:
    """An extension naming `elapsed` gets the connect time; one without it (the Recorder,
    written before the argument came) is still told."""
    timer = ConnectTimer()
    extensions().register(timer)
    try:
        with EchoServer() as server:
            group = echo_components(server.url)
            asyncio.run(group.start())
            asyncio.run(group.stop())
    finally:
        extensions().unregister(timer)
    assert len(timer.elapsed) == 1
    assert 0 < timer.elapsed[0] < 5  # within the component's TIMEOUT
    assert recorder.events[0] == ("connected", "echo")


def test_failed_is_told_with_the_reason_when_connect_fails(recorder: Recorder) -> None:
    """Extensions hear `opa_component_failed`, with the error line, when a component fails."""
    group = echo_components(f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(ComponentError, match="pre-check failed") as raised:
        asyncio.run(group.start())
    assert recorder.events == [("failed", "echo", str(raised.value))]


def test_disconnected_is_told_when_a_connected_component_stops(recorder: Recorder) -> None:
    """Extensions hear `opa_component_disconnected` at shutdown, and only for a connected one."""
    with EchoServer() as server:
        group = echo_components(server.url)
        asyncio.run(group.start())
        asyncio.run(group.stop())
    assert recorder.events == [("connected", "echo"), ("disconnected", "echo")]


def test_down_and_recovered_are_told_by_the_breaker(recorder: Recorder) -> None:
    """Extensions hear `opa_component_down` when the breaker marks a component down, and
    `opa_component_recovered` with the time it was down once it answers again."""

    async def outage(server: EchoServer) -> None:
        group = echo_components(server.url)
        group.enable_breaker(BreakerSettings(0.05, 0.1))
        await group.start()
        component = group.get("echo")
        assert group.breaker is not None
        server.stall()
        group.breaker.trip(component, "TimeoutError in a request")
        await asyncio.sleep(0.2)
        server.resume()
        deadline = time.monotonic() + 20
        while component.status is not Status.OK:
            assert time.monotonic() < deadline, "the component never came back"
            await asyncio.sleep(0.02)
        await group.stop()

    with EchoServer() as server:
        asyncio.run(outage(server))
    events = recorder.events
    assert names(events)[:2] == ["connected", "down"]
    assert events[1] == ("down", "echo", "TimeoutError in a request")
    recovered = [event for event in events if event[0] == "recovered"]
    assert len(recovered) == 1
    assert recovered[0][2] >= 0.15
    assert names(events)[-1] == "disconnected"


def test_a_failing_listener_does_not_change_what_happens() -> None:
    """An extension that raises on an event is logged; the component still connects."""

    class Broken:
        @hookimpl
        def opa_component_connected(self, component: Component) -> None:
            raise RuntimeError("listener broke")

    broken = Broken()
    extensions().register(broken)
    try:
        with EchoServer() as server:
            group = echo_components(server.url)
            asyncio.run(group.start())
            assert group.get("echo").status is Status.OK
            asyncio.run(group.stop())
    finally:
        extensions().unregister(broken)


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, source: str) -> None:
    """A fake distribution `opa-ext-demo` with one `opa.extensions` entry point."""
    make_distribution(
        tmp_path,
        "opa-ext-demo",
        "1.0",
        {"opa.extensions": {"demo": target}},
        {"opa_ext_demo": source},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "opa_ext_demo", raising=False)


EXTENSION = """
import click
from opa.hookspecs import hookimpl

@click.command()
def hello():
    "Say hello."
    click.echo("hello from an extension")

@hookimpl
def opa_cli_commands():
    return [hello]
"""


def test_an_entry_point_extension_is_loaded_and_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution's `opa.extensions` entry point is registered and its hooks called."""
    install(tmp_path, monkeypatch, "opa_ext_demo", EXTENSION)
    manager = build_extensions()
    assert manager.has_plugin("demo")
    demo = manager.get_plugin("demo")
    [implementation] = [
        i for i in manager.hook.opa_cli_commands.get_hookimpls() if i.plugin is demo
    ]
    assert [command.name for command in implementation.function()] == ["hello"]


def test_a_broken_extension_is_one_error_naming_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An extension that fails to import is a PluginError naming entry point and distribution."""
    install(tmp_path, monkeypatch, "opa_ext_demo", "raise ImportError('no backend here')\n")
    with pytest.raises(PluginError) as raised:
        build_extensions()
    assert str(raised.value) == (
        "extension 'demo' (opa.extensions entry point opa_ext_demo of opa-ext-demo) failed to "
        "load: ImportError: no backend here"
    )


def test_the_extension_manager_is_built_once_per_process() -> None:
    """Every caller gets the same extension manager."""
    assert extensions() is extensions()
    assert _extensions._manager is extensions()


class CommandExtension:
    @hookimpl
    def opa_cli_commands(self) -> list[click.Command]:
        @click.command()
        def hello() -> None:
            """Say hello."""
            click.echo("hello from an extension")

        return [hello]


@pytest.fixture
def command_extension() -> Iterator[None]:
    plugin = CommandExtension()
    extensions().register(plugin, name="hello-extension")
    try:
        yield
    finally:
        extensions().unregister(plugin)


def test_an_extension_adds_a_command_to_opa(command_extension: None) -> None:
    """A command an extension returns from `opa_cli_commands` runs as `opa hello`."""
    result = CliRunner().invoke(cli, ["hello"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello from an extension\n"
    assert "hello" in CliRunner().invoke(cli, ["--help"]).stdout


def test_an_extension_command_clashing_with_opas_own_is_refused() -> None:
    """An extension adding `opa check` again is one error naming the extension."""

    class Clash:
        @hookimpl
        def opa_cli_commands(self) -> list[click.Command]:
            return [click.Command("check"), click.Command("fresh")]

    plugin = Clash()
    extensions().register(plugin, name="clash")
    try:
        result = CliRunner().invoke(cli, ["fresh"])
    finally:
        extensions().unregister(plugin)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: extension 'clash' adds the command 'opa check', which opa-core adds already"
    )


def test_opa_worker_without_its_distribution_names_the_install_line(tmp_path: Path) -> None:
    """`opa worker` with no extension adding it exits 1 naming opa-driver-celery."""
    if extensions().hook.opa_cli_commands.get_hookimpls():
        pytest.skip("an installed extension adds commands")
    result = CliRunner().invoke(cli, ["worker", "--loglevel", "info"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: 'opa worker' comes from opa-driver-celery, which is not installed; "
        "install it with: pip install opa-driver-celery"
    )
    assert command_hint("worker") == "pip install opa-driver-celery"


def test_celery_a_opa_worker_without_its_distribution_names_the_install_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`celery -A opa.worker` with no extension providing the app is one line and status 1."""
    if extensions().hook.opa_worker_app.get_hookimpls():
        pytest.skip("an installed extension provides the worker app")
    import opa.worker

    with pytest.raises(SystemExit) as exited:
        _ = opa.worker.app
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "error: celery -A opa.worker needs opa-driver-celery, which is not installed; "
        "install it with: pip install opa-driver-celery\n"
    )


def test_a_broken_extension_ends_an_opa_command_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any `opa` command, with a broken extension installed, exits 1 with the one line."""
    install(tmp_path, monkeypatch, "opa_ext_demo", "raise ImportError('no backend here')\n")
    monkeypatch.setattr(_extensions, "_manager", None)
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: extension 'demo' (opa.extensions entry point opa_ext_demo of opa-ext-demo) "
        "failed to load: ImportError: no backend here"
    ]
