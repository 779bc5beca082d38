"""A plugin never takes the place of a module that the server or a library imports later."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from opa._discovery import discover, import_candidate
from opa._errors import PluginError
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


@pytest.mark.parametrize("name", ["uvloop", "websockets"])
@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("PLUGIN_BLACKLIST_LIST", ["the plugin itself"]),
        ("PLUGIN_WHITELIST_LIST", ["/another/plugin"]),
        ("PLUGIN_BLACKLIST_RE", "."),
    ],
)
def test_a_filtered_out_module_in_a_plugin_folder_is_refused(
    tmp_path: Path, name: str, setting: str, value: Any
) -> None:
    """A module the filters leave out is refused too: its folder on sys.path would serve it."""
    folder = tmp_path / "plugins"
    plugin = write_plugin(folder, name, "VALUE = 'plugin'\n")
    if value == ["the plugin itself"]:
        value = [f"{folder}/{name}"]
    with pytest.raises(PluginError) as refused:
        make_app(PLUGIN_PATHS=[str(folder)], **{setting: value})
    message = str(refused.value)
    assert message == (
        f"plugin {folder}/{name} ({plugin}) has the module name '{name}' of an optional "
        "module of uvicorn, which it would shadow; rename the plugin"
    )
    assert str(folder) not in sys.path
    assert importlib.util.find_spec(name) is None


@pytest.mark.parametrize(
    ("name", "kind", "shadowed"),
    [
        ("_strptime", "module", "the standard library"),  # "_" names are never plugins
        ("uvloop", "package", "an optional module of uvicorn"),
        ("uvloop", "bare folder", "an optional module of uvicorn"),  # a namespace package
    ],
)
def test_every_module_in_a_plugin_folder_is_checked(
    tmp_path: Path, name: str, kind: str, shadowed: str
) -> None:
    """Private modules, packages and bare folders are checked; the rest of the folder loads."""
    folder = tmp_path / "plugins"
    write_plugin(folder, "opa_helped_plugin", "VALUE = 'plugin'\n")
    write_plugin(folder, "_opa_helpers", "VALUE = 'helper'\n")
    if kind == "bare folder":
        module = folder / name
        module.mkdir()
    else:
        module = write_plugin(folder, name, "VALUE = 'module'\n", package=kind == "package")
    expected = f"({module}) has the module name '{name}' of {shadowed}, which it would shadow"
    with pytest.raises(PluginError, match=re.escape(expected)):
        make_app(PLUGIN_PATHS=[str(folder)])
    if kind == "module":
        module.unlink()
    else:
        shutil.rmtree(folder / name)
    app = make_app(PLUGIN_PATHS=[str(folder)])
    assert [p.identity for p in app.state.opa.plugins] == [f"{folder}/opa_helped_plugin"]


def test_a_filtered_out_module_of_another_name_leaves_the_app_alone(tmp_path: Path) -> None:
    """A left-out module that shadows nothing, or a data folder, is no error, and not loaded."""
    folder = tmp_path / "plugins"
    write_plugin(folder, "opa_kept_plugin", "VALUE = 'plugin'\n")
    (folder / "json").mkdir()  # a namespace package never wins over the real json
    write_plugin(folder, "opa_left_out_plugin", "raise RuntimeError('imported')\n")
    left_out = [f"{folder}/opa_left_out_plugin"]
    app = make_app(PLUGIN_PATHS=[str(folder)], PLUGIN_BLACKLIST_LIST=left_out)
    assert [p.identity for p in app.state.opa.plugins] == [f"{folder}/opa_kept_plugin"]


def test_a_plugin_named_like_a_module_elsewhere_on_sys_path_names_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clash with a module of no distribution names the module's file."""
    elsewhere = tmp_path / "elsewhere"
    other = write_plugin(elsewhere, "opa_elsewhere_module", "VALUE = 'other'\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    plugin = write_plugin(tmp_path / "plugins", "opa_elsewhere_module", "VALUE = 'plugin'\n")
    with pytest.raises(PluginError) as refused:
        make_app(PLUGIN_PATHS=[str(tmp_path / "plugins")])
    assert str(refused.value) == (
        f"plugin {tmp_path / 'plugins'}/opa_elsewhere_module ({plugin}) has the module name "
        f"'opa_elsewhere_module' of the module at {other}, which it would shadow; "
        "rename the plugin"
    )


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


@pytest.mark.parametrize(
    ("name", "shadowed", "filters"),
    [
        ("h11", "h11", {}),
        ("httptools", "uvicorn", {}),
        ("uvloop", "uvicorn", {"PLUGIN_BLACKLIST_RE": "."}),  # black-listed, still refused
    ],
)
def test_opa_run_with_a_shadowing_plugin_exits_with_one_line(
    tmp_path: Path, name: str, shadowed: str, filters: dict[str, str]
) -> None:
    """`opa run` with a plugin named like a server module ends with one error line, status 1."""
    write_plugin(tmp_path / "plugins", name, "VALUE = 'plugin'\n")
    settings = {"PLUGIN_PATHS": [str(tmp_path / "plugins")], "OPTIONAL_COMPONENTS": {}, **filters}
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "settings.yaml").write_text(yaml.safe_dump({"default": settings}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPA_") and k != "ENV"}
    env["OPA_PLUGIN_ENTRY_POINTS"] = "false"
    command = [sys.executable, "-m", "opa", "--settings-dir", str(tmp_path / "settings")]
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
