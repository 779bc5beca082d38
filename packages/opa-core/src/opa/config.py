"""Configuration: dynaconf with environments, ``OPA_`` variables and a settings folder.

Load order: opa's own defaults, then every settings file in the settings folder
(sorted by name), then ``OPA_*`` environment variables, then explicit overrides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf

from opa.errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("default_settings.yaml")
SETTINGS_SUFFIXES = (".yaml", ".yml", ".toml", ".json", ".ini", ".py")
DEFAULT_ENV = "prod"


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
    """Build the settings object; *overrides* replace keys after everything else loaded."""
    folder = Path(settings_dir) if settings_dir is not None else settings_dir_from_environ()
    try:
        settings = Dynaconf(
            envvar_prefix="OPA",
            environments=True,
            env_switcher="ENV",
            env=env or env_from_environ(),
            settings_files=[str(DEFAULTS_FILE), *settings_files(folder)],
            load_dotenv=False,
        )
        if env:
            settings.setenv(env)
        for key, value in (overrides or {}).items():
            settings.set(key, value)
        settings.get("PROJECT_NAME")  # force the lazy load so errors surface here
    except ConfigError:
        raise
    except Exception as exc:  # dynaconf raises many types for unreadable files
        raise ConfigError(f"cannot read the settings in {folder}: {exc}") from exc
    return settings


def as_list(value: Any, key: str) -> list[Any]:
    """Read a list setting that may also arrive as one string from an environment variable."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise ConfigError(f"setting {key} must be a list or a string, got {type(value).__name__}")
