"""TRACING instruments the libraries of the configured components and no other, with every
driver and every instrumentation installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opa.testing import clean_environ

LIBRARIES = {
    "redis": "RedisInstrumentor",
    "pymongo": "PymongoInstrumentor",
    "celery": "CeleryInstrumentor",
    "sqlalchemy": "SQLAlchemyInstrumentor",
}

SCRIPT = """
import importlib, json, sys

from fastapi.testclient import TestClient
from opa.testing import build_app

components = json.loads(sys.argv[1])
with TestClient(build_app({"TRACING": True, "OPTIONAL_COMPONENTS": components})):
    pass
libraries = json.loads(sys.argv[2])
prefix = "opentelemetry.instrumentation."
imported = sorted(name for name in libraries if prefix + name in sys.modules)
active = []
for name, instrumentor in libraries.items():
    module = importlib.import_module(f"opentelemetry.instrumentation.{name}")
    if getattr(module, instrumentor)().is_instrumented_by_opentelemetry:
        active.append(name)
print(json.dumps({"imported": imported, "active": sorted(active)}))
"""


@pytest.mark.parametrize("configured", ["sqlalchemy", "redis"])
def test_only_the_configured_components_libraries_are_instrumented(
    tmp_path: Path, redis_url: str, configured: str
) -> None:
    """With one SQLite component, only SQLAlchemy is instrumented (redis, pymongo and celery
    instrumentations are not even imported); with one Redis component, only redis-py."""
    components = {
        "sqlalchemy": {
            "SQL": {
                "LOAD": "yes",
                "DRIVER": "sqlalchemy",
                "OPTS": {"URL": f"sqlite:///{tmp_path}/x.db"},
            }
        },
        "redis": {"CACHE": {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {"URL": redis_url}}},
    }[configured]
    env = clean_environ() | {"OTEL_TRACES_EXPORTER": "none"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(components), json.dumps(LIBRARIES)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found == {"imported": [configured], "active": [configured]}
