"""The app: plugins written for the original, health, CORS, 503s, dependencies, shutdown."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

import opa
from opa._errors import ConfigError
from opa.testing import captured_logs
from support import free_port, listening_port, make_app, write_plugin

ORIGINAL_HOOKS_DEFINER = """
from opa import HookDefinition, Hook, call_hook, get_router

router = get_router()

class fullname(HookDefinition):
    required = True
    name = 'fullname'

class DefaultFullname(Hook):
    name = 'fullname'
    order = -1
    def run(self, firstname, lastname):
        return f'{firstname} {lastname}'

@router.get('/get-fullname/{firstname}/{lastname}')
def get_fullname(firstname: str, lastname: str):
    return call_hook('fullname', firstname=firstname, lastname=lastname)
"""

ORIGINAL_HOOKS_IMPLEMENTER = """
from opa import Hook

class FancyFullname(Hook):
    name = 'fullname'
    order = 1
    def run(self, firstname, lastname):
        return f'{lastname.upper()}, {firstname.title()}'
"""

TCP_DRIVER_PLUGIN = """
import socket
from urllib.parse import urlsplit
from typing import Annotated
from opa import Driver, Instance, get_instance, get_router

router = get_router()

class Tcp(Driver):
    name = 'tcp-plugin'
    def connect(self):
        parts = urlsplit(self.opts.URL)
        self.instance = socket.create_connection((parts.hostname, parts.port), timeout=1)
        self.address = f"{parts.hostname}:{parts.port}"
    def ping(self):
        parts = urlsplit(self.opts.URL)
        socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    def disconnect(self):
        self.instance.close()
        DISCONNECTED.append(self.component)

DISCONNECTED = []

@router.get('/peer')
def peer():
    return get_instance('conn').getpeername()[1]

@router.get('/peer-typed')
def peer_typed(conn: Annotated[socket.socket, Instance('conn')]):
    return conn.getpeername()[1]

@router.get('/helper')
def helper():
    from opa import get_component
    return get_component('conn').address
"""


def test_plugins_written_for_the_original_run_unchanged(tmp_path: Path) -> None:
    """The original hooks example: a required hook, a default, and an override."""
    folder = tmp_path / "plugins"
    write_plugin(folder, "hook_definer", ORIGINAL_HOOKS_DEFINER)
    with TestClient(make_app(PLUGIN_PATHS=[str(folder)])) as client:
        assert client.get("/get-fullname/ada/lovelace").json() == "ada lovelace"
    write_plugin(folder, "hook_implementer", ORIGINAL_HOOKS_IMPLEMENTER)
    with TestClient(make_app(PLUGIN_PATHS=[str(folder)])) as client:
        assert client.get("/get-fullname/ada/lovelace").json() == "LOVELACE, Ada"


def test_title_version_and_docs_urls_come_from_configuration(tmp_path: Path) -> None:
    """PROJECT_* and the docs URLs configure the FastAPI app."""
    app = make_app(PROJECT_NAME="Acme", PROJECT_VERSION="2.1", DOCS_URL="/api-docs", REDOC_URL="")
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
        assert schema["info"]["title"] == "Acme" and schema["info"]["version"] == "2.1"
        assert client.get("/api-docs").status_code == 200
        assert client.get("/redoc").status_code == 404


def test_cors_is_closed_by_default(tmp_path: Path) -> None:
    """Without CORS_ORIGINS no CORS headers are sent."""
    with TestClient(make_app()) as client:
        response = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in response.headers


def test_configured_origins_are_allowed(tmp_path: Path) -> None:
    """A listed origin gets the CORS headers, others do not."""
    app = make_app(CORS_ORIGINS=["https://app.example"], CORS_ALLOW_CREDENTIALS=True)
    with TestClient(app) as client:
        good = client.get("/health", headers={"Origin": "https://app.example"})
        bad = client.get("/health", headers={"Origin": "https://evil.example"})
    assert good.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in bad.headers


def test_wildcard_origins_with_credentials_are_refused(tmp_path: Path) -> None:
    """'*' together with credentials is a configuration error."""
    with pytest.raises(ConfigError, match="CORS_ORIGINS contains '\\*'"):
        make_app(CORS_ORIGINS=["*"], CORS_ALLOW_CREDENTIALS=True)


def test_components_reach_routes_three_ways(tmp_path: Path) -> None:
    """get_instance, the Instance dependency and get_component helpers all work in routes."""
    folder = tmp_path / "plugins"
    write_plugin(folder, "tcp_plugin", TCP_DRIVER_PLUGIN)
    with listening_port() as port:
        components = {
            "CONN": {
                "LOAD": "yes",
                "DRIVER": "tcp-plugin",
                "OPTS": {"URL": f"redis://127.0.0.1:{port}"},
            }
        }
        app = make_app(PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=components)
        with TestClient(app) as client:
            assert client.get("/peer").json() == port
            assert client.get("/peer-typed").json() == port
            assert client.get("/helper").json() == f"127.0.0.1:{port}"
        assert sys.modules["tcp_plugin"].DISCONNECTED == ["conn"]


def test_health_reports_components_without_urls(tmp_path: Path) -> None:
    """GET /health lists each component's status and never its URL or password."""
    folder = tmp_path / "plugins"
    write_plugin(folder, "tcp_plugin", TCP_DRIVER_PLUGIN)
    with listening_port() as port:
        components = {
            "CONN": {
                "LOAD": "yes",
                "DRIVER": "tcp-plugin",
                "OPTS": {"URL": f"redis://u:pw123@127.0.0.1:{port}"},
            },
            "GONE": {
                "LOAD": "auto",
                "DRIVER": "tcp-plugin",
                "OPTS": {"URL": f"redis://127.0.0.1:{free_port()}"},
            },
            "OFF": {"LOAD": "no", "DRIVER": "tcp-plugin"},
        }
        app = make_app(PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=components)
        with TestClient(app) as client:
            response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"  # "gone" is configured but skipped
    assert {k: v["status"] for k, v in body["components"].items()} == {
        "conn": "ok",
        "gone": "skipped",
        "off": "disabled",
    }
    assert "pw123" not in response.text and "127.0.0.1" not in response.text


