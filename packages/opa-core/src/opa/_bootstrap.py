"""One bootstrap for every way opa starts: the app, each CLI command, the worker, the tests.

The order, always the same:

1. settings: loaded and validated (a bad one is one error line);
2. logging: configured at the settings' ``LOG_LEVEL``, through masking; then a warning
   for each of opa-stack's settings that opa does not read;
3. extensions: the ``opa.extensions`` entry points, once per process;
4. plugin manager: built on these settings and activated, so a plugin that reads
   ``opa.config`` while it is imported sees them, never a separately loaded copy;
5. plugins: imported, their hooks and drivers registered;
6. components: drivers resolved and options validated (unless *resolve* is off); with
   ``TRACING`` on, the tracer provider, and each of their drivers instruments its client
   library; with *connect_sync* (a worker, a shell) the sync components connect and the
   extensions' ``opa_worker_setup`` runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opa import _runtime as runtime
from opa._config import load_settings, old_name_warnings, typed
from opa._errors import OpaError
from opa._extensions import extensions
from opa._log import log, setup_logging
from opa._plugin_manager import PluginManager


def plugin_of_logger(name: str) -> str | None:
    """The plugin whose module (or a module inside it) is the logger *name*, if any."""
    try:
        manager = runtime.get_plugin_manager()
    except OpaError:  # logging before any app or worker started
        return None
    for plugin in manager.plugins:
        module = plugin.module.__name__
        if name == module or name.startswith(f"{module}."):
            return module
    return None


def settings_and_logging(
    settings: Mapping[str, Any] | None = None,
    *,
    settings_dir: str | Path | None = None,
    env: str | None = None,
) -> Any:
    """Steps 1 and 2 alone, for commands that need no plugin (``opa config``)."""
    resolved = load_settings(settings_dir=settings_dir, env=env, overrides=settings)
    checked = typed(resolved)
    setup_logging(
        checked.LOG_LEVEL, json_lines=checked.LOG_FORMAT == "json", plugin_of=plugin_of_logger
    )
    for warning in old_name_warnings(resolved):
        log.warning("{}", warning)
    return resolved


def bootstrap(
    settings: Mapping[str, Any] | None = None,
    *,
    settings_dir: str | Path | None = None,
    env: str | None = None,
    resolve: bool = True,
    connect_sync: bool = False,
) -> PluginManager:
    """Start opa in the one documented order and return the active plugin manager.

    *settings* override configuration keys; *settings_dir* and *env* default to
    ``OPA_SETTINGS_DIR`` and ``OPA_ENV``. ``resolve=False`` leaves drivers unresolved, for
    reports that look at each component (``opa check``, ``opa drivers``).
    ``connect_sync=True`` is for a worker or a shell: only sync drivers are resolved, they
    connect, and each extension's ``opa_worker_setup`` runs; a failure there disconnects
    them again before it is raised.
    """
    resolved = settings_and_logging(settings, settings_dir=settings_dir, env=env)
    extension_manager = extensions()
    manager = PluginManager(resolved)
    runtime.activate(manager)
    manager.load(sync_only=connect_sync, resolve=resolve)
    checked = typed(resolved)
    if resolve and checked.TRACING:
        # Imported only now: with tracing off, no opentelemetry. Before anything connects.
        from opa._tracing import start_tracing

        start_tracing(manager.components, checked.PROJECT_NAME)
    if connect_sync:
        manager.components.start_sync()
        try:
            extension_manager.hook.opa_worker_setup(manager=manager)
        except BaseException:
            manager.components.stop_sync()
            raise
    return manager
