"""Configuration: defaults, environments, OPA_ variables, the settings folder, merging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opa.config import as_list, load_settings
from opa.errors import ConfigError

DOCUMENTED_KEYS = [
    "PROJECT_NAME",
    "PROJECT_DESCRIPTION",
    "PROJECT_VERSION",
    "DOCS_URL",
    "REDOC_URL",
    "OPENAPI_URL",
    "OPENAPI_PREFIX",
    "CORS_ORIGINS",
    "SECRET_KEY",
    "DEBUG",
    "BETTER_EXCEPTIONS",
    "SELF_HOSTED",
    "PLUGIN_PATHS",
    "PLUGIN_WHITELIST_LIST",
    "PLUGIN_WHITELIST_RE",
    "PLUGIN_WHITELIST_TAGS",
    "PLUGIN_BLACKLIST_LIST",
    "PLUGIN_BLACKLIST_RE",
    "PLUGIN_BLACKLIST_TAGS",
    "OPTIONAL_COMPONENTS",
]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("ENV", "OPA_ENV", "OPA_SETTINGS_DIR"):
        monkeypatch.delenv(key, raising=False)


def test_every_documented_key_has_a_default(tmp_path: Path) -> None:
    """Every setting the original documented exists with a default."""
    settings = load_settings(settings_dir=tmp_path)
    missing = [key for key in DOCUMENTED_KEYS if key not in settings]
    assert missing == []
    assert settings.CORS_ORIGINS == []
    assert set(settings.OPTIONAL_COMPONENTS) == {"MONGODB", "WALRUS", "AIOREDIS", "CELERY"}


def test_prod_is_the_default_environment_and_dev_turns_on_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ENV the app runs as prod; ENV=dev turns on reload and the demo plugins."""
    assert load_settings(settings_dir=tmp_path).RELOAD is False
    monkeypatch.setenv("ENV", "dev")
    dev = load_settings(settings_dir=tmp_path)
    assert dev.current_env == "dev"
    assert dev.RELOAD is True
    assert dev.DEMO_PLUGINS is True


def test_opa_env_also_switches_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_ENV picks the environment like ENV does."""
    monkeypatch.setenv("OPA_ENV", "dev")
    assert load_settings(settings_dir=tmp_path).RELOAD is True


def test_prefixed_environment_variables_override_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_ variables set settings, with __ reaching into nested keys."""
    monkeypatch.setenv("OPA_PROJECT_NAME", "from-env")
    monkeypatch.setenv("OPA_OPTIONAL_COMPONENTS__WALRUS__LOAD", "no")
    settings = load_settings(settings_dir=tmp_path)
    assert settings.PROJECT_NAME == "from-env"
    assert settings.OPTIONAL_COMPONENTS.WALRUS.LOAD == "no"
    assert settings.OPTIONAL_COMPONENTS.WALRUS.DRIVER == "redis-walrus"


def test_plugin_paths_accepts_a_string_or_a_json_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_PLUGIN_PATHS may be one path or a JSON list of paths."""
    monkeypatch.setenv("OPA_PLUGIN_PATHS", "/plugins")
    single = load_settings(settings_dir=tmp_path)
    assert as_list(single.PLUGIN_PATHS, "PLUGIN_PATHS") == ["/plugins"]
    monkeypatch.setenv("OPA_PLUGIN_PATHS", json.dumps(["/a", "/b"]))
    assert as_list(load_settings(settings_dir=tmp_path).PLUGIN_PATHS, "PLUGIN_PATHS") == [
        "/a",
        "/b",
    ]


def test_settings_folder_reads_every_supported_format(tmp_path: Path) -> None:
    """yaml, toml, json, ini and py files in the settings folder are all read."""
    (tmp_path / "a.yaml").write_text("default:\n  FROM_YAML: 1\n")
    (tmp_path / "b.toml").write_text("[default]\nFROM_TOML = 2\n")
    (tmp_path / "c.json").write_text('{"default": {"FROM_JSON": 3}}')
    (tmp_path / "d.ini").write_text("[default]\nFROM_INI = 4\n")
    (tmp_path / "e.py").write_text("FROM_PY = 5\n")
    settings = load_settings(settings_dir=tmp_path)
    assert [settings.FROM_YAML, settings.FROM_TOML, settings.FROM_JSON] == [1, 2, 3]
    assert int(settings.FROM_INI) == 4
    assert settings.FROM_PY == 5


def test_settings_dir_comes_from_opa_settings_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_SETTINGS_DIR moves the settings folder."""
    (tmp_path / "s.yaml").write_text("default:\n  PROJECT_NAME: moved\n")
    monkeypatch.setenv("OPA_SETTINGS_DIR", str(tmp_path))
    assert load_settings().PROJECT_NAME == "moved"


def test_dynaconf_merge_extends_components_and_lists(tmp_path: Path) -> None:
    """dynaconf_merge adds to the default components and lists instead of replacing them."""
    (tmp_path / "merge.yaml").write_text(
        """
myenv:
  OPTIONAL_COMPONENTS:
    dynaconf_merge: true
    WALRUS:
      LOAD: "yes"
      DRIVER: redis-walrus
      OPTS:
        URL: redis://redis
  CORS_METHODS:
    dynaconf_merge: [TRACE]
"""
    )
    settings = load_settings(settings_dir=tmp_path, env="myenv")
    components = settings.OPTIONAL_COMPONENTS
    assert set(components) == {"MONGODB", "WALRUS", "AIOREDIS", "CELERY"}
    assert components.WALRUS.LOAD == "yes"
    assert components.WALRUS.OPTS.URL == "redis://redis"
    assert settings.CORS_METHODS[-1] == "TRACE"
    assert "GET" in settings.CORS_METHODS


def test_a_file_without_merge_replaces_the_components(tmp_path: Path) -> None:
    """Without dynaconf_merge a settings file replaces OPTIONAL_COMPONENTS whole."""
    (tmp_path / "only.yaml").write_text(
        "default:\n  OPTIONAL_COMPONENTS:\n    CACHE: {LOAD: 'no', DRIVER: redis-walrus}\n"
    )
    assert set(load_settings(settings_dir=tmp_path).OPTIONAL_COMPONENTS) == {"CACHE"}


def test_an_unreadable_settings_file_is_a_config_error(tmp_path: Path) -> None:
    """A settings file that does not parse gives ConfigError naming the folder."""
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the settings"):
        load_settings(settings_dir=tmp_path)


def test_a_list_setting_of_the_wrong_type_is_refused() -> None:
    """A list setting given a number names the setting."""
    with pytest.raises(ConfigError, match="PLUGIN_PATHS"):
        as_list(42, "PLUGIN_PATHS")
