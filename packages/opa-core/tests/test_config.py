"""Configuration: defaults, environments, OPA_ variables, the settings folder, merging, and
the validation of every setting against the typed model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from opa import config as opa_config
from opa._config import load_settings, typed
from opa._errors import ConfigError
from opa._runtime import activate
from opa._settings_model import Settings
from opa.testing import build_app

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


def test_no_component_is_configured_unless_the_settings_name_one(tmp_path: Path) -> None:
    """opa's defaults name no component, so an empty settings folder connects nothing."""
    settings = load_settings(settings_dir=tmp_path)
    assert settings.OPTIONAL_COMPONENTS == {}
    assert typed(settings).OPTIONAL_COMPONENTS == ()


def test_a_component_can_come_from_opa_variables_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_OPTIONAL_COMPONENTS__NAME__KEY variables configure a component no file names."""
    monkeypatch.setenv("OPA_OPTIONAL_COMPONENTS__CACHE__DRIVER", "redis-walrus")
    monkeypatch.setenv("OPA_OPTIONAL_COMPONENTS__CACHE__OPTS__URL", "redis://cache:6379/0")
    [cache] = typed(load_settings(settings_dir=tmp_path)).OPTIONAL_COMPONENTS
    assert (cache.name, cache.load, cache.driver) == ("cache", "auto", "redis-walrus")
    assert cache.opts == {"URL": "redis://cache:6379/0"}


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
    (tmp_path / "components.yaml").write_text(
        "default:\n  OPTIONAL_COMPONENTS:\n    WALRUS: {LOAD: auto, DRIVER: redis-walrus}\n"
    )
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
    assert typed(load_settings(settings_dir=tmp_path)).PLUGIN_PATHS == ["/plugins"]
    monkeypatch.setenv("OPA_PLUGIN_PATHS", json.dumps(["/a", "/b"]))
    assert typed(load_settings(settings_dir=tmp_path)).PLUGIN_PATHS == ["/a", "/b"]


def test_settings_folder_reads_every_supported_format(tmp_path: Path) -> None:
    """yaml, toml, json, ini and py files in the settings folder are all read."""
    (tmp_path / "a.yaml").write_text("default:\n  FROM_YAML: 1\n")
    (tmp_path / "b.toml").write_text("[default]\nFROM_TOML = 2\n")
    (tmp_path / "c.json").write_text('{"default": {"FROM_JSON": 3}}')
    (tmp_path / "d.ini").write_text("[default]\nFROM_INI = 4\nPORT = 9000\n")
    (tmp_path / "e.py").write_text("FROM_PY = 5\n")
    settings = load_settings(settings_dir=tmp_path)
    assert [settings.FROM_YAML, settings.FROM_TOML, settings.FROM_JSON] == [1, 2, 3]
    assert int(settings.FROM_INI) == 4
    assert settings.FROM_PY == 5
    assert typed(settings).PORT == 9000  # ini values are strings; the model reads the number


def test_settings_dir_comes_from_opa_settings_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_SETTINGS_DIR moves the settings folder."""
    (tmp_path / "s.yaml").write_text("default:\n  PROJECT_NAME: moved\n")
    monkeypatch.setenv("OPA_SETTINGS_DIR", str(tmp_path))
    assert load_settings().PROJECT_NAME == "moved"


