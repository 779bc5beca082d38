"""The ``OPTS`` of a ``celery`` component, and the Celery settings every app starts from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SAFE_DEFAULTS: dict[str, Any] = {
    # JSON only: a pickled message from whoever can write to the broker runs code here.
    "task_serializer": "json",
    "result_serializer": "json",
    "event_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
    # A task is acknowledged when it finished, so a worker that dies mid-task hands it back
    # to the broker instead of losing it (it may then run twice: tasks should be idempotent).
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # Celery's own default, stated so Celery 5.3+ does not warn about its future change.
    "broker_connection_retry_on_startup": True,
}
"""Applied to every app before the component's ``SETTINGS``."""

REDIS_SCHEMES = ("redis", "rediss", "sentinel")
"""URL schemes (before any ``+``) that Celery and kombu serve with redis-py."""
REDIS_EXTRA = "pip install 'opa-driver-celery[redis]'"
"""The install line that adds redis-py; the base install serves RabbitMQ only."""

_PICKLE = {"pickle", "application/x-python-serialize"}
_SERIALIZER_SETTINGS = ("task_serializer", "result_serializer", "event_serializer")
_CONTENT_SETTINGS = ("accept_content", "result_accept_content")
_URL_SETTINGS = {
    "broker_url": "BROKER_URL",
    "broker_read_url": "BROKER_URL",
    "broker_write_url": "BROKER_URL",
    "result_backend": "BACKEND_URL",
}


def pickle_settings(settings: Mapping[str, Any]) -> list[str]:
    """The names of the serializer settings in *settings* that would let pickle in."""
    found: list[str] = []
    for name in _SERIALIZER_SETTINGS:
        if str(settings.get(name, "")).lower() in _PICKLE:
            found.append(name)
    for name in _CONTENT_SETTINGS:
        value = settings.get(name) or []
        accepted = [value] if isinstance(value, str) else list(value)
        if any(str(item).lower() in _PICKLE for item in accepted):
            found.append(name)
    return found


def uses_redis(url: str) -> bool:
    """Whether Celery or kombu reach *url* through redis-py (``redis+socket://`` included)."""
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    return scheme.strip().lower() in REDIS_SCHEMES


def _redis_installed() -> bool:
    try:
        import redis  # noqa: F401 - importable is what Celery and kombu need
    except ImportError:
        return False
    return True


def _known_settings() -> frozenset[str]:
    # Imported here, not at the top: the entry point module must not import Celery.
    from celery.app.defaults import DEFAULTS

    return frozenset(DEFAULTS)


class CeleryOptions(BaseModel):
    """``OPTS`` of a ``celery`` component.

    ``SETTINGS`` holds further Celery settings by their lower-case names (any case is
    accepted), applied after opa's safe defaults; the broker and backend URLs have options
    of their own, so they are checked, masked and reached like every component's URLs.
    """

    model_config = ConfigDict(extra="forbid")

    BROKER_URL: str = Field(min_length=1)
    BACKEND_URL: str | None = None
    APP_NAME: str = Field(default="tasks", min_length=1)
    SETTINGS: dict[str, Any] = Field(default_factory=dict)

    @field_validator("BROKER_URL", "BACKEND_URL")
    @classmethod
    def _check_redis_installed(cls, value: str | None) -> str | None:
        # Without this, Celery fails only when it first talks to Redis, naming redis-py
        # rather than the extra of this distribution that brings it.
        urls = (value or "").split(";")
        if any(uses_redis(url) for url in urls) and not _redis_installed():
            raise ValueError(f"a Redis URL needs redis-py, which is not installed: {REDIS_EXTRA}")
        return value

    @field_validator("SETTINGS", mode="before")
    @classmethod
    def _check_settings(cls, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ValueError("must be a mapping of Celery setting names (strings) to values")
        settings = {key.lower(): item for key, item in value.items()}
        unknown = sorted(set(settings) - _known_settings())
        if unknown:
            raise ValueError(
                f"unknown Celery settings {', '.join(unknown)}; use Celery 5's lower-case "
                "setting names (task_routes, worker_prefetch_multiplier, ...)"
            )
        misplaced = sorted(name for name in settings if name in _URL_SETTINGS)
        if misplaced:
            options = sorted({_URL_SETTINGS[name] for name in misplaced})
            raise ValueError(
                f"{', '.join(misplaced)} cannot be set here; use the option "
                f"{' and '.join(options)} instead"
            )
        unsafe = pickle_settings(settings)
        if unsafe:
            raise ValueError(
                f"{', '.join(unsafe)} would accept pickle, which runs code from any message "
                "on the broker; opa's celery driver allows json (or another safe serializer)"
            )
        return settings
