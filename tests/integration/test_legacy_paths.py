"""With every package installed, each of opa-stack's import paths gives today's driver."""

from __future__ import annotations

import importlib
import warnings

import pytest

from opa_driver_celery import CeleryDriver
from opa_driver_mongodb_motor import MotorDriver
from opa_driver_redis_aioredis import AioredisDriver
from opa_driver_redis_walrus import WalrusDriver


@pytest.mark.parametrize(
    ("path", "cls"),
    [
        ("opa.plugins.driver_redis.Walrus", WalrusDriver),
        ("opa.plugins.driver_redis.Aioredis", AioredisDriver),
        ("opa.plugins.driver_mongodb.Motor", MotorDriver),
        ("opa.plugins.driver_celery.Celery", CeleryDriver),
    ],
)
def test_an_old_path_resolves_to_the_driver_that_declares_it(path: str, cls: type) -> None:
    """The old path is deprecated but gives the installed driver class."""
    module, _, name = path.rpartition(".")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert getattr(importlib.import_module(module), name) is cls
    assert path in cls.legacy_names
