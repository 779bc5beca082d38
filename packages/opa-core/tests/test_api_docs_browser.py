"""Headless Chromium renders the self-hosted Swagger UI of a running app, with no network."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opa.testing import bound_port, skip_or_fail
from support import write_plugin

PLUGIN = """
from opa import get_router

router = get_router()

@router.get('/inventory/{item_id}', summary='Read one inventory item')
def read_item(item_id: int):
    return {'item_id': item_id}

@router.post('/inventory', summary='Add an inventory item')
def add_item(name: str):
    return {'name': name}
"""

# The app module uvicorn serves: an isolated opa app with the plugin folder above.
APP_MODULE = """
from opa.testing import build_app

app = build_app({{"PLUGIN_PATHS": [{plugins!r}]}})
"""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Every host but the app's fails to resolve, so a CDN asset could not load at all.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=10000",
]
SERVER_START_SECONDS = 30
CHROMIUM_SECONDS = 90


def chromium_or_skip() -> str:
    """The Chromium binary; without one, skip (or fail under CI)."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    if found is None:
        skip_or_fail("chromium is not installed (apt-get install -y chromium)")
    return found


@pytest.fixture
def docs_server(tmp_path: Path) -> Iterator[str]:
    """A uvicorn subprocess serving an opa app with a plugin's routes; yields its base URL."""
    write_plugin(tmp_path / "plugins", "inventory", PLUGIN)
    (tmp_path / "docs_app.py").write_text(
        APP_MODULE.format(plugins=str(tmp_path / "plugins")), encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPA_") and k != "ENV"}
    command = [sys.executable, "-m", "uvicorn", "docs_app:app", "--app-dir", str(tmp_path)]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0", "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{bound_port(server, 'uvicorn', SERVER_START_SECONDS)}"
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            try:
                if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the app did not start (exit {server.poll()})")
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            output, _ = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate(timeout=5)
        if output:
            print(output)


def run_chromium(binary: str, profile: Path, *args: str) -> str:
    """Run headless Chromium with its own profile folder, bounded in time; return stdout."""
    browser = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = browser.communicate(timeout=CHROMIUM_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within {CHROMIUM_SECONDS} s: {args}")
    finally:
        # Chromium's helper processes share its session; none may outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(browser.pid, signal.SIGKILL)
        browser.wait(timeout=5)
    assert browser.returncode == 0, stderr[-2000:]
    return stdout


def test_chromium_renders_the_plugins_operations(docs_server: str, tmp_path: Path) -> None:
    """/docs in Chromium shows the plugin's operations, offline, and leaves a screenshot."""
    chromium = chromium_or_skip()
    dom = run_chromium(chromium, tmp_path / "profile-dom", "--dump-dom", f"{docs_server}/docs")
    assert 'id="swagger-ui"' in dom
    assert dom.count('class="opblock ') >= 2, dom[-3000:]
    assert 'data-path="/inventory/{item_id}"' in dom
    assert 'data-path="/inventory"' in dom
    assert "Read one inventory item" in dom
    assert "Add an inventory item" in dom

    screenshot = tmp_path / "docs.png"
    run_chromium(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        "--window-size=1280,900",
        f"{docs_server}/docs",
    )
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # A blank 1280x900 page compresses to a few kilobytes; the rendered UI is far larger.
    assert screenshot.stat().st_size > 20_000
