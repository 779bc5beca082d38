"""opa: a FastAPI platform where everything is a plugin.

Plugins add routes, hooks, setup code and drivers; backends are optional
components, connected at start-up and reached with ``get_instance(name)``.
"""

from typing import Any

from opa._app import create_app
from opa._body_limit import limit_body
from opa._bootstrap import bootstrap
from opa._components import Component, Status
from opa._dependencies import Instance
from opa._drivers import CONTRACT_VERSION, Driver, DriverOptions, instrument_once
from opa._errors import (
    BadSignature,
    ComponentError,
    ComponentUnavailableError,
    ConfigError,
    DriverError,
    HookError,
    OpaError,
    OptionsError,
    PluginError,
    SignatureExpired,
)
from opa._hooks import Hook, HookDefinition
from opa._json_body import JsonBodyError, parse_json
from opa._legacy import GET_UTIL, removed
from opa._log import log
from opa._masking import mask_secrets
from opa._metrics_port import WorkerMetrics, serve_worker_metrics
from opa._plugin_manager import PluginManager, Setup
from opa._runtime import (
    call_hook,
    call_hook_async,
    config,
    get_component,
    get_instance,
    get_plugin_manager,
    get_router,
)
from opa._signing import Signer, signer

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # opa-stack's get_util: named, so an old plugin learns what replaces it.
    if name == "get_util":
        raise removed("opa.get_util", GET_UTIL)
    raise AttributeError(f"module 'opa' has no attribute {name!r}")


__all__ = [
    "CONTRACT_VERSION",
    "BadSignature",
    "Component",
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
    "JsonBodyError",
    "OpaError",
    "OptionsError",
    "PluginError",
    "PluginManager",
    "Setup",
    "SignatureExpired",
    "Signer",
    "Status",
    "WorkerMetrics",
    "bootstrap",
    "call_hook",
    "call_hook_async",
    "config",
    "create_app",
    "get_component",
    "get_instance",
    "get_plugin_manager",
    "get_router",
    "instrument_once",
    "limit_body",
    "log",
    "mask_secrets",
    "parse_json",
    "serve_worker_metrics",
    "signer",
]