def test_dynaconf_merge_extends_components_and_lists(tmp_path: Path) -> None:
    """dynaconf_merge adds to the components and lists set before instead of replacing them."""
    (tmp_path / "a-components.yaml").write_text(
        "default:\n  OPTIONAL_COMPONENTS:\n    CACHE: {LOAD: auto, DRIVER: redis-aioredis}\n"
    )
    (tmp_path / "b-merge.yaml").write_text(
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
    assert set(components) == {"CACHE", "WALRUS"}
    assert components.WALRUS.LOAD == "yes"
    assert components.WALRUS.OPTS.URL == "redis://redis"
    assert settings.CORS_METHODS[-1] == "TRACE"
    assert "GET" in settings.CORS_METHODS


def test_a_file_without_merge_replaces_the_components(tmp_path: Path) -> None:
    """Without dynaconf_merge a later settings file replaces OPTIONAL_COMPONENTS whole."""
    (tmp_path / "first.yaml").write_text(
        "default:\n  OPTIONAL_COMPONENTS:\n    WALRUS: {LOAD: auto, DRIVER: redis-walrus}\n"
    )
    (tmp_path / "only.yaml").write_text(
        "default:\n  OPTIONAL_COMPONENTS:\n    CACHE: {LOAD: 'no', DRIVER: redis-walrus}\n"
    )
    assert set(load_settings(settings_dir=tmp_path).OPTIONAL_COMPONENTS) == {"CACHE"}


def test_an_unreadable_settings_file_is_a_config_error(tmp_path: Path) -> None:
    """A settings file that does not parse gives ConfigError naming the folder."""
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the settings"):
        load_settings(settings_dir=tmp_path)


# --- validation: every bad setting is one line naming it --------------------------------

# (key, value of its OPA_ variable as a shell would set it, what the message says was found)
BAD_VARIABLES = [
    ("PORT", "abc", "str 'abc'"),
    ("PORT", "99999", "int 99999"),
    ("PORT", "0", "int 0"),
    ("PORT", "80.5", "float 80.5"),
    ("PORT", "true", "bool True"),
    ("LOG_LEVEL", "bogus", "str 'bogus'"),
    ("LOG_FORMAT", "xml", "str 'xml'"),
    ("METRICS", "maybe", "str 'maybe'"),
    ("METRICS_PATH", "metrics", "str 'metrics'"),
    ("METRICS_PATH", "''", "str ''"),
    ("METRICS_ALLOW", "7", "int 7"),
    ("METRICS_PORT", "0", "int 0"),
    ("METRICS_PORT", "65536", "int 65536"),
    ("METRICS_PORT", "abc", "str 'abc'"),
    ("METRICS_PORT", "9100.5", "float 9100.5"),
    ("METRICS_PORT", "true", "bool True"),
    ("METRICS_HOST", "localhost", "str 'localhost'"),
    ("METRICS_HOST", "127.0.0.256", "str '127.0.0.256'"),
    ("METRICS_HOST", "7", "int 7"),
    ("METRICS_WORKER_PORT", "0", "int 0"),
    ("METRICS_WORKER_PORT", "''", "str ''"),
    ("COMPONENT_TIMEOUT", "abc", "str 'abc'"),
    ("COMPONENT_CHECK_TIMEOUT", "0", "int 0"),
    ("HEALTH_TIMEOUT", "[1,2]", "list"),
    ("HEALTH_TIMEOUT", "-1", "int -1"),
    ("HEALTH_TIMEOUT", "nan", "float nan"),
    ("SHUTDOWN_TIMEOUT", "inf", "float inf"),
    ("SHUTDOWN_TIMEOUT", "3601", "int 3601"),
    ("DOCS_URL", "nosl", "str 'nosl'"),
    ("REDOC_URL", "'/re doc'", "str '/re doc'"),
    ("OPENAPI_URL", "'/{x:bogus}'", "str '/{x:bogus}'"),
    ("OPENAPI_PREFIX", "api", "str 'api'"),
    ("HEADER_TIMEOUT", "0", "int 0"),
    ("MAX_REQUEST_LINE", "10", "int 10"),
    ("MAX_REQUEST_LINE", "99999999", "int 99999999"),
    ("MAX_HEADER_BYTES", "100", "int 100"),
    ("MAX_CONNECTIONS", "0", "int 0"),
    ("WORKERS", "0", "int 0"),
    ("WORKERS", "2.5", "float 2.5"),
    ("WORKERS", "1025", "int 1025"),
    ("SHUTDOWN_GRACE", "-1", "int -1"),
    ("COMPONENT_BREAKER", "maybe", "str 'maybe'"),
    ("COMPONENT_PROBE_INTERVAL", "0", "int 0"),
    ("COMPONENT_PROBE_MAX_INTERVAL", "nan", "float nan"),
    ("DEBUG", "2", "int 2"),
    ("TRACING", "sometimes", "str 'sometimes'"),
    ("RELOAD", "{a=1}", "mapping"),
    ("SELF_HOSTED", "[]", "list"),
    ("DEMO_PLUGINS", "1.5", "float 1.5"),
    ("PLUGIN_ENTRY_POINTS", "x", "str 'x'"),
    # Its name says credential, so its value is never shown.
    ("CORS_ALLOW_CREDENTIALS", "sometimes", "str"),
    ("MAX_REQUEST_BODY", "-5", "int -5"),
    ("MAX_REQUEST_BODY", "1.5", "float 1.5"),
    ("HOST", "'two words'", "str 'two words'"),
    ("PROJECT_NAME", "true", "bool True"),
    ("PROJECT_NAME", "''", "str ''"),
    ("PROJECT_VERSION", "''", "str ''"),
    ("PROJECT_DESCRIPTION", "[1]", "list"),
    ("PROJECT_VERSION", "{}", "mapping"),
    ("PLUGIN_PATHS", "7", "int 7"),
    ("PLUGIN_WHITELIST_LIST", "{a=1}", "mapping"),
    ("PLUGIN_WHITELIST_TAGS", "true", "bool True"),
    ("PLUGIN_BLACKLIST_LIST", "false", "bool False"),
    ("PLUGIN_BLACKLIST_TAGS", "3.5", "float 3.5"),
    ("PLUGIN_WHITELIST_RE", "'(unclosed'", "str '(unclosed'"),
    ("PLUGIN_BLACKLIST_RE", "'[z-a]'", "str '[z-a]'"),
]


def description(key: str) -> str:
    field = Settings.model_fields[key]
    assert field.description, f"{key} has no description to say what it expects"
    return field.description


@pytest.mark.parametrize(("key", "value", "shown"), BAD_VARIABLES)
def test_a_bad_variable_is_one_line_naming_the_setting_expected_and_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, shown: str
) -> None:
    """Each bad top-level value is a ConfigError of one line: setting, variable, expected, found."""
    monkeypatch.setenv(f"OPA_{key}", value)
    with pytest.raises(ConfigError) as error:
        load_settings(settings_dir=tmp_path)
    assert str(error.value) == (
        f"setting {key} (OPA_{key}): expected {description(key)}; found {shown}"
    )


