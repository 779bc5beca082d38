"""The tests both MongoDB drivers run: opa's compliance suite and what MongoDB adds to it.

A driver package subclasses :class:`MongoDriverSuite` once, in a module pytest collects::

    class TestMotorDriver(MongoDriverSuite):
        driver_name = "mongodb-async-motor"
        distribution = "opa-driver-mongodb-motor"
        client_class = "motor.motor_asyncio:AsyncIOMotorClient"

and enables ``opa.testing.fixtures`` in its conftest, whose ``mongodb_url`` fixture is the
server (``OPA_TEST_MONGODB_URL``, else a private nx-27017). Each test class works in a
database of its own, named at random and dropped at the end, so the server need not be empty.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from fastapi.testclient import TestClient

from opa import Component, ComponentError, ComponentUnavailableError, OptionsError, mask_secrets
from opa.testing import (
    LOCALHOST,
    DriverComplianceSuite,
    ServiceUnavailable,
    TestServices,
    build_app,
    captured_logs,
    closed_port,
    skip_or_fail,
)

T = TypeVar("T")

FOREIGN_BACKENDS = ("redis", "walrus", "celery", "kombu", "aioredis")
"""Libraries of other backends that a MongoDB driver must never import."""

CLIENT_LIBRARIES = ("motor", "pymongo", "bson", "dns")
"""What a driver's entry-point module must not import (the compliance suite's
``client_libraries``): it is loaded before the driver is used."""

_OK_URL = "mongodb://127.0.0.1:27017/opa"

_MODULES_AFTER_START = """
import json, os, sys
from fastapi.testclient import TestClient
from opa.testing import build_app

opts = {"URL": os.environ["OPA_SUITE_MONGODB_URL"]}
components = {"MONGODB": {"LOAD": "yes", "DRIVER": sys.argv[1], "OPTS": opts}}
with TestClient(build_app({"OPTIONAL_COMPONENTS": components})) as client:
    health = client.get("/health").json()
print(json.dumps({"health": health, "modules": sorted(sys.modules)}))
"""

_PING_PLUGIN = """
from typing import Any

from opa import get_component, get_router

router = get_router()


@router.get("/ping-database")
async def ping_database() -> Any:
    return await get_component("mongodb").database.command("ping")
