"""Fixtures of the celery driver's tests: shared servers, each test's own names on them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celery_support import (
    BACKEND_DB,
    BROKER_DB,
    STORE_DB,
    Run,
    delete_keys_at,
    delete_queues,
    redis_db,
)

pytest_plugins = ["opa.testing.fixtures"]


@pytest.fixture
def run(redis_url: str) -> Iterator[Run]:
    """This test's unique names; its queues and Redis keys are removed afterwards."""
    names = Run()
    yield names
    delete_queues(names.amqp_queues)
    for db in (BROKER_DB, BACKEND_DB, STORE_DB):
        delete_keys_at(redis_db(redis_url, db), names.prefix)


@pytest.fixture
def backend_url(redis_url: str) -> str:
    """The Redis result backend's database."""
    return redis_db(redis_url, BACKEND_DB)


@pytest.fixture
def redis_broker_url(redis_url: str) -> str:
    """A Redis database used as broker."""
    return redis_db(redis_url, BROKER_DB)
