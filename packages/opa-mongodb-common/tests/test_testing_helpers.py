"""The URL helpers of opa_mongodb_common.testing that the driver suites rely on."""

from __future__ import annotations

from opa_mongodb_common.testing import with_credentials, with_database


def test_with_database_replaces_only_the_path() -> None:
    """with_database keeps credentials, hosts and options, and swaps the database."""
    url = "mongodb://u:p@h1,h2:27018/old?replicaSet=rs0"
    assert with_database(url, "new") == "mongodb://u:p@h1,h2:27018/new?replicaSet=rs0"
    assert with_database("mongodb://h", "") == "mongodb://h/"


def test_with_credentials_replaces_only_the_userinfo() -> None:
    """with_credentials swaps or adds credentials and keeps path and options."""
    assert with_credentials("mongodb://h/db?x=1", "a", "b") == "mongodb://a:b@h/db?x=1"
    assert with_credentials("mongodb://u:p@h/db", "a", "b") == "mongodb://a:b@h/db"
