"""TRACING with the Redis drivers: each command of a request is a child span of the request's
server span, through a single server, a Sentinel deployment and a Redis Cluster alike; and a
missing instrumentation names the extra that brings it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from cluster_support import running_cluster
from opa.testing import build_app, clean_environ, span_recorder
from opa_redis_common.sentinel_suite import sentinel_group

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "redis"


@contextmanager
def traced_example(components: dict[str, Any], prefix: str) -> Iterator[TestClient]:
    """examples/redis with TRACING on, its components changed by *components*."""
    span_recorder()  # first: the app then keeps the recorder's tracer provider
    settings = {
        "TRACING": True,
        "PLUGIN_PATHS": [str(EXAMPLE)],
        "EXAMPLE_KEY_PREFIX": prefix,
        "OPTIONAL_COMPONENTS": {"dynaconf_merge": True, **components},
    }
    with TestClient(build_app(settings, settings_dir=EXAMPLE / "settings")) as test_client:
        yield test_client


def both_on(url: str) -> dict[str, Any]:
    """Both of the example's components (walrus and redis.asyncio) on *url*."""
    return {name: {"OPTS": {"URL": url}} for name in ("WALRUS", "AIOREDIS")}


def assert_one_traced_incr(client: TestClient, path: str) -> Any:
    """One request to the counter at *path* makes a server span and, in the same trace, the
    INCRBY it sent as a client span whose parent is the server span; that span."""
    spans: Any = span_recorder()
    spans.clear()
    assert client.get(path, params={"key": "traced" + path.replace("/", "-")}).json() == 1
    finished = spans.get_finished_spans()
    (server,) = [span for span in finished if span.kind is SpanKind.SERVER]
    (incr,) = [span for span in finished if span.kind is SpanKind.CLIENT]
    assert server.name == f"GET {path}"
    assert incr.name == "INCRBY"  # what redis-py sends for incr()
    assert incr.attributes["db.statement"] == "INCRBY ? ?"  # the arguments left out
    assert incr.context.trace_id == server.context.trace_id
    assert incr.parent is not None and incr.parent.span_id == server.context.span_id
    return incr


@pytest.mark.parametrize("path", ["/counter-async", "/counter-sync"])
def test_a_counter_request_is_a_server_span_with_a_redis_child(
    redis_url: str, redis_prefix: str, path: str
) -> None:
    """redis-aioredis (/counter-async) and walrus (/counter-sync) on one server, which the
    span names."""
    with traced_example(both_on(redis_url), redis_prefix) as client:
        incr = assert_one_traced_incr(client, path)
    assert incr.attributes["db.system"] == "redis"
    assert incr.attributes["net.peer.port"] == urlsplit(redis_url).port


def test_counters_through_sentinel_are_traced_like_one_server(redis_prefix: str) -> None:
    """Through a ``redis+sentinel://`` URL, both drivers' commands are still child spans of
    the request. (Their ``net.peer.*`` attributes name redis-py's defaults, not the master:
    the instrumentation reads them from the pool's arguments; docs/observing.md says so.)"""
    with sentinel_group() as group, traced_example(both_on(group.url), redis_prefix) as client:
        for path in ("/counter-async", "/counter-sync"):
            assert_one_traced_incr(client, path)


def test_a_counter_on_a_cluster_is_traced_like_one_server(redis_prefix: str) -> None:
    """With ``CLUSTER: true`` redis-aioredis serves redis-py's asyncio ``RedisCluster``, a
    class of its own; its commands are child spans of the request too. (The instrumentation
    gives them no ``db.system`` or peer attributes; docs/observing.md says so.)"""
    with running_cluster() as cluster:
        components = {
            "WALRUS": {"LOAD": "no"},  # walrus refuses a cluster
            "AIOREDIS": {"OPTS": {"URL": cluster.url, "CLUSTER": True}},
        }
        with traced_example(components, redis_prefix) as client:
            assert_one_traced_incr(client, "/counter-async")


MISSING = """
import sys

sys.modules["opentelemetry.instrumentation.redis"] = None  # as if not installed
from opa import ConfigError
from opa.testing import build_app

component = {"LOAD": "yes", "DRIVER": sys.argv[1], "OPTS": {"URL": "redis://127.0.0.1/0"}}
try:
    build_app({"TRACING": True, "OPTIONAL_COMPONENTS": {"CACHE": component}})
except ConfigError as error:
    print(error)
"""


@pytest.mark.parametrize(
    ("driver", "distribution"),
    [
        ("redis-aioredis", "opa-driver-redis-aioredis"),
        ("redis-walrus", "opa-driver-redis-walrus"),
    ],
)
def test_tracing_without_the_instrumentation_names_the_drivers_otel_extra(
    driver: str, distribution: str
) -> None:
    """TRACING on with a Redis component but no Redis instrumentation stops start-up with
    the install line of the driver's otel extra."""
    env = clean_environ() | {"OTEL_TRACES_EXPORTER": "none"}
    done = subprocess.run(
        [sys.executable, "-c", MISSING, driver], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"setting TRACING is on but component 'cache' (driver '{driver}') cannot trace its "
        "library: import of opentelemetry.instrumentation.redis halted; None in sys.modules; "
        f"install it with: pip install '{distribution}[otel]'"
    )
