"""Spans a test can read: an in-memory exporter on the process's tracer provider."""

from __future__ import annotations

from typing import Any

_recorder: Any = None


def span_recorder() -> Any:
    """The in-memory exporter that keeps every span this process ends from now on; read
    ``get_finished_spans()``, and ``clear()`` it between tests (needs ``opa-core[otel]``).

    When the process has no SDK tracer provider yet, one is installed here, and an app
    with ``TRACING`` on keeps it: a test's spans then stay in memory and never go to an
    exporter the environment names. Every call returns the same exporter.
    """
    global _recorder
    if _recorder is None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _recorder = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_recorder))
    return _recorder
