"""TRACING across the queue: a task sent while answering a request runs in `opa worker` as
part of the request's trace."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from celery_support import (
    PLUGINS,
    Run,
    celery_component,
    opa_worker_command,
    started,
    worker_args,
    write_settings,
)
from opa.testing import build_app, clean_environ, span_recorder, wait_for

TASK = "jobs.tasks.add"
RUN = f"run/{TASK}"


def printed_spans(output: str) -> list[dict[str, Any]]:
    """The spans OpenTelemetry's console exporter printed into *output*, among log lines:
    each is a JSON object whose opening brace stands alone on its line."""
    decoder = json.JSONDecoder()
    return [
        decoder.raw_decode(output, found.start())[0] for found in re.finditer(r"^\{$", output, re.M)
    ]


def test_a_task_sent_from_a_request_continues_its_trace_in_the_worker(
    tmp_path: Path, rabbitmq_url: str, backend_url: str, run: Run
) -> None:
    """The worker's span of the task is in the request's trace, its parent the span that
    published the task, itself a child of the request's server span."""
    celery = celery_component(rabbitmq_url, backend_url, run)
    components = {"celery": celery, "store": {"LOAD": "no"}}
    settings = write_settings(tmp_path / "settings", components, TRACING=True)
    # The worker is a process of its own: its spans are printed by the console exporter,
    # which the SDK's own variables choose, at once rather than in 5-second batches.
    worker_env = clean_environ(settings) | {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    spans: Any = span_recorder()  # first: the app then keeps the recorder's tracer provider
    spans.clear()
    app = build_app(
        {
            "TRACING": True,
            "PLUGIN_PATHS": [str(PLUGINS)],
            "PLUGIN_ENTRY_POINTS": True,
            "OPTIONAL_COMPONENTS": components,
        }
    )
    command = opa_worker_command(*worker_args(run, concurrency=1))
    with (
        started(command, worker_env, tmp_path, tmp_path / "worker.log") as worker,
        TestClient(app) as client,
    ):
        assert client.post("/add", params={"a": 2, "b": 3}).status_code == 200

        def ran() -> dict[str, Any] | None:
            worker.check_alive()
            spans = [found for found in printed_spans(worker.output()) if found["name"] == RUN]
            return spans[0] if spans else None

        in_worker = wait_for(ran, 30, f"the worker's span {RUN} (log {worker.log})", every=0.2)
    finished = spans.get_finished_spans()
    (server,) = [span for span in finished if span.kind is SpanKind.SERVER]
    (published,) = [span for span in finished if span.kind is SpanKind.PRODUCER]
    assert server.name == "POST /add"
    assert published.name == f"apply_async/{TASK}"
    assert published.context.trace_id == server.context.trace_id
    assert published.parent is not None and published.parent.span_id == server.context.span_id
    assert in_worker["kind"] == "SpanKind.CONSUMER"
    assert in_worker["context"]["trace_id"] == f"0x{server.context.trace_id:032x}"
    assert in_worker["parent_id"] == f"0x{published.context.span_id:016x}"
