"""The base of both async MongoDB drivers: the contract's methods, written once.

Motor's ``AsyncIOMotorClient`` and PyMongo's ``AsyncMongoClient`` share the API the drivers
use (``admin.command``, ``client[name]``), so only building and closing the client differ;
each driver package does those two, and imports its library there, never at module level.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from opa import ComponentUnavailableError, Driver, instrument_once
from opa_mongodb_common.options import DEFAULT_PORT, MongoOptions, parse_url


class AsyncMongoDriver(Driver):
    """An async MongoDB driver; a subclass sets ``name`` and implements ``new_client`` and
    ``disconnect``.

    ``instance`` is the client. ``database``, the default database, is reachable from plugin
    code as ``get_component(name).database``, since a component forwards driver attributes.
    """

    is_async = True
    contract_version = 1
    Options: ClassVar[type[BaseModel]] = MongoOptions
    default_ports: ClassVar[Mapping[str, int]] = {"mongodb": DEFAULT_PORT}
    # A seed list: the client discovers the replica set from any member that answers.
    reachable_when = "any"
    opts: MongoOptions

    @classmethod
    def instrument_tracing(cls) -> None:
        """A span for each MongoDB command, from PyMongo's command monitoring, which Motor's
        clients go through as well (Motor runs PyMongo underneath)."""
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

        instrument_once(PymongoInstrumentor())

    def new_client(self) -> Any:
        """A client for ``self.opts``, built without I/O: ``validate`` waits for the server."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement new_client()")

    async def connect(self) -> None:
        self.instance = self.new_client()

    async def validate(self) -> None:
        """A real round trip: the ``ping`` command, after server selection."""
        await self.instance.admin.command("ping")

    async def ping(self) -> None:
        await self.validate()

    @property
    def database(self) -> Any:
        """The default database of the connected client (see ``MongoOptions.database_name``)."""
        if self.instance is None:
            raise ComponentUnavailableError(f"component {self.component!r} is not connected")
        return self.instance[self.opts.database_name()]

    def unavailable_errors(self) -> tuple[type[Exception], ...]:
        # Server selection time-outs, lost connections and network time-outs all derive from it.
        from pymongo.errors import ConnectionFailure

        return (ConnectionFailure,)

    def reachability_targets(self) -> list[tuple[str, int]]:
        url = parse_url(self.opts.URL)
        if url.srv_name is None:
            return list(url.addresses)
        return srv_targets(url.srv_name, url.srv_service, self.opts.CONNECT_TIMEOUT)


def srv_targets(name: str, service: str, timeout: float) -> list[tuple[str, int]]:
    """The hosts a ``mongodb+srv://`` name stands for, from its DNS SRV records.

    When the lookup fails, the name itself on the default port stands in: the TCP check then
    fails on it and reports the name, as it does for any host that is not there.
    """
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(f"_{service}._tcp.{name}", "SRV", lifetime=timeout)
    except dns.exception.DNSException:
        return [(name, DEFAULT_PORT)]
    targets: list[tuple[str, int]] = []
    for record in answer:
        targets.append((str(record.target).rstrip("."), int(record.port)))
    return targets
