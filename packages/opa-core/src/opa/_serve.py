"""`opa run`'s server: uvicorn with the guarded protocol, a bounded shutdown, and a failed
start-up turned into one opa error instead of uvicorn's log lines and exit status 3."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from opa._config import typed
from opa._errors import OpaError
from opa._log import log
from opa._metrics_port import WorkerMetrics
from opa._plugin_manager import plugin_paths
from opa._settings_model import Settings
from opa.serving import ConnectionGuard, GuardedH11Protocol, guarded_protocol, serving_limits

APP = "opa.main:app"
WORKER_APP = "opa._worker_app:app"
PROTOCOL = "opa.serving:GuardedH11Protocol"
# How opa's lifespan reports an opa error (app.py), and uvicorn's line after any failure.
OPA_STARTUP_FAILED = "opa start-up failed: "
UVICORN_STARTUP_FAILED = "Application startup failed. Exiting."
# The exit status of a uvicorn server process whose start-up failed (uvicorn.config's).
STARTUP_FAILURE = 3


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


def hold_back_cut_requests() -> None:
    """Install :class:`_CutRequests` for the life of this process (a worker's)."""
    logging.getLogger("uvicorn.error").addFilter(_CutRequests())


def reload_dirs(settings: Any) -> list[str]:
    """The folders a reloading server watches: the current one (uvicorn's own default) and
    every plugin folder, so editing a plugin outside the current folder reloads too."""
    folders: list[str] = []
    for folder in [Path.cwd(), *plugin_paths(settings)]:
        resolved = str(folder.resolve())
        if folder.is_dir() and resolved not in folders:
            folders.append(resolved)
    return folders


def serve(
    settings: Any, *, host: str, port: int, reload: bool, log_level: str, workers: int = 1
) -> None:
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
    if workers > 1:
        _serve_workers(typed(settings), workers, guard.backlog, options)
        return
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


def _serve_workers(settings: Settings, workers: int, backlog: int, options: dict[str, Any]) -> None:
    """Serve with uvicorn's own supervisor: *workers* processes accept on one socket.

    Each is a fresh interpreter (spawned, not forked) that imports opa.main, so it loads the
    settings, builds its own connection guard and connects its own components; nothing
    opened here crosses into it. The protocol class goes unbound for that reason: each
    worker's first connection binds it to a guard built from that worker's settings (a
    class, since uvicorn 0.29 takes no import string beside its own protocol names).

    With ``METRICS`` on, the workers' metrics folder is set before they start, so a scrape
    of any of them adds up all; ``METRICS_PORT`` is served here, once for all of them.
    """
    metrics = (
        WorkerMetrics(settings, settings.METRICS_PORT, "METRICS_PORT") if settings.METRICS else None
    )
    try:
        _supervise(workers, backlog, options, metrics)
    finally:
        if metrics is not None:
            metrics.close()


def _supervise(
    workers: int, backlog: int, options: dict[str, Any], metrics: WorkerMetrics | None
) -> None:
    # Raised here (the open-file limit, by ConnectionGuard.from_settings) and inherited.
    config = uvicorn.Config(
        WORKER_APP, http=GuardedH11Protocol, backlog=backlog, workers=workers, **options
    )
    errors = _StartupErrors(lambda: False)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(errors)
    try:
        sock = config.bind_socket()
    except SystemExit:
        raise errors.failure() from None
    finally:
        uvicorn_log.removeFilter(errors)
    supervisor = _supervisor(config, sock)
    failed = threading.Event()
    ended = metrics.process_ended if metrics is not None else None
    running: set[int] = set()
    watch = threading.Thread(target=_watch, args=(supervisor, failed, ended, running), daemon=True)
    watch.start()
    try:
        supervisor.run()
    finally:
        sock.close()
        supervisor.should_exit.set()
        watch.join()
    # run() returned once every worker was joined: the last ones have ended too.
    _note_ended(supervisor, running, ended)
    if ended is not None:
        for pid in running:
            ended(pid)
    if failed.is_set() or _failed_start(supervisor, replaces_workers=True):
        raise OpaError(
            f"{OPA_STARTUP_FAILED}a worker process could not start (its lines above say why); "
            "all workers stopped"
        )


def _replaces_workers() -> bool:
    """uvicorn 0.29's supervisor takes the server's run as target and never replaces a
    worker that ended; later ones do not take it, and start a new worker for a dead one."""
    return "target" not in inspect.signature(Multiprocess).parameters


def _supervisor(config: uvicorn.Config, sock: Any) -> Multiprocess:
    if _replaces_workers():
        return Multiprocess(config, sockets=[sock])
    return Multiprocess(config, target=uvicorn.Server(config).run, sockets=[sock])  # type: ignore[call-arg]


def _failed_start(supervisor: Multiprocess, replaces_workers: bool) -> bool:
    """A worker ended with uvicorn's start-up failure status; under a supervisor that never
    replaces workers (0.29, whose failed worker exits 0), any worker that ended."""
    for process in supervisor.processes:
        if process.exitcode == STARTUP_FAILURE:
            return True
        if not replaces_workers and process.exitcode is not None:
            return True
    return False


def _watch(
    supervisor: Multiprocess,
    failed: threading.Event,
    ended: Callable[[int], None] | None,
    running: set[int],
) -> None:
    """Stop every worker once one failed to start: it would fail the same way again (uvicorn
    0.54 stops them itself; 0.29 would serve a worker short until a signal). And tell
    *ended* of each worker that is gone, so its live gauges go with it."""
    replaces_workers = _replaces_workers()
    while not supervisor.should_exit.wait(0.2):
        if _failed_start(supervisor, replaces_workers):
            failed.set()
            supervisor.should_exit.set()
        _note_ended(supervisor, running, ended)


def _note_ended(
    supervisor: Multiprocess, running: set[int], ended: Callable[[int], None] | None
) -> None:
    """Tell *ended* of each pid of *running* no longer among the workers; *running* then
    holds the workers' pids now.

    uvicorn 0.54 takes a worker off its list once it has ended (it died and was replaced,
    or SIGHUP and SIGTTOU retired it), so a pid that left the list is one that ended:
    nothing here waits on a process, which is the supervisor's to reap.
    """
    now = {process.pid for process in list(supervisor.processes) if process.pid is not None}
    if ended is not None:
        for pid in running - now:
            ended(pid)
    running.clear()
    running.update(now)
