"""What opa-driver-celery adds through opa's extension points (``opa.extensions``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import opa
from celery_support import PLUGINS, Run, celery_component
from opa_driver_celery import CeleryDriver, worker

ROUTING_HOOK = """
from opa import Hook

class Routing(Hook):
    name = "driver.celery.setup"

    def run(self, app):
        app.conf.task_routes = {"jobs.tasks.add": {"queue": "adding"}}
        return app
"""


def settings(celery: dict[str, Any], *paths: Path) -> dict[str, Any]:
    return {
        "PLUGIN_PATHS": [str(PLUGINS), *(str(p) for p in paths)],
        "PLUGIN_ENTRY_POINTS": True,
        "OPTIONAL_COMPONENTS": {"celery": celery},
    }


def python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_the_extension_module_imports_no_celery() -> None:
    """Loading the extension (as every `opa` command does) leaves Celery unimported."""
    code = "import sys, opa_driver_celery.extension; print('celery' in sys.modules)"
    assert python(code).strip() == "False"


def test_opa_help_lists_the_worker_command_this_distribution_adds() -> None:
    """`opa --help` lists `worker` with the help of the command this extension adds."""
    done = subprocess.run(
        [sys.executable, "-m", "opa", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    [line] = [
        line.split() for line in done.stdout.splitlines() if line.strip().startswith("worker")
    ]
    assert line[:4] == ["worker", "A", "Celery", "worker"]


def test_opa_worker_hands_its_arguments_and_celerys_status_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`opa worker ARGS` passes every argument, unknown options included, to Celery's worker
    and exits with the status Celery returned."""
    from click.testing import CliRunner

    seen: list[list[str]] = []

    class FakeApp:
        def start(self, argv: list[str]) -> int:
            seen.append(argv)
            return 64

    monkeypatch.setattr(worker, "worker_app", lambda manager=None: FakeApp())
    result = CliRunner().invoke(worker.worker, ["-Q", "jobs", "--help"])
    assert result.exit_code == 64, result.output
    assert seen == [["worker", "-Q", "jobs", "--help"]]


def test_connect_only_builds_the_app_and_configure_runs_the_setup_hook(
    tmp_path: Path, rabbitmq_url: str, run: Run
) -> None:
    """Connecting leaves the app as OPTS built it; `configure` passes it through the plugins'
    driver.celery.setup hook, which `connect` no longer calls."""
    (tmp_path / "routing_hook.py").write_text(ROUTING_HOOK)
    celery = celery_component(rabbitmq_url, None, run)
    manager = opa.bootstrap(settings(celery, tmp_path), settings_dir=tmp_path / "none")
    driver = manager.components.get("celery").driver
    assert isinstance(driver, CeleryDriver)
    driver.connect()
    try:
        assert driver.instance.conf.task_routes is None
        driver.configure(manager)
        assert driver.instance.conf.task_routes == {"jobs.tasks.add": {"queue": "adding"}}
    finally:
        driver.disconnect()


def test_a_worker_bootstrap_runs_the_setup_hook_and_loads_the_tasks(
    tmp_path: Path, rabbitmq_url: str, run: Run
) -> None:
    """`opa.bootstrap(connect_sync=True)` (worker, shell) connects the celery component, runs
    the setup hook and imports the plugins' tasks through `opa_worker_setup`."""
    (tmp_path / "routing_hook.py").write_text(ROUTING_HOOK)
    celery = celery_component(rabbitmq_url, None, run)
    manager = opa.bootstrap(
        settings(celery, tmp_path), settings_dir=tmp_path / "none", connect_sync=True
    )
    try:
        app = opa.get_instance("celery")
        assert app.conf.task_routes == {"jobs.tasks.add": {"queue": "adding"}}
        assert "jobs.tasks.add" in app.tasks
    finally:
        manager.components.stop_sync()
