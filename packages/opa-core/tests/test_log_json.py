"""LOG_FORMAT: json writes one JSON object per line, masked exactly as text lines are."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opa._log import log, setup_logging
from opa._masking import mask_secrets
from support import make_app, write_plugin
from tcp_driver import EchoServer
from test_breaker import PLUGIN, component

SECRET_LINE = "connecting to redis://opa:hunter2@cache.example:6379/0 with password='swordfish'"


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream, json_lines=True)
    yield stream
    setup_logging("INFO")


def test_each_line_is_a_json_object_with_time_level_message_logger_component_plugin(
    json_log: io.StringIO,
) -> None:
    """A record is one line of JSON with the documented keys."""
    log.bind(component="cache").warning("the cache is {}", "slow")
    (line,) = lines(json_log)
    assert set(line) == {"time", "level", "message", "logger", "component", "plugin"}
    assert line["level"] == "WARNING"
    assert line["message"] == "the cache is slow"
    assert line["logger"] == __name__
    assert line["component"] == "cache"
    assert line["plugin"] is None
    assert line["time"].endswith("+00:00")


def test_a_secret_is_masked_in_json_exactly_as_in_text(json_log: io.StringIO) -> None:
    """The message of a JSON line is the text line's message, masked the same way."""
    log.info(SECRET_LINE)
    logging.getLogger("uvicorn.error").error(SECRET_LINE)
    text = io.StringIO()
    setup_logging("DEBUG", stream=text)
    log.info(SECRET_LINE)
    masked = mask_secrets(SECRET_LINE)
    assert "hunter2" not in masked and "swordfish" not in masked
    assert [line["message"] for line in lines(json_log)] == [masked, masked]
    assert text.getvalue().rstrip("\n").endswith(f" - {masked}")
    assert "hunter2" not in json_log.getvalue() and "swordfish" not in json_log.getvalue()


def test_an_exception_is_one_field_and_masked(json_log: io.StringIO) -> None:
    """A logged exception's traceback is the `exception` field, its secrets masked."""
    try:
        raise ConnectionError(SECRET_LINE)
    except ConnectionError:
        log.exception("the cache failed")
    (line,) = lines(json_log)
    assert line["message"] == "the cache failed"
    assert "ConnectionError: connecting to redis://" in line["exception"]
    assert "hunter2" not in line["exception"] and "swordfish" not in line["exception"]


def test_the_setting_switches_the_app_log_to_json_and_names_component_and_plugin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With LOG_FORMAT json an app's start-up lines name their component, and a plugin's
    own line names its plugin."""
    name = f"json_log_{tmp_path.name[-12:].replace('-', '_')}"
    source = (
        PLUGIN
        + "\nfrom opa import log\n\n\n@router.get('/speak')\ndef speak():\n    log.info('spoken')\n"
    )
    write_plugin(tmp_path / "plugins", name, source)
    try:
        with EchoServer() as server:
            app = make_app(
                LOG_FORMAT="json",
                PLUGIN_PATHS=[str(tmp_path / "plugins")],
                OPTIONAL_COMPONENTS={"STORE": component("echo", server)},
            )
            with TestClient(app) as client:
                assert client.get("/speak").status_code == 200
    finally:
        setup_logging("INFO")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    connected = [r for r in records if r["message"].startswith("component 'store' connected")]
    assert connected and connected[0]["component"] == "store"
    spoken = [r for r in records if r["message"] == "spoken"]
    assert spoken and spoken[0]["plugin"] == name and spoken[0]["logger"] == name
