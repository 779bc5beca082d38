"""OpenTelemetry tracing of redis-py, what both Redis drivers' ``instrument_tracing`` does.

The instrumentation comes with each driver's ``otel`` extra; it is imported only when
``TRACING`` is on and a Redis component is configured.
"""

from __future__ import annotations

from opa import instrument_once


def instrument_redis() -> None:
    """A span for each command of every redis-py client, sync and asyncio alike (walrus is
    a redis-py client), pipelines included; clients built before this stay untraced."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrument_once(RedisInstrumentor())
