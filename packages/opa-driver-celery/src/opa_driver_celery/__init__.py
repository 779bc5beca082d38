"""opa-driver-celery: the ``celery`` driver (a Celery app as an optional component).

``opa worker`` (or ``celery -A opa_driver_celery.worker worker``) runs a worker on the
same plugins and settings as the app. Celery itself is imported only when a component
connects, so importing this package is cheap.
"""

from opa_driver_celery.driver import SETUP_HOOK, CeleryDriver, UnknownTaskError
from opa_driver_celery.options import SAFE_DEFAULTS, CeleryOptions

__version__ = "0.1.0"

__all__ = [
    "SAFE_DEFAULTS",
    "SETUP_HOOK",
    "CeleryDriver",
    "CeleryOptions",
    "UnknownTaskError",
]
