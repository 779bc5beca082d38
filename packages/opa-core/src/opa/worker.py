"""``celery -A opa.worker worker|flower``: the worker app, which opa-driver-celery provides."""

from typing import Any

from opa.errors import DriverNotInstalledError


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from opa_driver_celery.worker import app
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("opa_driver_celery"):
            raise
        raise DriverNotInstalledError(
            "celery -A opa.worker needs the celery driver; install it with: "
            "pip install opa-driver-celery"
        ) from None
    return app
