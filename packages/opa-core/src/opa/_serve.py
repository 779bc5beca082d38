"""`opa run`'s server: uvicorn with the guarded protocol, a bounded shutdown, and a failed
start-up turned into one opa error instead of uvicorn's log lines and exit status 3."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from opa._errors import OpaError
from opa._log import log
from opa._plugin_manager import plugin_paths
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
        self.reported_by_opa = False  # the reason is an opa error's own one line
        self.held: list[str] = []  # every line held back, with its traceback

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or self.started():
            return True
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.held.append(message)
        if message.startswith(OPA_STARTUP_FAILED):
            self.reason = message
            self.reported_by_opa = True
        elif message != UVICORN_STARTUP_FAILED and not self.reason:
            # Any other failure (a traceback from the app, a port in use): its last line.
            lines = [line.strip() for line in message.splitlines() if line.strip()]
            self.reason = OPA_STARTUP_FAILED + (lines[-1] if lines else message)
        return False

    def failure(self) -> OpaError:
        """The one error for a start-up that failed. Unless an opa error's line said it all,
        what was held back goes to DEBUG (masked by opa's sink), tracebacks included."""
        if not self.reported_by_opa:
            for message in self.held:
                log.debug("held back from uvicorn before a failed start-up: {}", message)
        return OpaError(
            self.reason
            or f"{OPA_STARTUP_FAILED}uvicorn stopped before serving; --log-level debug shows "
            "what it said"
        )


class _CutRequests(logging.Filter):
    """Drops uvicorn's traceback for each request it cancelled when SHUTDOWN_GRACE ran out.

    Its one line "Cancel N running task(s), timeout graceful shutdown exceeded" says how
    many; nothing else cancels a request's task in uvicorn.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


def reload_dirs(settings: Any) -> list[str]:
    """The folders a reloading server watches: the current one (uvicorn's own default) and
    every plugin folder, so editing a plugin outside the current folder reloads too."""
    folders: list[str] = []
    for folder in [Path.cwd(), *plugin_paths(settings)]:
        resolved = str(folder.resolve())
        if folder.is_dir() and resolved not in folders:
            folders.append(resolved)
    return folders


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
        uvicorn.run(APP, reload=True, reload_dirs=reload_dirs(settings), http=PROTOCOL, **options)
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
        # With nothing held back, whatever exited said why itself (opa.main's one
        # `error:` line for an opa error while uvicorn imports the app): leave it alone.
        if server.started or not errors.held:
            raise
        raise errors.failure() from None
    finally:
        for each in filters:
            uvicorn_log.removeFilter(each)
    if not server.started:
        # uvicorn 0.29 returns from run() after a failed lifespan start-up (0.54 exits with
        # status 3): a server that never started failed all the same.
        raise errors.failure()