# (key, a list with one bad item, the index of that item, what the message says was found)
BAD_ITEMS = [
    ("CORS_ORIGINS", ["https://a.example", "https://b.example/path"], 1, "str 'https://b.ex"),
    ("CORS_ORIGINS", ["ftp//nohost"], 0, "str 'ftp//nohost'"),
    ("CORS_METHODS", ["GET", "G ET"], 1, "str 'G ET'"),
    ("METRICS_ALLOW", ["127.0.0.1/32", "10.0.0.1/8"], 1, "str '10.0.0.1/8'"),
    ("METRICS_ALLOW", ["everyone"], 0, "str 'everyone'"),
    ("CORS_HEADERS", ["X-Ok", "Bad:Header"], 1, "str 'Bad:Header'"),
    ("CORS_HEADERS", ["X-Ok", True], 1, "bool True"),
    ("PLUGIN_PATHS", ["/ok", "/nul\x00"], 1, "str '/nul\\x00'"),
    ("PLUGIN_BLACKLIST_TAGS", ["ok", [1]], 1, "list"),
    ("PLUGIN_PATHS", ["/ok", ""], 1, "str ''"),
    ("PLUGIN_PATHS", ["/ok", "/" + "d" * 256], 1, "str of 257 characters"),
    ("PLUGIN_PATHS", ["/d" * 2049], 0, "str of 4098 characters"),
]


@pytest.mark.parametrize(("key", "value", "item", "shown"), BAD_ITEMS)
def test_a_bad_item_of_a_list_is_named_by_its_position(
    key: str, value: list[Any], item: int, shown: str
) -> None:
    """A bad item of a list setting names the setting, the item's index and its type."""
    with pytest.raises(ConfigError) as error:
        build_app({key: value})
    assert str(error.value).startswith(
        f"setting {key}[{item}] (OPA_{key}): expected {description(key)}; found {shown}"
    )


def test_every_setting_of_the_model_has_a_bad_value_tested() -> None:
    """Each field of the model (each default setting) has its message tested above."""
    tested = {row[0] for row in [*BAD_VARIABLES, *BAD_ITEMS]} | {"SECRET_KEY"}
    assert set(Settings.model_fields) - {"OPTIONAL_COMPONENTS"} - tested == set()


def test_an_integer_too_long_to_print_is_named_by_its_type() -> None:
    """An integer past Python's limit on printed digits is reported as int, without a value."""
    with pytest.raises(ConfigError) as error:
        build_app({"PORT": 10**5000})
    assert str(error.value).endswith("; found int")


def test_a_secret_setting_shows_its_type_never_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SECRET_KEY of the wrong type is named with its type only, never its value."""
    monkeypatch.setenv("OPA_SECRET_KEY", "123456789012345678901234567890123")
    with pytest.raises(ConfigError) as error:
        load_settings(settings_dir=tmp_path)
    message = str(error.value)
    assert (
        message
        == f"setting SECRET_KEY (OPA_SECRET_KEY): expected {description('SECRET_KEY')}; found int"
    )
    assert "123456789" not in message


def test_a_url_password_in_a_bad_value_is_masked_and_a_long_value_is_not_shown() -> None:
    """A shown value has URL passwords masked; a long one is described by its length."""
    with pytest.raises(ConfigError) as error:
        build_app({"DOCS_URL": "redis://user:hunter2@host"})
    assert "hunter2" not in str(error.value) and "redis://user:***@" in str(error.value)
    with pytest.raises(ConfigError) as error:
        build_app({"DOCS_URL": "x" * 100_000})
    assert str(error.value).endswith("found str of 100000 characters")


def test_several_bad_settings_share_one_line() -> None:
    """Every bad setting is named in the one line, the first three and a count of the rest."""
    bad = {"PORT": "abc", "LOG_LEVEL": "loud", "HEALTH_TIMEOUT": -1, "DEBUG": 3, "HOST": ""}
    with pytest.raises(ConfigError) as error:
        build_app(bad)
    message = str(error.value)
    assert "\n" not in message
    assert message.count("setting ") == 3 and message.endswith("; and 2 more")


def test_a_bad_component_joins_the_top_level_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A component's error is reached from the same validation, in the same form and line."""
    monkeypatch.setenv("OPA_PORT", "abc")
    monkeypatch.setenv("OPA_OPTIONAL_COMPONENTS__WALRUS__LOAD", "maybe")
    with pytest.raises(ConfigError) as error:
        load_settings(settings_dir=tmp_path)
    assert str(error.value) == (
        f"setting PORT (OPA_PORT): expected {description('PORT')}; found str 'abc'; "
        "setting OPTIONAL_COMPONENTS.WALRUS.LOAD (OPA_OPTIONAL_COMPONENTS__WALRUS__LOAD): "
        "expected one of auto, yes, no; found str 'maybe'"
    )


