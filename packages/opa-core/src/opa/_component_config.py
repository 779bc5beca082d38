"""Reads ``OPTIONAL_COMPONENTS`` into checked specifications, before anything connects."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from opa._errors import OptionsError
from opa._setting_errors import bad_setting, one_line, validation_problems

SETTING = "OPTIONAL_COMPONENTS"
LOAD_VALUES = ("auto", "yes", "no")
COMPONENT_KEYS = {"LOAD", "DRIVER", "OPTS", "TIMEOUT"}
MAX_TIMEOUT = 3600
_MERGE_MARKERS = {"DYNACONF_MERGE", "DYNACONF_MERGE_UNIQUE"}


@dataclass(frozen=True)
class ComponentSpec:
    """One entry of ``OPTIONAL_COMPONENTS``: the name plugins use and how to connect it."""

    name: str
    load: str
    driver: str
    opts: dict[str, Any] = field(default_factory=dict)
    timeout: float = 10.0


def _upper_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).upper(): v for k, v in value.items() if str(k).upper() not in _MERGE_MARKERS}


def _load_value(key: str, raw: Any) -> str:
    # YAML reads yes/no as booleans; accept them as the words they were.
    if raw is True:
        return "yes"
    if raw is False:
        return "no"
    value = str(raw if raw is not None else "auto").strip().lower()
    if value not in LOAD_VALUES:
        raise bad_setting([SETTING, key, "LOAD"], f"one of {', '.join(LOAD_VALUES)}", raw)
    return value


def _timeout(key: str, raw: Any, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if isinstance(raw, bool) or not 0 < value <= MAX_TIMEOUT:
        raise bad_setting(
            [SETTING, key, "TIMEOUT"], f"a number of seconds above 0 and at most {MAX_TIMEOUT}", raw
        )
    return value


def parse_components(raw: Any, default_timeout: float) -> list[ComponentSpec]:
    """Check every component's keys; errors name the component and the key."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise bad_setting([SETTING], "a mapping of component names to their settings", raw)
    specs: list[ComponentSpec] = []
    for raw_key, value in raw.items():
        key = str(raw_key)
        if key.upper() in _MERGE_MARKERS:
            continue
        name = key.lower()
        if not isinstance(value, Mapping):
            raise bad_setting([SETTING, key], "a mapping with LOAD, DRIVER and OPTS", value)
        entry = _upper_keys(value)
        unknown = sorted(set(entry) - COMPONENT_KEYS)
        if unknown:
            raise bad_setting(
                [SETTING, key, unknown[0]],
                f"only {', '.join(sorted(COMPONENT_KEYS))} in a component "
                "(driver options go under OPTS)",
                entry[unknown[0]],
                show_value=False,
            )
        load = _load_value(key, entry.get("LOAD"))
        driver = entry.get("DRIVER")
        if load != "no" and not (isinstance(driver, str) and driver.strip()):
            raise bad_setting([SETTING, key, "DRIVER"], "the name of the driver to use", driver)
        opts = entry.get("OPTS") or {}
        if not isinstance(opts, Mapping):
            raise bad_setting(
                [SETTING, key, "OPTS"], "a mapping of driver options", opts, show_value=False
            )
        specs.append(
            ComponentSpec(
                name=name,
                load=load,
                driver=str(driver or "").strip().lower(),
                opts=_upper_keys(opts),
                timeout=_timeout(key, entry.get("TIMEOUT"), default_timeout),
            )
        )
    return specs


def validate_options(spec: ComponentSpec, model: type[BaseModel]) -> BaseModel:
    """Validate OPTS against the driver's model; never echo the values (they may be secret)."""
    try:
        return model.model_validate(spec.opts)
    except ValidationError as exc:
        problems = validation_problems(exc, [SETTING, spec.name, "OPTS"], show_value=False)
        raise OptionsError(
            f"component {spec.name!r} (driver {spec.driver}): {one_line(problems)}"
        ) from None
