"""MongoOptions: the URL check, the default database and the client's keyword arguments."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opa_mongodb_common import MongoOptions, MongoUrl, parse_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mongodb://127.0.0.1", MongoUrl((("127.0.0.1", 27017),), None, "mongodb", None)),
        (
            "mongodb://u:p%40ss@db1:27018,db2/notes?replicaSet=rs0&appName=x",
            MongoUrl((("db1", 27018), ("db2", 27017)), None, "mongodb", "notes"),
        ),
        ("mongodb://[::1]:27019/a.coll", MongoUrl((("::1", 27019),), None, "mongodb", "a")),
        ("mongodb://%2Ftmp%2Fmongodb-27017.sock/x", MongoUrl((), None, "mongodb", "x")),
        ("mongodb://h/?tls=true", MongoUrl((("h", 27017),), None, "mongodb", None)),
        (
            "mongodb+srv://u:p@cluster0.example.net/app?srvServiceName=custom",
            MongoUrl((), "cluster0.example.net", "custom", "app"),
        ),
        (
            "mongodb+srv://cluster0.example.net",
            MongoUrl((), "cluster0.example.net", "mongodb", None),
        ),
    ],
)
def test_well_formed_urls_parse(url: str, expected: MongoUrl) -> None:
    """Hosts, ports, SRV names and the path's database come out of well-formed URLs."""
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://h/db", "must start with"),
        ("MONGODB://h/db", "must start with"),
        ("mongodb://", "names no host"),
        ("mongodb://u:p@/db", "names no host"),
        ("mongodb://h1,,h2/db", "empty entry"),
        ("mongodb://h:0/db", "port"),
        ("mongodb://h:65536/db", "port"),
        ("mongodb://h:/db", "port"),
        ("mongodb://h:port/db", "port"),
        ("mongodb://::1/db", "IPv6"),
        ("mongodb://[::1/db", "IPv6"),
        ("mongodb://[::1]x/db", "IPv6"),
        ("mongodb://h h/db", "host name"),
        ("mongodb://u:p@ss@h/db", "percent-encoded"),
        ("mongodb://u:p:q@h/db", "percent-encoded"),
        ("mongodb://u:100%@h/db", "percent-encoded"),
        ("mongodb://:p@h/db", "empty user name"),
        ("mongodb://h/bad$name", "database name"),
        ("mongodb://h/" + "d" * 64, "64 bytes"),
        ("mongodb://h/db?tls", "name=value"),
        ("mongodb://h/db?a=1&b=2;c=3", "both & and ;"),
        ("mongodb+srv://a.example.net,b.example.net/db", "exactly one host"),
        ("mongodb+srv://a.example.net:27017/db", "exactly one host"),
    ],
)
def test_malformed_urls_are_refused_saying_why(url: str, reason: str) -> None:
    """Each malformed URL is refused with a reason that does not repeat the URL."""
    with pytest.raises(ValueError, match=reason) as caught:
        parse_url(url)
    assert url not in str(caught.value)


def test_options_error_never_echoes_the_url() -> None:
    """A refused URL yields a validation error that does not repeat its password."""
    with pytest.raises(ValidationError) as caught:
        MongoOptions(URL="mongodb://opa:s3cret-pw@h:99999/db")
    assert "s3cret-pw" not in str(caught.value)
    assert "s3cret-pw" not in repr(caught.value.errors(include_input=False))


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({"URL": "mongodb://h/notes"}, "notes"),
        ({"URL": "mongodb://h/notes.items"}, "notes"),
        ({"URL": "mongodb://h/"}, "opa"),
        ({"URL": "mongodb://h"}, "opa"),
        ({"URL": "mongodb://h/notes", "DATABASE": "other"}, "other"),
        ({"URL": "mongodb+srv://c.example.net/app"}, "app"),
    ],
)
def test_default_database(opts: dict[str, Any], expected: str) -> None:
    """The default database is DATABASE, else the URL's path, else "opa"."""
    assert MongoOptions.model_validate(opts).database_name() == expected


@pytest.mark.parametrize(
    ("opts", "field"),
    [
        ({"URL": "mongodb://h", "DATABASE": "a.b"}, "DATABASE"),
        ({"URL": "mongodb://h", "SERVER_SELECTION_TIMEOUT": 0}, "SERVER_SELECTION_TIMEOUT"),
        ({"URL": "mongodb://h", "CONNECT_TIMEOUT": -1}, "CONNECT_TIMEOUT"),
        ({"URL": "mongodb://h", "SOCKET_TIMEOUT": "soon"}, "SOCKET_TIMEOUT"),
        ({"URL": "mongodb://h", "APP_NAME": "x" * 129}, "APP_NAME"),
        ({"URL": "mongodb://h", "TLS": "sometimes"}, "TLS"),
        ({"URL": "mongodb://h", "url": "mongodb://h"}, "url"),
        ({"DATABASE": "opa"}, "URL"),
    ],
)
def test_bad_options_are_refused(opts: dict[str, Any], field: str) -> None:
    """Out-of-range, mistyped, unknown and missing options are refused, naming the option."""
    with pytest.raises(ValidationError) as caught:
        MongoOptions.model_validate(opts)
    assert [error["loc"][0] for error in caught.value.errors()] == [field]


def test_client_kwargs_carry_timeouts_in_milliseconds() -> None:
    """Timeouts always reach the client, in ms; unset APP_NAME and TLS leave the URL's own."""
    opts = MongoOptions(URL="mongodb://h/?appName=fromurl&tls=true")
    assert opts.client_kwargs() == {
        "serverSelectionTimeoutMS": 5000,
        "connectTimeoutMS": 5000,
        "socketTimeoutMS": 10000,
    }


def test_client_kwargs_pass_app_name_and_tls_when_set() -> None:
    """APP_NAME and TLS, when set, become pymongo's appname and tls arguments."""
    opts = MongoOptions(
        URL="mongodb://h",
        SERVER_SELECTION_TIMEOUT=0.5,
        CONNECT_TIMEOUT=2,
        SOCKET_TIMEOUT=30,
        APP_NAME="notes",
        TLS=False,
    )
    assert opts.client_kwargs() == {
        "serverSelectionTimeoutMS": 500,
        "connectTimeoutMS": 2000,
        "socketTimeoutMS": 30000,
        "appname": "notes",
        "tls": False,
    }
