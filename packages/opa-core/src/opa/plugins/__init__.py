"""Old import paths of opa-stack's built-in drivers, kept as lazy aliases.

The drivers now ship as separate distributions; ``opa.plugins.driver_redis`` and
friends forward to them with a deprecation warning, or name the distribution to
install when it is missing.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from opa._errors import DriverNotInstalledError

# old class name -> (module, class, distribution)
Target = tuple[str, str, str]


def resolve_alias(old_module: str, name: str, targets: dict[str, Target]) -> Any:
    """Import *name* from its new home, warning that the old path is deprecated."""
    target = targets.get(name)
    if target is None:
        raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
    module_name, class_name, distribution = target
    warnings.warn(
        f"{old_module}.{name} is deprecated; use 'from {module_name} import {class_name}' "
        f"(distribution {distribution})",
        DeprecationWarning,
        stacklevel=3,
    )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise DriverNotInstalledError(
            f"{old_module}.{name} moved to the distribution {distribution}, which is not "
            f"installed; install it with: pip install {distribution}"
        ) from None
    return getattr(module, class_name)
