"""The driver contract: what a backend driver declares and implements.

A driver is a :class:`Driver` subclass with a ``name`` (the ``DRIVER`` value in
configuration), an ``is_async`` flag that says whether ``connect``, ``validate``,
``ping`` and ``disconnect`` are coroutines, an ``Options`` model for ``OPTS``, and
the ``contract_version`` it was built for. Drivers ship as distributions that
declare an entry point in the ``opa.drivers`` group, or inside plugin modules.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from opa._errors import DriverError

CONTRACT_VERSION = 1
"""The driver contract this opa-core implements."""

SUPPORTED_CONTRACT_VERSIONS = frozenset({1})
"""Contract versions whose drivers this opa-core can load."""

ENTRY_POINT_GROUP = "opa.drivers"

CONTRACT_METHODS = ("connect", "validate", "ping", "disconnect")

DEFAULT_PORTS = {
    "redis": 6379,
    "rediss": 6379,
    "mongodb": 27017,
    "amqp": 5672,
    "amqps": 5671,
    "pyamqp": 5672,
    "postgresql": 5432,
    "postgres": 5432,
    "mysql": 3306,
    "nats": 4222,
    "mqtt": 1883,
    "http": 80,
    "https": 443,
}


class DriverOptions(BaseModel):
    """Options of a driver that declares no model of its own: any keys, an optional URL."""

    model_config = ConfigDict(extra="allow")

    URL: str | None = None


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

    def __init__(self, component: str, opts: BaseModel) -> None:
        self.component = component
        self.opts: Any = opts
        self.instance: Any = None

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

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        """Exceptions of the backend library that mean "the server is not there".

        The app answers them with 503 instead of 500, so an outage is reported as one.
        Called once the driver is configured, so it may import the backend library.
        """
        return ()

    def urls(self) -> list[str]:
        """The URLs this driver connects to, for the reachability check and messages."""
        url = getattr(self.opts, "URL", None)
        return [url] if isinstance(url, str) and url else []

    def reachability_targets(self) -> list[tuple[str, int]]:
        """The (host, port) pairs that must accept TCP before ``LOAD: auto`` connects."""
        targets: list[tuple[str, int]] = []
        for url in self.urls():
            targets.extend(hosts_of(url))
        return targets


def hosts_of(url: str) -> list[tuple[str, int]]:
    """(host, port) pairs named by *url*; none for schemes that are not host based."""
    parts = urlsplit(url)
    port = DEFAULT_PORTS.get(parts.scheme)
    if port is None or parts.scheme.endswith("+srv"):
        return []
    netloc = parts.netloc.rpartition("@")[2]
    found: list[tuple[str, int]] = []
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
