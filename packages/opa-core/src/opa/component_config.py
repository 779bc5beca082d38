"""Reads ``OPTIONAL_COMPONENTS`` into checked specifications, before anything connects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from opa.errors import ConfigError, OptionsError

LOAD_VALUES = ("auto", "yes", "no")
COMPONENT_KEYS = {"LOAD", "DRIVER", "OPTS", "TIMEOUT"}
_MERGE_MARKERS = {"DYNACONF_MERGE", "DYNACONF_MERGE_UNIQUE"}


@dataclass(frozen=True)
class ComponentSpec:
    """One entry of ``OPTIONAL_COMPONENTS``: the name plugins use and how to connect it."""

    name: str
    load: str
    driver: str
    opts: dict[str, Any] = field(default_factory=dict)
    timeout: float = 10.0


def _kind(value: Any) -> str:
    """The plain Python name of *value*'s type; dynaconf's containers (DataList, Box) are
    subclasses of list and dict, and their names mean nothing to the user."""
    for plain in (bool, int, float, str, bytes, list, tuple, Mapping):
        if isinstance(value, plain):
            return "mapping" if plain is Mapping else plain.__name__
    return "null" if value is None else type(value).__name__


def _upper_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).upper(): v for k, v in value.items() if str(k).upper() not in _MERGE_MARKERS}


def _load_value(name: str, raw: Any) -> str:
    # YAML reads yes/no as booleans; accept them as the words they were.
    if raw is True:
        return "yes"
    if raw is False:
        return "no"
    value = str(raw if raw is not None else "auto").strip().lower()
    if value not in LOAD_VALUES:
        raise ConfigError(
            f"component {name!r}: LOAD is {raw!r}; expected one of {', '.join(LOAD_VALUES)}"
        )
    return value


def _timeout(name: str, raw: Any, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"component {name!r}: TIMEOUT is {raw!r}; expected a number of seconds"
        ) from None
    if not 0 < value <= 3600:
        raise ConfigError(f"component {name!r}: TIMEOUT must be between 0 and 3600 seconds")
    return value


def parse_components(raw: Any, default_timeout: float) -> list[ComponentSpec]:
    """Check every component's keys; errors name the component and the key."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise ConfigError(f"OPTIONAL_COMPONENTS must be a mapping, got {_kind(raw)}")
    specs: list[ComponentSpec] = []
    for key, value in raw.items():
        if str(key).upper() in _MERGE_MARKERS:
            continue
        name = str(key).lower()
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"component {name!r} must be a mapping with LOAD, DRIVER and OPTS, "
                f"got {_kind(value)}"
            )
        entry = _upper_keys(value)
        unknown = sorted(set(entry) - COMPONENT_KEYS)
        if unknown:
            raise ConfigError(
                f"component {name!r} has unknown keys {', '.join(unknown)}; "
                f"expected {', '.join(sorted(COMPONENT_KEYS))} (driver options go under OPTS)"
            )
        load = _load_value(name, entry.get("LOAD"))
        driver = entry.get("DRIVER")
        if load != "no" and not (isinstance(driver, str) and driver.strip()):
            raise ConfigError(f"component {name!r} has no DRIVER; name the driver to use")
        opts = entry.get("OPTS") or {}
        if not isinstance(opts, Mapping):
            raise ConfigError(f"component {name!r}: OPTS must be a mapping of driver options")
        specs.append(
            ComponentSpec(
                name=name,
                load=load,
                driver=str(driver or "").strip().lower(),
                opts=_upper_keys(opts),
                timeout=_timeout(name, entry.get("TIMEOUT"), default_timeout),
            )
        )
    return specs


def validate_options(spec: ComponentSpec, model: type[BaseModel]) -> BaseModel:
    """Validate OPTS against the driver's model; never echo the values (they may be secret)."""
    try:
        return model.model_validate(spec.opts)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "OPTS"
            problems.append(f"option {where}: {error['msg']}")
        raise OptionsError(
            f"component {spec.name!r} (driver {spec.driver}): invalid OPTS: " + "; ".join(problems)
        ) from None
