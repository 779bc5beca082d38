"""Behaviour that differed from opa-stack without a word: the environment switch, and the
folders a reloading server watches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from opa._config import load_settings, typed
from opa._serve import reload_dirs
from opa.testing import clean_environ, free_port

ENVIRONMENTS = """
default:
  PROJECT_NAME: from-default
both:
  PROJECT_NAME: from-both
  PROJECT_VERSION: 2.0.0
secret:
  PROJECT_NAME: from-secret
"""


@pytest.mark.parametrize(
    ("variables", "name"),
    [
        ({"ENV": "both", "OPA_ENV": "secret"}, "from-secret"),
        ({"OPA_ENV": "secret"}, "from-secret"),
        ({"ENV": "both"}, "from-both"),
        ({}, "from-default"),
    ],
)
def test_opa_env_wins_over_env_and_its_values_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], name: str
) -> None:
    """As docs/configuration.md says: OPA_ENV, else ENV, else prod; the chosen one's values
    apply, and with both set none of ENV's leaks in."""
    for variable in ("ENV", "OPA_ENV"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    (tmp_path / "environments.yaml").write_text(ENVIRONMENTS)
    settings = load_settings(settings_dir=tmp_path)
    assert name == typed(settings).PROJECT_NAME
    if name == "from-secret":
        assert settings.current_env == "secret"
        assert typed(settings).PROJECT_VERSION == "0.1.0"  # not both's 2.0.0


def test_a_reloading_server_watches_the_plugin_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folders handed to uvicorn's reloader are the current one and each plugin folder."""
    work, plugins, demo = tmp_path / "work", tmp_path / "plugins", tmp_path / "more"
    for folder in (work, plugins, demo):
        folder.mkdir()
    monkeypatch.chdir(work)
    settings = load_settings(
        settings_dir=tmp_path / "none",
        overrides={"PLUGIN_PATHS": [str(plugins), str(demo), str(tmp_path / "missing")]},
    )
    assert reload_dirs(settings) == [str(work), str(plugins), str(demo)]


PLUGIN = """
from opa import get_router

router = get_router()


@router.get("/word")
def word() -> str:
    return "{word}"
"""


def answer(port: int) -> str | None:
    """The body of GET /word, or None while nothing answers."""
    try:
        return str(httpx.get(f"http://127.0.0.1:{port}/word", timeout=2).json())
    except (httpx.TransportError, ValueError):
        return None


def wait_for_word(server: subprocess.Popen[str], port: int, word: str) -> None:
    """Wait (bounded) until the server answers *word*; fail naming what it answered."""
    deadline, last = time.monotonic() + 90, None
    while time.monotonic() < deadline and server.poll() is None:
        last = answer(port)
        if last == word:
            return
        time.sleep(0.2)
    pytest.fail(f"the server answered {last!r}, not {word!r} (exit status {server.poll()})")


def test_editing_a_plugin_outside_the_current_folder_reloads_opa_run(tmp_path: Path) -> None:
    """`opa run --reload` serves a plugin's edit, though the plugin folder is elsewhere."""
    work, plugins = tmp_path / "work", tmp_path / "plugins"
    work.mkdir()
    plugins.mkdir()
    plugin = plugins / "words.py"
    plugin.write_text(PLUGIN.format(word="one"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "opa", "run", "--reload", "--port", str(port)],
        cwd=work,
        env=clean_environ(tmp_path / "no-settings", OPA_PLUGIN_PATHS=str(plugins)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for_word(server, port, "one")
        plugin.write_text(PLUGIN.format(word="two"))
        later = time.time() + 5  # a later modification time, whatever the file system's grain
        os.utime(plugin, (later, later))
        wait_for_word(server, port, "two")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert "Reloading" in output or "changes detected" in output.lower(), output
