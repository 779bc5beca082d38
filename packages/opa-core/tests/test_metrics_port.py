"""Metrics on a port of their own (METRICS_PORT, METRICS_HOST), the checks of the
multiprocess folder (PROMETHEUS_MULTIPROC_DIR), and a worker's metrics
(opa.serve_worker_metrics), in this process."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, values
from prometheus_client.parser import text_string_to_metric_families

import opa._metrics_folder
from opa import serve_worker_metrics
from opa._cli import cli
from opa._config import load_settings, typed
from opa._errors import ConfigError
from opa._metrics_folder import FOLDER_VARIABLE, MetricsFolder
from support import free_port, listening_port, make_app, write_plugin
from test_metrics import LOCAL, ROUTES

ITEM = {"method": "GET", "route": "/items/{item_id}", "status": "200"}


def scrape(port: int, path: str = "/metrics", host: str = "127.0.0.1") -> httpx.Response:
    return httpx.get(f"http://{host}:{port}{path}", timeout=10)


def item_count(text: str) -> float:
    """How many item requests the page counts (0 when it has none yet)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "opa_http_requests_total" and sample.labels == ITEM:
                return sample.value
    return 0.0


@pytest.fixture
def items(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    write_plugin(folder, f"port_items_{tmp_path.name[-12:].replace('-', '_')}", ROUTES)
    return folder


@pytest.fixture
def no_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FOLDER_VARIABLE, raising=False)


def test_metrics_port_serves_them_there_and_the_app_has_no_metrics_route(items: Path) -> None:
    """With METRICS_PORT the metrics answer on that port (METRICS_PATH) while the app
    serves, the app's own port has no /metrics, and the port closes at shutdown."""
    port = free_port()
    app = make_app(PLUGIN_PATHS=[str(items)], METRICS=True, METRICS_PORT=port)
    with TestClient(app, client=LOCAL) as client:
        before = item_count(scrape(port).text)
        assert client.get("/items/1").status_code == 200
        assert client.get("/items/2").status_code == 200
        assert client.get("/metrics").status_code == 404
        page = scrape(port)
        elsewhere = scrape(port, "/items/1")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    assert item_count(page.text) - before == 2
    assert elsewhere.status_code == 404
    with pytest.raises(httpx.ConnectError):
        scrape(port)


def test_the_metrics_port_answers_403_to_clients_outside_metrics_allow() -> None:
    """METRICS_ALLOW holds on the port of their own too: loopback outside it gets 403."""
    port = free_port()
    app = make_app(METRICS=True, METRICS_PORT=port, METRICS_ALLOW=["10.0.0.0/8"])
    with TestClient(app, client=LOCAL):
        response = scrape(port)
    assert response.status_code == 403
    assert "opa_" not in response.text


def test_metrics_host_binds_an_ipv6_address() -> None:
    """METRICS_HOST ::1 serves the metrics on IPv6 loopback, which METRICS_ALLOW allows."""
    port = free_port()
    with TestClient(make_app(METRICS=True, METRICS_PORT=port, METRICS_HOST="::1"), client=LOCAL):
        response = scrape(port, host="[::1]")
    assert response.status_code == 200
    assert "opa_http_requests_total" in response.text


def test_a_metrics_port_in_use_stops_start_up_naming_the_setting() -> None:
    """A METRICS_PORT another socket holds is a start-up error naming the setting."""
    with listening_port() as port:
        app = make_app(METRICS=True, METRICS_PORT=port)
        with pytest.raises(ConfigError) as error, TestClient(app, client=LOCAL):
            pass
    assert str(error.value) == (
        f"setting METRICS_PORT ({port}) cannot be bound on METRICS_HOST 127.0.0.1: "
        "Address already in use; pick a free port (OPA_METRICS_PORT)"
    )


def test_metrics_port_equal_to_port_is_refused() -> None:
    """METRICS_PORT cannot be the app's own PORT: one line saying so."""
    with pytest.raises(ConfigError) as error:
        make_app(METRICS=True, PORT=8100, METRICS_PORT=8100)
    assert str(error.value) == (
        "setting METRICS_PORT (8100) is the app's own PORT; pick another port, or null to "
        "serve the metrics at METRICS_PATH on the app's port (OPA_METRICS_PORT)"
    )