"""


def _url_parts(url: str) -> tuple[str, str, str, str, str]:
    """(``scheme://``, ``userinfo@`` or "", hosts, path, ``?query`` or "") of a MongoDB URL."""
    scheme, _, rest = url.partition("://")
    location, question, query = rest.partition("?")
    authority, _, path = location.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    return f"{scheme}://", userinfo + at, hosts, path, question + query


def with_database(url: str, database: str) -> str:
    """*url* with *database* as its path (none when empty), keeping everything else."""
    scheme, userinfo, hosts, _, query = _url_parts(url)
    return f"{scheme}{userinfo}{hosts}/{database}{query}"


def with_credentials(url: str, user: str, password: str) -> str:
    """*url* with *user* and *password* in place of its own credentials, if any."""
    scheme, _, hosts, path, query = _url_parts(url)
    return f"{scheme}{user}:{password}@{hosts}/{path}{query}"


@contextmanager
def private_database(url: str) -> Iterator[str]:
    """*url* on a database named at random for the block, dropped when the block ends."""
    from pymongo import MongoClient

    name = f"opa_test_{secrets.token_hex(6)}"
    try:
        yield with_database(url, name)
    finally:
        client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
        with client:
            client.drop_database(name)


@contextmanager
def silent_server() -> Iterator[int]:
    """A 127.0.0.1 port that accepts TCP connections and never answers, like a hung server."""
    with socket.socket() as listener:
        listener.bind((LOCALHOST, 0))
        listener.listen(16)  # the kernel completes handshakes; nothing ever reads or replies
        yield int(listener.getsockname()[1])


def _import_object(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class MongoDriverSuite(DriverComplianceSuite):
    """The compliance suite, set up for MongoDB, plus the behaviour both MongoDB drivers share.

    Set ``driver_name``, ``distribution`` and ``client_class`` (``module:Class`` of the
    instance); list in ``also_absent`` libraries the driver must not import besides
    :data:`FOREIGN_BACKENDS`.
    """

    client_class: ClassVar[str] = ""
    also_absent: ClassVar[tuple[str, ...]] = ()
    client_libraries = CLIENT_LIBRARIES
    timeout_options: ClassVar[dict[str, Any]] = {
        "SERVER_SELECTION_TIMEOUT": 1,
        "CONNECT_TIMEOUT": 1,
        "SOCKET_TIMEOUT": 1,
    }

    # What the compliance suite asks for.

    @pytest.fixture(scope="class")
    @classmethod
    def live_url(cls, mongodb_url: str) -> Iterator[str]:
        """The test server's URL, on a database of this class's own."""
        with private_database(mongodb_url) as url:
            yield url

    @pytest.fixture
    def live_options(self, live_url: str) -> dict[str, Any]:
        return {"URL": live_url}

    def unreachable_options(self) -> dict[str, Any]:
        return {"URL": f"mongodb://127.0.0.1:{closed_port()}/opa"}

    def credential_options(self, password: str) -> dict[str, Any]:
        return {"URL": f"mongodb://opa:{password}@127.0.0.1:{closed_port()}/opa"}

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        return [
            ({"URL": "redis://127.0.0.1:6379/0"}, "URL"),
            ({"URL": "mongodb://127.0.0.1:0/opa"}, "URL"),
            ({"URL": _OK_URL, "DATABASE": "no/slash"}, "DATABASE"),
            ({"URL": _OK_URL, "SERVER_SELECTION_TIMEOUT": 0}, "SERVER_SELECTION_TIMEOUT"),
            ({"URL": _OK_URL, "CONNECT_TIMEOUT": "soon"}, "CONNECT_TIMEOUT"),
            ({"URL": _OK_URL, "SOCKET_TIMEOUT": -1}, "SOCKET_TIMEOUT"),
            ({"URL": _OK_URL, "APP_NAME": ""}, "APP_NAME"),
            ({"URL": _OK_URL, "TLS": "maybe"}, "TLS"),
        ]

    def refused_options(self, live_options: dict[str, Any], password: str) -> dict[str, Any]:
        """A login the server refuses: a user it does not know."""
        return {**live_options, "URL": with_credentials(live_options["URL"], "nobody", password)}

    async def round_trip(self, component: Component, token: str) -> Any:
        """Store a document under *token* in the default database and return its id."""
        stored = await component.database["compliance_round_trip"].insert_one({"_id": token})
        return stored.inserted_id

    # Helpers.

    def run_connected(
        self, opts: dict[str, Any], body: Callable[[Component], Awaitable[T]]
    ) -> tuple[T, Component]:
        """Start the component under LOAD yes, await *body* with it, stop it; one event loop.

        Both clients are bound to the loop they first ran in, so all of it runs in one.
        """
        components = self.make_components("yes", opts)
        component = components.get(self.component_name)

        async def lifecycle() -> T:
            async with asyncio.timeout(self.timeout * 2 + self.slack):
                await components.start()
                try:
                    return await body(component)
                finally:
                    await components.stop()

        return asyncio.run(lifecycle()), component

    def component_settings(self, load: str, opts: dict[str, Any]) -> dict[str, Any]:
        """``OPTIONAL_COMPONENTS`` with this driver as component ``mongodb``."""
        return {"MONGODB": {"LOAD": load, "DRIVER": self.driver_name, "OPTS": opts}}

    def python(self, script: str, *args: str, url: str = "") -> Any:
        """Run *script* in a fresh interpreter and return the JSON it prints last.

        *url* goes in the environment, not on the command line, which others may read.
        """
        env = {**os.environ, "OPA_SUITE_MONGODB_URL": url}
        command = [sys.executable, "-c", script, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    # Options.

    @pytest.mark.parametrize(
        "url",
        [
            "mongodb:/127.0.0.1/opa",
            "http://opa:{password}@127.0.0.1:27017/opa",
            "mongodb://opa:{password}@/opa",
            "mongodb://opa:{password}@127.0.0.1:99999/opa",
            "mongodb://opa:pa@{password}@127.0.0.1/opa",
            "mongodb+srv://opa:{password}@cluster.example.com:27017/opa",
            "mongodb://opa:{password}@127.0.0.1/bad$name",
            "mongodb://opa:{password}@h1,,h2/opa",
        ],
    )
    def test_malformed_url_is_an_options_error_naming_the_component(self, url: str) -> None:
        """A malformed URL is refused before any I/O, naming the component, never the password."""
        password = f"pw-{secrets.token_hex(8)}"
        with pytest.raises(OptionsError) as caught:
            self.make_components("yes", {"URL": url.format(password=password)}).resolve()
        message = str(caught.value)
        assert self.component_name in message, message
        assert "URL" in message, message
        assert password not in message, message

    def test_unknown_option_is_refused(self) -> None:
        """An option the drivers do not know is refused, naming it, instead of being ignored."""
        with pytest.raises(OptionsError) as caught:
            self.make_components("yes", {"URL": _OK_URL, "POOL_SIZE": 10}).resolve()
        message = str(caught.value)
        assert self.component_name in message, message
        assert "POOL_SIZE" in message, message

    # Bad hosts.

    def test_yes_fails_within_the_server_selection_timeout(self) -> None:
        """A host that accepts TCP but never answers fails LOAD yes within the selection bound."""
        password = f"pw-{secrets.token_hex(8)}"
        with silent_server() as port:
            url = f"mongodb://opa:{password}@127.0.0.1:{port}/opa"
            opts = {"URL": url, "SERVER_SELECTION_TIMEOUT": 1, "CONNECT_TIMEOUT": 0.5}
            components = self.make_components("yes", opts)
            started = time.monotonic()
            with pytest.raises(ComponentError) as caught:
                asyncio.run(components.start())
            elapsed = time.monotonic() - started
        message = str(caught.value)
        assert elapsed < 1 + self.slack, f"start-up took {elapsed:.1f}s"
        assert self.component_name in message, message
        assert mask_secrets(url) in message, message
        assert password not in message, message

    def test_auto_skips_an_srv_name_that_does_not_resolve(self) -> None:
        """A mongodb+srv:// name without SRV records is unreachable: LOAD auto skips it in time."""
        opts = {"URL": "mongodb+srv://cluster.opa-test.invalid/opa", "CONNECT_TIMEOUT": 1}
        components = self.make_components("auto", opts)
        started = time.monotonic()
        asyncio.run(components.start())
        elapsed = time.monotonic() - started
        component = components.get(self.component_name)
        assert component.status.value == "skipped", component.status
        assert elapsed < 1 + self.check_timeout + self.slack, f"the check took {elapsed:.1f}s"

    # Credentials.

    def test_password_never_leaks_from_the_app(
        self, live_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A URL password reaches no debug log line, start-up error or /health answer."""
        password = f"pw-{secrets.token_hex(8)}"
        live = with_credentials(live_url, "opa", password)
        dead = f"mongodb://opa:{password}@127.0.0.1:{closed_port()}/opa"
        logs = io.StringIO()
        outputs: dict[str, str] = {}
        # captured_logs() puts opa's default sink back afterwards, on the real stderr.
        with captured_logs(), monkeypatch.context() as patched:
            patched.setattr(sys, "stderr", logs)  # the app's own log sink writes to sys.stderr
            for case, load, url in [
                ("live", "yes", live),
                ("live", "auto", live),
                ("dead", "auto", dead),
            ]:
                settings = {
                    "LOG_LEVEL": "DEBUG",
                    "OPTIONAL_COMPONENTS": self.component_settings(load, {"URL": url}),
                }
                try:
                    with TestClient(build_app(settings)) as client:
                        outputs[f"/health, {case} server, LOAD {load}"] = client.get("/health").text
                except Exception as exc:
                    text = "".join(traceback.format_exception(exc))
                    outputs[f"error, {case} server, LOAD {load}"] = text
        outputs["log"] = logs.getvalue()
        assert "DEBUG" in outputs["log"], "no debug line was logged; the test proves nothing"
        assert any(key.startswith("/health") for key in outputs), outputs
        leaks = [where for where, text in outputs.items() if password in text]
        assert not leaks, f"the password appears in: {', '.join(leaks)}"

    # The connected component.

    @pytest.mark.parametrize(
        ("path", "option", "expected"),
        [("from_path", None, "from_path"), ("", None, "opa"), ("from_path", "chosen", "chosen")],
    )
    def test_default_database(
        self, live_url: str, path: str, option: str | None, expected: str
    ) -> None:
        """The default database is DATABASE, else the URL's path, else "opa"."""
        opts: dict[str, Any] = {"URL": with_database(live_url, path)}
        if option is not None:
            opts["DATABASE"] = option

        async def database_name(component: Component) -> str:
            return str(component.database.name)

        name, _ = self.run_connected(opts, database_name)
        assert name == expected

    def test_instance_is_the_client_and_database_works(self, live_options: dict[str, Any]) -> None:
        """get_instance gives the library's client; the default database stores and finds."""
        from bson import ObjectId

        async def round_trip(component: Component) -> tuple[Any, Any, Any]:
            collection = component.database["round_trip"]
            inserted = await collection.insert_one({"text": "hello"})
            found = await collection.find_one({"_id": inserted.inserted_id})
            return component.instance, inserted.inserted_id, found

        (client, note_id, found), _ = self.run_connected(live_options, round_trip)
        assert isinstance(client, _import_object(self.client_class)), type(client)
        assert isinstance(note_id, ObjectId)
        assert found == {"_id": note_id, "text": "hello"}

    def test_database_is_unavailable_once_stopped(self, live_options: dict[str, Any]) -> None:
        """After shutdown the default database raises ComponentUnavailableError (a 503)."""

        async def nothing(component: Component) -> None:
            return None

        _, component = self.run_connected(live_options, nothing)
        with pytest.raises(ComponentUnavailableError):
            component.database  # noqa: B018 - the access is the test

    def test_an_outage_is_answered_with_503(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A request that meets a stopped server is answered 503 naming the component."""
        # A private server, even where OPA_TEST_MONGODB_URL names a shared one: it gets stopped.
        monkeypatch.delenv("OPA_TEST_MONGODB_URL", raising=False)
        (tmp_path / "ping_database.py").write_text(_PING_PLUGIN)
        with TestServices() as services:
            try:
                url = services.mongodb_url()
            except ServiceUnavailable as error:
                skip_or_fail(str(error))
            opts = {"URL": url, "SERVER_SELECTION_TIMEOUT": 1}
            settings = {
                "PLUGIN_PATHS": [str(tmp_path)],
                "OPTIONAL_COMPONENTS": self.component_settings("yes", opts),
            }
            with TestClient(build_app(settings)) as client:
                assert client.get("/ping-database").status_code == 200
                services.close()
                response = client.get("/ping-database")
        assert response.status_code == 503, response.text
        assert "'mongodb'" in response.json()["detail"]

    # Tracing.

    def test_a_command_of_a_request_is_a_child_span_of_it(
        self, tmp_path: Path, live_options: dict[str, Any]
    ) -> None:
        """With TRACING on, the command a request sends is a client span in the request's
        trace whose parent is its server span (PyMongo's command monitoring; for Motor too)."""
        from opentelemetry.trace import SpanKind

        from opa.testing import span_recorder

        (tmp_path / f"traced_ping_{secrets.token_hex(4)}.py").write_text(_PING_PLUGIN)
        settings = {
            "TRACING": True,
            "PLUGIN_PATHS": [str(tmp_path)],
            "OPTIONAL_COMPONENTS": self.component_settings("yes", live_options),
        }
        spans: Any = span_recorder()  # first: the app then keeps its tracer provider
        with TestClient(build_app(settings)) as client:
            spans.clear()
            assert client.get("/ping-database").status_code == 200
        finished = spans.get_finished_spans()
        (server,) = [span for span in finished if span.kind is SpanKind.SERVER]
        trace_id = server.context.trace_id
        # Shutdown's endSessions is a span too, of a trace of its own.
        (command,) = [
            span
            for span in finished
            if span.kind is SpanKind.CLIENT and span.context.trace_id == trace_id
        ]
        assert command.attributes["db.system"] == "mongodb"
        assert command.attributes["db.statement"] == "ping"
        assert command.parent is not None and command.parent.span_id == server.context.span_id

    # Imports.

    def test_app_with_this_driver_imports_no_other_backend(self, live_url: str) -> None:
        """An app whose only component uses this driver starts without other backends' libraries."""
        result = self.python(_MODULES_AFTER_START, self.driver_name, url=live_url)
        assert result["health"]["components"]["mongodb"]["status"] == "ok", result["health"]
        roots = {name.partition(".")[0] for name in result["modules"]}
        unwanted = set(FOREIGN_BACKENDS) | set(self.also_absent)
        assert not roots & unwanted, sorted(roots & unwanted)
