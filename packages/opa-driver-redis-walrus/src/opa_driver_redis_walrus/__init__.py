"""opa's ``redis-walrus`` driver package; the class lives in ``driver.py``."""

from opa_driver_redis_walrus.driver import WalrusDriver

__version__ = "0.1.0"

__all__ = ["WalrusDriver"]
