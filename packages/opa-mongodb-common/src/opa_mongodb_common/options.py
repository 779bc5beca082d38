"""``OPTS`` of the MongoDB drivers, and the check of their ``URL``.

The URL is checked here, by hand, rather than with pymongo's parser: importing that parser
loads all of pymongo (half a second), and for ``mongodb+srv://`` it queries DNS, while
option validation must stay cheap and do no I/O. pymongo still checks the URL's query
options (their names and values) when the driver builds the client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEME = "mongodb://"
SRV_SCHEME = "mongodb+srv://"
DEFAULT_PORT = 27017
DEFAULT_DATABASE = "opa"

# What MongoDB refuses in a database name on every platform.
_BAD_DATABASE_CHARACTERS = frozenset('/\\. "$\x00')
_UNESCAPED_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")
_BAD_HOST_CHARACTERS = re.compile(r"[\s/?#@\[\]]")


@dataclass(frozen=True)
class MongoUrl:
    """What the drivers need from a MongoDB URL: where the servers are, and the database."""

    addresses: tuple[tuple[str, int], ...]
    """(host, port) of each TCP host; unix domain sockets are left out."""
    srv_name: str | None
    """The DNS name of a ``mongodb+srv://`` URL, whose SRV records list the hosts."""
    srv_service: str
    """The SRV service name (``srvServiceName``), ``mongodb`` unless the URL says otherwise."""
    database: str | None
    """The database in the URL's path, if any."""


def check_database_name(name: str) -> str:
    """*name* if MongoDB accepts it as a database name, else ValueError saying why."""
    bad = sorted(set(name) & _BAD_DATABASE_CHARACTERS)
    if bad:
        raise ValueError(f"a database name may not contain {' '.join(repr(c) for c in bad)}")
    if len(name.encode()) >= 64:
        raise ValueError("a database name must be shorter than 64 bytes")
    return name


def parse_url(url: str) -> MongoUrl:
    """Check *url* against the shape of a MongoDB connection string.

    The ValueError says what is wrong without repeating the URL, which may hold a password.
    """
    if url.startswith(SCHEME):
        srv, rest = False, url[len(SCHEME) :]
    elif url.startswith(SRV_SCHEME):
        srv, rest = True, url[len(SRV_SCHEME) :]
    else:
        raise ValueError(f"must start with {SCHEME} or {SRV_SCHEME}")
    location, _, query = rest.partition("?")
    authority, _, path = location.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if at:
        _check_userinfo(userinfo)
    if not hosts:
        raise ValueError("names no host")
    options = _query_options(query)
    database = _database_in(path)
    if srv:
        if "," in hosts or ":" in hosts:
            raise ValueError(f"a {SRV_SCHEME} URL names exactly one host, without a port")
        _check_host_name(hosts)
        return MongoUrl((), hosts, options.get("srvservicename", "mongodb"), database)
    addresses = [_address(host) for host in hosts.split(",")]
    tcp = tuple(address for address in addresses if address is not None)
    return MongoUrl(tcp, None, "mongodb", database)


def _check_userinfo(userinfo: str) -> None:
    # pymongo refuses these too; saying so here makes it an options error, not a failed start.
    if "@" in userinfo or userinfo.count(":") > 1 or _UNESCAPED_PERCENT.search(userinfo):
        raise ValueError(
            "the user name and password must be percent-encoded (urllib.parse.quote_plus)"
        )
    if not userinfo.partition(":")[0]:
        raise ValueError("has credentials with an empty user name")


def _query_options(query: str) -> dict[str, str]:
    """The URL's options by lower-cased name; only their form is checked here."""
    if not query:
        return {}
    if "&" in query and ";" in query:
        raise ValueError("separates its query options with both & and ;")
    options: dict[str, str] = {}
    for pair in re.split("[&;]", query):
        name, equals, value = pair.partition("=")
        if not name or not equals:
            raise ValueError("has a query option that is not of the form name=value")
        options[unquote_plus(name).lower()] = unquote_plus(value)
    return options


def _database_in(path: str) -> str | None:
    # "db.collection" is allowed in the path; the collection part is no concern of ours.
    name = unquote_plus(path).partition(".")[0]
    return check_database_name(name) if name else None


def _check_host_name(name: str) -> None:
    if not name or _BAD_HOST_CHARACTERS.search(name):
        raise ValueError("has a malformed host name")


def _address(host: str) -> tuple[str, int] | None:
    """(host, port) of one entry of the host list; None for a unix domain socket."""
    if not host:
        raise ValueError("has an empty entry in its host list")
    if unquote(host).endswith(".sock"):
        return None
    if host.startswith("["):
        name, bracket, after = host[1:].partition("]")
        if not bracket or not name or (after and not after.startswith(":")):
            raise ValueError("has a malformed IPv6 address (write it as [address]:port)")
        has_port, port_text = bool(after), after[1:]
    else:
        name, colon, port_text = host.partition(":")
        if ":" in port_text:
            raise ValueError("has an IPv6 address without brackets (write it as [address]:port)")
        _check_host_name(name)
        has_port = bool(colon)
    if not has_port:
        return name, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ValueError("has a port that is not a number from 1 to 65535")
    return name, int(port_text)


class MongoOptions(BaseModel):
    """``OPTS`` of ``mongodb-async-motor`` and ``mongodb-async-pymongo``.

    Timeouts are in seconds and always reach the client, so they win over the same settings
    in the URL's query; ``APP_NAME`` and ``TLS`` reach it only when set. The default
    ``SERVER_SELECTION_TIMEOUT`` stays below the component's default ``TIMEOUT`` (10 s), so
    a server that cannot be reached fails with pymongo's own reason, not a bare time-out.
    """

    # The URL may hold a password: pydantic's own messages must not repeat it either.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    URL: str
    DATABASE: str | None = None
    """The default database; unset means the database in the URL's path, else ``opa``."""
    SERVER_SELECTION_TIMEOUT: float = Field(default=5.0, gt=0, le=600)
    CONNECT_TIMEOUT: float = Field(default=5.0, gt=0, le=600)
    SOCKET_TIMEOUT: float = Field(default=10.0, gt=0, le=3600)
    """How long one operation may wait for its reply; longer, since a real query may be slow."""
    APP_NAME: str | None = Field(default=None, min_length=1, max_length=128)
    """Shown in the server's logs and current operations, to tell this app's connections."""
    TLS: bool | None = None
    """Unset leaves TLS to the URL (``mongodb+srv://`` turns it on, ``mongodb://`` off)."""

    @field_validator("URL")
    @classmethod
    def _url_is_a_mongodb_url(cls, value: str) -> str:
        parse_url(value)
        return value

    @field_validator("DATABASE")
    @classmethod
    def _database_is_a_database_name(cls, value: str | None) -> str | None:
        return None if value is None else check_database_name(value)

    def database_name(self) -> str:
        """The default database: ``DATABASE``, else the URL's path, else ``opa``."""
        return self.DATABASE or parse_url(self.URL).database or DEFAULT_DATABASE

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AsyncIOMotorClient`` or ``AsyncMongoClient``, beside the URL.

        Unset options are left out, so that the URL's own settings apply.
        """
        kwargs: dict[str, Any] = {
            "serverSelectionTimeoutMS": self.SERVER_SELECTION_TIMEOUT * 1000,
            "connectTimeoutMS": self.CONNECT_TIMEOUT * 1000,
            "socketTimeoutMS": self.SOCKET_TIMEOUT * 1000,
        }
        if self.APP_NAME is not None:
            kwargs["appname"] = self.APP_NAME
        if self.TLS is not None:
            kwargs["tls"] = self.TLS
        return kwargs
