"""opa-stack's old driver modules, kept as names that resolve through the driver registry.

``from opa.plugins.driver_redis import Walrus`` gives the installed driver class that lists
``opa.plugins.driver_redis.Walrus`` in its ``legacy_names`` (or what a driver's
``legacy_exports`` names for such a path), with a deprecation warning.
The core names no driver module here: the driver declares its old names itself.
"""

from __future__ import annotations

import warnings
from typing import Any

from opa._driver_registry import DriverRegistry
from opa._errors import DriverNotInstalledError
from opa._known_drivers import legacy_hint


def resolve_legacy(old_module: str, name: str) -> Any:
    """What the installed driver that declares ``old_module.name`` offers for it (its class,
    or one of its ``legacy_exports``); warns that the old path is deprecated."""
    path = f"{old_module}.{name}"
    if name.startswith("__"):  # __path__, __wrapped__, ...: module machinery, not a driver
        raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
    found = DriverRegistry().legacy_object(path)
    if found is None:
        hint = legacy_hint(path)
        if not hint:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        raise DriverNotInstalledError(
            f"{path} is opa-stack's name of a driver that is not installed: {hint}"
        )
    cls, new_import, value = found
    warnings.warn(
        f"{path} is deprecated; use '{new_import}' (driver {cls.name!r})",
        DeprecationWarning,
        stacklevel=3,
    )
    return value
