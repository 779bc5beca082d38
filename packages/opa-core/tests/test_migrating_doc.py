"""docs/migrating.md tells the truth: its compose translation loads as opa settings with no
old name left, and the rows it states about settings hold."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from opa._config import load_settings, old_name_warnings, typed
from opa._errors import ConfigError

PAGE = Path(__file__).resolve().parents[3] / "docs" / "migrating.md"
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
OLD_VARIABLES = ("MODE", "CELERY_PARAMS", "CELERY_COMMAND", "PTVSD", "OPA_LOGLEVEL", "ENV")


def compose_file() -> dict[str, Any]:
    text = PAGE.read_text(encoding="utf-8")
    [block] = [b for b in YAML_BLOCK.findall(text) if b.startswith("# docker-compose.yaml\n")]
    loaded: dict[str, Any] = yaml.safe_load(block)
    return loaded


OPA_SERVICES = {
    name: service
    for name, service in compose_file()["services"].items()
    if service.get("image") == "opa:local"
}


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the compose file's variables reach the settings."""
    for name in list(os.environ):
        if name.startswith("OPA_") or name in OLD_VARIABLES:
            monkeypatch.delenv(name)


def test_the_compose_file_runs_api_workers_and_flower_on_opa() -> None:
    """The translated celery-task example has the api, both workers and flower on opa's image."""
    assert set(OPA_SERVICES) == {"api", "worker-math", "worker-counter", "flower"}
    commands = {name: service.get("command") for name, service in OPA_SERVICES.items()}
    assert commands["api"] is None  # the image's own: opa run on port 8000
    assert commands["worker-math"][:2] == ["opa", "worker"]
    assert commands["flower"][:4] == ["celery", "-A", "opa.worker", "flower"]


@pytest.mark.parametrize("name", sorted(OPA_SERVICES))
def test_each_services_environment_is_valid_opa_settings_with_no_old_name(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's variables load, name no opa-stack variable, and configure both
    components the example uses."""
    environment = OPA_SERVICES[name]["environment"]
    assert not set(environment) & set(OLD_VARIABLES)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, str(value))
    settings = load_settings(settings_dir=tmp_path)
    assert old_name_warnings(settings) == []
    components = {
        spec.name: (spec.load, spec.driver) for spec in typed(settings).OPTIONAL_COMPONENTS
    }
    assert components == {"celery": ("yes", "celery"), "walrus": ("yes", "redis-walrus")}
    assert typed(settings).PLUGIN_PATHS == ["/plugins"]


def test_the_other_components_variables_load_as_auto_components(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sh block's variables give three components, each LOAD auto as the page says."""
    [block] = SH_BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    for line in block.splitlines():
        if line and not line.startswith("#"):
            variable, _, value = line.partition("=")
            monkeypatch.setenv(variable, value)
    specs = typed(load_settings(settings_dir=tmp_path)).OPTIONAL_COMPONENTS
    assert {spec.name: (spec.load, spec.driver) for spec in specs} == {
        "walrus": ("auto", "redis-walrus"),
        "aioredis": ("auto", "redis-aioredis"),
        "mongodb": ("auto", "mongodb-async-motor"),
    }


def test_a_url_directly_under_a_component_is_refused_naming_opts(tmp_path: Path) -> None:
    """opa-stack's `MONGODB: {URL: ...}` is refused with a message that says OPTS."""
    old = {"OPTIONAL_COMPONENTS": {"MONGODB": {"LOAD": "auto", "URL": "mongodb://mongo/opa"}}}
    with pytest.raises(ConfigError, match=r"driver options go under OPTS"):
        load_settings(settings_dir=tmp_path, overrides=old)
