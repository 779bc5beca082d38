"""The driver contract: what a backend driver declares and implements.

A driver is a :class:`Driver` subclass with a ``name`` (the ``DRIVER`` value in
configuration), an ``is_async`` flag that says whether ``connect``, ``validate``,
``ping`` and ``disconnect`` are coroutines, an ``Options`` model for ``OPTS``, and
the ``contract_version`` it was built for, and the ``default_ports`` of its URL
schemes, which the ``LOAD: auto`` reachability check uses. Drivers ship as distributions that
declare an entry point in the ``opa.drivers`` group, or inside plugin modules.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from opa._errors import DriverError
from opa._legacy import missing_attribute
from opa._log import log

CONTRACT_VERSION = 1
"""The driver contract this opa-core implements."""

SUPPORTED_CONTRACT_VERSIONS = frozenset({1})
"""Contract versions whose drivers this opa-core can load."""

ENTRY_POINT_GROUP = "opa.drivers"

CONTRACT_METHODS = ("connect", "validate", "ping", "disconnect")
REACHABLE_WHEN = ("all", "any")

GONE_DRIVER_ATTRIBUTES = {
    "load": "a component's LOAD is opa.get_component(self.component).spec.load",
    "pm": "the plugin manager is opa.get_plugin_manager()",
    "get": "the driver's instance is self.instance, and plugin code asks opa.get_instance(name)",
}
"""opa-stack's driver attributes opa does not set, and what replaces each."""


class DriverOptions(BaseModel):
    """Options of a driver that declares no model of its own: any keys, an optional URL.

    Besides attributes (``opts.URL``) they read like the dict opa-stack gave drivers:
    ``opts["URL"]``, ``opts.get("X", default)``, ``"X" in opts``; a key counts as there when
    the configuration set it.
    """

    model_config = ConfigDict(extra="allow")

    URL: str | None = None

    def _given(self) -> dict[str, Any]:
        given = {name: getattr(self, name) for name in self.model_fields_set}
        given.update(self.model_extra or {})
        return given

    def __getitem__(self, key: str) -> Any:
        given = self._given()
        if key not in given:
            raise KeyError(f"option {key!r} is not set (set: {', '.join(sorted(given)) or 'none'})")
        return given[key]

    def __contains__(self, key: object) -> bool:
        return key in self._given()

    def get(self, key: str, default: Any = None) -> Any:
        """The option *key* as configured, else *default*."""
        return self._given().get(key, default)

    def keys(self) -> list[str]:
        """The options the configuration set."""
        return list(self._given())


