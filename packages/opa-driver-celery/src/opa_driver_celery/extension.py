"""opa-driver-celery's extension (entry point group ``opa.extensions``): what it adds to opa.

``opa worker``, the app ``celery -A opa.worker`` runs, and, in a worker or a shell, the
setup hook and task loading of each connected celery component. Importing this module
imports no Celery: ``opa --help`` and every other command stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opa.hookspecs import hookimpl

if TYPE_CHECKING:
    import click

    from opa import PluginManager


@hookimpl
def opa_cli_commands() -> list[click.Command]:
    """``opa worker``."""
    from opa_driver_celery.worker import worker

    return [worker]


@hookimpl
def opa_worker_setup(manager: PluginManager) -> None:
    """Run the setup hook and import the tasks of each connected celery component."""
    from opa_driver_celery.driver import prepare_connected

    prepare_connected(manager)


@hookimpl
def opa_worker_app(manager: PluginManager) -> Any:
    """The Celery app ``celery -A opa.worker`` runs."""
    from opa_driver_celery.worker import worker_app

    return worker_app(manager)
