"""The one extension manager of a process: pluggy, opa's hook specs, the ``opa.extensions`` group.

Every installed distribution's extension is loaded once, the first time anything asks
(:func:`extensions`). A broken one stops the command with one line naming its entry point
and distribution, instead of pluggy's traceback or a silent skip.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pluggy

from opa import hookspecs
from opa._errors import PluginError
from opa._log import log
from opa._masking import mask_secrets

ENTRY_POINT_GROUP = "opa.extensions"

_manager: pluggy.PluginManager | None = None


def build_extensions() -> pluggy.PluginManager:
    """A new manager with opa's specs and every ``opa.extensions`` entry point registered."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if manager.has_plugin(entry_point.name):
            continue
        distribution = entry_point.dist.name if entry_point.dist else "unknown distribution"
        try:
            # One name at a time, so a failure is put down to its own entry point.
            manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=entry_point.name)
        except Exception as exc:
            raise PluginError(
                f"extension {entry_point.name!r} ({ENTRY_POINT_GROUP} entry point "
                f"{entry_point.value} of {distribution}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return manager


def extensions() -> pluggy.PluginManager:
    """This process's extension manager, built on first use."""
    global _manager
    if _manager is None:
        _manager = build_extensions()
    return _manager


def notify(event: str, **kwargs: Any) -> None:
    """Tell every extension about a component event; a listener that fails is logged, so
    an observer never changes what happens to the component."""
    caller = getattr(extensions().hook, event)
    try:
        caller(**kwargs)
    except Exception as exc:
        log.warning(
            "an extension failed on {}: {}", event, mask_secrets(f"{type(exc).__name__}: {exc}")
        )
