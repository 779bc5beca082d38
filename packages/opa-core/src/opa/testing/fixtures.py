"""pytest plugin: session-wide backend servers for tests that need real ones.

Enable it in a conftest with ``pytest_plugins = ["opa.testing.fixtures"]``. A backend that
cannot be had skips its tests on a developer's machine, but fails them when ``CI=true``: a
green CI run must have exercised every backend, never quietly skipped one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from opa.testing._ports import ServiceUnavailable
from opa.testing._services import TestServices, skip_or_fail


def _url_or_skip(find: Callable[[], str]) -> str:
    try:
        return find()
    except ServiceUnavailable as error:
        skip_or_fail(str(error))


@pytest.fixture(scope="session")
def test_services() -> Iterator[TestServices]:
    """One TestServices for the whole session, closed at its end."""
    services = TestServices()
    try:
        yield services
    finally:
        services.close()


@pytest.fixture(scope="session")
def redis_url(test_services: TestServices) -> str:
    """URL of a Redis server for this test session."""
    return _url_or_skip(test_services.redis_url)


@pytest.fixture(scope="session")
def rabbitmq_url(test_services: TestServices) -> str:
    """URL of a RabbitMQ broker for this test session."""
    return _url_or_skip(test_services.rabbitmq_url)


@pytest.fixture(scope="session")
def mongodb_url(test_services: TestServices) -> str:
    """URL of a MongoDB-compatible server for this test session."""
    return _url_or_skip(test_services.mongodb_url)