def test_an_empty_metrics_port_variable_turns_the_port_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_METRICS_PORT= (empty) reads as null, as a number reads as that port."""
    monkeypatch.setenv("OPA_METRICS_PORT", "")
    assert typed(load_settings(settings_dir=tmp_path)).METRICS_PORT is None
    monkeypatch.setenv("OPA_METRICS_PORT", "9100")
    assert typed(load_settings(settings_dir=tmp_path)).METRICS_PORT == 9100


def test_opa_run_refuses_a_port_that_is_metrics_port(tmp_path: Path) -> None:
    """`opa run --port N` with METRICS_PORT N is one error line before anything binds."""
    (tmp_path / "settings.yaml").write_text("default:\n  METRICS: true\n  METRICS_PORT: 9100\n")
    env = {"OPA_SETTINGS_DIR": None, "OPA_ENV": None, "OPA_LOG_LEVEL": None, "ENV": None}
    args = ["--settings-dir", str(tmp_path), "run", "--no-reload", "--port", "9100"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        "error: --port 9100 is METRICS_PORT too; serve the app on another port, or set "
        "METRICS_PORT to another one (OPA_METRICS_PORT)"
    ]


def bad_folder(tmp_path: Path, kind: str) -> tuple[str, str]:
    """A PROMETHEUS_MULTIPROC_DIR value of *kind*, and what the message says of it."""
    if kind == "empty":
        return "", "is set but empty"
    if kind == "missing":
        value = str(tmp_path / "no-such-folder")
        return value, f"names {value!r}, which does not exist"
    value = str(tmp_path / "a-file")
    Path(value).write_text("")
    return value, f"names {value!r}, which is not a folder"


@pytest.mark.parametrize("kind", ["empty", "missing", "file"])
def test_a_bad_multiprocess_folder_is_one_line_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """PROMETHEUS_MULTIPROC_DIR set to no usable folder stops METRICS with one line."""
    value, problem = bad_folder(tmp_path, kind)
    monkeypatch.setenv(FOLDER_VARIABLE, value)
    with pytest.raises(ConfigError) as error:
        make_app(METRICS=True)
    assert str(error.value) == (
        f"environment variable PROMETHEUS_MULTIPROC_DIR {problem}; with METRICS on it must "
        "name an existing folder opa can write to (each process writes its metrics there), "
        "or be unset"
    )


def test_a_multiprocess_folder_this_process_cannot_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder without write permission for this process is named as such (root writes
    anywhere, so the permission check itself is made to say no)."""
    monkeypatch.setenv(FOLDER_VARIABLE, str(tmp_path))
    monkeypatch.setattr(opa._metrics_folder.os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError) as error:
        make_app(METRICS=True)
    assert f"names {str(tmp_path)!r}, which this process cannot write to;" in str(error.value)


def test_a_folder_made_for_a_group_of_processes_is_private_and_removed(no_folder: None) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR, a private folder is made and named in the
    environment for the processes to come, and removed with the variable at the end."""
    folder = MetricsFolder()
    path = Path(folder.path)
    try:
        assert folder.owned
        assert os.environ[FOLDER_VARIABLE] == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    finally:
        folder.close()
    assert not path.exists()
    assert FOLDER_VARIABLE not in os.environ


def test_a_folder_the_user_named_is_used_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROMETHEUS_MULTIPROC_DIR naming a folder: that folder is used, and left in place."""
    monkeypatch.setenv(FOLDER_VARIABLE, str(tmp_path))
    folder = MetricsFolder()
    folder.close()
    assert not folder.owned and folder.path == str(tmp_path)
    assert tmp_path.is_dir() and os.environ[FOLDER_VARIABLE] == str(tmp_path)


def test_worker_metrics_are_off_without_the_setting() -> None:
    """serve_worker_metrics does nothing with METRICS off."""
    assert serve_worker_metrics(make_app().state.opa) is None


def test_worker_metrics_serve_the_folder_on_the_worker_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client_values: Any
) -> None:
    """With METRICS on, the worker's port serves what the multiprocess folder holds, for
    METRICS_ALLOW only, until closed; the user's folder stays."""
    monkeypatch.setenv(FOLDER_VARIABLE, str(tmp_path))
    port = free_port()
    manager = make_app(METRICS=True, METRICS_WORKER_PORT=port).state.opa
    exported = serve_worker_metrics(manager)
    assert exported is not None
    try:
        response = scrape(port)
    finally:
        exported.close()
    assert response.status_code == 200
    assert "process_cpu_seconds_total" not in response.text  # the folder's page, not ours
    assert tmp_path.is_dir()
    with pytest.raises(httpx.ConnectError):
        scrape(port)


@pytest.fixture
def client_values(monkeypatch: pytest.MonkeyPatch) -> Any:
    """prometheus-client's values module, whatever a test switches there put back after."""
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    return values


def test_worker_metrics_switch_a_client_already_imported_to_the_folder(
    no_folder: None, client_values: Any
) -> None:
    """prometheus-client imported before the worker set its folder (as in this test process,
    and in Celery's command line, which loads Flower's): metrics made afterwards write to the
    folder the worker made, which goes when it closes."""
    assert client_values.ValueClass is client_values.MutexValue
    port = free_port()
    exported = serve_worker_metrics(make_app(METRICS=True, METRICS_WORKER_PORT=port).state.opa)
    assert exported is not None
    folder = Path(os.environ[FOLDER_VARIABLE])
    try:
        registry = CollectorRegistry()
        Counter("opa_test_switched", "A counter made after the switch.", registry=registry).inc()
        written = [path.name for path in folder.glob("*.db")]
        page = scrape(port).text
    finally:
        exported.close()
    assert written == [f"counter_{os.getpid()}.db"]
    assert "opa_test_switched_total 1.0" in page
    assert not folder.exists()


def test_worker_metrics_refuse_a_client_that_cannot_be_switched(
    no_folder: None, client_values: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prometheus-client release without what the switch relies on is one line asking
    for the folder to be set before the worker starts, and no folder is left behind."""
    monkeypatch.delattr(client_values, "get_value_class")
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("opa-metrics-*"))
    with pytest.raises(ConfigError) as error:
        serve_worker_metrics(make_app(METRICS=True, METRICS_WORKER_PORT=free_port()).state.opa)
    assert str(error.value) == (
        "setting METRICS is on, but prometheus-client was imported before the worker could "
        "set PROMETHEUS_MULTIPROC_DIR, and this release of it cannot be switched to the folder "
        "afterwards; set PROMETHEUS_MULTIPROC_DIR to an empty folder before starting the worker"
    )
    assert set(temp.glob("opa-metrics-*")) <= before  # none new (an abandoned one may go)
    assert FOLDER_VARIABLE not in os.environ
