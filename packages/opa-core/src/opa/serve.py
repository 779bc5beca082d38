"""`opa run`'s server: uvicorn with the guarded protocol, a bounded shutdown, and a failed
start-up turned into one opa error instead of uvicorn's log lines and exit status 3."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import uvicorn

from opa.errors import OpaError
from opa.serving import ConnectionGuard, guarded_protocol, serving_limits

APP = "opa.main:app"
PROTOCOL = "opa.serving:GuardedH11Protocol"
# How opa's lifespan reports an opa error (app.py), and uvicorn's line after any failure.
OPA_STARTUP_FAILED = "opa start-up failed: "
UVICORN_STARTUP_FAILED = "Application startup failed. Exiting."


class _StartupErrors(logging.Filter):
    """Holds back uvicorn's error lines until the server has started, keeping the reason."""

    def __init__(self, started: Callable[[], bool]) -> None:
        super().__init__()
        self.started = started
        self.reason = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or self.started():
            return True
        message = record.getMessage()
        if message.startswith(OPA_STARTUP_FAILED):
            self.reason = message
        elif message != UVICORN_STARTUP_FAILED and not self.reason:
            # Any other failure (a traceback from the app, a port in use): its last line.
            lines = [line.strip() for line in message.splitlines() if line.strip()]
            self.reason = OPA_STARTUP_FAILED + (lines[-1] if lines else message)
        return False


class _CutRequests(logging.Filter):
    """Drops uvicorn's traceback for each request it cancelled when SHUTDOWN_GRACE ran out.

    Its one line "Cancel N running task(s), timeout graceful shutdown exceeded" says how
    many; nothing else cancels a request's task in uvicorn.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


def serve(settings: Any, *, host: str, port: int, reload: bool, log_level: str) -> None:
    """Serve opa.main:app until a signal; raise an OpaError when it could not start."""
    limits = serving_limits(settings)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "lifespan": "on",  # a failed start-up (a LOAD: yes component down) must end the process
        "log_config": None,  # keep opa's masking log sink instead of uvicorn's own handlers
        # uvicorn passes it to asyncio.wait_for, which takes any number of seconds.
        "timeout_graceful_shutdown": limits.shutdown_grace,
    }
    if reload:
        # The reloader's server process builds its own guard from the same settings.
        uvicorn.run(APP, reload=True, http=PROTOCOL, **options)
        return
    guard = ConnectionGuard.from_settings(settings)
    config = uvicorn.Config(APP, http=guarded_protocol(guard), backlog=guard.backlog, **options)
    server = uvicorn.Server(config)
    errors = _StartupErrors(lambda: server.started)
    uvicorn_log = logging.getLogger("uvicorn.error")
    filters = [errors, _CutRequests()]
    for each in filters:
        uvicorn_log.addFilter(each)
    try:
        server.run()
    except SystemExit:
        if server.started:
            raise
        raise OpaError(errors.reason or f"{OPA_STARTUP_FAILED}see the lines above") from None
    finally:
        for each in filters:
            uvicorn_log.removeFilter(each)
