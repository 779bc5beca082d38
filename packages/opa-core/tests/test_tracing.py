"""TRACING: server spans, drivers instrumenting their libraries once before connecting, trace
ids on JSON log lines, and one clear error for each missing piece."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from opa._errors import ConfigError, DriverError
from opa._log import log, setup_logging, show_trace_ids
from opa._tracing import _exporters, current_ids, exporter_names
from opa.testing import clean_environ, span_recorder
from support import make_app, write_plugin

ROUTES = """
from opa import get_router, log

router = get_router()


@router.get("/items/{item_id}")
def item(item_id: int):
    log.info("item asked for, password='swordfish'")
    return {"item": item_id}
"""

# A driver that notes when it was asked to instrument and when it connected; the module
# name is unique to each test, so each test's class is a new driver to opa.
DRIVER = """
from opa import Driver

EVENTS = []


class NotingDriver(Driver):
    name = "{name}"
    is_async = False

    @classmethod
    def instrument_tracing(cls):
        {instrument}
        EVENTS.append("instrumented")

    def connect(self):
        EVENTS.append("connected " + self.component)
        self.instance = object()
"""


@pytest.fixture
def spans() -> Iterator[Any]:
    recorder = span_recorder()
    recorder.clear()
    yield recorder
    recorder.clear()


def unique(tmp_path: Path, stem: str) -> str:
    return f"{stem}_{tmp_path.name[-12:].replace('-', '_')}"


def noting_driver(tmp_path: Path, instrument: str = "pass") -> tuple[str, Path]:
    """A plugin folder holding a NotingDriver; (its driver name, the folder)."""
    module = unique(tmp_path, "noting")
    folder = tmp_path / "plugins"
    source = DRIVER.format(name=module.replace("_", "-"), instrument=instrument)
    write_plugin(folder, module, source)
    return module, folder


def test_tracing_off_imports_no_sdk_or_instrumentation_and_adds_no_middleware() -> None:
    """With TRACING off (the default) an app imports neither the SDK nor an instrumentation,
    and adds no middleware. (FastAPI releases with telemetry of their own import the API.)"""
    script = (
        "import sys\n"
        "from opa.testing import build_app\n"
        "app = build_app({})\n"
        "prefixes = ('opentelemetry.sdk', 'opentelemetry.instrumentation', 'opa._tracing')\n"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))\n"
        "print([m.cls.__name__ for m in app.user_middleware])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=clean_environ()
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "['BodyLimitMiddleware']"]


def test_a_request_is_a_server_span_and_its_log_lines_carry_its_ids(
    tmp_path: Path, spans: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each request makes a server span; a JSON line logged while answering it names the
    span's trace and span ids, its message masked as ever."""
    write_plugin(tmp_path / "plugins", unique(tmp_path, "traced_items"), ROUTES)
    try:
        app = make_app(TRACING=True, LOG_FORMAT="json", PLUGIN_PATHS=[str(tmp_path / "plugins")])
        with TestClient(app) as client:
            assert client.get("/items/7").json() == {"item": 7}
    finally:
        setup_logging("INFO")
    (server,) = [span for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert server.name == "GET /items/{item_id}"
    assert server.attributes["http.route"] == "/items/{item_id}"
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (asked,) = [record for record in records if record["message"].startswith("item asked")]
    assert asked["message"] == "item asked for, password='***'"
    assert asked["trace_id"] == f"{server.context.trace_id:032x}"
    assert asked["span_id"] == f"{server.context.span_id:016x}"
    started = [record for record in records if record["message"].startswith("tracing on")]
    assert not started, "the test's own tracer provider was replaced"


def test_a_json_line_outside_any_span_has_no_ids(spans: Any) -> None:
    """With tracing on, a line logged outside a span has no trace_id or span_id keys; one
    inside a span has both."""
    stream = io.StringIO()
    setup_logging("INFO", stream=stream, json_lines=True)
    show_trace_ids(current_ids)  # what start-up does with TRACING on
    try:
        log.info("outside")
        with trace.get_tracer(__name__).start_as_current_span("inside") as span:
            log.info("inside")
    finally:
        setup_logging("INFO")
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "trace_id" not in outside and "span_id" not in outside
    assert inside["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert inside["span_id"] == f"{span.get_span_context().span_id:016x}"


def test_each_driver_in_use_instruments_once_before_its_components_connect(
    tmp_path: Path, spans: Any
) -> None:
    """The driver of configured components is asked to instrument its library once, before
    the first of them connects; a second app in the process does not ask again."""
    module, folder = noting_driver(tmp_path)
    driver = module.replace("_", "-")
    components = {
        "ONE": {"LOAD": "yes", "DRIVER": driver},
        "TWO": {"LOAD": "yes", "DRIVER": driver},
    }
    for _ in range(2):
        app = make_app(TRACING=True, PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=components)
        with TestClient(app):
            pass
    events = sys.modules[module].EVENTS
    assert events[0] == "instrumented"
    assert events.count("instrumented") == 1
    assert sorted(events[1:]) == sorted(["connected one", "connected two"] * 2)


def test_a_driver_no_component_uses_is_not_asked(tmp_path: Path, spans: Any) -> None:
    """A driver whose only component has LOAD no instruments nothing."""
    module, folder = noting_driver(tmp_path)
    off = {"OFF": {"LOAD": "no", "DRIVER": module.replace("_", "-")}}
    with TestClient(make_app(TRACING=True, PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=off)):
        pass
    assert sys.modules[module].EVENTS == []


def test_a_missing_instrumentation_is_one_error_naming_the_component_and_module(
    tmp_path: Path, spans: Any
) -> None:
    """A driver whose instrumentation is not installed stops start-up with a line naming
    the component, the driver and the missing module."""
    module, folder = noting_driver(tmp_path, "import opa_no_such_instrumentation")
    driver = module.replace("_", "-")
    store = {"STORE": {"LOAD": "yes", "DRIVER": driver}}
    with pytest.raises(ConfigError) as error:
        make_app(TRACING=True, PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=store)
    assert str(error.value) == (
        f"setting TRACING is on but component 'store' (driver '{driver}') cannot trace its "
        "library: No module named 'opa_no_such_instrumentation'; install the module the "
        "driver's instrument_tracing imports"
    )


def test_a_failing_instrumentation_names_the_component(tmp_path: Path, spans: Any) -> None:
    """A driver whose instrument_tracing raises stops start-up with its component named."""
    module, folder = noting_driver(tmp_path, "raise RuntimeError('no tracer here')")
    store = {"STORE": {"LOAD": "yes", "DRIVER": module.replace("_", "-")}}
    with pytest.raises(DriverError, match=r"component 'store' \(driver .*\): instrument_tracing"):
        make_app(TRACING=True, PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=store)


class FakeInstrumentor:
    """Stands for an OpenTelemetry instrumentor; *takes* says whether instrument() works."""

    def __init__(self, takes: bool) -> None:
        self.takes = takes
        self.calls = 0
        self.is_instrumented_by_opentelemetry = False

    def instrument(self) -> None:
        self.calls += 1
        self.is_instrumented_by_opentelemetry = self.takes


def test_instrument_once_switches_an_instrumentor_on_once() -> None:
    """instrument_once instruments the first time and leaves an instrumented one alone."""
    from opa import instrument_once

    instrumentor = FakeInstrumentor(takes=True)
    instrument_once(instrumentor)
    instrument_once(instrumentor)
    assert instrumentor.calls == 1


def test_instrument_once_refuses_an_instrumentor_that_declined() -> None:
    """An instrumentor that declines its library's release is an error naming it."""
    from opa import instrument_once

    with pytest.raises(DriverError, match="FakeInstrumentor declined to instrument"):
        instrument_once(FakeInstrumentor(takes=False))


@pytest.fixture
def no_sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The OpenTelemetry SDK as if not installed, and opa._tracing imported afresh."""
    for name in ("opentelemetry.sdk", "opentelemetry.sdk.trace", "opentelemetry.sdk.resources"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "opa._tracing", raising=False)
    yield
    sys.modules.pop("opa._tracing", None)


def test_tracing_on_without_the_sdk_is_one_line_naming_the_extra(no_sdk: None) -> None:
    """TRACING on without the OpenTelemetry SDK stops start-up with the extra to install."""
    with pytest.raises(ConfigError) as error:
        make_app(TRACING=True)
    assert str(error.value) == (
        "setting TRACING is on but the OpenTelemetry SDK is not installed; "
        "install it with: pip install 'opa-core[otel]'"
    )


@pytest.mark.parametrize(
    ("environment", "names"),
    [
        ({}, ["otlp_proto_grpc"]),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp_proto_grpc"]),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            ["otlp_proto_http"],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            },
            ["otlp_proto_grpc"],
        ),
    ],
)
def test_the_exporters_come_from_otel_traces_exporter(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], names: list[str]
) -> None:
    """OTEL_TRACES_EXPORTER names the exporters (otlp by default, none for none), and the
    OTLP protocol variables pick otlp's transport as the SDK does."""
    for variable in ("OTEL_TRACES_EXPORTER", *PROTOCOLS):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    assert exporter_names() == names


PROTOCOLS = ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")


def test_an_unknown_protocol_is_an_error_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An OTLP protocol the SDK has no exporter for is refused, naming the variable."""
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    with pytest.raises(ConfigError) as error:
        exporter_names()
    assert str(error.value) == (
        "environment variable OTEL_EXPORTER_OTLP_PROTOCOL is 'carrier-pigeon'; expected one "
        "of grpc, http/protobuf"
    )


def test_an_unknown_exporter_is_an_error_listing_the_installed_ones() -> None:
    """An exporter name no installed package provides is refused with the names there are."""
    with pytest.raises(ConfigError) as error:
        _exporters(["jaegerish"])
    message = str(error.value)
    assert message.startswith(
        "environment variable OTEL_TRACES_EXPORTER names 'jaegerish', which no installed "
        "package provides; installed exporters: "
    )
    assert "console" in message and "otlp_proto_http" in message and "none" in message


PRINTED_SPAN = """
import json, sys
from fastapi.testclient import TestClient
from opa.testing import build_app

app = build_app({"TRACING": True, "PROJECT_NAME": "shop", "PLUGIN_PATHS": [sys.argv[1]]})
with TestClient(app) as client:
    client.get("/items/3")
"""


def test_a_process_without_a_tracer_provider_gets_one_from_the_otel_variables(
    tmp_path: Path,
) -> None:
    """A fresh process exports to what OTEL_TRACES_EXPORTER names (console here), and its
    service is named after PROJECT_NAME unless OTEL_SERVICE_NAME names it."""
    write_plugin(tmp_path / "plugins", unique(tmp_path, "printed"), ROUTES)
    script = textwrap.dedent(PRINTED_SPAN)
    for variables, service in [({}, "shop"), ({"OTEL_SERVICE_NAME": "checkout"}, "checkout")]:
        env = clean_environ() | {"OTEL_TRACES_EXPORTER": "console"} | variables
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "plugins")],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        printed = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{") :])[0]
        assert printed["name"].startswith("GET /items/{item_id}")
        assert printed["resource"]["attributes"]["service.name"] == service
