"""The ``opa`` command line, driven through click's runner and, for ``opa run``, a real server."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import Distribution
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

import opa._driver_registry
from opa._cli import cli
from opa._log import setup_logging
from opa.testing import bound_port, free_port
from support import without_installed_driver

PASSWORD = "s3cret"

PROBE_PLUGIN = '''
"""Test plugin: a /hello route and a sync driver that opens a TCP socket."""
import socket
from urllib.parse import urlsplit

from opa import Driver, get_router

router = get_router()


@router.get("/hello")
def hello() -> str:
    return "hello from the plugin"


class TcpProbe(Driver):
    name = "tcp-probe"

    def _address(self):
        parts = urlsplit(self.opts.URL)
        return parts.hostname, parts.port

    def reachability_targets(self):
        return [self._address()]

    def connect(self):
        if getattr(self.opts, "FAIL", False):
            raise RuntimeError("refused by the probe")
        self.instance = socket.create_connection(self._address(), timeout=2)

    def disconnect(self):
        self.instance.close()
'''


@pytest.fixture
def listener() -> Iterator[int]:
    """A listening TCP socket on 127.0.0.1; yields its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # Commands point the log sink at the runner's stream; put it back on a live one.
    yield
    setup_logging("WARNING")


def probe(port: int, load: str = "yes", **opts: Any) -> dict[str, Any]:
    """A tcp-probe component entry whose URL carries a password."""
    url = f"tcp://probe:{PASSWORD}@127.0.0.1:{port}"
    return {"LOAD": load, "DRIVER": "tcp-probe", "OPTS": {"URL": url, **opts}}


def project(tmp_path: Path, components: dict[str, Any], **settings: Any) -> Path:
    """A settings folder (and plugin folder) that names *components* and nothing else."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    # A per-test module name, so one test's plugin module never stands in for another's.
    (plugins / f"probe_{tmp_path.name}.py").write_text(PROBE_PLUGIN)
    folder = tmp_path / "settings"
    folder.mkdir(exist_ok=True)
    default = {"PLUGIN_PATHS": [str(plugins)], "OPTIONAL_COMPONENTS": components, **settings}
    (folder / "settings.yaml").write_text(yaml.safe_dump({"default": default}))
    return folder


def invoke(folder: Path, *args: str, input: str | None = None) -> Result:
    """Run ``opa --settings-dir FOLDER ARGS``; the runner restores the variables it set."""
    runner = CliRunner()
    env = {"OPA_SETTINGS_DIR": None, "OPA_ENV": None, "OPA_LOG_LEVEL": None, "ENV": None}
    return runner.invoke(cli, ["--settings-dir", str(folder), *args], env=env, input=input)


def test_config_masks_url_passwords_and_secret_keys(tmp_path: Path) -> None:
    """`opa config` prints YAML with the URL password and SECRET_KEY masked."""
    components = {"CACHE": {"DRIVER": "redis-walrus", "OPTS": {"URL": "redis://user:s3cret@host"}}}
    folder = project(tmp_path, components, SECRET_KEY="very-private-key")
    result = invoke(folder, "config")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert "very-private-key" not in result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["SECRET_KEY"] == "***"
    assert printed["OPTIONAL_COMPONENTS"]["CACHE"]["OPTS"]["URL"] == "redis://user:***@host"


def test_config_json_is_masked_json(tmp_path: Path) -> None:
    """`opa config --json` prints parseable JSON, masked the same way."""
    import json

    components = {"CACHE": {"DRIVER": "redis-walrus", "OPTS": {"URL": "redis://user:s3cret@host"}}}
    result = invoke(project(tmp_path, components), "config", "--json")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert json.loads(result.stdout)["OPTIONAL_COMPONENTS"]["CACHE"]["OPTS"]["URL"].count("***")


def test_drivers_lists_missing_configured_driver_with_install_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opa drivers` names a configured but missing driver and the pip line that installs it."""
    without_installed_driver(monkeypatch, "redis-walrus")
    components = {
        "walrus": {"DRIVER": "redis-walrus", "OPTS": {"URL": "redis://u:s3cret@h"}},
        "exotic": {"DRIVER": "exotic-db"},
    }
    result = invoke(project(tmp_path, components), "drivers")
    assert result.exit_code == 0, result.output
    assert "redis-walrus" in result.stdout
    assert "pip install opa-driver-redis-walrus" in result.stdout
    assert "no known distribution" in result.stdout
    assert f"plugin {tmp_path / 'plugins'}/probe_{tmp_path.name}" in result.stdout


