"""With every package installed, each of opa-stack's import paths gives today's driver."""

from __future__ import annotations

import importlib
import warnings

import pytest
from celery import Celery

from opa_driver_celery import CeleryDriver
from opa_driver_celery.plugin import CelerySetupHook, DefaultCelerySetup
from opa_driver_mongodb_motor import MotorDriver
from opa_driver_redis_aioredis import AioredisDriver
from opa_driver_redis_walrus import WalrusDriver


@pytest.mark.parametrize(
    ("path", "cls"),
    [
        ("opa.plugins.driver_redis.Walrus", WalrusDriver),
        ("opa.plugins.driver_redis.Aioredis", AioredisDriver),
        ("opa.plugins.driver_mongodb.MongodbMotorAsync", MotorDriver),
        ("opa.plugins.driver_celery.CeleryDriver", CeleryDriver),
    ],
)
def test_an_old_path_resolves_to_the_driver_that_declares_it(path: str, cls: type) -> None:
    """The old path is deprecated but gives the installed driver class."""
    module, _, name = path.rpartition(".")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert getattr(importlib.import_module(module), name) is cls
    assert path in cls.legacy_names


@pytest.mark.parametrize(
    ("name", "expected", "new_import"),
    [
        (
            "celery_setup_definition",
            CelerySetupHook,
            "from opa_driver_celery.plugin import CelerySetupHook",
        ),
        (
            "celery_setup",
            DefaultCelerySetup,
            "from opa_driver_celery.plugin import DefaultCelerySetup",
        ),
        ("Celery", Celery, "from celery import Celery"),
    ],
)
def test_the_other_names_of_the_old_celery_module_resolve(
    name: str, expected: type, new_import: str
) -> None:
    """opa-stack's hook classes and celery's own Celery come from where they live now."""
    with pytest.warns(DeprecationWarning) as caught:
        found = getattr(importlib.import_module("opa.plugins.driver_celery"), name)
    assert found is expected
    assert f"use '{new_import}' (driver 'celery')" in str(caught[0].message)


def test_opa_stack_names_that_never_existed_are_not_offered() -> None:
    """`Motor` was never opa-stack's class name: asking for it fails like any missing name."""
    with pytest.raises(AttributeError, match="has no attribute 'Motor'"):
        importlib.import_module("opa.plugins.driver_mongodb").Motor  # noqa: B018
