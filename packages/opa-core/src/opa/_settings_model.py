"""The typed model of opa's own settings, checked once when the settings are loaded.

Every key of ``default_settings.yaml`` has a field here; each field's description is what
the error message says was expected. Keys of the user's own (plugins read them from
``opa.config``) are allowed and passed through unchecked. ``OPTIONAL_COMPONENTS`` keeps
its own parser (:mod:`opa._component_config`), reached from here so its errors share the
one-line form of :mod:`opa._setting_errors`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from opa._component_config import ComponentSpec, parse_components
from opa._errors import ConfigError
from opa._setting_errors import MISSING, found, one_line, problem, pydantic_expected

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
MAX_SECONDS = 3600
MAX_LIMIT_BYTES = 1024 * 1024
DEFAULT_COMPONENT_TIMEOUT = 10.0
_PATH = re.compile(r"/[^\s{}?#]*")
# RFC 9110 token characters: method and header names.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ORIGIN = re.compile(r"\*|null|[a-zA-Z][a-zA-Z0-9+.\-]*://[!-.0-~]+")
_HOST = re.compile(r"[^\s/]{1,253}")
# Linux's limits on a path and on one name in it (PATH_MAX, NAME_MAX).
_PATH_MAX = 4096
_NAME_MAX = 255


def _no_bool(value: Any) -> Any:
    # pydantic reads True as 1 in lax mode; a switch where a number goes is a mistake.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


def _whole(value: Any) -> Any:
    # 8000.0 or true where a port or a byte count goes is a slip, not a number to round.
    if isinstance(value, bool | float):
        raise ValueError("not a whole number")
    return value


def _string_list(value: Any) -> Any:
    # An environment variable brings one item as a plain string.
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple):
        return list(value)
    return value


def _empty_if_null(value: Any) -> Any:
    return "" if value is None else value


def _zero_if_null(value: Any) -> Any:
    return 0 if value is None else _whole(value)


def _matching(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError("does not match")
        return value

    return AfterValidator(check)


def _path_or_empty(value: str) -> str:
    if value and not _PATH.fullmatch(value):
        raise ValueError("not a path")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError("not a regular expression") from exc
    return value


def _folder(value: str) -> str:
    # An empty path would be the current folder: every module there imported as a plugin.
    # One longer than the system takes can name no folder, and looking it up would fail.
    too_long = len(value) > _PATH_MAX or any(len(part) > _NAME_MAX for part in value.split("/"))
    if not value or "\x00" in value or too_long:
        raise ValueError("not a folder")
    return value


def _log_level(value: Any) -> Any:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    raise ValueError("not a log level")


def _log_format(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in LOG_FORMATS:
        return value.strip().lower()
    raise ValueError("not a log format")


def _network(value: Any) -> Any:
    # strict=True: "10.0.0.1/8" has host bits set, a typo for 10.0.0.0/8 or 10.0.0.1/32.
    if not isinstance(value, str):
        raise ValueError("not a network")
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError("not a network") from exc


def _metrics_path(value: str) -> str:
    if not value:
        raise ValueError("empty")
    return value


def _ip_address(value: Any) -> Any:
    # An address to bind, not a name to resolve: which interface it means is then plain.
    if not isinstance(value, str):
        raise ValueError("not an IP address")
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError as exc:
        raise ValueError("not an IP address") from exc


def _none_if_empty(value: Any) -> Any:
    # OPA_METRICS_PORT= (empty) turns the port off, as null does in a file.
    return None if value == "" else _whole(value)


Seconds = Annotated[
    float, BeforeValidator(_no_bool), Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)
]
SecondsOrZero = Annotated[
    float, BeforeValidator(_no_bool), Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)
]
Whole = Annotated[int, BeforeValidator(_whole)]
UrlPath = Annotated[str, BeforeValidator(_empty_if_null), AfterValidator(_path_or_empty)]
Regex = Annotated[str, BeforeValidator(_empty_if_null), AfterValidator(_regex)]
Strings = Annotated[list[str], BeforeValidator(_string_list)]
Paths = Annotated[list[Annotated[str, AfterValidator(_folder)]], BeforeValidator(_string_list)]
Tokens = Annotated[list[Annotated[str, _matching(_TOKEN)]], BeforeValidator(_string_list)]
Origins = Annotated[list[Annotated[str, _matching(_ORIGIN)]], BeforeValidator(_string_list)]
Networks = Annotated[list[Annotated[str, BeforeValidator(_network)]], BeforeValidator(_string_list)]

_SECONDS = f"a number of seconds above 0 and at most {MAX_SECONDS}"
_STRINGS = "a list of strings, or one string"
_PATH_TEXT = "a path starting with / (no spaces, braces, ? or #), or empty to turn it off"


class Settings(BaseModel):
    """opa's settings, typed. Read it with :func:`opa._config.typed`."""

    model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)

    # The app
    # FastAPI refuses an empty title or version with a bare AssertionError.
    PROJECT_NAME: str = Field(
        min_length=1, description="a string, not empty (the title of the API)"
    )
    PROJECT_DESCRIPTION: Annotated[str, BeforeValidator(_empty_if_null)] = Field(
        description="a string"
    )
    PROJECT_VERSION: str = Field(min_length=1, description="a version string such as 1.0.0")
    DOCS_URL: UrlPath = Field(description=_PATH_TEXT)
    REDOC_URL: UrlPath = Field(description=_PATH_TEXT)
    OPENAPI_URL: UrlPath = Field(description=_PATH_TEXT)
    OPENAPI_PREFIX: UrlPath = Field(description="a path starting with /, or empty")
    SELF_HOSTED: bool = Field(description="true or false")
    # Strict: digits read as a number are refused rather than quietly turned into a key.
    SECRET_KEY: Annotated[str, BeforeValidator(_empty_if_null), Strict()] = Field(
        description=(
            "a string (digits alone are read as a number: prefix them with @str, "
            "as in '@str 0123...')"
        )
    )
    MAX_REQUEST_BODY: Annotated[int, BeforeValidator(_zero_if_null)] = Field(
        ge=0, description="a whole number of bytes, or 0 or null for no limit"
    )
    DEBUG: bool = Field(description="true or false")
    LOG_LEVEL: Annotated[str, BeforeValidator(_log_level)] = Field(
        description=f"one of {', '.join(LOG_LEVELS)}"
    )
    LOG_FORMAT: Annotated[str, BeforeValidator(_log_format)] = Field(
        description=f"one of {', '.join(LOG_FORMATS)}"
    )
    # Traces (opa._tracing): off unless switched on; where they go is read from OTEL_*.
    TRACING: bool = Field(description="true or false")
    # Metrics (opa.metrics): off unless switched on, and then readable from ALLOW alone.
    METRICS: bool = Field(description="true or false")
    METRICS_PATH: Annotated[UrlPath, AfterValidator(_metrics_path)] = Field(
        description="a path starting with / (no spaces, braces, ? or #)"
    )
    METRICS_ALLOW: Networks = Field(
        description="a list of client networks such as 127.0.0.1/32 or 10.0.0.0/8 (no host bits)"
    )
    METRICS_PORT: Annotated[
        Annotated[int, Field(ge=1, le=65535)] | None, BeforeValidator(_none_if_empty)
    ] = Field(
        description="a whole number from 1 to 65535, or null to serve them at METRICS_PATH "
        "on the app's port"
    )
    METRICS_HOST: Annotated[str, BeforeValidator(_ip_address)] = Field(
        description="an IP address such as 127.0.0.1, ::1 or 0.0.0.0 (not a host name)"
    )
    METRICS_WORKER_PORT: Whole = Field(ge=1, le=65535, description="a whole number from 1 to 65535")
    # CORS
    CORS_ORIGINS: Origins = Field(
        description="a list of origins such as https://app.example (scheme and host, no path), or *"
    )
    CORS_ALLOW_CREDENTIALS: bool = Field(description="true or false")
    CORS_METHODS: Tokens = Field(description="a list of HTTP method names, or *")
    CORS_HEADERS: Tokens = Field(description="a list of HTTP header names, or *")
    # Serving
    HOST: Annotated[str, _matching(_HOST)] = Field(
        description="an interface address or host name (no spaces or slashes)"
    )
    PORT: Whole = Field(ge=1, le=65535, description="a whole number from 1 to 65535")
    RELOAD: bool = Field(description="true or false")
    WORKERS: Whole = Field(ge=1, le=1024, description="a whole number from 1 to 1024")
    HEADER_TIMEOUT: Seconds = Field(description=_SECONDS)
    MAX_REQUEST_LINE: Whole = Field(
        ge=256,
        le=MAX_LIMIT_BYTES,
        description=f"a whole number of bytes from 256 to {MAX_LIMIT_BYTES}",
    )
    MAX_HEADER_BYTES: Whole = Field(
        ge=1024,
        le=MAX_LIMIT_BYTES,
        description=f"a whole number of bytes from 1024 to {MAX_LIMIT_BYTES}",
    )
    MAX_CONNECTIONS: Whole = Field(
        ge=1, le=1_000_000, description="a whole number from 1 to 1000000"
    )
    SHUTDOWN_GRACE: SecondsOrZero = Field(
        description=f"a number of seconds from 0 to {MAX_SECONDS}"
    )
    # Plugins
    PLUGIN_PATHS: Paths = Field(description="a list of folders, or one folder (not empty)")
    DEMO_PLUGINS: bool = Field(description="true or false")
    PLUGIN_ENTRY_POINTS: bool = Field(description="true or false")
    PLUGIN_WHITELIST_LIST: Strings = Field(description=_STRINGS)
    PLUGIN_WHITELIST_RE: Regex = Field(description="a regular expression, or empty")
    PLUGIN_WHITELIST_TAGS: Strings = Field(description=_STRINGS)
    PLUGIN_BLACKLIST_LIST: Strings = Field(description=_STRINGS)
    PLUGIN_BLACKLIST_RE: Regex = Field(description="a regular expression, or empty")
    PLUGIN_BLACKLIST_TAGS: Strings = Field(description=_STRINGS)
    # Components
    COMPONENT_TIMEOUT: Seconds = Field(description=_SECONDS)
    COMPONENT_CHECK_TIMEOUT: Seconds = Field(description=_SECONDS)
    HEALTH_TIMEOUT: Seconds = Field(description=_SECONDS)
    SHUTDOWN_TIMEOUT: Seconds = Field(description=_SECONDS)
    COMPONENT_BREAKER: bool = Field(description="true or false")
    COMPONENT_PROBE_INTERVAL: Seconds = Field(description=_SECONDS)
    COMPONENT_PROBE_MAX_INTERVAL: Seconds = Field(description=_SECONDS)
    # Last: its entries take COMPONENT_TIMEOUT, validated above, as their default TIMEOUT.
    OPTIONAL_COMPONENTS: tuple[ComponentSpec, ...] = Field(
        description="a mapping of component names to LOAD, DRIVER, OPTS and TIMEOUT"
    )

    @field_validator("OPTIONAL_COMPONENTS", mode="plain")
    @classmethod
    def _components(cls, raw: Any, info: ValidationInfo) -> tuple[ComponentSpec, ...]:
        timeout = info.data.get("COMPONENT_TIMEOUT", DEFAULT_COMPONENT_TIMEOUT)
        try:
            return tuple(parse_components(raw, timeout))
        except ConfigError as exc:
            # Carried as a pydantic error, so it joins the other problems on the one line.
            raise PydanticCustomError("opa_setting", "{message}", {"message": str(exc)}) from None

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> Settings:
        if self.CORS_ALLOW_CREDENTIALS and "*" in self.CORS_ORIGINS:
            raise ConfigError(
                "CORS_ORIGINS contains '*' while CORS_ALLOW_CREDENTIALS is true; list the "
                "allowed origins explicitly (OPA_CORS_ORIGINS)"
            )
        return self

    @model_validator(mode="after")
    def _metrics_port_of_its_own(self) -> Settings:
        if self.METRICS_PORT == self.PORT:
            raise ConfigError(
                f"setting METRICS_PORT ({self.METRICS_PORT}) is the app's own PORT; pick "
                "another port, or null to serve the metrics at METRICS_PATH on the app's port "
                "(OPA_METRICS_PORT)"
            )
        return self

    @model_validator(mode="after")
    def _probe_pauses_grow(self) -> Settings:
        if self.COMPONENT_PROBE_MAX_INTERVAL < self.COMPONENT_PROBE_INTERVAL:
            raise ConfigError(
                f"setting COMPONENT_PROBE_MAX_INTERVAL ({self.COMPONENT_PROBE_MAX_INTERVAL:g}s) "
                f"is shorter than COMPONENT_PROBE_INTERVAL ({self.COMPONENT_PROBE_INTERVAL:g}s); "
                "raise the longest or lower the first (OPA_COMPONENT_PROBE_MAX_INTERVAL)"
            )
        return self

    @property
    def body_limit(self) -> int | None:
        """``MAX_REQUEST_BODY`` in bytes, or None when there is no limit."""
        return self.MAX_REQUEST_BODY or None


def _field_problem(error: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    """One pydantic error as a problem line: the field's description says what was expected."""
    if error["type"] == "opa_setting":
        return str(error["msg"])
    loc = list(error["loc"])
    name = str(loc[0]) if loc else ""
    value = values.get(name, MISSING)
    # An item of a list: name it, and show what that item was.
    item = next((part for part in loc[1:] if isinstance(part, int)), None)
    if item is not None and isinstance(value, list) and item < len(value):
        value = value[item]
    else:
        item = None
    field = Settings.model_fields.get(name)
    expected = field.description if field and field.description else pydantic_expected(error)
    return problem([name], expected, found([name], value), item=item)


def validate_settings(values: Mapping[str, Any]) -> Settings:
    """The typed settings; a :class:`ConfigError` in one line naming every bad one."""
    try:
        return Settings.model_validate(dict(values))
    except ValidationError as exc:
        problems = [_field_problem(error, values) for error in exc.errors(include_url=False)]
        raise ConfigError(one_line(problems)) from None
