"""The process-wide current plugin manager, and the accessors plugins call.

``get_instance`` and friends work from anywhere in plugin code (routes, tasks,
hooks) because the app or worker that loaded the plugins activates its manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from opa._errors import ComponentUnavailableError, OpaError
from opa._json_body import JsonBodyRoute

if TYPE_CHECKING:
    from opa._components import Component
    from opa._plugin_manager import PluginManager

_current: PluginManager | None = None

_REQUIRED: Any = object()
"""``get_instance``'s default when none is given: unavailable means an error (a 503)."""


def activate(manager: PluginManager | None) -> None:
    """Make *manager* the one ``get_instance`` and ``call_hook`` use."""
    global _current
    _current = manager


def get_plugin_manager() -> PluginManager:
    """The plugin manager of the running app or worker."""
    if _current is None:
        raise OpaError("no opa app or worker is running; build one with opa.create_app()")
    return _current


def get_component(name: str) -> Component:
    """The component called *name* (case-insensitive), with its status and driver."""
    return get_plugin_manager().components.get(name)


def get_instance(name: str, default: Any = _REQUIRED) -> Any:
    """The connected instance of component *name*, e.g. a ``walrus.Database``.

    A component that is not there (skipped under ``LOAD: auto``, disabled, failed, down or
    not configured) raises :class:`ComponentUnavailableError`, which a route answers with
    503; given a *default*, that is returned instead, so ``get_instance(name, None)`` asks
    whether the component is there, as opa-stack's None did.
    """
    manager = _current
    if manager is None:
        raise OpaError("no opa app or worker is running; build one with opa.create_app()")
    if default is _REQUIRED:
        return manager.components.get(name).instance
    try:
        return manager.components.get(name).instance
    except ComponentUnavailableError:
        return default


def call_hook(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run the winning implementation of the sync hook *name*."""
    return get_plugin_manager().hooks.call(name, args, kwargs)


async def call_hook_async(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run and await the winning implementation of the async hook *name*."""
    return await get_plugin_manager().hooks.call_async(name, args, kwargs)


def get_router(**kwargs: Any) -> APIRouter:
    """A new router; a plugin assigns it to a module-level ``router`` to be included.

    Its routes parse JSON bodies with :func:`opa.parse_json` unless *route_class* says
    otherwise, so a hostile body is a 422, never a 500.
    """
    kwargs.setdefault("route_class", JsonBodyRoute)
    return APIRouter(**kwargs)


class _ConfigProxy:
    """``opa.config``: the running app's settings, or the environment's when none runs."""

    _fallback: Any = None

    def _target(self) -> Any:
        if _current is not None:
            return _current.settings
        if _ConfigProxy._fallback is None:
            from opa._config import load_settings

            _ConfigProxy._fallback = load_settings()
        return _ConfigProxy._fallback

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __getitem__(self, key: str) -> Any:
        return self._target()[key]

    def __repr__(self) -> str:
        return "<opa.config>"


config: Any = _ConfigProxy()
