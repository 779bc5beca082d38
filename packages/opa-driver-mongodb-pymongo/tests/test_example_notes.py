"""examples/mongodb, the notes API, end to end over HTTP against the test server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from opa.testing import build_app, chunked_body
from opa_mongodb_common.testing import private_database

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "mongodb"
MISSING_ID = "0123456789abcdef01234567"


@pytest.fixture
def client(mongodb_url: str) -> Iterator[TestClient]:
    """The example served on a database of this test's own, so it starts empty."""
    with private_database(mongodb_url) as url:
        components = {
            "MONGODB": {"LOAD": "yes", "DRIVER": "mongodb-async-pymongo", "OPTS": {"URL": url}}
        }
        app = build_app({"PLUGIN_PATHS": [str(EXAMPLE)], "OPTIONAL_COMPONENTS": components})
        with TestClient(app) as test_client:
            yield test_client


def create(client: TestClient, title: str, body: str = "") -> dict[str, Any]:
    response = client.post("/notes", json={"title": title, "body": body})
    assert response.status_code == 201, response.text
    note: dict[str, Any] = response.json()
    return note


def test_settings_configure_the_pymongo_driver() -> None:
    """The example's settings folder names the PyMongo driver under LOAD yes."""
    settings = yaml.safe_load((EXAMPLE / "settings" / "components.yaml").read_text())
    mongodb = settings["default"]["OPTIONAL_COMPONENTS"]["MONGODB"]
    assert mongodb["DRIVER"] == "mongodb-async-pymongo"
    assert mongodb["LOAD"] in ("yes", True)


def test_created_note_can_be_read_back(client: TestClient) -> None:
    """POST stores a note with a new id; GET by that id returns the same note."""
    note = create(client, "  shopping  ", "milk")
    assert note["title"] == "shopping"
    assert len(note["id"]) == 24
    assert client.get(f"/notes/{note['id']}").json() == note


@pytest.mark.parametrize(
    "payload",
    [
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": "ok", "body": "x" * 10_001},
        {"title": "ok", "colour": "red"},
        {"body": "no title"},
    ],
)
def test_invalid_notes_are_refused(client: TestClient, payload: dict[str, Any]) -> None:
    """An empty or over-long title, an over-long body or an unknown field is a 422."""
    assert client.post("/notes", json=payload).status_code == 422
    assert client.get("/notes").json()["total"] == 0


def oversized_note() -> Iterator[bytes]:
    """A note whose body passes 64 KiB, sent in chunks (no declared length)."""
    return chunked_body(b'{"title": "big", "body": "', b"x" * 1024, 70, b'"}')


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_request_body_over_64_kib_is_413(client: TestClient, chunked: bool) -> None:
    """POST /notes refuses a body over 64 KiB with 413 before parsing it; nothing is stored."""
    content: Any = oversized_note() if chunked else b"".join(oversized_note())
    headers = {"content-type": "application/json"}
    response = client.post("/notes", content=content, headers=headers)
    assert response.status_code == 413
    assert response.json()["detail"] == "request body too large: the limit is 65536 bytes"
    assert client.get("/notes").json()["total"] == 0


def test_the_longest_note_fits_the_cap_even_escaped(client: TestClient) -> None:
    """A 200-character title and a 10,000-character body, every character JSON-escaped."""
    title, body = "é" * 200, "ü" * 10_000
    content = json.dumps({"title": title, "body": body}, ensure_ascii=True).encode()
    assert len(content) > 10_000 * 6
    headers = {"content-type": "application/json"}
    response = client.post("/notes", content=content, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["body"] == body


def test_list_pages_newest_first(client: TestClient) -> None:
    """The list is newest first and pages by limit and offset, with the total."""
    ids = [create(client, f"note {n}")["id"] for n in range(5)]
    page = client.get("/notes", params={"limit": 2, "offset": 1}).json()
    assert [item["id"] for item in page["items"]] == [ids[3], ids[2]]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    last = client.get("/notes", params={"limit": 2, "offset": 4}).json()
    assert [item["id"] for item in last["items"]] == [ids[0]]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": 10_001}, {"limit": "x"}]
)
def test_paging_is_bounded(client: TestClient, params: dict[str, Any]) -> None:
    """limit outside 1..100 or offset outside 0..10000 is a 422."""
    assert client.get("/notes", params=params).status_code == 422


@pytest.mark.parametrize("bad_id", ["123", "z" * 24, "0123456789abcdef012345678"])
def test_malformed_id_is_422(client: TestClient, bad_id: str) -> None:
    """An id that is not 24 hex digits is a 422 for GET and DELETE."""
    assert client.get(f"/notes/{bad_id}").status_code == 422
    assert client.delete(f"/notes/{bad_id}").status_code == 422


def test_missing_note_is_404(client: TestClient) -> None:
    """A well-formed id that names no note is a 404 for GET and DELETE."""
    assert client.get(f"/notes/{MISSING_ID}").status_code == 404
    assert client.delete(f"/notes/{MISSING_ID}").status_code == 404


def test_deleted_note_is_gone(client: TestClient) -> None:
    """DELETE answers 204, after which the note is 404 and no longer listed."""
    keep, drop = create(client, "keep"), create(client, "drop")
    assert client.delete(f"/notes/{drop['id']}").status_code == 204
    assert client.get(f"/notes/{drop['id']}").status_code == 404
    assert [item["id"] for item in client.get("/notes").json()["items"]] == [keep["id"]]
