"""``celery -A opa.worker worker|flower``: the worker app an installed extension provides.

opa-core knows no worker: it bootstraps (sync components connected, ``opa_worker_setup``
run) and asks the extensions' ``opa_worker_app`` for the object Celery runs, once per
process. A bad setting or a missing extension ends the process with one ``error: ...``
line and status 1 instead of Celery's traceback.
"""

from typing import Any

from opa._bootstrap import bootstrap
from opa._entry_errors import exit_on_opa_error
from opa._errors import DriverNotInstalledError
from opa._extensions import extensions
from opa._known_drivers import COMMANDS, command_hint

_app: Any = None


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with exit_on_opa_error():
        return _worker_app()


def _worker_app() -> Any:
    global _app
    if _app is not None:
        return _app
    hook = extensions().hook.opa_worker_app
    if not hook.get_hookimpls():
        raise DriverNotInstalledError(
            f"celery -A opa.worker needs {COMMANDS['worker']}, which is not installed; "
            f"install it with: {command_hint('worker')}"
        )
    app = hook(manager=bootstrap(connect_sync=True))
    if app is None:
        raise DriverNotInstalledError(
            "no installed extension built a worker app (every opa_worker_app returned None)"
        )
    _app = app
    return _app