class Driver:
    """Base class of every driver. Subclasses set ``name`` and implement ``connect``.

    ``connect`` sets ``self.instance``, which ``get_instance()`` returns to plugin
    code. ``validate`` proves the connection works with a real round trip, ``ping``
    is the health check (by default the same as ``validate``), and ``disconnect``
    releases everything at shutdown.
    """

    name: ClassVar[str] = ""
    is_async: ClassVar[bool | None] = None
    """None means: infer from ``connect`` (drivers written before the flag existed)."""
    contract_version: ClassVar[int | None] = None
    """Required for drivers shipped as distributions; plugin drivers default to the current."""
    Options: ClassVar[type[BaseModel]] = DriverOptions
    default_ports: ClassVar[Mapping[str, int]] = {}
    """URL scheme -> the port a URL of that scheme means when it names none (``LOAD: auto``)."""
    reachable_when: ClassVar[str] = "all"
    """``"all"``: ``LOAD: auto`` connects when every reachability target accepts TCP.
    ``"any"``: when one does; for a seed list (a replica set's members), where the client
    finds the servers that answer and the others may be down."""
    legacy_names: ClassVar[tuple[str, ...]] = ()
    """opa-stack import paths (``opa.plugins.driver_redis.Walrus``) that resolve to this class."""
    legacy_exports: ClassVar[Mapping[str, str]] = {}
    """opa-stack import paths of other things the driver's old module offered (its hook
    classes) -> ``module:attribute`` of what they are now, imported only when asked for."""

    def __init__(self, component: str, opts: BaseModel) -> None:
        self.component = component
        self.opts: Any = opts
        self.instance: Any = None

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute

        def __getattr__(self, name: str) -> Any:
            # Only names no class or instance defines reach here.
            old = f"driver attribute {name!r}"
            raise missing_attribute(self, name, GONE_DRIVER_ATTRIBUTES, old)

    def connect(self) -> Any:
        raise NotImplementedError(f"driver {type(self).__qualname__} must implement connect()")

    def validate(self) -> Any:
        """Prove the connection works; the default trusts ``connect``."""
        return None

    def ping(self) -> Any:
        """Health check; by default ``validate`` again."""
        return self.validate()

    def disconnect(self) -> Any:
        """Release connections; the default has nothing to release."""
        return None

    def get_instance(self) -> Any:
        """What ``opa.get_instance(component)`` returns."""
        return self.instance

    @classmethod
    def instrument_tracing(cls) -> None:
        """Make the client library emit OpenTelemetry spans (setting ``TRACING``).

        opa calls it once per process for each driver that a configured component uses,
        before any component connects, so clients built in ``connect`` are traced. Import
        the instrumentation here, never at the top of the module: an ImportError is
        reported as a start-up error naming the ``otel`` extra of the driver's distribution.
        The default traces nothing.
        """

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        """Exceptions of the backend library that mean "the server is not there".

        The app answers them with 503 instead of 500, so an outage is reported as one.
        Called once the driver is configured, so it may import the backend library.
        """
        return ()

    def is_unavailable(self, error: Exception) -> bool:
        """True when *error*, one of :meth:`unavailable_errors`, means the server is gone.

        Override it when one exception class of the library carries both an outage and a
        mistake (PyMySQL's ``OperationalError`` is raised for "server gone" and for "unknown
        database"): only an error this says True for answers 503 and trips the breaker; any
        other is an ordinary 500. The default trusts the classes.
        """
        return isinstance(error, self.unavailable_errors())

    def is_partial_outage(self, error: Exception) -> bool:
        """True when *error*, an outage error, may mean that only a part of the backend is
        gone: one node of a cluster, whose other nodes still serve their keys.

        The request still answers 503, but the breaker pings the component before marking
        it down, instead of marking it down at once, so the requests the rest of the
        backend serves go on. By default False: an outage is the whole backend's.
        """
        return False

    def urls(self) -> list[str]:
        """The URLs this driver connects to, for the reachability check and messages."""
        url = getattr(self.opts, "URL", None)
        return [url] if isinstance(url, str) and url else []

    def reachability_targets(self) -> list[tuple[str, int]]:
        """The (host, port) pairs that must accept TCP before ``LOAD: auto`` connects.

        A host without a port takes the default port ``default_ports`` declares for the
        URL's scheme. A host whose scheme the driver declares no port for is not checked,
        with a warning that says how to have it checked.
        """
        targets: list[tuple[str, int]] = []
        for url in self.urls():
            scheme = urlsplit(url).scheme
            for host, port in hosts_of(url, self.default_ports):
                if port is not None:
                    targets.append((host, port))
                    continue
                log.warning(
                    "component {!r}: host {!r} is not checked before connecting: driver {!r} "
                    "declares no default port for URL scheme {!r}; write the port in the URL",
                    self.component,
                    host,
                    self.name,
                    scheme,
                )
        return targets


