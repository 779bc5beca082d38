"""The ``log`` object: loguru underneath, ``obj | log`` for quick debugging.

Standard-library logging (uvicorn's included) is routed into the same sink, and
that sink masks credentials in every line, tracebacks included.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
import traceback
from collections.abc import Callable
from datetime import UTC
from typing import Any, TextIO

from loguru import logger as _logger

from opa._masking import mask_secrets

_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{line} - {message}"

MAX_LOGGED_URL = 2048
"""How much of a request's path and query an access line carries.

2,048 characters is the length past which URLs stop working in common clients, proxies
and crawlers, so anything longer is rarely a link a person followed, and its head
already names the route. The cap keeps one request from writing a 100 KB line (uvicorn
accepts request lines far longer than any real route) and bounds what each access line
costs to format, mask and store.
"""


class _MaskingSink:
    """Write formatted records to a stream after masking credentials."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, message: str) -> None:
        self.stream.write(mask_secrets(message))

    def flush(self) -> None:
        self.stream.flush()


TraceIds = Callable[[], tuple[str, str] | None]
_trace_ids: TraceIds | None = None
"""With tracing on: the current span's (trace id, span id), or None outside any span."""


def show_trace_ids(source: TraceIds | None) -> None:
    """Put the current span's ids on each JSON line from now on (None: no more)."""
    global _trace_ids
    _trace_ids = source


class _JsonSink:
    """Write each record as one JSON object on its own line, masked as text lines are.

    Each string that may carry what a caller wrote (the message, the exception) goes
    through the same :func:`mask_secrets` as a text line does, before it is encoded.
    """

    def __init__(self, stream: TextIO, plugin_of: Callable[[str], str | None]) -> None:
        self.stream = stream
        self.plugin_of = plugin_of

    def write(self, message: Any) -> None:
        record = message.record
        extra = record["extra"]
        name = record["name"] or ""
        line: dict[str, Any] = {
            "time": record["time"].astimezone(UTC).isoformat(timespec="milliseconds"),
            "level": record["level"].name,
            "message": mask_secrets(record["message"]),
            "logger": name,
            "component": extra.get("component"),
            "plugin": extra.get("plugin") or self.plugin_of(name),
        }
        error = record["exception"]
        if error is not None and error.type is not None:
            text = "".join(traceback.format_exception(error.type, error.value, error.traceback))
            line["exception"] = mask_secrets(text)
        ids = _trace_ids() if _trace_ids is not None else None
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        self.stream.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        self.stream.flush()


def _no_plugin(name: str) -> str | None:
    return None


def cut_url(url: str, limit: int = MAX_LOGGED_URL) -> str:
    """*url* masked, then cut to *limit* characters with a note of how much was left out.

    Masking comes first, so a cut cannot split a credential and leave its head readable.
    """
    if len(url) <= limit:
        return url
    url = mask_secrets(url)
    if len(url) <= limit:
        return url
    return f"{url[:limit]} ... [cut: {len(url) - limit:,} more characters]"


def _cut_access_line_url(record: logging.LogRecord) -> None:
    """Cap the path of a uvicorn access line, the one place a client writes into a line."""
    args = record.args
    if (
        isinstance(args, tuple)
        and len(args) == 5
        and isinstance(args[2], str)
        and len(args[2]) > MAX_LOGGED_URL
    ):
        record.args = (*args[:2], cut_url(args[2]), *args[3:])


class _InterceptHandler(logging.Handler):
    """Hand standard-library records to loguru, keeping the caller's location."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "uvicorn.access":
            _cut_access_line_url(record)
        try:
            level: str | int = _logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Walk past the logging module's own frames so the record shows the real caller.
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        _logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


class Log:
    """Loguru's logger plus the pipe form: ``value | log`` logs *value* at debug level."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_logger, name)

    def __ror__(self, other: Any) -> Any:
        _logger.opt(depth=1).debug("{!r}", other)
        return other


log = Log()


def setup_logging(
    level: str | int = "INFO",
    stream: TextIO | None = None,
    *,
    json_lines: bool = False,
    plugin_of: Callable[[str], str | None] = _no_plugin,
) -> None:
    """(Re)configure the one sink and route standard logging into it.

    *json_lines* writes JSON lines instead of text (setting ``LOG_FORMAT: json``);
    *plugin_of* names the plugin a logger (a module name) belongs to, for their ``plugin``.
    """
    level_name = level.upper() if isinstance(level, str) else logging.getLevelName(level)
    show_trace_ids(None)  # tracing, when on, starts after logging and turns them on again
    _logger.remove()
    if json_lines:
        _logger.add(
            _JsonSink(stream or sys.stderr, plugin_of).write,
            level=level_name,
            format="{message}",
            backtrace=False,
            diagnose=False,
        )
    else:
        _logger.add(
            _MaskingSink(stream or sys.stderr),
            level=level_name,
            format=_FORMAT,
            backtrace=False,
            diagnose=False,
        )
    # The root level follows ours, so libraries' debug calls build no record we would drop.
    logging.basicConfig(handlers=[_InterceptHandler()], level=level_name, force=True)
    # Loggers with handlers of their own (uvicorn's default config) write through ours
    # instead; their propagate flag is left as set, so `--no-access-log` stays off.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi"):
        std = logging.getLogger(name)
        if std.handlers:
            std.handlers = [_InterceptHandler()]
