"""Replica-set URLs through mongodb-async-pymongo, as far as a standalone nx-27017 allows.

nx-27017 answers as a standalone server, never as a replica set member, so what is tested
here is the path up to server selection: every seed reaches the client, ``LOAD: auto``
probes every seed and goes on when one answers. A real replica set: see the README.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from opa import ComponentError
from opa.testing import build_app, closed_port
from opa_driver_mongodb_pymongo import PyMongoDriver
from opa_mongodb_common import MongoOptions

DRIVER = "mongodb-async-pymongo"


def test_every_seed_and_the_replica_set_name_reach_the_client() -> None:
    """A multi-host URL with replicaSet= builds a client seeded with each host, for that set."""
    url = "mongodb://u:p@db1:27017,db2:27018,db3/app?replicaSet=rs0"
    driver = PyMongoDriver("mongodb", MongoOptions(URL=url))
    client = driver.new_client()
    topology = client.topology_description
    assert topology.replica_set_name == "rs0"
    assert set(topology.server_descriptions()) == {("db1", 27017), ("db2", 27018), ("db3", 27017)}


def _app(url: str, load: str) -> TestClient:
    opts = {"URL": url, "SERVER_SELECTION_TIMEOUT": 1, "CONNECT_TIMEOUT": 1}
    components = {"MONGODB": {"LOAD": load, "DRIVER": DRIVER, "OPTS": opts}}
    return TestClient(build_app({"OPTIONAL_COMPONENTS": components}))


def test_auto_skips_when_no_seed_answers_naming_each(capfd: pytest.CaptureFixture[str]) -> None:
    """LOAD auto with every seed down skips the component and names every seed probed."""
    first, second = closed_port(), closed_port()
    url = f"mongodb://127.0.0.1:{first},127.0.0.1:{second}/app?replicaSet=rs0"
    with _app(url, "auto") as client:
        health = client.get("/health").json()
    assert health["components"]["mongodb"]["status"] == "skipped"
    said = capfd.readouterr().err
    assert "none of the 2 hosts answered" in said
    assert f"127.0.0.1:{first} is unreachable" in said
    assert f"127.0.0.1:{second} is unreachable" in said


def test_auto_goes_on_when_one_seed_answers(mongodb_url: str) -> None:
    """One live seed among dead ones passes LOAD auto's check; server selection then decides.

    A standalone is not a member of rs0, so the driver's own round trip fails, which under
    LOAD auto is a start-up error (reachable, then failed), never a skip.
    """
    live = urlsplit(mongodb_url).netloc.rpartition("@")[2]
    url = f"mongodb://127.0.0.1:{closed_port()},{live}/app?replicaSet=rs0"
    app = _app(url, "auto")
    with pytest.raises(ComponentError, match=r"'mongodb' .*failed to connect"), app:
        pass