@pytest.mark.parametrize(("breaker", "state"), [(True, "down"), (False, "unavailable")])
def test_health_is_503_when_a_required_component_is_down(
    tmp_path: Path, breaker: bool, state: str
) -> None:
    """A LOAD yes component that stops answering turns /health into 503; the breaker marks
    it down, and without the breaker it is reported unavailable."""
    import socket

    folder = tmp_path / "plugins"
    write_plugin(folder, "tcp_plugin", TCP_DRIVER_PLUGIN)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    url = f"redis://127.0.0.1:{server.getsockname()[1]}"
    components = {"CONN": {"LOAD": "yes", "DRIVER": "tcp-plugin", "OPTS": {"URL": url}}}
    app = make_app(
        PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=components, COMPONENT_BREAKER=breaker
    )
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        server.close()
        down = client.get("/health")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"
    assert down.json()["components"]["conn"] == {
        "status": state,
        "load": "yes",
        "detail": "ping failed (ConnectionRefusedError)",
    }


def test_a_skipped_component_answers_503_in_routes(tmp_path: Path) -> None:
    """get_instance on a skipped component gives the client a clear 503."""
    folder = tmp_path / "plugins"
    write_plugin(folder, "tcp_plugin", TCP_DRIVER_PLUGIN)
    url = f"redis://127.0.0.1:{free_port()}"
    components = {"CONN": {"LOAD": "auto", "DRIVER": "tcp-plugin", "OPTS": {"URL": url}}}
    app = make_app(PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=components)
    with TestClient(app) as client:
        for path in ("/peer", "/peer-typed"):
            response = client.get(path)
            assert response.status_code == 503
            assert response.json() == {"detail": "component 'conn' is skipped: unreachable"}


def test_a_required_component_that_cannot_connect_stops_start_up(tmp_path: Path) -> None:
    """Lifespan start-up fails with the component's error under LOAD yes."""
    folder = tmp_path / "plugins"
    write_plugin(folder, "tcp_plugin", TCP_DRIVER_PLUGIN)
    url = f"redis://127.0.0.1:{free_port()}"
    components = {"CONN": {"LOAD": "yes", "DRIVER": "tcp-plugin", "OPTS": {"URL": url}}}
    app = make_app(PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=components)
    with pytest.raises(opa.ComponentError, match=r"'conn'.*pre-check failed"), TestClient(app):
        pass


def test_the_public_api_is_importable_from_opa() -> None:
    """Every name the original exported is importable from opa."""
    for name in (
        "get_router",
        "get_instance",
        "get_component",
        "get_plugin_manager",
        "call_hook",
        "call_hook_async",
        "Hook",
        "HookDefinition",
        "Driver",
        "Setup",
        "log",
        "config",
    ):
        assert hasattr(opa, name), name


def test_config_is_the_running_apps_settings(tmp_path: Path) -> None:
    """opa.config reads the settings of the app built last."""
    make_app(PROJECT_NAME="configured")
    assert opa.config.PROJECT_NAME == "configured"
    assert opa.get_plugin_manager().settings.PROJECT_NAME == "configured"