def hosts_of(url: str, default_ports: Mapping[str, int]) -> list[tuple[str, int | None]]:
    """(host, port) pairs named by *url*; port None when neither the URL nor *default_ports*
    gives one (for the scheme, or for its part before a ``+``). None for URLs that name no
    host (``unix:``, ``sqlite:///``) or a DNS SRV name (``mongodb+srv:``), which the driver
    resolves itself.
    """
    parts = urlsplit(url)
    if parts.scheme.endswith("+srv"):
        return []
    # "mariadb+pymysql" (a dialect and its client, as SQLAlchemy writes them) takes the port of
    # "mariadb" unless the driver declares the whole scheme.
    port = default_ports.get(parts.scheme, default_ports.get(parts.scheme.partition("+")[0]))
    netloc = parts.netloc.rpartition("@")[2]
    found: list[tuple[str, int | None]] = []
    for host in netloc.split(","):
        if not host:
            continue
        if host.startswith("["):  # [::1]:6379
            name, _, rest = host[1:].partition("]")
            found.append((name, int(rest[1:]) if rest.startswith(":") else port))
            continue
        name, _, explicit = host.partition(":")
        found.append((name, int(explicit) if explicit.isdigit() else port))
    return found


def instrument_once(instrumentor: Any, **options: Any) -> None:
    """Switch on an OpenTelemetry instrumentor (a ``BaseInstrumentor``) unless it is on:
    what a driver's ``instrument_tracing`` calls, so two drivers of one library may both ask.
    *options* go to its ``instrument()``.

    An instrumentor declines a library release outside the range it supports, with only a
    log line; that is a :class:`DriverError` here, since the spans asked for would be missing.
    """
    if instrumentor.is_instrumented_by_opentelemetry:
        return
    instrumentor.instrument(**options)
    if not instrumentor.is_instrumented_by_opentelemetry:
        name = type(instrumentor).__name__
        raise DriverError(
            f"{name} declined to instrument its library, whose installed release it does not "
            "support (its log line before this one names both); install releases that fit, "
            "or turn TRACING off"
        )


def driver_is_async(cls: type[Driver]) -> bool:
    """The driver's async flag, inferred from ``connect`` when it declares none."""
    if cls.is_async is not None:
        return cls.is_async
    return inspect.iscoroutinefunction(cls.connect)


def check_driver_class(cls: type[Driver], source: str) -> None:
    """Refuse a driver whose declaration does not hold together; *source* names its origin."""
    where = f"driver class {cls.__module__}.{cls.__qualname__} ({source})"
    if not cls.name:
        raise DriverError(f"{where} has no name; set name = '<driver name>'")
    if cls.connect is Driver.connect:
        raise DriverError(f"{where} does not implement connect()")
    if not (isinstance(cls.Options, type) and issubclass(cls.Options, BaseModel)):
        raise DriverError(f"{where}: Options must be a pydantic BaseModel subclass")
    for scheme, port in cls.default_ports.items():
        if not (isinstance(port, int) and 0 < port < 65536):
            raise DriverError(
                f"{where}: default_ports[{scheme!r}] is {port!r}; a port is an int from 1 to 65535"
            )
    if cls.reachable_when not in REACHABLE_WHEN:
        raise DriverError(
            f"{where}: reachable_when is {cls.reachable_when!r}; expected 'all' or 'any'"
        )
    expected = driver_is_async(cls)
    for method_name in CONTRACT_METHODS:
        method = getattr(cls, method_name)
        if method is getattr(Driver, method_name):
            continue
        if inspect.iscoroutinefunction(method) != expected:
            kind = "a coroutine" if not expected else "a plain function"
            raise DriverError(
                f"{where} declares is_async={expected} but {method_name}() is {kind}; "
                "make all of connect, validate, ping and disconnect agree with the flag"
            )
    version = cls.contract_version
    if version is not None and version not in SUPPORTED_CONTRACT_VERSIONS:
        fits = ", ".join(str(v) for v in sorted(SUPPORTED_CONTRACT_VERSIONS))
        raise DriverError(
            f"{where} is built for driver contract {version}, but this opa-core accepts "
            f"contract {fits}; install a release of the driver built for contract {fits}"
        )
