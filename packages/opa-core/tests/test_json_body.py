"""JSON bodies: deep nesting and lone surrogates are a 422 naming the problem, never a 500."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from opa import JsonBodyError, get_router, limit_body, parse_json
from opa._json_body import MAX_JSON_DEPTH, _nests_too_deep
from support import cpu_seconds, make_app, write_plugin

JSON = {"content-type": "application/json"}


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# One more digit than Python reads into an int: json.loads raises a plain ValueError.
DIGITS = sys.get_int_max_str_digits()
HUGE_INTEGER = b'{"name": ' + b"1" * (DIGITS + 1) + b"}"
TOO_MANY_DIGITS = f"an integer has more than {DIGITS} digits"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (nested(100_000), "nested deeper than 100 levels"),
        (nested(MAX_JSON_DEPTH + 1), "nested deeper than 100 levels"),
        (b'{"a": ' * 101 + b"1" + b"}" * 101, "nested deeper than 100 levels"),
        (b'["\\ud800"]', "lone surrogate"),
        (b'{"k": "x\\uDFFF"}', "lone surrogate"),
        (b'{"\\ud800": 1}', "lone surrogate"),
        ('["\ud800"]'.encode("utf-8", "surrogatepass"), "lone surrogate"),
        (b"{not json", "Expecting property name"),
        (HUGE_INTEGER, TOO_MANY_DIGITS),
        (b"[-" + b"9" * (DIGITS + 1) + b"]", TOO_MANY_DIGITS),
    ],
    ids=[
        "deep",
        "one-too-deep",
        "deep-objects",
        "escaped",
        "low",
        "key",
        "raw-bytes",
        "bad",
        "huge-integer",
        "huge-negative",
    ],
)
def test_parse_json_refuses_what_would_end_in_a_500(body: bytes, problem: str) -> None:
    """parse_json raises JsonBodyError (a ValueError) whose message names the problem."""
    with pytest.raises(JsonBodyError, match=problem):
        parse_json(body)


def test_parse_json_reads_valid_json_as_json_loads_does() -> None:
    """Nesting at the limit, surrogate pairs and a str argument parse as usual."""
    assert parse_json(nested(MAX_JSON_DEPTH))
    assert parse_json(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]
    assert parse_json('{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    assert parse_json(b"[" + b"7" * DIGITS + b"]") == [int("7" * DIGITS)]


# About 1 MB of groups exactly MAX_JSON_DEPTH deep side by side: peeling "[]" one level a
# pass would go over nearly all of it MAX_JSON_DEPTH times.
GROUP = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b","
AT_THE_LIMIT = b"[" + GROUP * (1_000_000 // len(GROUP)) + b"[]]"


def test_nesting_is_measured_over_many_groups_at_the_limit() -> None:
    """Groups at the limit side by side pass; one group a level deeper after them does not."""
    assert parse_json(AT_THE_LIMIT)
    with pytest.raises(JsonBodyError, match="nested deeper than 100 levels"):
        parse_json(AT_THE_LIMIT[:-1] + b"," + nested(MAX_JSON_DEPTH) + b"]")
    assert parse_json(b"[" + b'["]]]", {"[": "{{"}],' * 200 + b"1]")


def test_checking_the_nesting_costs_a_few_passes_over_the_body_not_one_per_level() -> None:
    """The check of a 1 MB body at the limit costs under 15 plain passes over it (about 2)."""
    one_pass = cpu_seconds(lambda: AT_THE_LIMIT.replace(b"[]", b""))
    check = cpu_seconds(lambda: _nests_too_deep(AT_THE_LIMIT))
    assert check < 15 * one_pass, f"one pass {one_pass:.4f} s, check {check:.4f} s"


PLUGIN = """
from pydantic import BaseModel

from opa import get_router, limit_body

class Item(BaseModel):
    name: str

router = get_router({route_class})

@router.post("{path}")
def item(body: Item) -> str:
    return body.name
"""
ROUTE_CLASSES = {"/item": "", "/limited": "route_class=limit_body(1_000_000)"}


@pytest.mark.parametrize("path", ["/item", "/limited"])
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (nested(5000), "nested deeper"),
        (b'{"name": "\\ud800"}', "lone surrogate"),
        (HUGE_INTEGER, TOO_MANY_DIGITS),
    ],
    ids=["deep", "surrogate", "huge-integer"],
)
def test_a_model_body_on_a_plugin_route_is_a_422_naming_the_problem(
    tmp_path: Path, path: str, body: bytes, problem: str
) -> None:
    """FastAPI's parsing of a model body on get_router and limit_body routes answers 422."""
    folder = tmp_path / "plugins"
    source = PLUGIN.format(route_class=ROUTE_CLASSES[path], path=path)
    write_plugin(folder, f"opa_json_body_plugin_{path.strip('/')}", source)
    with TestClient(make_app(PLUGIN_PATHS=[str(folder)])) as client:
        response = client.post(path, content=body, headers=JSON)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["type"] == "json_invalid"
        assert problem in error["ctx"]["error"]
        assert client.post(path, json={"name": "ok"}).json() == "ok"


def test_get_router_keeps_a_route_class_given_to_it() -> None:
    """get_router(route_class=...) uses that class; the default parses JSON safely."""
    assert get_router().route_class.__name__ == "JsonBodyRoute"
    assert get_router(route_class=limit_body(10)).route_class.__name__ == "LimitedBodyRoute10"


def test_a_422_echoing_a_lone_surrogate_is_rendered(tmp_path: Path) -> None:
    """A route not made by get_router still answers 422, the surrogate written as its escape."""
    folder = tmp_path / "plugins"
    write_plugin(
        folder,
        "opa_plain_router_plugin",
        """
        from fastapi import APIRouter
        router = APIRouter()

        @router.post("/numbers")
        def numbers(body: list[int]) -> int:
            return sum(body)
        """,
    )
    with TestClient(make_app(PLUGIN_PATHS=[str(folder)])) as client:
        response = client.post("/numbers", content=b'["\\ud800"]', headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["input"] == "\\ud800"


def test_a_plain_fastapi_router_is_not_rewritten() -> None:
    """Only opa's routers get the JSON route class; FastAPI's own APIRouter is left alone."""
    assert APIRouter().route_class.__name__ == "APIRoute"
