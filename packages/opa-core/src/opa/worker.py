"""``celery -A opa.worker worker|flower``: the worker app, which opa-driver-celery provides.

A bad setting (the worker loads and checks them like every entry) or a missing driver ends
the process with one ``error: ...`` line and status 1 instead of Celery's traceback.
"""

import importlib
from typing import Any

from opa._entry_errors import exit_on_opa_error
from opa._errors import DriverNotInstalledError


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with exit_on_opa_error():
        return _driver_worker_app()


def _driver_worker_app() -> Any:
    try:
        # Imported by name: the celery driver is an optional distribution, unknown to mypy here.
        worker = importlib.import_module("opa_driver_celery.worker")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("opa_driver_celery"):
            raise
        raise DriverNotInstalledError(
            "celery -A opa.worker needs the celery driver; install it with: "
            "pip install opa-driver-celery"
        ) from None
    return worker.app
