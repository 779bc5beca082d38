"""Configuration: dynaconf with environments, ``OPA_`` variables and a settings folder.

Load order: opa's own defaults, then every settings file in the settings folder
(sorted by name), then ``OPA_*`` environment variables, then explicit overrides. The
result is validated against :class:`opa._settings_model.Settings` before anything reads
it, so every entry (the CLI, ``opa.main``, the worker, ``create_app``) refuses a bad
setting the same way; :func:`typed` gives the checked values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from dynaconf import Dynaconf
from dynaconf.utils.parse_conf import DynaconfParseError

from opa._errors import ConfigError
from opa._old_settings import ignored_warnings, old_log_level, refused_problems
from opa._setting_errors import one_line
from opa._settings_model import Settings, validate_settings

DEFAULTS_FILE = Path(__file__).with_name("default_settings.yaml")
SETTINGS_SUFFIXES = (".yaml", ".yml", ".toml", ".json", ".ini", ".py")
DEFAULT_ENV = "prod"

# The typed settings of each settings object load_settings made, for as long as it lives.
_typed: WeakKeyDictionary[Any, Settings] = WeakKeyDictionary()
# What each one carried of opa-stack's names, to be logged once logging is configured.
_old_names: WeakKeyDictionary[Any, list[str]] = WeakKeyDictionary()


def settings_dir_from_environ() -> Path:
    """The settings folder: ``OPA_SETTINGS_DIR``, else ``./settings``."""
    return Path(os.environ.get("OPA_SETTINGS_DIR") or "settings")


def env_from_environ() -> str:
    """The environment name: ``OPA_ENV``, else ``ENV``, else ``prod``."""
    return os.environ.get("OPA_ENV") or os.environ.get("ENV") or DEFAULT_ENV


def settings_files(settings_dir: Path) -> list[str]:
    """Every settings file in *settings_dir*, sorted so the load order is predictable."""
    if not settings_dir.is_dir():
        return []
    return [
        str(path)
        for path in sorted(settings_dir.iterdir())
        if path.is_file() and path.suffix in SETTINGS_SUFFIXES
    ]


def load_settings(
    settings_dir: str | Path | None = None,
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """Build the settings object and validate it; *overrides* replace keys after everything
    else loaded. A bad setting is a :class:`ConfigError` in one line naming it."""
    folder = Path(settings_dir) if settings_dir is not None else settings_dir_from_environ()
    try:
        settings = Dynaconf(
            envvar_prefix="OPA",
            environments=True,
            # OPA_ENV is read first, so it wins over ENV (passed as *env* when OPA_ENV is
            # unset); with "ENV" here, ENV would beat OPA_ENV, contrary to the docs.
            env_switcher="OPA_ENV",
            env=env or env_from_environ(),
            settings_files=[str(DEFAULTS_FILE), *settings_files(folder)],
            load_dotenv=False,
        )
        if env:
            settings.setenv(env)
        for key, value in (overrides or {}).items():
            settings.set(key, value)
        # Also evaluates lazy values (@format, @jinja), so their errors surface here.
        values = settings.as_dict()
    except Exception as exc:  # dynaconf raises many types for unreadable files and values
        raise ConfigError(
            f"cannot read the settings (the files in {folder} and the OPA_ variables): "
            f"{_unreadable(exc)}"
        ) from exc
    refused = refused_problems(values)
    if refused:
        raise ConfigError(one_line(refused))
    level, level_warning = old_log_level(values, os.environ, "LOG_LEVEL" in (overrides or {}))
    if level is not None:
        settings.set("LOG_LEVEL", level)
        values["LOG_LEVEL"] = level
    _typed[settings] = validate_settings(values)
    _old_names[settings] = [
        *([level_warning] if level_warning else []),
        *ignored_warnings(values, os.environ),
    ]
    return settings


def old_name_warnings(settings: Any) -> list[str]:
    """What *settings* (made by :func:`load_settings`) and the environment carried of
    opa-stack's names that opa warns about; logged by the bootstrap."""
    return list(_old_names.get(settings, []))


def _unreadable(exc: Exception) -> str:
    if isinstance(exc, DynaconfParseError):
        # Its text quotes the value, which may be a secret (OPA_SECRET_KEY='@int ...').
        return (
            "a value marked @int, @float, @bool or @json does not convert "
            "(the value is not shown: it may be a secret)"
        )
    return f"{type(exc).__name__}: {exc}"


def typed(settings: Any) -> Settings:
    """The validated, typed values of *settings* (an object :func:`load_settings` made)."""
    found = _typed.get(settings)
    if found is None:
        found = _typed[settings] = validate_settings(settings.as_dict())
    return found
