"""TRACING with the SQL drivers: a request's statements are child spans of its server span."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from opa.testing import build_app, span_recorder

ROUTES = """
from sqlalchemy import text

from opa import get_instance, get_router

router = get_router()


@router.get("/sync")
def sync_answer() -> int:
    with get_instance("sql").connect() as connection:
        return connection.execute(text("SELECT 41 + 1")).scalar_one()


@router.get("/async")
async def async_answer() -> int:
    async with get_instance("sql").connect() as connection:
        return (await connection.execute(text("SELECT 41 + 1"))).scalar_one()
"""


@pytest.mark.parametrize(
    ("driver", "scheme", "path"),
    [("sqlalchemy", "sqlite", "/sync"), ("sqlalchemy-async", "sqlite+aiosqlite", "/async")],
)
def test_a_statement_is_a_child_span_of_the_request(
    tmp_path: Path, driver: str, scheme: str, path: str
) -> None:
    """One request running one statement makes a server span and, in its trace, the
    statement's client span with the server span as parent."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / f"traced_sql_{tmp_path.name[-12:].replace('-', '_')}.py").write_text(ROUTES)
    sql = {"LOAD": "yes", "DRIVER": driver, "OPTS": {"URL": f"{scheme}:///{tmp_path}/t.db"}}
    spans: Any = span_recorder()  # first: the app then keeps the recorder's tracer provider
    app = build_app(
        {"TRACING": True, "PLUGIN_PATHS": [str(plugins)], "OPTIONAL_COMPONENTS": {"SQL": sql}}
    )
    with TestClient(app) as client:
        spans.clear()
        assert client.get(path).json() == 42
    finished = spans.get_finished_spans()
    (server,) = [span for span in finished if span.kind is SpanKind.SERVER]
    # The instrumentation also spans each new connection; the statement is the one with SQL.
    (statement,) = [span for span in finished if "db.statement" in (span.attributes or {})]
    assert statement.kind is SpanKind.CLIENT
    assert statement.attributes["db.statement"] == "SELECT 41 + 1"
    assert statement.context.trace_id == server.context.trace_id
    assert statement.parent is not None and statement.parent.span_id == server.context.span_id
