"""The plugin manager: loads plugins, collects what they define, owns hooks and components.

Start-up order (as the original had it): configuration, plugin discovery and
import, hook definitions, hooks, drivers, components, routers, and ``Setup``
classes last of all.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from opa._components import Component, Components
from opa._config import typed
from opa._discovery import Candidate, PluginFilter, discover, import_candidate, put_on_sys_path
from opa._driver_registry import DriverRegistry
from opa._drivers import Driver
from opa._errors import PluginError
from opa._hooks import Hook, HookDefinition, HookRegistry
from opa._legacy import missing_attribute, warn_renamed
from opa._log import log

if TYPE_CHECKING:
    from fastapi import FastAPI

PLUGIN_ENTRY_POINT_GROUP = "opa.plugins"

GONE_ATTRIBUTES = {
    "store": (
        "opa keeps no shared store: keep shared state in a plugin module, or on app.state "
        "in a Setup class"
    ),
    "status": (
        "a component's state is opa.get_component(name).status, all of them on GET /health; "
        "a Setup's outcome is not kept"
    ),
}
"""opa-stack's PluginManager attributes opa does not provide, and what replaces each."""
DEMO_PLUGINS_FOLDER = Path(__file__).with_name("demo_plugins")


class Setup:
    """Subclass to run code once the app is built and components are connected.

    Setup classes are instantiated last of all, with the app as keyword ``app`` when their
    ``__init__`` names it (or takes ``**kwargs``); one that takes no argument gets none, as
    opa-stack matched the arguments to the signature.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app


def run_setup(setup: type[Setup], app: FastAPI) -> Setup:
    """Instantiate *setup* with those of opa's arguments (``app``) its ``__init__`` names.

    A required parameter opa has no value for is a TypeError saying so, which the caller
    reports with the plugin's name.
    """
    offered = {"app": app}
    wanted: dict[str, Any] = {}
    parameters = list(inspect.signature(setup.__init__).parameters.values())[1:]  # not self
    for parameter in parameters:
        if parameter.kind is parameter.VAR_KEYWORD:
            return setup(**offered)
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.POSITIONAL_ONLY):
            continue
        if parameter.name in offered:
            wanted[parameter.name] = offered[parameter.name]
        elif parameter.default is parameter.empty:
            raise TypeError(
                f"__init__ asks for {parameter.name!r}, which opa does not pass; "
                f"it passes only {', '.join(offered)} (by keyword)"
            )
    return setup(**wanted)


@dataclass
class LoadedPlugin:
    """A plugin module and what was collected from it."""

    identity: str
    module: ModuleType
    hook_definitions: list[type[HookDefinition]] = field(default_factory=list)
    hooks: list[type[Hook]] = field(default_factory=list)
    drivers: list[type[Driver]] = field(default_factory=list)
    setups: list[type[Setup]] = field(default_factory=list)
    router: APIRouter | None = None


def collect(identity: str, module: ModuleType) -> LoadedPlugin:
    """Collect the classes *defined in* a plugin module (not imported into it) by kind."""
    plugin = LoadedPlugin(identity, module)
    kinds: list[tuple[type, list[Any]]] = [
        (HookDefinition, plugin.hook_definitions),
        (Hook, plugin.hooks),
        (Driver, plugin.drivers),
        (Setup, plugin.setups),
    ]
    for value in vars(module).values():
        if not isinstance(value, type) or value.__module__ != module.__name__:
            continue
        for base, bucket in kinds:
            if issubclass(value, base) and value is not base:
                bucket.append(value)
    router = getattr(module, "router", None)
    if isinstance(router, APIRouter):
        plugin.router = router
    return plugin


def plugin_paths(settings: Any) -> list[Path]:
    """The configured plugin folders, then the demo folder when ``DEMO_PLUGINS`` is on."""
    checked = typed(settings)
    paths = [Path(p).expanduser() for p in checked.PLUGIN_PATHS]
    if checked.DEMO_PLUGINS:
        paths.append(DEMO_PLUGINS_FOLDER)
    return paths


class PluginManager:
    """Everything one app (or worker) loaded: plugins, hooks, drivers and components."""

    def __init__(self, settings: Any, installed_drivers: list[EntryPoint] | None = None) -> None:
        self.settings = settings
        self.plugins: list[LoadedPlugin] = []
        self.hooks = HookRegistry()
        self.drivers = DriverRegistry(installed_drivers)
        checked = typed(settings)
        self.components = Components(
            list(checked.OPTIONAL_COMPONENTS),
            self.drivers,
            check_timeout=checked.COMPONENT_CHECK_TIMEOUT,
            health_timeout=checked.HEALTH_TIMEOUT,
            shutdown_timeout=checked.SHUTDOWN_TIMEOUT,
        )

    @property
    def optional_components(self) -> dict[str, Component]:
        """Components by lower-cased name, as the original exposed them."""
        return self.components.by_name

    @property
    def hook_definitions(self) -> dict[str, type[HookDefinition]]:
        """Hook definitions by name, as opa-stack's plugin manager held them."""
        return self.hooks.definitions

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Deprecated: opa-stack's ``plugin_manager.call``; it is ``opa.call_hook`` now."""
        warn_renamed("PluginManager.call", "opa.call_hook")
        return self.hooks.call(name, args, kwargs)

    async def call_async(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Deprecated: opa-stack's ``plugin_manager.call_async``; ``opa.call_hook_async`` now."""
        warn_renamed("PluginManager.call_async", "opa.call_hook_async")
        return await self.hooks.call_async(name, args, kwargs)

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute

        def __getattr__(self, name: str) -> Any:
            raise missing_attribute(self, name, GONE_ATTRIBUTES, f"PluginManager.{name}")

    @property
    def routers(self) -> list[APIRouter]:
        return [p.router for p in self.plugins if p.router is not None]

    @property
    def setups(self) -> list[type[Setup]]:
        return [setup for p in self.plugins for setup in p.setups]

    def hook_winner(self, name: str) -> type[Hook] | None:
        """The implementation ``call_hook(name)`` runs; None when no loaded plugin defines or
        implements the hook *name*."""
        if name not in self.hooks.definitions:
            return None
        return self.hooks.winner(name)

    def candidates(self) -> list[Candidate]:
        """Plugin candidates that pass the filters, in load order."""
        paths = plugin_paths(self.settings)
        found = discover(paths)
        plugin_filter = PluginFilter.from_settings(typed(self.settings))
        accepted = [c for c in found if plugin_filter.accepts(c.identity, c.tags)]
        for candidate in found:
            if candidate not in accepted:
                log.debug("plugin {} filtered out", candidate.identity)
        return accepted

    def load(self, sync_only: bool = False, resolve: bool = True) -> None:
        """Import plugins and register what they define; no component connects here.

        With *resolve*, drivers are looked up and options validated now, so configuration
        errors surface before start-up; reports (``opa check``) pass False and see each.
        """
        put_on_sys_path(plugin_paths(self.settings))
        for candidate in self.candidates():
            self.plugins.append(collect(candidate.identity, import_candidate(candidate)))
            log.debug("plugin {} loaded", candidate.identity)
        if typed(self.settings).PLUGIN_ENTRY_POINTS:
            self._load_entry_point_plugins()
        for plugin in self.plugins:
            for definition in plugin.hook_definitions:
                self.hooks.add_definition(definition)
        for plugin in self.plugins:
            for hook in plugin.hooks:
                self.hooks.add_hook(hook)
        self.hooks.finalize()
        for plugin in self.plugins:
            for driver in plugin.drivers:
                self.drivers.add_plugin_driver(driver, plugin.identity)
        if resolve:
            self.components.resolve(sync_only=sync_only)

    def _load_entry_point_plugins(self) -> None:
        plugin_filter = PluginFilter.from_settings(typed(self.settings))
        for entry_point in entry_points(group=PLUGIN_ENTRY_POINT_GROUP):
            distribution = entry_point.dist.name if entry_point.dist else "unknown"
            identity = f"{distribution}/{entry_point.name}"
            if not plugin_filter.accepts(identity, set()):
                continue
            try:
                loaded = entry_point.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {identity} (entry point {entry_point.value}) failed to import: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(loaded, ModuleType):
                raise PluginError(
                    f"plugin entry point {identity} must point at a module, "
                    f"not {type(loaded).__name__}"
                )
            self.plugins.append(collect(identity, loaded))
