"""opa-driver-celery's own plugin, loaded through its ``opa.plugins`` entry point.

Hook definitions are collected from plugin modules, so this is where the driver declares
``driver.celery.setup`` and its default. The ``Setup`` runs that hook and imports every
plugin's tasks once an app's components are connected, so a broken ``tasks.py`` stops
start-up, not a request. (A worker or a shell does the same through the extension's
``opa_worker_setup``.)
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from opa import Hook, HookDefinition, Setup, get_plugin_manager
from opa_driver_celery.driver import SETUP_HOOK, prepare_connected


class CelerySetupHook(HookDefinition):
    """``driver.celery.setup(app) -> app``: configure a Celery app (routes, settings).

    Called once per connect, once the component connected (at app start-up, or in a
    worker or a shell before tasks load); the app it returns is the component's instance.
    """

    name = SETUP_HOOK


class DefaultCelerySetup(Hook):
    """Leaves the app as OPTS built it; any plugin's implementation (order 0) wins."""

    name = SETUP_HOOK
    order = -1

    def run(self, app: Any) -> Any:
        return app


class LoadCeleryTasks(Setup):
    """Runs the setup hook and imports the plugins' ``tasks.py`` for each connected celery
    component."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(app)
        prepare_connected(get_plugin_manager())
