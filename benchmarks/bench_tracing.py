"""What OpenTelemetry traces (setting ``TRACING``) cost a request.

``GET /hello`` and ``GET /counter-async`` (one Redis span per request) served with tracing on
and off, measured as ``bench_metrics.py`` measures metrics, with the same code. The spans
are made and ended but exported nowhere (``OTEL_TRACES_EXPORTER=none``), so the figure is
opa's and the instrumentations' own cost, not a collector's.

    python benchmarks/bench_tracing.py [--rounds 9] [--requests 5000]

The issue asks for these figures reported, with no target (metrics have one: 0.95).
"""

from __future__ import annotations

from bench_metrics import compare_switch

NO_EXPORT = {"OTEL_TRACES_EXPORTER": "none"}


def main(argv: list[str] | None = None) -> int:
    """Measure both endpoints with tracing on and off and print the markdown table; every
    variant is served, or called, in a process of its own with *NO_EXPORT*."""
    return compare_switch("TRACING", "tracing", argv, NO_EXPORT, target=None)


if __name__ == "__main__":
    raise SystemExit(main())
