"""mongodb-async-motor without a server: its old import path and its default port."""

from __future__ import annotations

import warnings

from opa_driver_mongodb_motor import MotorDriver
from opa_mongodb_common import MongoOptions


def test_the_old_import_path_still_gives_the_driver() -> None:
    """`from opa.plugins.driver_mongodb import MongodbMotorAsync`, opa-stack's name, works."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from opa.plugins.driver_mongodb import MongodbMotorAsync
    assert MongodbMotorAsync is MotorDriver
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_a_url_without_a_port_is_checked_on_27017() -> None:
    """The driver declares MongoDB's port, so LOAD auto probes db:27017."""
    assert MotorDriver.default_ports == {"mongodb": 27017}
    driver = MotorDriver("mongodb", MongoOptions(URL="mongodb://db/opa"))
    assert driver.reachability_targets() == [("db", 27017)]
