"""``celery -A opa.worker worker|flower``: the worker app, which opa-driver-celery provides."""

import importlib
from typing import Any

from opa.errors import DriverNotInstalledError


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
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
