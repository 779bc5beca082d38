"""Item 3 of issue 7: a password in every component's URL reaches no output opa produces.

A private Redis that wants a password serves the components that must connect, so the
password is really used; the MongoDB components point at a closed port (LOAD: auto, so
skipped); a LOAD: yes component whose password the shared Redis refuses fails start-up.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from opa.cli import cli
from opa.log import setup_logging
from opa.testing import build_app
from opa.testing.fixtures import skip_or_fail
from opa.testing.services import LOCALHOST, RedisServer, ServiceUnavailable, free_port

# One password per run, so a hit can only come from this test's configuration.
PASSWORD = f"pw{uuid.uuid4().hex}"

BOOM_PLUGIN = '''"""Raises an exception whose message holds a URL with the password."""

from opa import config, get_router

router = get_router()


@router.get("/boom")
def boom() -> None:
    """Fail the way a driver error naming its URL would."""
    raise RuntimeError(f"cannot reach {config.LEAKY_URL}")
'''


@pytest.fixture(scope="module")
def redis_with_password() -> Iterator[int]:
    """A private redis-server that requires PASSWORD; yields its port."""
    server = RedisServer(args=["--requirepass", PASSWORD])
    try:
        try:
            server.start()
        except ServiceUnavailable as error:
            skip_or_fail(str(error))
        yield server.port
    finally:
        server.close()


def components(auth_port: int, closed_port: int) -> dict[str, Any]:
    """Every component, each with the password in its URL; the app starts with all of them."""
    with_auth = f"redis://:{PASSWORD}@{LOCALHOST}:{auth_port}"
    mongodb = f"mongodb://opa:{PASSWORD}@{LOCALHOST}:{closed_port}/secrets"
    return {
        "WALRUS": {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {"URL": f"{with_auth}/0"}},
        "AIOREDIS": {
            "LOAD": "yes",
            "DRIVER": "redis-aioredis",
            "OPTS": {"URL": f"redis://default:{PASSWORD}@{LOCALHOST}:{auth_port}/0"},
        },
        "CELERY": {
            "LOAD": "yes",
            "DRIVER": "celery",
            "OPTS": {
                "BROKER_URL": f"{with_auth}/1",
                "BACKEND_URL": f"{with_auth}/2",
                "APP_NAME": f"secrets-{PASSWORD[-8:]}",
            },
        },
        "MONGODB": {"LOAD": "auto", "DRIVER": "mongodb-async-motor", "OPTS": {"URL": mongodb}},
        "MONGODB_PYMONGO": {
            "LOAD": "auto",
            "DRIVER": "mongodb-async-pymongo",
            "OPTS": {"URL": mongodb},
        },
        # Unreachable under auto: skipped, and the skip is logged with its (masked) target.
        "WALRUS_CLOSED": {
            "LOAD": "auto",
            "DRIVER": "redis-walrus",
            "OPTS": {"URL": f"redis://:{PASSWORD}@{LOCALHOST}:{closed_port}/0"},
        },
    }


def failing_component(redis_url: str) -> dict[str, Any]:
    """A LOAD: yes component whose password the shared Redis (which has none) refuses."""
    url = redis_url.replace("redis://", f"redis://:{PASSWORD}@", 1)
    return {"WALRUS_REFUSED": {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {"URL": url}}}


def settings(plugin_dir: Path, optional_components: dict[str, Any]) -> dict[str, Any]:
    return {
        "DEBUG": True,
        "LOG_LEVEL": "DEBUG",
        "PLUGIN_PATHS": [str(plugin_dir)],
        "PLUGIN_ENTRY_POINTS": True,
        "LEAKY_URL": f"redis://:{PASSWORD}@{LOCALHOST}:6379/0",
        "OPTIONAL_COMPONENTS": optional_components,
    }


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"boom_{uuid.uuid4().hex[:8]}.py").write_text(BOOM_PLUGIN)
    return folder


def run_cli(settings_dir: Path, *args: str) -> str:
    """One `opa` command in-process; its stdout, stderr and exit status as one text."""
    env = {"OPA_SETTINGS_DIR": str(settings_dir), "OPA_ENV": None, "ENV": None}
    env["OPA_LOG_LEVEL"] = "DEBUG"
    result = CliRunner().invoke(cli, list(args), env=env)
    text = f"$ opa {' '.join(args)} -> {result.exit_code}\n{result.output}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += f"\n{type(result.exception).__name__}: {result.exception}"
    return text


def write_settings(folder: Path, values: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "settings.yaml").write_text(yaml.safe_dump({"default": values}))
    return folder


def test_password_in_every_url_appears_in_no_output(
    redis_with_password: int,
    redis_url: str,
    plugin_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No log line, CLI output, /health, /openapi.json or start-up error shows a URL password."""
    closed = free_port()
    good = components(redis_with_password, closed)
    outputs: dict[str, str] = {}
    logs = io.StringIO()

    # The app with every component: three connect with the password, three are skipped.
    app = build_app(settings(plugin_dir, good))
    setup_logging("DEBUG", stream=logs)
    with TestClient(app, raise_server_exceptions=False) as client:
        health = client.get("/health")
        outputs["/health"] = health.text
        outputs["/openapi.json"] = client.get("/openapi.json").text
        error = client.get("/boom", headers={"accept": "application/json"})
        assert error.status_code == 500
    statuses = {name: entry["status"] for name, entry in health.json()["components"].items()}
    assert statuses["walrus"] == statuses["aioredis"] == statuses["celery"] == "ok", statuses
    assert statuses["mongodb"] == statuses["mongodb_pymongo"] == "skipped", statuses

    # A LOAD: yes component that fails with the password in its URL stops start-up.
    failing = {**good, **failing_component(redis_url)}
    broken = build_app(settings(plugin_dir, failing))
    setup_logging("DEBUG", stream=logs)
    # Whatever the lifespan raises: its message is what is checked.
    with pytest.raises(Exception) as startup, TestClient(broken):
        pass
    outputs["start-up error"] = f"{type(startup.value).__name__}: {startup.value}"
    assert "walrus_refused" in outputs["start-up error"]

    # The CLI on the same configuration, read from a settings folder.
    folder = write_settings(tmp_path / "settings", settings(plugin_dir, failing))
    for args in (["config"], ["config", "--json"], ["check"], ["drivers"]):
        outputs[f"opa {' '.join(args)}"] = run_cli(folder, *args)
    assert "-> 1" in outputs["opa check"] and "walrus_refused" in outputs["opa check"]
    assert "-> 0" in outputs["opa config --json"]
    json.loads(outputs["opa config --json"].split("\n", 1)[1])

    # `opa run` in its own process: it must exit non-zero, naming the component.
    env = {**os.environ, "OPA_SETTINGS_DIR": str(folder), "OPA_LOG_LEVEL": "DEBUG"}
    env.pop("OPA_ENV", None)
    run = subprocess.run(
        [sys.executable, "-m", "opa.cli", "run", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs["opa run"] = run.stdout + run.stderr
    assert run.returncode != 0 and "walrus_refused" in outputs["opa run"], outputs["opa run"]

    captured = capsys.readouterr()
    outputs["logs"] = logs.getvalue() + captured.out + captured.err
    assert "component 'walrus' connected" in outputs["logs"]
    assert "skipping component 'walrus_closed'" in outputs["logs"]
    leaks = [where for where, text in outputs.items() if PASSWORD in text]
    assert not leaks, f"the password appears in: {', '.join(leaks)}"


@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_debug_error_page_hides_the_password(
    redis_with_password: int, plugin_dir: Path, accept: str
) -> None:
    """With DEBUG on, the traceback page of an exception naming a URL shows no password."""
    app = build_app(settings(plugin_dir, components(redis_with_password, free_port())))
    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get("/boom", headers={"accept": accept})
    assert page.status_code == 500
    assert "cannot reach" in page.text  # it is the debug page, not a bare "Internal Server Error"
    assert PASSWORD not in page.text