def test_a_setting_removed_altogether_is_named(tmp_path: Path) -> None:
    """A default setting deleted by a settings file (@del) is reported as missing."""
    (tmp_path / "s.yaml").write_text("default:\n  PORT: '@del'\n")
    with pytest.raises(
        ConfigError, match=r"^setting PORT \(OPA_PORT\): expected .*; found nothing$"
    ):
        load_settings(settings_dir=tmp_path)


def test_an_unreadable_variable_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dynaconf token that cannot be read (@int abc) is a ConfigError naming the sources."""
    monkeypatch.setenv("OPA_PORT", "@int abc")
    with pytest.raises(ConfigError, match=r"^cannot read the settings \(the files in .* OPA_"):
        load_settings(settings_dir=tmp_path)


def test_an_unconvertible_token_never_shows_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret marked @int that is no integer is reported without its text."""
    monkeypatch.setenv("OPA_SECRET_KEY", "@int hunter2")
    with pytest.raises(ConfigError) as error:
        load_settings(settings_dir=tmp_path)
    assert "hunter2" not in str(error.value)
    assert str(error.value).endswith(
        "a value marked @int, @float, @bool or @json does not convert "
        "(the value is not shown: it may be a secret)"
    )


def test_valid_values_are_read_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables and files in any accepted spelling give typed values to the core."""
    monkeypatch.setenv("OPA_LOG_LEVEL", " warning ")
    monkeypatch.setenv("OPA_HEALTH_TIMEOUT", "'0.5'")
    monkeypatch.setenv("OPA_CORS_ORIGINS", "https://app.example")
    monkeypatch.setenv("OPA_COMPONENT_BREAKER", "off")
    monkeypatch.setenv("OPA_MAX_REQUEST_BODY", "0")
    monkeypatch.setenv("OPA_PROJECT_VERSION", "2")
    checked = typed(load_settings(settings_dir=tmp_path))
    assert checked.LOG_LEVEL == "WARNING"
    assert checked.HEALTH_TIMEOUT == 0.5
    assert checked.CORS_ORIGINS == ["https://app.example"]
    assert checked.COMPONENT_BREAKER is False
    assert checked.body_limit is None
    assert checked.PROJECT_VERSION == "2"


def test_the_serving_limits_have_typed_defaults(tmp_path: Path) -> None:
    """The serving limits and the breaker switch are read with their documented defaults."""
    checked = typed(load_settings(settings_dir=tmp_path))
    limits = (checked.HEADER_TIMEOUT, checked.MAX_REQUEST_LINE, checked.MAX_HEADER_BYTES)
    assert limits == (10.0, 8192, 32768)
    assert (checked.MAX_CONNECTIONS, checked.SHUTDOWN_GRACE) == (4096, 20.0)
    assert checked.COMPONENT_BREAKER is True
    assert not math.isnan(checked.HEALTH_TIMEOUT)


def test_keys_of_the_users_own_are_allowed_and_readable(tmp_path: Path) -> None:
    """Unknown keys pass validation and reach opa.config and the typed settings unchanged."""
    (tmp_path / "mine.yaml").write_text("default:\n  EXAMPLE_KEY_PREFIX: shop\n  NESTED: {A: 1}\n")
    settings = load_settings(settings_dir=tmp_path)
    extra = typed(settings).model_extra or {}
    assert extra["EXAMPLE_KEY_PREFIX"] == "shop" and extra["NESTED"] == {"A": 1}
    activate(None)
    app = build_app(settings_dir=tmp_path)
    try:
        assert opa_config.EXAMPLE_KEY_PREFIX == "shop"
    finally:
        activate(None)
    assert (typed(app.state.opa.settings).model_extra or {})["EXAMPLE_KEY_PREFIX"] == "shop"
