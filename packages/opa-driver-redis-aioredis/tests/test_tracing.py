"""TRACING with the Redis drivers: each command of a request is a child span of the request's
server span, and a missing instrumentation names the extra that brings it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from opa.testing import build_app, clean_environ, span_recorder

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "redis"


@pytest.fixture
def client(redis_url: str, redis_prefix: str) -> Iterator[TestClient]:
    """examples/redis with TRACING on, on the test Redis and key prefix."""
    span_recorder()  # first: the app then keeps the recorder's tracer provider
    urls = {name: {"OPTS": {"URL": redis_url}} for name in ("WALRUS", "AIOREDIS")}
    settings = {
        "TRACING": True,
        "PLUGIN_PATHS": [str(EXAMPLE)],
        "EXAMPLE_KEY_PREFIX": redis_prefix,
        "OPTIONAL_COMPONENTS": {"dynaconf_merge": True, **urls},
    }
    with TestClient(build_app(settings, settings_dir=EXAMPLE / "settings")) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/counter-async", "/counter-sync"])
def test_a_counter_request_is_a_server_span_with_a_redis_child(
    client: TestClient, path: str
) -> None:
    """One request to a counter makes a server span and, in the same trace, the INCRBY it
    sent as a client span whose parent is the server span (redis-aioredis and walrus)."""
    spans: Any = span_recorder()
    spans.clear()
    assert client.get(path, params={"key": "traced"}).json() == 1
    finished = spans.get_finished_spans()
    (server,) = [span for span in finished if span.kind is SpanKind.SERVER]
    (incr,) = [span for span in finished if span.kind is SpanKind.CLIENT]
    assert server.name == f"GET {path}"
    assert incr.name == "INCRBY"  # what redis-py sends for incr()
    assert incr.attributes["db.system"] == "redis"
    assert incr.context.trace_id == server.context.trace_id
    assert incr.parent is not None and incr.parent.span_id == server.context.span_id


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
