"""One bootstrap: a plugin reading ``opa.config`` at import sees the same settings everywhere.

The plugin records, while it is imported, ``opa.config.BOOTSTRAP_MARK`` and the same key of
the active plugin manager's settings (None when no manager is active yet, the sign of a
separately loaded fallback). Every entry must show the mark twice: ``opa run`` (read back
through a route), ``opa shell`` (stdin), ``opa worker`` and ``celery -A opa.worker`` (the
plugin writes a file), ``opa check`` and ``opa.testing.build_app``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faults import OpaRun, write_settings

from opa.testing import build_app

RECORDING_PLUGIN = '''"""Records what opa.config holds while this module is imported."""

import json
from pathlib import Path

import opa


def _active_mark():
    try:
        return opa.get_plugin_manager().settings.BOOTSTRAP_MARK
    except opa.OpaError:
        return None


SEEN = {"config": opa.config.BOOTSTRAP_MARK, "active": _active_mark()}
with Path(opa.config.BOOTSTRAP_RECORD).open("a") as record:
    record.write(json.dumps(SEEN) + "\\n")

router = opa.get_router()


@router.get("/bootstrap-seen")
def seen() -> dict:
    return SEEN
'''

TIMEOUT = 60.0


class Project:
    """A settings folder naming a fresh mark, and a plugin folder with the recording plugin."""

    def __init__(self, root: Path, **settings: Any) -> None:
        self.root = root
        self.mark = f"mark-{uuid.uuid4().hex[:12]}"
        self.record = root / "record.jsonl"
        plugins = root / "plugins"
        plugins.mkdir()
        (plugins / f"records_config_{uuid.uuid4().hex[:10]}.py").write_text(RECORDING_PLUGIN)
        self.values: dict[str, Any] = {
            "PLUGIN_PATHS": [str(plugins)],
            "OPTIONAL_COMPONENTS": {},
            "BOOTSTRAP_MARK": self.mark,
            "BOOTSTRAP_RECORD": str(self.record),
            **settings,
        }
        self.settings_dir = write_settings(root / "settings", self.values)

    def environ(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.upper().startswith(("OPA_", "DYNACONF_")) and name.upper() != "ENV"
        }
        return {**env, "OPA_SETTINGS_DIR": str(self.settings_dir), "PYTHONUNBUFFERED": "1"}

    def seen(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def assert_seen_everywhere(self) -> None:
        seen = self.seen()
        assert seen, "the plugin was never imported"
        assert seen == [{"config": self.mark, "active": self.mark}] * len(seen)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def opa_command(project: Project, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opa", *args],
        input=stdin,
        env=project.environ(),
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_opa_run_plugins_see_the_served_settings(project: Project, opa_runs: list[OpaRun]) -> None:
    """Under `opa run`, the plugin saw the settings at import, as its route reports."""
    run = OpaRun(project.settings_dir, project.root / "run.log", project.environ())
    opa_runs.append(run)
    run.wait_serving()
    url = f"http://127.0.0.1:{run.port}/bootstrap-seen"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert json.load(response) == {"config": project.mark, "active": project.mark}
    project.assert_seen_everywhere()


def test_opa_shell_plugins_see_the_shell_settings(project: Project) -> None:
    """Under `opa shell`, the plugin and the shell's `config` hold the same settings."""
    done = opa_command(project, "shell", stdin="print('shell sees', config.BOOTSTRAP_MARK)\n")
    assert done.returncode == 0, done.stderr
    assert f"shell sees {project.mark}" in done.stdout
    project.assert_seen_everywhere()


def test_opa_check_plugins_see_the_settings(project: Project) -> None:
    """Under `opa check`, the plugin saw the settings at import."""
    done = opa_command(project, "check")
    assert done.returncode == 0, done.stderr
    project.assert_seen_everywhere()


def test_build_app_plugins_see_its_settings(tmp_path: Path) -> None:
    """Under `opa.testing.build_app`, the plugin saw the settings given to it at import,
    which no environment variable or settings file holds."""
    project = Project(tmp_path)
    app = build_app(project.values)
    with TestClient(app) as client:
        assert client.get("/bootstrap-seen").json() == {
            "config": project.mark,
            "active": project.mark,
        }
    project.assert_seen_everywhere()


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.mark.parametrize(
    "launcher",
    [["-m", "opa", "worker"], ["-m", "celery", "-A", "opa.worker", "worker"]],
    ids=["opa worker", "celery -A opa.worker"],
)
def test_worker_plugins_see_the_worker_settings(
    tmp_path: Path, launcher: list[str], worker_processes: list[subprocess.Popen[str]]
) -> None:
    """Under a Celery worker (SQLite broker, no server), the plugin saw the settings."""
    pytest.importorskip("opa_driver_celery")
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    celery = {"LOAD": "yes", "DRIVER": "celery", "OPTS": {"BROKER_URL": broker}}
    project = Project(tmp_path, OPTIONAL_COMPONENTS={"celery": celery})
    log = tmp_path / "worker.log"
    args = ["-l", "info", "-c", "1", "-P", "solo", "-n", f"boot-{uuid.uuid4().hex[:8]}@%h"]
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, *launcher, *args],
            env=project.environ(),
            cwd=project.root,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    worker_processes.append(process)
    deadline = time.monotonic() + TIMEOUT
    while "ready." not in log.read_text(errors="replace"):
        assert process.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the worker never got ready:\n{log.read_text()}"
        time.sleep(0.1)
    project.assert_seen_everywhere()