def test_drivers_shows_a_broken_installed_driver_in_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opa drivers` reports an installed driver that fails to load in its row and goes on."""

    class FakeDistribution(Distribution):
        def read_text(self, filename: str) -> str | None:
            files = {
                "METADATA": "Metadata-Version: 2.1\nName: opa-driver-broken\nVersion: 9.9\n",
                "entry_points.txt": "[opa.drivers]\nbroken = no_such_module_for_opa_tests:D\n",
            }
            return files.get(filename)

        def locate_file(self, path: Any) -> Path:
            return tmp_path / str(path)

    found = list(FakeDistribution().entry_points.select(group="opa.drivers"))
    monkeypatch.setattr(opa._driver_registry, "entry_points", lambda group: found)
    result = invoke(project(tmp_path, {}), "drivers")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("broken"))
    assert "opa-driver-broken" in row and "9.9" in row and "failed to load" in row
    assert "tcp-probe" in result.stdout


def test_check_and_drivers_from_an_empty_folder_name_no_component(tmp_path: Path) -> None:
    """With no settings, `opa check` connects nothing and `opa drivers` reports nothing missing."""
    check = invoke(tmp_path, "check")
    assert check.exit_code == 0, check.output
    assert check.stdout == "no components configured\n"
    drivers = invoke(tmp_path, "drivers")
    assert drivers.exit_code == 0, drivers.output
    assert "not installed" not in drivers.stdout
    assert "WARNING" not in check.output + drivers.output


def test_check_passes_with_a_reachable_component(tmp_path: Path, listener: int) -> None:
    """`opa check` connects a reachable LOAD: yes component, reports ok and exits 0."""
    result = invoke(project(tmp_path, {"probe": probe(listener)}), "check")
    assert result.exit_code == 0, result.output
    assert "probe" in result.stdout and " ok " in result.stdout
    assert "tcp://probe:***@127.0.0.1" in result.stdout
    assert PASSWORD not in result.output


def test_check_fails_for_a_required_component_on_a_closed_port(
    tmp_path: Path, listener: int
) -> None:
    """`opa check` exits 1 naming a down LOAD: yes component, still reporting the others."""
    components = {"probe": probe(free_port()), "other": probe(listener)}
    result = invoke(project(tmp_path, components), "check")
    assert result.exit_code == 1
    assert "component 'probe'" in result.stdout
    assert "failed" in result.stdout
    assert any(line.startswith("other") and " ok " in line for line in result.stdout.splitlines())
    assert result.stderr.strip().splitlines()[-1] == "error: component check failed: probe"
    assert PASSWORD not in result.output
    assert "***" in result.output


def test_check_skips_unreachable_auto_components(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opa check` exits 0 when an auto component is merely unreachable or not installed."""
    without_installed_driver(monkeypatch, "redis-walrus")
    components = {"probe": probe(free_port(), load="auto"), "walrus": {"DRIVER": "redis-walrus"}}
    result = invoke(project(tmp_path, components), "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("skipped") == 2


def test_check_fails_when_a_reachable_auto_component_fails(tmp_path: Path, listener: int) -> None:
    """`opa check` exits 1 when an auto component is reachable but fails to connect."""
    result = invoke(project(tmp_path, {"probe": probe(listener, load="auto", FAIL=True)}), "check")
    assert result.exit_code == 1
    assert "refused by the probe" in result.stdout


# `opa worker` comes from opa-driver-celery, whose tests check it the same way.
SETTINGS_COMMANDS = ["check", "drivers", "shell", "run", "config"]


@pytest.mark.parametrize("command", SETTINGS_COMMANDS)
def test_config_error_is_one_line(tmp_path: Path, command: str) -> None:
    """A bad component setting (LOAD: maybe) ends any command with one line naming it."""
    result = invoke(project(tmp_path, {"probe": probe(1, load="maybe")}), command)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: setting OPTIONAL_COMPONENTS.probe.LOAD (OPA_OPTIONAL_COMPONENTS__PROBE__LOAD): "
        "expected one of auto, yes, no; found str 'maybe'"
    ]
    assert result.stdout == ""


@pytest.mark.parametrize("command", SETTINGS_COMMANDS)
@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OPA_PORT", "abc", "a whole number from 1 to 65535; found str 'abc'"),
        ("OPA_PORT", "99999", "a whole number from 1 to 65535; found int 99999"),
        ("OPA_LOG_LEVEL", "bogus", "ERROR, CRITICAL; found str 'bogus'"),
        ("OPA_COMPONENT_TIMEOUT", "abc", "seconds above 0 and at most 3600; found str 'abc'"),
        ("OPA_HEALTH_TIMEOUT", "[1,2]", "seconds above 0 and at most 3600; found list"),
        ("OPA_HEALTH_TIMEOUT", "-1", "seconds above 0 and at most 3600; found int -1"),
        ("OPA_DOCS_URL", "nosl", "or empty to turn it off; found str 'nosl'"),
        ("OPA_SECRET_KEY", "1234567890", "as in '@str 0123...'); found int"),
    ],
)
def test_a_bad_top_level_setting_ends_every_command_with_one_line(
    tmp_path: Path, command: str, variable: str, value: str, expected: str
) -> None:
    """The issue's hostile variables end each command with status 1 and one error line."""
    runner = CliRunner()
    env = {"OPA_SETTINGS_DIR": None, "OPA_ENV": None, "OPA_LOG_LEVEL": None, "ENV": None}
    folder = project(tmp_path, {})
    result = runner.invoke(
        cli, ["--settings-dir", str(folder), command], env={**env, variable: value}
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: setting {variable[4:]} ({variable}): expected ")
    assert lines[0].endswith(expected)
    assert "1234567890" not in result.output


def test_shell_has_connected_components(tmp_path: Path, listener: int) -> None:
    """`opa shell` offers get_instance with sync components connected, and config."""
    if importlib.util.find_spec("IPython") is not None:
        pytest.skip("IPython is installed; this test drives the plain console")
    lines = "print(type(get_instance('probe')).__name__, config.PROJECT_NAME)\n"
    result = invoke(project(tmp_path, {"probe": probe(listener)}), "shell", input=lines)
    assert result.exit_code == 0, result.output
    assert "socket opa" in result.stdout


def start_server(folder: Path) -> subprocess.Popen[str]:
    """``python -m opa run`` on port 0 in a subprocess, output captured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPA_") and k != "ENV"}
    command = [sys.executable, "-m", "opa", "--settings-dir", str(folder), "run"]
    return subprocess.Popen(
        [*command, "--port", "0", "--no-reload"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_run_serves_a_plugin_route(tmp_path: Path, listener: int) -> None:
    """`opa run` serves the plugin's /hello with its LOAD: yes component connected."""
    server = start_server(project(tmp_path, {"probe": probe(listener)}))
    try:
        port = bound_port(server, "opa run", 30)
        deadline, response = time.monotonic() + 30, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/hello", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response is not None, f"server did not answer (exit {server.poll()})"
        assert response.status_code == 200
        assert response.json() == "hello from the plugin"
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
        assert health["components"]["probe"]["status"] == "ok"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=15)
    assert server.returncode == 0, output  # SIGTERM is a clean shutdown on request
    assert PASSWORD not in output


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_run_refuses_a_port_out_of_range_as_a_usage_error(tmp_path: Path, port: str) -> None:
    """`opa run --port 99999` is click's usage error (status 2) before anything loads."""
    result = invoke(project(tmp_path, {"probe": probe(free_port())}), "run", "--port", port)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--port': {port} is not in the range 0<=x<=65535" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_run_exits_non_zero_when_a_required_component_is_down(tmp_path: Path) -> None:
    """`opa run` ends with one masked `error:` line and status 1 when a LOAD: yes component
    cannot connect."""
    server = start_server(project(tmp_path, {"probe": probe(free_port())}))
    try:
        output, _ = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 1, output
    assert output.strip().splitlines()[-1].startswith("error: opa start-up failed: "), output
    assert "component 'probe' (tcp://probe:***@127.0.0.1" in output
    assert "pre-check failed" in output
    assert "Traceback" not in output
    assert PASSWORD not in output


