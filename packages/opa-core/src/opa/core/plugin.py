"""Deprecated: ``opa.core.plugin``, the import path opa-stack's plugin guide taught.

Each name is the one ``from opa import ...`` gives, with a DeprecationWarning naming that
import. The names are kept in a table, not as module globals, so every use passes through
``__getattr__`` and warns (``import *`` included, through ``__all__``).
"""

from typing import Any

from opa import _drivers, _hooks, _plugin_manager, _runtime
from opa._legacy import GET_UTIL, alias_module_getattr

_MOVED: dict[str, Any] = {
    "HookDefinition": _hooks.HookDefinition,
    "Hook": _hooks.Hook,
    "Driver": _drivers.Driver,
    "Setup": _plugin_manager.Setup,
    "PluginManager": _plugin_manager.PluginManager,
    "get_plugin_manager": _runtime.get_plugin_manager,
    "get_component": _runtime.get_component,
    "get_instance": _runtime.get_instance,
    "get_router": _runtime.get_router,
    "call_hook": _runtime.call_hook,
    "call_hook_async": _runtime.call_hook_async,
}

__all__ = list(_MOVED)

__getattr__ = alias_module_getattr(__name__, _MOVED, gone={"get_util": GET_UTIL})
