"""Logging: the pipe form, standard logging routed in, and masking everywhere."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from opa._log import MAX_LOGGED_URL, cut_url, log, setup_logging
from opa._masking import mask_secrets, mask_value


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    yield stream
    setup_logging("INFO")


def test_piping_into_log_logs_the_object_and_returns_it(captured: io.StringIO) -> None:
    """`obj | log` logs obj at debug level and hands it back unchanged."""
    value = {"answer": 42}
    assert (value | log) is value
    assert "DEBUG" in captured.getvalue() and "{'answer': 42}" in captured.getvalue()


def test_standard_logging_is_routed_into_the_same_sink(captured: io.StringIO) -> None:
    """uvicorn-style standard logging records reach opa's sink."""
    logging.getLogger("uvicorn.error").warning("from the standard library")
    assert "from the standard library" in captured.getvalue()


def test_the_level_comes_from_configuration() -> None:
    """Below the configured level nothing is written."""
    stream = io.StringIO()
    setup_logging("WARNING", stream=stream)
    try:
        log.info("quiet")
        log.warning("loud")
    finally:
        setup_logging("INFO")
    assert "quiet" not in stream.getvalue() and "loud" in stream.getvalue()


def test_credentials_are_masked_in_messages_and_tracebacks(captured: io.StringIO) -> None:
    """A password in a URL never reaches the log, not even inside a traceback."""
    log.info("connecting to redis://admin:p4ss@cache:6379/0")
    try:
        raise RuntimeError("failed amqp://guest:p4ss@broker//")
    except RuntimeError:
        log.exception("boom")
    output = captured.getvalue()
    assert "p4ss" not in output
    assert "redis://admin:***@cache:6379/0" in output and "amqp://guest:***@broker//" in output


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("redis://user:pw@host", "redis://user:***@host"),
        ("redis://:pw@host:1/0", "redis://:***@host:1/0"),
        ("mongodb://u:p%40ss@a:1,b:2/db?authSource=x", "mongodb://u:***@a:1,b:2/db?authSource=x"),
        ("postgresql://h/db?password=pw&x=1", "postgresql://h/db?password=***&x=1"),
        ("redis://host:6379", "redis://host:6379"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_mask_secrets(raw: str, masked: str) -> None:
    """URL passwords and password= parameters are replaced by ***."""
    assert mask_secrets(raw) == masked


def test_secret_named_settings_are_masked_whole() -> None:
    """SECRET_KEY and *PASSWORD* settings are masked entirely, nested ones included."""
    masked = mask_value(
        "ROOT", {"SECRET_KEY": "abc", "DB": {"PASSWORD": "x", "URL": "redis://:y@h"}}
    )
    assert masked == {"SECRET_KEY": "***", "DB": {"PASSWORD": "***", "URL": "redis://:***@h"}}


def access_line(path: str) -> None:
    """Log a request the way uvicorn's access logger does."""
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", path, "1.1", 200)


def test_a_long_url_is_cut_in_the_access_line_and_says_so(captured: io.StringIO) -> None:
    """A 100 KB query string leaves a line of about 2 KB that says how much was cut."""
    path = "/hello?q=" + "a" * 102_400
    access_line(path)
    line = captured.getvalue()
    cut = len(path) - MAX_LOGGED_URL
    assert f' ... [cut: {cut:,} more characters] HTTP/1.1" 200' in line
    assert "GET /hello?q=aaa" in line and len(line) < MAX_LOGGED_URL + 200


def test_an_ordinary_url_is_logged_whole(captured: io.StringIO) -> None:
    """A URL under the cap is logged as it came, query included."""
    access_line("/items?page=2&size=50")
    assert '"GET /items?page=2&size=50 HTTP/1.1" 200' in captured.getvalue()


def test_the_cut_never_splits_a_credential() -> None:
    """Masking comes before the cut, so no head of a password is left at the cut."""
    url = "/cb?next=redis://:" + "s" * (MAX_LOGGED_URL - 10) + "@cache:6379/0&pad=" + "x" * 5000
    shown = cut_url(url)
    assert "sss" not in shown and "redis://:***@cache:6379/0" in shown
    assert shown.endswith(
        f" ... [cut: {len(mask_secrets(url)) - MAX_LOGGED_URL:,} more characters]"
    )
