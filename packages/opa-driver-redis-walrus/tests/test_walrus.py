"""redis-walrus against a real Redis: walrus's extras, threads sharing the pool, a lean app."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from opa_driver_redis_walrus import WalrusDriver
from opa_redis_common import RedisOptions


@pytest.fixture
def db(redis_url: str) -> Iterator[Any]:
    """A walrus Database from a connected driver with a small pool, disconnected afterwards."""
    driver = WalrusDriver("walrus", RedisOptions(URL=redis_url, MAX_CONNECTIONS=4))
    driver.connect()
    driver.validate()
    yield driver.get_instance()
    driver.disconnect()


def test_the_instance_is_a_walrus_database(db: Any) -> None:
    """get_instance() hands out a walrus Database, so plugins get walrus's extras."""
    import walrus

    assert isinstance(db, walrus.Database)


def test_a_walrus_lock_admits_one_holder(db: Any, redis_prefix: str) -> None:
    """A walrus lock taken through the instance refuses a second holder until released."""
    first = db.lock(f"{redis_prefix}lock", ttl=5000)
    second = db.lock(f"{redis_prefix}lock", ttl=5000)
    assert first.acquire(block=False)
    assert not second.acquire(block=False)
    assert first.release()
    assert second.acquire(block=False)
    assert second.release()


def test_a_walrus_bloom_filter_remembers_words(db: Any, redis_prefix: str) -> None:
    """A walrus bloom filter through the instance contains what was added, not other words."""
    bloom = db.bloom_filter(f"{redis_prefix}bloom")
    for word in ("apple", "pear"):
        bloom.add(word)
    assert "apple" in bloom
    assert "pear" in bloom
    assert "quince" not in bloom


def test_threads_wider_than_the_pool_count_exactly(db: Any, redis_prefix: str) -> None:
    """400 increments from 32 threads on a pool of 4 connections all land: none is lost."""
    key = f"{redis_prefix}counter"
    with ThreadPoolExecutor(max_workers=32) as threads:
        list(threads.map(lambda _: db.incr(key), range(400)))
    assert int(db.get(key)) == 400


def test_an_app_with_only_walrus_imports_no_other_backend(redis_url: str) -> None:
    """An app whose one component is redis-walrus starts without importing another backend."""
    script = textwrap.dedent(
        f"""
        import sys
        from fastapi.testclient import TestClient
        from opa.testing import build_app

        component = {{"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {{"URL": {redis_url!r}}}}}
        app = build_app({{"OPTIONAL_COMPONENTS": {{"WALRUS": component}}}})
        with TestClient(app) as client:
            assert client.get("/health").json()["components"]["walrus"]["status"] == "ok"
            print(sorted(set(sys.modules) & {{"motor", "pymongo", "celery", "kombu", "aioredis"}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_old_import_path_still_gives_the_driver() -> None:
    """`from opa.plugins.driver_redis import Walrus`, as opa-stack users wrote it, still works."""
    import warnings

    from opa_driver_redis_walrus import WalrusDriver

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from opa.plugins.driver_redis import Walrus
    assert Walrus is WalrusDriver
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_a_url_without_a_port_is_checked_on_6379(scheme: str) -> None:
    """The driver declares Redis's port for both schemes, so LOAD auto probes cache:6379."""
    driver = WalrusDriver("walrus", RedisOptions(URL=f"{scheme}://cache/0"))
    assert driver.reachability_targets() == [("cache", 6379)]


def test_a_cluster_is_refused_at_start_up_naming_the_option() -> None:
    """CLUSTER: true stops start-up with one line that names the option and the driver that
    takes a cluster, before anything connects."""
    from opa import OptionsError
    from opa.testing import make_driver

    opts = {"URL": "redis://127.0.0.1:7000,127.0.0.1:7001", "CLUSTER": True}
    with pytest.raises(OptionsError) as caught:
        make_driver(WalrusDriver, opts, "walrus")
    message = str(caught.value)
    assert "\n" not in message
    assert "OPTS.CLUSTER" in message
    assert "DRIVER: redis-aioredis" in message
