"""OpenTelemetry traces (setting ``TRACING``): a server span for each request, and the
client library of each configured component traced by its own driver.

Imported only when the setting is on, so an app without tracing neither imports
opentelemetry nor pays for a middleware. Where spans go comes from the SDK's standard
environment variables (``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_*``,
``OTEL_SERVICE_NAME``, ...), never from settings of opa's own. A process that already has an
SDK tracer provider (``opentelemetry-instrument``, or the user's code that ran first) keeps it.

opa-core names no driver: each driver instruments its own library in
:meth:`opa.Driver.instrument_tracing`, called once per process before anything connects,
for the drivers of the configured components alone.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, entry_points, metadata
from typing import TYPE_CHECKING, Any

from opa._components import Components, Status
from opa._driver_registry import DriverRegistry
from opa._drivers import Driver
from opa._errors import ConfigError, DriverError, OpaError
from opa._log import log, show_trace_ids

if TYPE_CHECKING:
    from fastapi import FastAPI

try:
    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
except ImportError:  # pragma: no cover - the message is tested with the modules hidden
    trace = None  # type: ignore[assignment]

EXTRA = "otel"
EXPORTER_GROUP = "opentelemetry_traces_exporter"
"""The entry point group in which exporter packages register their names for
``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ...)."""
# OTEL_TRACES_EXPORTER's otlp, by OTLP protocol, as the SDK chooses it: gRPC unless told.
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")

_instrumented: set[type[Driver]] = set()


def _require_sdk() -> None:
    if trace is None:
        raise ConfigError(
            "setting TRACING is on but the OpenTelemetry SDK is not installed; "
            f"install it with: pip install 'opa-core[{EXTRA}]'"
        )


def _otlp_exporter() -> str:
    for variable in _PROTOCOL_VARIABLES:
        protocol = os.environ.get(variable, "").strip()
        if not protocol:
            continue
        if protocol not in _OTLP_BY_PROTOCOL:
            raise ConfigError(
                f"environment variable {variable} is {protocol!r}; expected one of "
                f"{', '.join(_OTLP_BY_PROTOCOL)}"
            )
        return _OTLP_BY_PROTOCOL[protocol]
    return _OTLP_BY_PROTOCOL["grpc"]


def exporter_names() -> list[str]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (``otlp`` when unset, none for
    ``none``), ``otlp`` resolved to its protocol's exporter."""
    value = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    names = [name.strip() for name in value.split(",") if name.strip()]
    if names == ["none"]:
        return []
    return [_otlp_exporter() if name == "otlp" else name for name in names]


def _exporters(names: list[str]) -> list[Any]:
    installed = {found.name: found for found in entry_points(group=EXPORTER_GROUP)}
    exporters: list[Any] = []
    for name in names:
        found = installed.get(name)
        if found is None:
            known = ", ".join(sorted([*installed, "none"]))
            raise ConfigError(
                f"environment variable OTEL_TRACES_EXPORTER names {name!r}, which no installed "
                f"package provides; installed exporters: {known}"
            )
        exporters.append(found.load()())
    return exporters


def _provide_tracer(service_name: str) -> None:
    """This process's SDK tracer provider, unless it has one already."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    names = exporter_names()
    provider = TracerProvider(resource=resource)
    for exporter in _exporters(names):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info(
        "tracing on: service {}, spans to {}",
        resource.attributes[SERVICE_NAME],
        ", ".join(names) or "no exporter (OTEL_TRACES_EXPORTER is none)",
    )


def current_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids in hex, as trace back ends show them."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def _install_line(cls: type[Driver], registry: DriverRegistry) -> str:
    """What installs a driver's tracing: its distribution's ``otel`` extra, when it has one."""
    installed = registry.installed.get(cls.name.lower())
    if installed is None:
        return "install the module the driver's instrument_tracing imports"
    try:
        extras = metadata(installed.distribution).get_all("Provides-Extra") or []
    except PackageNotFoundError:
        extras = []
    if EXTRA in extras:
        return f"install it with: pip install '{installed.distribution}[{EXTRA}]'"
    return f"install the module it names ({installed.distribution} declares no {EXTRA} extra)"


def _instrument_drivers(components: Components) -> None:
    """Each driver of a component about to connect instruments its library, once a process."""
    for component in components:
        driver = component.driver
        if driver is None or component.status is not Status.PENDING:
            continue  # LOAD no, driver missing, or an async driver in a worker: not used here
        cls = type(driver)
        if cls in _instrumented:
            continue
        where = f"component {component.name!r} (driver {cls.name!r})"
        try:
            cls.instrument_tracing()
        except ImportError as exc:
            raise ConfigError(
                f"setting TRACING is on but {where} cannot trace its library: {exc}; "
                f"{_install_line(cls, components.registry)}"
            ) from None
        except OpaError as exc:
            raise DriverError(f"{where}: {exc}") from None
        except Exception as exc:
            raise DriverError(
                f"{where}: instrument_tracing() failed: {type(exc).__name__}: {exc}"
            ) from exc
        _instrumented.add(cls)


def start_tracing(components: Components, service_name: str) -> None:
    """Before any component connects: the tracer provider, the ids on JSON log lines, and
    the configured components' libraries instrumented by their drivers."""
    _require_sdk()
    _provide_tracer(service_name)
    show_trace_ids(current_ids)
    _instrument_drivers(components)


def trace_requests(app: FastAPI) -> None:
    """One server span for each request the app answers (OpenTelemetry's FastAPI
    instrumentation, which reads its own ``OTEL_PYTHON_FASTAPI_*`` variables).

    Its spans of each ASGI message (``http send``, ``http receive``) are left out: two or
    more per request, they add much of its cost and little a reader of a trace needs.
    """
    _require_sdk()
    FastAPIInstrumentor.instrument_app(app, exclude_spans=["receive", "send"])
