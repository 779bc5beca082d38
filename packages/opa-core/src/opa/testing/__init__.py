"""Test kit for opa apps, plugins and drivers: isolated apps, test doubles, driver compliance,
and the real servers and processes a test needs.

``build_app`` builds an app that reads nothing from the machine it runs on;
``override_instance`` puts a test double in place of a component's instance;
``DriverComplianceSuite`` is the suite every driver package runs against its backend
(imported on first use, so this module does not need pytest); ``chunked_body`` makes a
request body of no declared length, to test a body limit; ``captured_logs`` reads what opa
logs; ``span_recorder`` keeps the spans of ``TRACING`` in memory; ``make_driver`` builds a
driver outside an app, its options checked as an app would.

Servers and processes: ``TestServices`` finds or starts Redis, RabbitMQ and MongoDB for a
test session (the pytest plugin :mod:`opa.testing.fixtures` hands their URLs out as
fixtures); ``RedisServer`` is a private Redis a test may stop, ``RedisSentinelGroup`` a
private Sentinel deployment (master, replicas, sentinels) a test may fail over,
``RedisClusterServers`` a private Redis Cluster whose masters a test may kill and start
again, ``PostgresServer`` a private PostgreSQL (the machine's server binaries; no SQL
library); ``LoggedProcess`` runs a command with its output in a file and kills it with its
children; ``clean_environ`` is an environment free of the machine's opa settings for it;
``wait_for`` and ``http_answers`` wait until it answers; ``delete_keys`` removes a test's own
Redis keys.
Outages: ``TcpProxy`` stands between a client and its backend and drops every connection,
or turns into a host that accepts and never answers, then restores (``ProxyGroup``: the
proxies before every node of a cluster, together); ``open_sockets`` counts
the sockets the process holds, to prove none leaked.
Ports: ``free_port``, ``closed_port`` (refuses connections, held until the process ends) and
``bound_port`` (read back from a process started on port 0). This is everything a driver's
tests may import from opa's test kit; the ``opa.testing._*`` modules are private.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI

from opa._app import create_app
from opa._plugin_manager import PluginManager
from opa._runtime import get_plugin_manager
from opa.testing._driver_kit import make_driver
from opa.testing._logs import captured_logs
from opa.testing._ports import LOCALHOST, ServiceUnavailable, bound_port, closed_port, free_port
from opa.testing._postgres import PostgresServer
from opa.testing._processes import (
    LoggedProcess,
    clean_environ,
    delete_keys,
    http_answers,
    is_settings_variable,
    wait_for,
)
from opa.testing._proxy import ProxyMode, TcpProxy, open_sockets
from opa.testing._redis_cluster import ProxyGroup, RedisClusterServers
from opa.testing._redis_sentinel import RedisSentinelGroup
from opa.testing._services import RedisServer, TestServices, skip_or_fail
from opa.testing._spans import span_recorder

if TYPE_CHECKING:
    from opa.testing._compliance import DriverComplianceSuite

__all__ = [
    "LOCALHOST",
    "DriverComplianceSuite",
    "LoggedProcess",
    "PostgresServer",
    "ProxyGroup",
    "ProxyMode",
    "RedisClusterServers",
    "RedisSentinelGroup",
    "RedisServer",
    "ServiceUnavailable",
    "TcpProxy",
    "TestServices",
    "bound_port",
    "build_app",
    "captured_logs",
    "chunked_body",
    "clean_environ",
    "closed_port",
    "delete_keys",
    "free_port",
    "http_answers",
    "make_driver",
    "open_sockets",
    "override_instance",
    "skip_or_fail",
    "span_recorder",
    "wait_for",
]

T = TypeVar("T")

TESTING_EXTRA = ("pytest",)
"""What the compliance suite needs beyond opa-core: the ``testing`` extra installs it."""

NO_SETTINGS_DIR = Path(os.devnull) / "opa-settings"
"""A settings folder that cannot exist (its parent is the null device), so none is read."""


@contextmanager
def _without_machine_variables() -> Iterator[None]:
    hidden = {name: value for name, value in os.environ.items() if is_settings_variable(name)}
    for name in hidden:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(hidden)


def build_app(
    settings: Mapping[str, Any] | None = None,
    *,
    settings_dir: str | Path | None = None,
    env: str | None = None,
) -> FastAPI:
    """An opa app for a test, isolated from the developer's machine; it starts through
    :func:`opa.bootstrap`, in the same order as every other entry.

    Unlike :func:`opa.create_app`, it reads no settings folder unless *settings_dir*
    is given, ignores ``OPA_*``/``ENV``/dynaconf environment variables while loading,
    configures no optional components and loads no ``opa.plugins`` entry points unless
    *settings* asks for them (``OPTIONAL_COMPONENTS``, ``PLUGIN_ENTRY_POINTS``).
    """
    isolated: dict[str, Any] = {"OPTIONAL_COMPONENTS": {}, "PLUGIN_ENTRY_POINTS": False}
    isolated.update(settings or {})
    folder = NO_SETTINGS_DIR if settings_dir is None else settings_dir
    with _without_machine_variables():
        return create_app(isolated, settings_dir=folder, env=env)


def chunked_body(head: bytes, filler: bytes, count: int, tail: bytes = b"") -> Iterator[bytes]:
    """*head*, *count* times *filler*, then *tail*, one piece at a time.

    Given to an HTTP client as the content, it is sent with no Content-Length (chunked), so
    a body limit has to count the body as it arrives instead of trusting a header.
    """
    # No empty piece: an empty chunk would end a chunked body early.
    for piece in (head, *([filler] * count), tail):
        if piece:
            yield piece


@contextmanager
def override_instance(name: str, instance: T, *, app: FastAPI | None = None) -> Iterator[T]:
    """Make component *name* hand out *instance* inside the block, then restore it.

    The component must be configured (``LOAD: no`` is enough for a test double). Without
    *app*, the running app's components are used; with it, that app's.
    """
    manager: PluginManager = app.state.opa if app is not None else get_plugin_manager()
    with manager.components.override(name, instance):
        yield instance


def __getattr__(name: str) -> Any:
    # The compliance suite needs pytest; import it only when asked for.
    if name == "DriverComplianceSuite":
        try:
            from opa.testing._compliance import DriverComplianceSuite
        except ModuleNotFoundError as missing:
            if missing.name not in TESTING_EXTRA:
                raise
            raise ImportError(
                f"opa.testing.DriverComplianceSuite needs {missing.name}, which is not "
                "installed: pip install 'opa-core[testing]'"
            ) from missing
        return DriverComplianceSuite
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