@pytest.mark.parametrize(
    "args",
    [["no-such-command"], ["run", "--port", "abc"], ["config", "--yaml"], ["--log-level", "loud"]],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    """A mistake in the command line itself is click's usage error: status 2."""
    result = invoke(project(tmp_path, {}), *args)
    assert result.exit_code == 2
    assert "Usage: " in result.stderr


def machine_free_environment(**variables: str) -> dict[str, str]:
    """This process's environment without opa's variables, plus *variables*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPA_") and k != "ENV"}
    return {**env, "OPA_SETTINGS_DIR": "/nonexistent", **variables}


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        (
            "OPA_HEALTH_TIMEOUT",
            "[1,2]",
            "error: setting HEALTH_TIMEOUT (OPA_HEALTH_TIMEOUT): expected a number of seconds "
            "above 0 and at most 3600; found list",
        ),
        (
            "OPA_SECRET_KEY",
            "123456789",
            "error: setting SECRET_KEY (OPA_SECRET_KEY): expected a string (digits alone are "
            "read as a number: prefix them with @str, as in '@str 0123...'); found int",
        ),
    ],
)
def test_uvicorn_opa_main_ends_a_bad_setting_with_one_line(
    tmp_path: Path, variable: str, value: str, line: str
) -> None:
    """`uvicorn opa.main:app` with a bad setting prints one error line and exits 1."""
    command = [sys.executable, "-m", "uvicorn", "opa.main:app", "--port", str(free_port())]
    done = subprocess.run(
        command,
        env=machine_free_environment(**{variable: value}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [line]
    assert done.stdout == ""
