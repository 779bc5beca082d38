"""A plugin never takes the place of a module that the server or a library imports later."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from opa.discovery import discover, import_candidate
from opa.errors import PluginError
from support import make_app, write_plugin


@pytest.mark.parametrize(
    ("name", "shadowed"),
    [
        ("json", "the standard library"),
        ("h11", "the distribution h11"),
        ("yaml", "the distribution PyYAML"),  # an import name unlike its distribution's
        ("httptools", "an optional module of uvicorn"),  # not installed here, imported if present
    ],
)
def test_a_plugin_named_like_an_importable_module_is_refused(
    tmp_path: Path, name: str, shadowed: str
) -> None:
    """A plugin file named like a stdlib, installed or server module is refused, naming both."""
    plugin = write_plugin(tmp_path / "plugins", name, "VALUE = 'plugin'\n")
    before = sys.modules.get(name)
    with pytest.raises(PluginError) as refused:
        make_app(PLUGIN_PATHS=[str(tmp_path / "plugins")])
    message = str(refused.value)
    assert str(plugin) in message
    assert f"'{name}' of {shadowed}" in message
    assert "rename the plugin" in message
    assert "\n" not in message
    assert sys.modules.get(name) is before


def test_a_plugin_of_another_name_still_loads(tmp_path: Path) -> None:
    """A name no module of the environment uses is loaded as before."""
    write_plugin(tmp_path / "plugins", "opa_unshadowed_plugin", "VALUE = 'plugin'\n")
    app = make_app(PLUGIN_PATHS=[str(tmp_path / "plugins")])
    assert [p.identity for p in app.state.opa.plugins] == [
        f"{tmp_path / 'plugins'}/opa_unshadowed_plugin"
    ]


def test_the_same_file_reached_through_sys_path_is_not_a_shadow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin installed where sys.path finds it (an editable install) is the plugin itself."""
    from fake_distributions import make_distribution

    site = tmp_path / "site"
    make_distribution(
        site,
        "acme-opa-plugin",
        "1.0",
        {"opa.plugins": {"acme": "acme_shadow_plugin"}},
        {"acme_shadow_plugin": "MARK = 'installed'\n"},
    )
    monkeypatch.syspath_prepend(str(site))
    (candidate,) = discover([site])
    try:
        assert import_candidate(candidate).MARK == "installed"
        assert import_candidate(candidate) is sys.modules["acme_shadow_plugin"]
    finally:
        sys.modules.pop("acme_shadow_plugin", None)


def test_the_same_plugin_loaded_twice_is_not_a_shadow(tmp_path: Path) -> None:
    """A plugin already imported from its own file is reused, not refused as a clash."""
    write_plugin(tmp_path / "plugins", "opa_twice_plugin", "VALUE = 'plugin'\n")
    for _ in range(2):
        make_app(PLUGIN_PATHS=[str(tmp_path / "plugins")])


@pytest.mark.parametrize(("name", "shadowed"), [("h11", "h11"), ("httptools", "uvicorn")])
def test_opa_run_with_a_shadowing_plugin_exits_with_one_line(
    tmp_path: Path, name: str, shadowed: str
) -> None:
    """`opa run` with a plugin named like a server module ends with one error line, status 1."""
    write_plugin(tmp_path / "plugins", name, "VALUE = 'plugin'\n")
    settings = {"PLUGIN_PATHS": [str(tmp_path / "plugins")], "OPTIONAL_COMPONENTS": {}}
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "settings.yaml").write_text(yaml.safe_dump({"default": settings}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPA_") and k != "ENV"}
    env["OPA_PLUGIN_ENTRY_POINTS"] = "false"
    command = [sys.executable, "-m", "opa.cli", "--settings-dir", str(tmp_path / "settings")]
    run = subprocess.run(
        [*command, "run", "--port", "0", "--no-reload"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: plugin {tmp_path / 'plugins'}/{name} ")
    assert shadowed in lines[0]
