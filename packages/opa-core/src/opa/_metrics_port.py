"""What a scrape reads, who may read it, and metrics served on a port of their own.

``METRICS_PORT`` keeps the app's metrics off its public port: a small threaded HTTP
server on ``METRICS_HOST`` answers at ``METRICS_PATH``, for the networks of
``METRICS_ALLOW`` only, like the app's own route. It runs in the app's process, or, under
``opa run --workers N``, once in the supervisor, which reads the multiprocess folder of
all the workers. ``opa worker`` serves its pool's metrics the same way on
``METRICS_WORKER_PORT`` (:func:`serve_worker_metrics`): a Celery worker has no HTTP app.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from socketserver import TCPServer, ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from opa._config import typed
from opa._errors import ConfigError
from opa._log import log
from opa._metrics_folder import FOLDER_VARIABLE, MetricsFolder, multiprocess_mode
from opa._settings_model import Settings

if TYPE_CHECKING:
    from opa._plugin_manager import PluginManager

Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]

_served_by_supervisor = False


def require_client() -> None:
    """A one-line error naming the extra when prometheus-client is not installed.

    Looked up, not imported: the import must wait until the multiprocess folder is set.
    """
    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigError(
            "setting METRICS is on but prometheus-client is not installed; "
            "install it with: pip install 'opa-core[metrics]'"
        )


def networks(settings: Settings) -> Networks:
    return [ipaddress.ip_network(network) for network in settings.METRICS_ALLOW]


def allowed(client: str | None, allow: Networks) -> bool:
    """Whether the peer address *client* is in one of the *allow* networks."""
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:  # a unix socket or a test client's made-up name
        return False
    return any(address in network for network in allow)


def page() -> bytes:
    """One scrape: this process's registry, or, in multiprocess mode, the sum of every
    process's files in the folder (prometheus-client's process metrics are left out then)."""
    import prometheus_client as prom

    if not multiprocess_mode():
        return prom.generate_latest(prom.REGISTRY)
    from prometheus_client import multiprocess

    registry = prom.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return prom.generate_latest(registry)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape: Prometheus scrapes every few seconds."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer's own looks the address up in DNS (getfqdn), which may stall start-up.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]
        self.setup_environ()


class _Server6(_Server):
    address_family = socket.AF_INET6


def _wsgi_app(path: str, allow: Networks) -> Callable[..., Iterable[bytes]]:
    from prometheus_client import CONTENT_TYPE_LATEST

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != path:
            status, body, kind = "404 Not Found", b"not found\n", "text/plain"
        elif environ.get("REQUEST_METHOD") != "GET":
            status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
        elif not allowed(environ.get("REMOTE_ADDR"), allow):
            status, kind = "403 Forbidden", "text/plain"
            body = b"metrics are not readable from this address\n"
        else:
            status, body, kind = "200 OK", page(), CONTENT_TYPE_LATEST
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    return app


class MetricsServer:
    """Metrics on *port* of ``METRICS_HOST``, in a thread, until :meth:`close`; *setting*
    names the port's setting in the error when it cannot be bound."""

    def __init__(self, settings: Settings, port: int, setting: str) -> None:
        host = settings.METRICS_HOST
        server = _Server6 if ipaddress.ip_address(host).version == 6 else _Server
        try:
            self.server = server((host, port), _QuietHandler)
        except OSError as exc:
            raise ConfigError(
                f"setting {setting} ({port}) cannot be bound on METRICS_HOST {host}: "
                f"{exc.strerror or exc}; pick a free port (OPA_{setting})"
            ) from None
        self.server.set_app(_wsgi_app(settings.METRICS_PATH, networks(settings)))
        self.thread = threading.Thread(
            target=self.server.serve_forever, name=f"opa-metrics-{port}", daemon=True
        )
        self.thread.start()
        where = f"[{host}]" if ":" in host else host
        log.info("metrics served on http://{}:{}{}", where, port, settings.METRICS_PATH)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class WorkerMetrics:
    """The metrics of a group of processes: their multiprocess folder, made before they
    start, and, given a *port*, the server that adds them up on it."""

    def __init__(self, settings: Settings, port: int | None, setting: str) -> None:
        require_client()
        self.folder = MetricsFolder()
        try:
            self.server = MetricsServer(settings, port, setting) if port else None
        except BaseException:
            self.folder.close()
            raise

    def process_ended(self, pid: int) -> None:
        """Process *pid* of the group has ended: its gauges of the live modes go."""
        self.folder.process_ended(pid)

    def close(self) -> None:
        """Stop serving, and remove the folder if it was made here."""
        if self.server is not None:
            self.server.close()
        self.folder.close()


def serve_worker_metrics(manager: PluginManager) -> WorkerMetrics | None:
    """With ``METRICS`` on, serve the metrics of a worker and its pool processes on
    ``METRICS_WORKER_PORT``; None with it off.

    Call it in the worker's main process before the pool starts, and create the metrics
    after it: pool processes forked from it write their metrics to the folder it sets.
    Call :meth:`WorkerMetrics.process_ended` as each pool process ends, and
    :meth:`WorkerMetrics.close` when the worker stops.
    """
    settings = typed(manager.settings)
    if not settings.METRICS:
        return None
    exported = WorkerMetrics(settings, settings.METRICS_WORKER_PORT, "METRICS_WORKER_PORT")
    try:
        _write_to_the_folder()
    except BaseException:
        exported.close()
        raise
    return exported


def _write_to_the_folder() -> None:
    """Make the metrics created from now on write to the multiprocess folder.

    prometheus-client picks where values go once, when it is imported, from the
    environment; something may have imported it before the worker set the folder (Celery's
    command line loads Flower's command, which imports it), and a pool process forked then
    would keep its counts to itself. Picked again here, with the folder set; a client that
    no longer offers what this relies on is refused in one line, never half-working.
    """
    values: Any = sys.modules.get("prometheus_client.values")
    if values is None:
        return  # imported from now on, it reads the folder from the environment itself
    single = getattr(values, "MutexValue", None)
    pick = getattr(values, "get_value_class", None)
    if single is None or pick is None or not hasattr(values, "ValueClass"):
        raise ConfigError(
            "setting METRICS is on, but prometheus-client was imported before the worker "
            f"could set {FOLDER_VARIABLE}, and this release of it cannot be switched to the "
            f"folder afterwards; set {FOLDER_VARIABLE} to an empty folder before starting "
            "the worker"
        )
    # Already on a folder when PROMETHEUS_MULTIPROC_DIR was set before the worker started.
    if values.ValueClass is single:
        values.ValueClass = pick()


def leave_port_to_supervisor() -> None:
    """Mark this process as a worker of ``opa run --workers N``, whose supervisor serves
    ``METRICS_PORT`` for all of them."""
    global _served_by_supervisor
    _served_by_supervisor = True


def own_port(settings: Settings) -> MetricsServer | None:
    """The server of ``METRICS_PORT`` this app process runs; None without the setting, or
    in a worker of ``opa run --workers N`` (its supervisor serves them all)."""
    if settings.METRICS_PORT is None or _served_by_supervisor:
        return None
    return MetricsServer(settings, settings.METRICS_PORT, "METRICS_PORT")
