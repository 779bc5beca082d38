"""opa-stack's import paths (opa.plugins.driver_*) resolve through the driver registry."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest

from fake_distributions import make_distribution
from opa._errors import DriverNotInstalledError

OLD_DRIVER = """
from opa import Driver

class OldRedisDriver(Driver):
    name = "old-redis"
    is_async = False
    contract_version = 1
    legacy_names = ("opa.plugins.driver_redis.Legacy",)

    def connect(self):
        self.instance = "old"
"""


def test_an_old_path_gives_the_installed_driver_that_declares_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver listing the old path in legacy_names is returned, with a DeprecationWarning."""
    make_distribution(
        tmp_path,
        "opa-driver-old-redis",
        "1.0",
        {"opa.drivers": {"old-redis": "old_redis_driver:OldRedisDriver"}},
        {"old_redis_driver": OLD_DRIVER},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from opa.plugins.driver_redis import Legacy
    assert Legacy is importlib.import_module("old_redis_driver").OldRedisDriver
    (warning,) = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert str(warning.message) == (
        "opa.plugins.driver_redis.Legacy is deprecated; use "
        "'from old_redis_driver import OldRedisDriver' (driver 'old-redis')"
    )


def test_a_known_old_path_without_its_driver_names_the_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no driver installed, opa-stack's Walrus names the distribution to install."""
    monkeypatch.setattr("opa._driver_registry.entry_points", lambda group: [])
    with pytest.raises(DriverNotInstalledError) as caught:
        from opa.plugins.driver_redis import Walrus  # noqa: F401
    assert str(caught.value) == (
        "opa.plugins.driver_redis.Walrus is opa-stack's name of a driver that is not installed: "
        "it is the driver 'redis-walrus'; install it with: pip install opa-driver-redis-walrus"
    )


@pytest.mark.parametrize("module", ["driver_redis", "driver_mongodb", "driver_celery"])
def test_a_name_no_driver_declares_is_an_import_error(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown name in an old module fails like any missing name."""
    monkeypatch.setattr("opa._driver_registry.entry_points", lambda group: [])
    with pytest.raises(AttributeError, match=f"module 'opa.plugins.{module}' has no attribute"):
        importlib.import_module(f"opa.plugins.{module}").Nope  # noqa: B018