def test_the_demo_plugin_loads_in_dev(tmp_path: Path) -> None:
    """ENV dev adds the demo plugins, whose hook has an overridable default."""
    app = opa.create_app(
        {"OPTIONAL_COMPONENTS": {}, "PLUGIN_ENTRY_POINTS": False, "LOG_LEVEL": "INFO"},
        settings_dir=tmp_path,
        env="dev",
    )
    with TestClient(app) as client:
        assert client.get("/demo/hello", params={"who": "opa"}).json() == "Hello, opa!"


def test_a_drivers_outage_errors_answer_503(tmp_path: Path) -> None:
    """Exceptions a driver marks as "server gone" become 503 naming the component, not 500."""
    folder = tmp_path / "plugins"
    write_plugin(
        folder,
        "outage",
        """
        from opa import Driver, get_instance, get_router

        class BackendGone(Exception):
            pass

        class Flaky(Driver):
            name = "flaky"
            def connect(self):
                self.instance = "up"
            def unavailable_errors(self):
                return (BackendGone,)

        router = get_router()

        @router.get("/flaky")
        def flaky():
            get_instance("store")
            raise BackendGone("redis://u:pw@gone:6379 refused")
        """,
    )
    components = {"STORE": {"LOAD": "yes", "DRIVER": "flaky"}}
    app = make_app(PLUGIN_PATHS=[str(folder)], OPTIONAL_COMPONENTS=components)
    with TestClient(app) as client:
        response = client.get("/flaky")
    assert response.status_code == 503
    assert response.json() == {"detail": "backend unavailable for component 'store'"}


_REFINING_PLUGIN = """
from opa import Driver, get_instance, get_router


class LibraryError(Exception):
    \"\"\"One class for an outage and a mistake alike, as PyMySQL's OperationalError.\"\"\"


class Refining(Driver):
    name = "refining"

    def connect(self):
        self.instance = object()

    def unavailable_errors(self):
        return (LibraryError,)

    def is_unavailable(self, error):
        return isinstance(error, LibraryError) and error.args[0] in {2003, 2006, 2013}


router = get_router()


@router.get("/raise/{code}")
def raise_code(code: int):
    client = get_instance("db")  # held by the traceback: the breaker knows which component
    raise LibraryError(code, "from the library")
"""


@pytest.mark.parametrize(("code", "status"), [(2013, 503), (2003, 503), (1049, 500)])
def test_a_driver_tells_an_outage_from_a_mistake_of_the_same_class(
    tmp_path: Path, code: int, status: int
) -> None:
    """is_unavailable() makes one exception class a 503 for "server gone" and a 500 otherwise."""
    write_plugin(tmp_path, "refining", _REFINING_PLUGIN)
    components = {"DB": {"LOAD": "yes", "DRIVER": "refining"}}
    app = make_app(PLUGIN_PATHS=[str(tmp_path)], OPTIONAL_COMPONENTS=components)
    with captured_logs() as logs, TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"/raise/{code}")
    assert response.status_code == status, response.text
    if status == 503:
        assert response.json() == {"detail": "backend unavailable for component 'db'"}
    else:
        assert response.text == "Internal Server Error"
    # The breaker hears of real outages only: a mistake never marks the component down.
    assert ("component 'db' is down" in logs.getvalue()) == (status == 503), logs.getvalue()


def test_the_hello_world_example_serves_hello() -> None:
    """examples/hello-world, the README's quick start, answers GET /hello."""
    example = Path(__file__).resolve().parents[3] / "examples" / "hello-world"
    with TestClient(make_app(PLUGIN_PATHS=[str(example)])) as client:
        response = client.get("/hello")
    assert response.status_code == 200
    assert response.json() == "Hello, world!"


class Point(BaseModel):
    x: int


@pytest.mark.parametrize(
    ("content", "echoed"),
    [(b"NaN", "nan"), (b"1e999", "inf"), (b"-Infinity", "-inf"), (b'{"x": NaN}', "nan")],
)
def test_a_non_finite_json_number_is_a_422_not_a_500(content: bytes, echoed: str) -> None:
    """NaN and infinities that Python's JSON parser lets in are echoed as strings in the 422."""
    app = make_app()

    @app.post("/point")
    def point(body: Point) -> int:
        return body.x

    with TestClient(app) as client:
        response = client.post(
            "/point", content=content, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert echoed in [str(error.get("input")) for error in response.json()["detail"]]
