"""opa's extension points: the pluggy hook specifications an installed distribution implements.

A distribution names a module (or object) in the entry point group ``opa.extensions``; opa
registers it with its one extension manager and calls its ``@hookimpl`` functions at the
points below. The component events let metrics, logs and alerts observe every driver
without code in the driver.

These are not the user hooks of plugins (``HookDefinition`` / ``Hook``, see
``docs/concepts.md``): those are named at run time and called with ``opa.call_hook``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from fastapi import FastAPI

    from opa._components import Component
    from opa._plugin_manager import PluginManager

PROJECT = "opa"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
    "opa_app_setup",
    "opa_cli_commands",
    "opa_component_connected",
    "opa_component_disconnected",
    "opa_component_down",
    "opa_component_failed",
    "opa_component_outage",
    "opa_component_pinged",
    "opa_component_recovered",
    "opa_worker_app",
    "opa_worker_setup",
]


@hookspec
def opa_cli_commands() -> list[click.Command]:
    """Commands added to the ``opa`` group (``opa worker`` comes from opa-driver-celery)."""
    raise NotImplementedError  # a specification: pluggy calls the implementations only


@hookspec
def opa_app_setup(app: FastAPI, manager: PluginManager) -> None:
    """Add routes or middleware to *app* while it is built, before it serves."""


@hookspec
def opa_worker_setup(manager: PluginManager) -> None:
    """Prepare a worker or a shell once its sync components connected (load tasks, say)."""


@hookspec(firstresult=True)
def opa_worker_app(manager: PluginManager) -> Any:
    """The object ``celery -A opa.worker`` runs, built on the bootstrapped *manager*."""


@hookspec
def opa_component_connected(component: Component, elapsed: float) -> None:
    """*component* connected and passed its driver's validation, which took *elapsed* seconds.

    An implementation may leave out *elapsed* (pluggy passes only the arguments it names).
    """


@hookspec
def opa_component_failed(component: Component, error: str) -> None:
    """*component* did not connect; *error* says why (credentials masked)."""


@hookspec
def opa_component_outage(component: Component, error: str) -> None:
    """A request failed with an outage error of *component*'s backend and was answered 503."""


@hookspec
def opa_component_pinged(component: Component, elapsed: float, problem: str | None) -> None:
    """*component* was pinged (``/health``, or the breaker waiting for it); it took *elapsed*
    seconds, and *problem* says why it failed, or is None when it answered."""


@hookspec
def opa_component_down(component: Component, error: str) -> None:
    """The breaker marked *component* down while serving; *error* is the outage seen."""


@hookspec
def opa_component_recovered(component: Component, elapsed: float) -> None:
    """*component* answers again after *elapsed* seconds down, and is served again."""


@hookspec
def opa_component_disconnected(component: Component) -> None:
    """*component* was disconnected (shutdown, or the end of ``opa check``)."""
