"""opa.bootstrap: one order for every entry, and plugins that read opa.config at import."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

import opa
from opa._cli import cli
from opa._extensions import extensions
from opa.hookspecs import hookimpl
from opa.testing import build_app
from tcp_driver import EchoServer

RECORDING_PLUGIN = """
import json
from pathlib import Path

import opa

try:
    ACTIVE = opa.get_plugin_manager().settings.BOOTSTRAP_MARK
except opa.OpaError:
    ACTIVE = None
SEEN = {"config": opa.config.BOOTSTRAP_MARK, "active": ACTIVE}
with Path(opa.config.BOOTSTRAP_RECORD).open("a") as record:
    record.write(json.dumps(SEEN) + "\\n")
"""


class Project:
    """Settings with a fresh mark, and a uniquely named plugin that records what it saw."""

    def __init__(self, root: Path) -> None:
        self.mark = f"mark-{uuid.uuid4().hex[:12]}"
        self.record = root / "record.jsonl"
        plugins = root / "plugins"
        plugins.mkdir()
        (plugins / f"records_{uuid.uuid4().hex[:12]}.py").write_text(RECORDING_PLUGIN)
        self.values = {
            "PLUGIN_PATHS": [str(plugins)],
            "OPTIONAL_COMPONENTS": {},
            "PLUGIN_ENTRY_POINTS": False,
            "BOOTSTRAP_MARK": self.mark,
            "BOOTSTRAP_RECORD": str(self.record),
        }
        self.settings_dir = root / "settings"
        self.settings_dir.mkdir()
        (self.settings_dir / "settings.yaml").write_text(yaml.safe_dump({"default": self.values}))

    def assert_seen(self) -> None:
        seen = [json.loads(line) for line in self.record.read_text().splitlines()]
        assert seen == [{"config": self.mark, "active": self.mark}]


@pytest.mark.parametrize("command", ["check", "drivers", "shell"])
def test_a_command_plugins_see_its_settings_at_import(tmp_path: Path, command: str) -> None:
    """Under `opa check`, `opa drivers` and `opa shell`, opa.config at import is the command's
    settings, those of the active plugin manager."""
    project = Project(tmp_path)
    env = {"OPA_SETTINGS_DIR": None, "OPA_ENV": None, "OPA_LOG_LEVEL": None, "ENV": None}
    args = ["--settings-dir", str(project.settings_dir), command]
    result = CliRunner().invoke(cli, args, env=env, input="print(config.BOOTSTRAP_MARK)\n")
    assert result.exit_code == 0, result.output
    project.assert_seen()


def test_build_app_plugins_see_its_settings_at_import(tmp_path: Path) -> None:
    """Under build_app, opa.config at import holds the settings given to it."""
    project = Project(tmp_path)
    build_app(project.values)
    project.assert_seen()


def test_bootstrap_returns_the_active_manager_with_components_resolved(tmp_path: Path) -> None:
    """opa.bootstrap loads the plugins and activates its manager, which opa.config reads."""
    project = Project(tmp_path)
    manager = opa.bootstrap(project.values, settings_dir=tmp_path / "none")
    assert opa.get_plugin_manager() is manager
    assert project.mark == opa.config.BOOTSTRAP_MARK
    assert len(manager.plugins) == 1
    project.assert_seen()


class WorkerSetup:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[list[str]] = []

    @hookimpl
    def opa_worker_setup(self, manager: opa.PluginManager) -> None:
        self.calls.append([c.status.value for c in manager.components])
        if self.fail:
            raise opa.PluginError("tasks do not import")


@pytest.fixture
def echo_plugin(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings with the sync echo driver as a plugin driver and a running echo server."""
    folder = tmp_path / "echo_plugins"
    folder.mkdir()
    module = f"echo_{uuid.uuid4().hex[:12]}"
    source = "from tcp_driver import TcpEchoDriver\n\n\nclass Echo(TcpEchoDriver):\n"
    (folder / f"{module}.py").write_text(source + f"    name = {module!r}\n")
    with EchoServer() as server:
        echo = {"LOAD": "yes", "DRIVER": module, "OPTS": {"URL": server.url}}
        yield {"PLUGIN_PATHS": [str(folder)], "OPTIONAL_COMPONENTS": {"echo": echo}}


def test_connect_sync_connects_then_runs_the_worker_setup(
    tmp_path: Path, echo_plugin: dict[str, Any]
) -> None:
    """With connect_sync, sync components are connected when opa_worker_setup runs."""
    listener = WorkerSetup()
    extensions().register(listener)
    try:
        manager = opa.bootstrap(echo_plugin, settings_dir=tmp_path / "none", connect_sync=True)
        manager.components.stop_sync()
    finally:
        extensions().unregister(listener)
    assert listener.calls == [["ok"]]


def test_a_failing_worker_setup_disconnects_what_connected(
    tmp_path: Path, echo_plugin: dict[str, Any]
) -> None:
    """An error in opa_worker_setup is raised after the components are disconnected again."""
    listener = WorkerSetup(fail=True)
    extensions().register(listener)
    try:
        with pytest.raises(opa.PluginError, match="tasks do not import"):
            opa.bootstrap(echo_plugin, settings_dir=tmp_path / "none", connect_sync=True)
    finally:
        extensions().unregister(listener)
    assert opa.get_component("echo").status is opa.Status.STOPPED


class AddsARoute:
    @hookimpl
    def opa_app_setup(self, app: Any, manager: opa.PluginManager) -> None:
        @app.get("/from-extension")
        def route() -> str:
            return f"{len(manager.plugins)} plugins"


def test_an_extension_adds_routes_while_the_app_is_built() -> None:
    """opa_app_setup gets the app and the manager while the app is built."""
    extension = AddsARoute()
    extensions().register(extension)
    try:
        app = build_app()
    finally:
        extensions().unregister(extension)
    with TestClient(app) as client:
        assert client.get("/from-extension").json() == "0 plugins"
