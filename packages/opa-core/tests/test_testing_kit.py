"""The test kit: apps isolated from the machine, and test doubles for components."""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi.testclient import TestClient

import opa
import opa._plugin_manager
from opa._errors import ComponentUnavailableError, PluginError
from opa.testing import DriverComplianceSuite, build_app, override_instance
from opa.testing._compliance import DriverComplianceSuite as SuiteItself

# A component a test double can stand in for: configured, never connected.
CACHE = {"CACHE": {"LOAD": "no", "DRIVER": "tcp-echo"}}


def _write_settings(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "settings.yaml").write_text(text)
    return folder


def test_build_app_ignores_the_working_directorys_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_app does not read ./settings from the directory the tests run in."""
    _write_settings(tmp_path / "settings", "default:\n  PROJECT_NAME: from-cwd\n")
    monkeypatch.chdir(tmp_path)
    assert build_app().title == "opa"


def test_build_app_ignores_opa_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPA_* and ENV variables on the developer's machine do not reach build_app's settings."""
    monkeypatch.setenv("OPA_PROJECT_NAME", "from-environment")
    monkeypatch.setenv("ENV", "dev")
    app = build_app()
    assert app.title == "opa"
    assert app.state.opa.settings.DEMO_PLUGINS is False
    assert os.environ["OPA_PROJECT_NAME"] == "from-environment"
    assert os.environ["ENV"] == "dev"


def test_build_app_configures_no_components_by_default() -> None:
    """build_app drops the default OPTIONAL_COMPONENTS, so no test reaches for a backend."""
    assert build_app().state.opa.components.by_name == {}


def test_build_app_skips_plugin_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed opa.plugins entry points are not loaded unless the settings ask for them."""
    broken = EntryPoint(name="broken", value="opa_no_such_module", group="opa.plugins")
    monkeypatch.setattr(opa._plugin_manager, "entry_points", lambda group: [broken])
    build_app()
    with pytest.raises(PluginError, match="broken"):
        build_app({"PLUGIN_ENTRY_POINTS": True})


def test_build_app_uses_the_given_settings(tmp_path: Path) -> None:
    """Explicit settings, settings folder and environment are all honoured."""
    folder = _write_settings(
        tmp_path / "conf", "default:\n  PROJECT_NAME: from-folder\ntesting:\n  DEBUG: true\n"
    )
    app = build_app({"OPTIONAL_COMPONENTS": CACHE}, settings_dir=folder, env="testing")
    assert app.title == "from-folder"
    assert app.state.opa.settings.DEBUG is True
    assert list(app.state.opa.components.by_name) == ["cache"]


def test_override_instance_replaces_and_restores_the_instance() -> None:
    """get_instance returns the double inside the block and the component is unavailable after."""
    build_app({"OPTIONAL_COMPONENTS": CACHE})
    double = object()
    with override_instance("cache", double) as given:
        assert given is double
        assert opa.get_instance("cache") is double
    with pytest.raises(ComponentUnavailableError):
        opa.get_instance("cache")


def test_override_instance_nests() -> None:
    """An inner override wins inside its block and the outer one is back after it."""
    build_app({"OPTIONAL_COMPONENTS": CACHE})
    with override_instance("cache", "outer"):
        with override_instance("cache", "inner"):
            assert opa.get_instance("cache") == "inner"
        assert opa.get_instance("cache") == "outer"


def test_override_instance_targets_the_given_app() -> None:
    """With app=, the double goes into that app's components, not the latest app's."""
    first = build_app({"OPTIONAL_COMPONENTS": CACHE})
    second = build_app({"OPTIONAL_COMPONENTS": CACHE})
    with override_instance("cache", "double", app=first):
        assert first.state.opa.components.get("cache").instance == "double"
        with pytest.raises(ComponentUnavailableError):
            second.state.opa.components.get("cache").instance  # noqa: B018


def test_override_instance_reaches_routes() -> None:
    """A route using get_instance and the Instance dependency sees the double."""
    app = build_app({"OPTIONAL_COMPONENTS": CACHE})

    @app.get("/direct")
    def direct() -> Any:
        return opa.get_instance("cache")

    @app.get("/injected")
    def injected(cache: Annotated[Any, opa.Instance("cache")]) -> Any:
        return cache

    with TestClient(app) as client:
        assert client.get("/direct").status_code == 503
        with override_instance("cache", {"hits": 3}, app=app):
            assert client.get("/direct").json() == {"hits": 3}
            assert client.get("/injected").json() == {"hits": 3}


def test_compliance_suite_is_reexported() -> None:
    """opa.testing hands out the compliance suite from opa.testing._compliance."""
    assert DriverComplianceSuite is SuiteItself
