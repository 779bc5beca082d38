"""opa: a FastAPI platform where everything is a plugin.

Plugins add routes, hooks, setup code and drivers; backends are optional
components, connected at start-up and reached with ``get_instance(name)``.
"""

from opa.app import create_app
from opa.dependencies import Instance
from opa.drivers import CONTRACT_VERSION, Driver, DriverOptions
from opa.errors import (
    ComponentError,
    ComponentUnavailableError,
    ConfigError,
    DriverError,
    HookError,
    OpaError,
    OptionsError,
    PluginError,
)
from opa.hooks import Hook, HookDefinition
from opa.log import log
from opa.plugin_manager import Setup
from opa.runtime import (
    call_hook,
    call_hook_async,
    config,
    get_component,
    get_instance,
    get_plugin_manager,
    get_router,
)

__version__ = "0.1.0"

__all__ = [
    "CONTRACT_VERSION",
    "ComponentError",
    "ComponentUnavailableError",
    "ConfigError",
    "Driver",
    "DriverError",
    "DriverOptions",
    "Hook",
    "HookDefinition",
    "HookError",
    "Instance",
    "OpaError",
    "OptionsError",
    "PluginError",
    "Setup",
    "call_hook",
    "call_hook_async",
    "config",
    "create_app",
    "get_component",
    "get_instance",
    "get_plugin_manager",
    "get_router",
    "log",
]
