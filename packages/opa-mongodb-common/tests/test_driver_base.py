"""AsyncMongoDriver: what both drivers inherit without talking to a server."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import dns.exception
import dns.resolver
import pytest

from opa import ComponentUnavailableError
from opa_mongodb_common import AsyncMongoDriver, MongoOptions, srv_targets


def driver_for(url: str) -> AsyncMongoDriver:
    return AsyncMongoDriver("mongodb", MongoOptions(URL=url, CONNECT_TIMEOUT=1))


def test_targets_are_the_tcp_hosts_of_the_url() -> None:
    """Every TCP host of a mongodb:// URL is checked; a unix socket is not."""
    url = "mongodb://u:p@db1,[::1]:27018,%2Ftmp%2Fm.sock/opa"
    assert driver_for(url).reachability_targets() == [("db1", 27017), ("::1", 27018)]


@dataclass
class FakeSrv:
    target: str
    port: int


def test_srv_records_become_the_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mongodb+srv:// name is checked through the hosts its SRV records list."""
    asked: list[tuple[str, str, float]] = []

    def resolve(name: str, kind: str, lifetime: float) -> list[FakeSrv]:
        asked.append((name, kind, lifetime))
        return [FakeSrv("a.example.net.", 27017), FakeSrv("b.example.net.", 27018)]

    monkeypatch.setattr(dns.resolver, "resolve", resolve)
    url = "mongodb+srv://cluster.example.net/opa?srvServiceName=db"
    assert driver_for(url).reachability_targets() == [
        ("a.example.net", 27017),
        ("b.example.net", 27018),
    ]
    assert asked == [("_db._tcp.cluster.example.net", "SRV", 1)]


def test_an_srv_name_without_records_stands_for_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the SRV look-up fails, the name itself is checked, so the check fails naming it."""

    def resolve(name: str, kind: str, lifetime: float) -> list[FakeSrv]:
        raise dns.resolver.NXDOMAIN

    monkeypatch.setattr(dns.resolver, "resolve", resolve)
    assert srv_targets("gone.example.net", "mongodb", 1) == [("gone.example.net", 27017)]


def test_srv_lookup_time_out_counts_as_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A look-up that times out is treated like a name without records."""

    def resolve(name: str, kind: str, lifetime: float) -> list[FakeSrv]:
        raise dns.exception.Timeout

    monkeypatch.setattr(dns.resolver, "resolve", resolve)
    assert srv_targets("slow.example.net", "mongodb", 1) == [("slow.example.net", 27017)]


def test_database_before_connect_is_unavailable() -> None:
    """Asking for the default database of a driver that is not connected names the component."""
    with pytest.raises(ComponentUnavailableError, match="'mongodb'"):
        driver_for("mongodb://h/opa").database  # noqa: B018 - the access is the test


def test_outage_errors_are_pymongo_connection_failures() -> None:
    """The errors answered with 503 cover lost servers, selection and network time-outs."""
    from pymongo.errors import AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError

    (family,) = driver_for("mongodb://h/opa").unavailable_errors()
    for error in (AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError):
        assert issubclass(error, family)


def test_importing_the_package_imports_no_mongodb_library() -> None:
    """opa_mongodb_common is cheap to import: pymongo and dnspython wait until used."""
    script = (
        "import json, sys, opa_mongodb_common; "
        "print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert not loaded & {"pymongo", "bson", "motor", "dns"}, loaded
