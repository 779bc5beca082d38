"""Item 4 of issue 7: CORS, serializers, plugin sources, request bodies and SECRET_KEY."""

from __future__ import annotations

import json
import select
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import suppress
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from faults import OpaRun, write_settings

from opa._cli import cli
from opa._errors import ConfigError, OptionsError, PluginError
from opa._plugin_manager import PLUGIN_ENTRY_POINT_GROUP
from opa.testing import LOCALHOST, build_app, chunked_body, delete_keys

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ORIGIN = "https://elsewhere.example"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# --- CORS -------------------------------------------------------------------------------


def test_cors_is_closed_by_default() -> None:
    """Without CORS_ORIGINS no response, preflight or simple, allows another origin."""
    with TestClient(build_app()) as client:
        preflight = client.options(
            "/health",
            headers={"origin": ORIGIN, "access-control-request-method": "GET"},
        )
        simple = client.get("/health", headers={"origin": ORIGIN})
    for response in (preflight, simple):
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers


def test_cors_wildcard_with_credentials_is_refused() -> None:
    """CORS_ORIGINS '*' with CORS_ALLOW_CREDENTIALS stops the app with a ConfigError saying why."""
    with pytest.raises(ConfigError, match=r"CORS_ORIGINS contains '\*'.*CORS_ALLOW_CREDENTIALS"):
        build_app({"CORS_ORIGINS": ["https://a.example", "*"], "CORS_ALLOW_CREDENTIALS": True})


def test_cors_listed_origin_with_credentials_is_allowed() -> None:
    """An explicitly listed origin with credentials is the accepted alternative, and works."""
    app = build_app({"CORS_ORIGINS": [ORIGIN], "CORS_ALLOW_CREDENTIALS": True})
    with TestClient(app) as client:
        allowed = client.get("/health", headers={"origin": ORIGIN})
        other = client.get("/health", headers={"origin": "https://other.example"})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in other.headers


# --- Celery serializers -----------------------------------------------------------------


def celery_component(broker: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    opts: dict[str, Any] = {"BROKER_URL": broker, "APP_NAME": unique("hardening-")}
    if settings is not None:
        opts["SETTINGS"] = settings
    return {"CELERY": {"LOAD": "yes", "DRIVER": "celery", "OPTS": opts}}


@pytest.mark.parametrize(
    "settings",
    [
        {"task_serializer": "pickle"},
        {"RESULT_SERIALIZER": "PICKLE"},
        {"event_serializer": "application/x-python-serialize"},
        {"accept_content": ["json", "pickle"]},
        {"result_accept_content": "pickle"},
    ],
)
def test_celery_driver_refuses_pickle_in_its_options(settings: dict[str, Any]) -> None:
    """Any serializer or accepted content naming pickle is an options error before start-up."""
    with pytest.raises(OptionsError, match="accept pickle"):
        build_app({"OPTIONAL_COMPONENTS": celery_component("memory://", settings)})


UNSAFE_HOOK = '''"""Lets pickle in through the Celery set-up hook."""

from opa import Hook


class LetPickleIn(Hook):
    name = "driver.celery.setup"

    def run(self, app):
        app.conf.accept_content = ["json", "pickle"]
        return app
'''


def test_celery_driver_refuses_pickle_from_the_setup_hook(redis_url: str, tmp_path: Path) -> None:
    """A plugin's driver.celery.setup hook that accepts pickle makes start-up fail."""
    (tmp_path / f"unsafe_{uuid.uuid4().hex[:8]}.py").write_text(UNSAFE_HOOK)
    app = build_app(
        {
            "PLUGIN_PATHS": [str(tmp_path)],
            "PLUGIN_ENTRY_POINTS": True,  # opa-driver-celery's plugin defines the hook
            "OPTIONAL_COMPONENTS": celery_component(redis_url),
        }
    )
    # The hook runs in the driver's start-up Setup, whose error names it, then the hook.
    with pytest.raises(PluginError, match="accept_content to accept pickle"), TestClient(app):
        pass


def test_celery_driver_defaults_are_json_only() -> None:
    """With no SETTINGS the Celery app serializes and accepts JSON only."""
    app = build_app({"OPTIONAL_COMPONENTS": celery_component("memory://")})
    with TestClient(app):
        conf = app.state.opa.components["celery"].instance.conf
        assert conf.task_serializer == conf.result_serializer == "json"
        assert list(conf.accept_content) == list(conf.result_accept_content) == ["json"]


# --- Plugin sources ---------------------------------------------------------------------

ROGUE_PLUGIN = '''"""Must never be imported: it lies outside the configured plugin paths."""

from pathlib import Path

from opa import get_router

Path(__file__).with_suffix(".imported").write_text("imported")
router = get_router()


@router.get("/rogue")
def rogue() -> str:
    return "rogue"
'''

GOOD_PLUGIN = '''"""The one plugin of the configured folder."""

from opa import get_router

router = get_router()


@router.get("/configured")
def configured() -> str:
    return "configured"
'''


@pytest.fixture
def plugin_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A configured plugin folder, and rogue plugins in the cwd and in unconfigured folders."""
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / f"good_{uuid.uuid4().hex[:8]}.py").write_text(GOOD_PLUGIN)
    cwd = tmp_path / "cwd"
    rogues = []
    # Not ./settings: that is the default settings folder, whose *.py files dynaconf runs.
    for folder in (cwd, cwd / "plugins", cwd / "src", tmp_path / "elsewhere"):
        folder.mkdir(parents=True)
        rogue = folder / f"rogue_{uuid.uuid4().hex[:8]}.py"
        rogue.write_text(ROGUE_PLUGIN)
        rogues.append(rogue)
    monkeypatch.chdir(cwd)
    yield {"configured": configured, **{f"rogue{i}": path for i, path in enumerate(rogues)}}


def declared_plugin_identities() -> set[str]:
    found = set()
    for entry_point in entry_points(group=PLUGIN_ENTRY_POINT_GROUP):
        distribution = entry_point.dist.name if entry_point.dist else "unknown"
        found.add(f"{distribution}/{entry_point.name}")
    return found


@pytest.mark.parametrize("use_entry_points", [False, True])
def test_plugins_come_only_from_configured_paths_and_entry_points(
    plugin_folders: dict[str, Path], use_entry_points: bool
) -> None:
    """A plugin in the cwd or an unconfigured folder is neither imported nor routed."""
    configured = plugin_folders["configured"]
    app = build_app({"PLUGIN_PATHS": [str(configured)], "PLUGIN_ENTRY_POINTS": use_entry_points})
    identities = {plugin.identity for plugin in app.state.opa.plugins}
    from_path = {i for i in identities if i.startswith(f"{configured}/")}
    assert len(from_path) == 1
    others = identities - from_path
    assert others <= (declared_plugin_identities() if use_entry_points else set()), others
    with TestClient(app) as client:
        assert client.get("/configured").status_code == 200
        assert client.get("/rogue").status_code == 404
    rogues = [path for key, path in plugin_folders.items() if key.startswith("rogue")]
    assert not [path for path in rogues if path.with_suffix(".imported").exists()]


def test_cli_loads_no_plugin_from_the_cwd(plugin_folders: dict[str, Path]) -> None:
    """`opa drivers` run in a folder full of plugin files imports none of them."""
    env = {"OPA_SETTINGS_DIR": None, "OPA_ENV": None, "ENV": None, "OPA_PLUGIN_PATHS": None}
    result = CliRunner().invoke(cli, ["drivers"], env=env)
    assert result.exit_code == 0, result.output
    rogues = [path for key, path in plugin_folders.items() if key.startswith("rogue")]
    assert not [path for path in rogues if path.with_suffix(".imported").exists()]


# --- Request bodies on the example routes -----------------------------------------------


@pytest.fixture
def redis_example(redis_url: str) -> Iterator[tuple[TestClient, str]]:
    """The examples/redis app on the test Redis, with a key prefix of its own."""
    prefix = unique("opa-itest-hardening:")
    component = {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {"URL": redis_url}}
    app = build_app(
        {
            "PLUGIN_PATHS": [str(EXAMPLES / "redis")],
            "EXAMPLE_KEY_PREFIX": prefix,
            "OPTIONAL_COMPONENTS": {
                "WALRUS": component,
                "AIOREDIS": {**component, "DRIVER": "redis-aioredis"},
            },
        }
    )
    with TestClient(app) as client:
        try:
            yield client, prefix
        finally:
            walrus = app.state.opa.components["walrus"].instance
            delete_keys(walrus, prefix)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"a" * (64 * 1024 + 1), "text/plain", 413),
        (" ".join(["word"] * 1001).encode(), "text/plain", 422),
        (json.dumps(["w" * 101]).encode(), "application/json", 422),
        (json.dumps({"not": "a list"}).encode(), "application/json", 422),
        (b"{not json", "application/json", 422),
        (b"\xff\xfe", "text/plain", 422),
        (b"", "text/plain", 422),
    ],
    ids=["oversized", "too-many-words", "long-word", "not-a-list", "bad-json", "not-utf8", "empty"],
)
def test_redis_bloom_body_is_limited_and_validated(
    redis_example: tuple[TestClient, str], body: bytes, content_type: str, status: int
) -> None:
    """POST /bloom refuses an oversized body with 413 and malformed or excessive words with 422."""
    client, _ = redis_example
    response = client.post("/bloom", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text


def test_redis_bloom_accepts_a_body_within_the_limits(
    redis_example: tuple[TestClient, str],
) -> None:
    """A text body of 1000 short words, at the word limit and under 64 KiB, is added."""
    client, _ = redis_example
    words = [f"w{i}" for i in range(1000)]
    response = client.post(
        "/bloom", content=" ".join(words), headers={"content-type": "text/plain"}
    )
    assert response.json() == {"added": 1000}
    assert client.get("/bloom", params={"string": "w999"}).json()["member"] is True


@pytest.fixture
def notes_example(mongodb_url: str) -> Iterator[TestClient]:
    """The examples/mongodb app on the test MongoDB, in a database of its own."""
    database = unique("itest_")
    opts = {"URL": mongodb_url, "DATABASE": database, "APP_NAME": "opa-itest-hardening"}
    app = build_app(
        {
            "PLUGIN_PATHS": [str(EXAMPLES / "mongodb")],
            "OPTIONAL_COMPONENTS": {
                "MONGODB": {"LOAD": "yes", "DRIVER": "mongodb-async-pymongo", "OPTS": opts}
            },
        }
    )
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    "note",
    [
        {"title": "t" * 201},
        {"title": "ok", "body": "b" * 10_001},
        {"title": "   "},
        {"body": "no title"},
        {"title": "ok", "extra": "field"},
        {"title": ["not", "a", "string"]},
    ],
    ids=["long-title", "oversized-body", "blank-title", "no-title", "unknown-field", "wrong-type"],
)
def test_mongodb_notes_body_is_limited_and_validated(
    notes_example: TestClient, note: dict[str, Any]
) -> None:
    """POST /notes refuses oversized, missing, unknown or mistyped fields with 422."""
    assert notes_example.post("/notes", json=note).status_code == 422


def test_mongodb_notes_accepts_a_note_within_the_limits(notes_example: TestClient) -> None:
    """A title of 200 and a body of 10 000 characters are stored, then deleted."""
    created = notes_example.post("/notes", json={"title": "t" * 200, "body": "b" * 10_000})
    assert created.status_code == 201, created.text
    assert notes_example.delete(f"/notes/{created.json()['id']}").status_code == 204


def over_64_kib_in_chunks() -> Iterator[bytes]:
    """65 KiB of words, sent with no declared length (chunked)."""
    return chunked_body(b"", b"word " * 204 + b"word", 65)


def test_redis_bloom_cuts_off_a_chunked_body_over_64_kib(
    redis_example: tuple[TestClient, str],
) -> None:
    """A chunked body is counted as it arrives: past 64 KiB it is a 413, not buffered whole."""
    client, _ = redis_example
    response = client.post(
        "/bloom", content=over_64_kib_in_chunks(), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "request body too large: the limit is 65536 bytes"


def test_mongodb_notes_request_body_is_capped(notes_example: TestClient) -> None:
    """POST /notes refuses a request body over 64 KiB with 413, whatever its fields."""
    note = json.dumps({"title": "big", "body": "b" * 65_536}).encode()
    response = notes_example.post(
        "/notes", content=note, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


@pytest.fixture
def celery_example() -> Iterator[TestClient]:
    """examples/celery-task on an in-memory broker: its routes, with nothing to run tasks."""
    app = build_app(
        {
            "PLUGIN_PATHS": [str(EXAMPLES / "celery-task")],
            "PLUGIN_ENTRY_POINTS": True,  # opa-driver-celery's plugin defines the setup hook
            "OPTIONAL_COMPONENTS": celery_component("memory://"),
        }
    )
    with TestClient(app) as client:
        yield client


CELERY_DIVIDER = "/tasks/celery_task.tasks.divider"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"x" * (16 * 1024 + 1), 413),
        (json.dumps({"args": ["a" * 16_400]}).encode(), 413),
        (json.dumps([6, 3]).encode(), 422),
        (json.dumps({"args": [6, 3], "countdown": 5}).encode(), 422),
        (json.dumps({"args": list(range(21))}).encode(), 422),
        (json.dumps({"args": [[6], {"b": 3}]}).encode(), 422),
        (json.dumps({"args": ["a" * 1001]}).encode(), 422),
        (json.dumps({"kwargs": {"__class__": 1, "a b": 2}}).encode(), 422),
        (b'{"args": [NaN, Infinity]}', 422),
        (b"{not json", 422),
    ],
    ids=[
        "oversized",
        "oversized-json",
        "bare-list",
        "unknown-field",
        "too-many-args",
        "nested-args",
        "long-string",
        "bad-kwarg-name",
        "non-finite",
        "bad-json",
    ],
)
def test_celery_task_body_is_limited_and_validated(
    celery_example: TestClient, body: bytes, status: int
) -> None:
    """POST /tasks/{name}: 413 over 16 KiB; 422 for unknown fields, excess or non-scalars."""
    headers = {"content-type": "application/json"}
    response = celery_example.post(CELERY_DIVIDER, content=body, headers=headers)
    assert response.status_code == status, response.text


def test_celery_task_accepts_a_call_within_the_limits(celery_example: TestClient) -> None:
    """20 args and 20 kwargs of JSON scalars, strings of 1,000 characters, are enqueued."""
    call = {
        "args": ["a" * 1000, 1, 2.5, True, None, *range(15)],
        "kwargs": {f"k{i}": i for i in range(20)},
    }
    response = celery_example.post(CELERY_DIVIDER, json=call)
    assert response.status_code == 200, response.text
    assert response.json()["id"]
    unknown = celery_example.post("/tasks/celery_task.tasks.nothing", json={"args": [1]})
    assert unknown.status_code == 404


# --- Hostile JSON on every example route that takes a body -------------------------------

DEEP = b"[" * 8000 + b"]" * 8000  # past the recursion limit, within every route's cap
JUST_TOO_DEEP = b"[" * 101 + b"]" * 101
LONE_SURROGATE = b'["\\ud800"]'
LONE_LOW_SURROGATE = b'["x\\udc00"]'
RAW_SURROGATE = '["\ud800"]'.encode("utf-8", "surrogatepass")
SURROGATE_KEY = b'{"\\ud800": 1}'
# An integer longer than Python reads (json.loads raises a plain ValueError, not a JSON one).
HUGE_INTEGER = b"[" + b"1" * (sys.get_int_max_str_digits() + 1) + b"]"
NESTING, SURROGATE = "nested deeper than 100 levels", "lone surrogate"
DIGITS = f"more than {sys.get_int_max_str_digits()} digits"

# Each route, the fixture serving it, and a body that carries a lone surrogate in a field
# the route accepts: without the check, that string would reach Redis, MongoDB or the broker.
BODY_ROUTES = {
    "bloom": ("redis_example", "/bloom", b'["ok", "\\ud800"]'),
    "notes": ("notes_example", "/notes", b'{"title": "\\ud800"}'),
    "tasks": ("celery_example", CELERY_DIVIDER, b'{"args": ["\\udfff"]}'),
}
HOSTILE_JSON = {
    "deep": (DEEP, NESTING),
    "just-too-deep": (JUST_TOO_DEEP, NESTING),
    "lone-surrogate": (LONE_SURROGATE, SURROGATE),
    "lone-low-surrogate": (LONE_LOW_SURROGATE, SURROGATE),
    "raw-surrogate-bytes": (RAW_SURROGATE, SURROGATE),
    "surrogate-key": (SURROGATE_KEY, SURROGATE),
    "surrogate-in-a-field": (None, SURROGATE),
    "huge-integer": (HUGE_INTEGER, DIGITS),
}


def example_client(request: pytest.FixtureRequest, fixture: str) -> TestClient:
    served = request.getfixturevalue(fixture)
    client: TestClient = served[0] if isinstance(served, tuple) else served
    return client


@pytest.mark.parametrize("hostile", HOSTILE_JSON, ids=list(HOSTILE_JSON))
@pytest.mark.parametrize("route", BODY_ROUTES, ids=list(BODY_ROUTES))
def test_hostile_json_is_a_422_naming_the_problem_on_every_body_route(
    request: pytest.FixtureRequest, route: str, hostile: str
) -> None:
    """Deep nesting, lone surrogates, overlong integers: a 422 saying so on every body route."""
    fixture, path, field_body = BODY_ROUTES[route]
    body, problem = HOSTILE_JSON[hostile]
    client = example_client(request, fixture)
    response = client.post(
        path, content=body or field_body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert problem in response.text


def test_a_surrogate_pair_is_a_character_not_a_lone_surrogate(
    redis_example: tuple[TestClient, str],
) -> None:
    """An escaped surrogate pair (an emoji) is one valid character and is accepted."""
    client, _ = redis_example
    body = b'["emoji-\\ud83d\\ude00"]'
    response = client.post("/bloom", content=body, headers={"content-type": "application/json"})
    assert response.json() == {"added": 1}
    assert client.get("/bloom", params={"string": "emoji-\U0001f600"}).json()["member"] is True


# --- The app-wide request body limit ----------------------------------------------------


def test_the_app_wide_limit_applies_before_an_examples_own() -> None:
    """MAX_REQUEST_BODY below an example's cap wins: 413 naming the app-wide limit."""
    app = build_app(
        {
            "PLUGIN_PATHS": [str(EXAMPLES / "celery-task")],
            "PLUGIN_ENTRY_POINTS": True,
            "MAX_REQUEST_BODY": 1024,
            "OPTIONAL_COMPONENTS": celery_component("memory://"),
        }
    )
    call = json.dumps({"args": ["a" * 1000, "b" * 1000]}).encode()
    with TestClient(app) as client:
        response = client.post(
            CELERY_DIVIDER, content=call, headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["detail"] == "request body too large: the limit is 1024 bytes"


def test_the_default_limit_holds_for_every_route() -> None:
    """With no setting, 1 MiB + 1 byte to any path is a 413; 1 MiB reaches routing (404)."""
    with TestClient(build_app()) as client:
        assert client.post("/anywhere", content=b"x" * (1024 * 1024 + 1)).status_code == 413
        assert client.post("/anywhere", content=b"x" * (1024 * 1024)).status_code == 404


def raw_exchange(port: int, head: bytes, body: Sequence[bytes] = ()) -> tuple[bytes, float]:
    """Send *head*, then *body* piece by piece until an answer comes, as a careful client
    does; the whole answer and the seconds from the first byte sent to the last received."""
    started = time.perf_counter()
    answer = b""
    with socket.create_connection((LOCALHOST, port), timeout=10) as sock:
        sock.sendall(head)
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                break  # answered early: stop sending
            sock.sendall(piece)
        with suppress(ConnectionResetError):  # the server may close with our bytes unread
            while chunk := sock.recv(65536):
                answer += chunk
    return answer, time.perf_counter() - started


READING_PLUGIN = '''"""A route that reads whatever body it is sent."""

from fastapi import Request

from opa import get_router

router = get_router()


@router.post("/echo-length")
async def echo_length(request: Request) -> int:
    return len(await request.body())
'''


def test_opa_run_refuses_oversized_bodies_over_http(tmp_path: Path) -> None:
    """A real `opa run`: a 1 GiB Content-Length and a 2 MiB chunked body both get 413 fast.

    The declared one is answered before a byte of body is sent; the chunked one once the
    default 1 MiB has been read.
    """
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / f"reading_{uuid.uuid4().hex[:8]}.py").write_text(READING_PLUGIN)
    settings = write_settings(
        tmp_path / "settings", {"PLUGIN_PATHS": [str(plugins)], "OPTIONAL_COMPONENTS": {}}
    )
    run = OpaRun(settings, tmp_path / "opa-run.log")
    try:
        run.wait_serving()
        declared, declared_time = raw_exchange(
            run.port,
            b"POST /echo-length HTTP/1.1\r\nhost: opa\r\ncontent-length: 1073741824\r\n\r\n",
        )
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"  # 64 KiB
        chunked, chunked_time = raw_exchange(
            run.port,
            b"POST /echo-length HTTP/1.1\r\nhost: opa\r\ntransfer-encoding: chunked\r\n\r\n",
            [chunk] * 32 + [b"0\r\n\r\n"],
        )
        health = urllib.request.urlopen(f"http://{LOCALHOST}:{run.port}/health", timeout=5)
    finally:
        run.close()
    print(
        f"\n413 for a declared 1 GiB body in {declared_time * 1000:.1f} ms; "
        f"for a 2 MiB chunked body in {chunked_time * 1000:.1f} ms"
    )
    for answer in (declared, chunked):
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"the limit is 1048576 bytes" in answer
    assert declared_time < 2.0 and chunked_time < 5.0
    assert health.status == 200


# --- SECRET_KEY -------------------------------------------------------------------------

SIGNING_PLUGIN = '''"""Builds its signer at import, as a plugin that needs SECRET_KEY would."""

from fastapi import HTTPException

from opa import BadSignature, get_router, signer

router = get_router()
links = signer("hardening-links")


@router.get("/link/{name}")
def link(name: str) -> str:
    return links.sign(name)


@router.get("/check")
def check(token: str) -> str:
    try:
        return links.unsign(token, max_age=60)
    except BadSignature as exc:
        raise HTTPException(400, str(exc)) from None
'''


def signing_run(
    tmp_path: Path, secret_key: str, env: str, extra: dict[str, Any] | None = None
) -> OpaRun:
    """`opa run` in *env* with SECRET_KEY *secret_key* and the signing plugin."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / f"signing_{uuid.uuid4().hex[:8]}.py").write_text(SIGNING_PLUGIN)
    values = {
        "PLUGIN_PATHS": [str(plugins)],
        "SECRET_KEY": secret_key,
        "OPTIONAL_COMPONENTS": {},
        "RELOAD": False,
        "LOG_LEVEL": "DEBUG",
        **(extra or {}),
    }
    settings = write_settings(tmp_path / "settings", values)
    return OpaRun(settings, tmp_path / "opa-run.log", {"OPA_ENV": env})


@pytest.mark.parametrize("env", ["prod", "staging"])
@pytest.mark.parametrize("length", [0, 31], ids=["empty", "short"])
def test_opa_run_refuses_an_empty_or_short_secret_key_outside_dev(
    tmp_path: Path, env: str, length: int
) -> None:
    """A plugin that signs makes `opa run` exit non-zero naming SECRET_KEY, never showing it."""
    secret = unique("k-")[:length] if length else ""
    secret = secret.ljust(length, "q")
    run = signing_run(tmp_path, secret, env)
    try:
        status = run.wait(60)
    finally:
        run.close()
    output = run.output()
    state = "empty" if not length else "shorter than 32 characters"
    assert status != 0
    assert f"SECRET_KEY is {state} in the {env!r} environment" in output
    assert "OPA_SECRET_KEY" in output
    assert "Traceback" not in output
    if secret:
        assert secret not in output


def test_opa_run_signs_with_a_good_key_in_prod(tmp_path: Path) -> None:
    """With a 32+ character key a prod app serves tokens that check out; the key is never shown."""
    secret = unique("good-key-") + "z" * 24
    run = signing_run(tmp_path, secret, "prod")
    try:
        run.wait_serving()
        base = f"http://{LOCALHOST}:{run.port}"
        token = json.loads(urllib.request.urlopen(f"{base}/link/alice", timeout=5).read())
        checked = urllib.request.urlopen(f"{base}/check?token={token}", timeout=5).read()
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/check?token={forged}", timeout=5)
        refusal = refused.value.read()  # before the server stops: it may not all be here yet
    finally:
        run.close()
    assert json.loads(checked) == "alice"
    assert refused.value.code == 400
    assert b"does not match" in refusal
    assert secret not in run.output()


def test_opa_run_in_dev_signs_with_a_random_key_and_warns(tmp_path: Path) -> None:
    """dev with an empty SECRET_KEY serves, signing with a per-process key, and warns once."""
    run = signing_run(tmp_path, "", "dev")
    try:
        run.wait_serving()
        base = f"http://{LOCALHOST}:{run.port}"
        token = json.loads(urllib.request.urlopen(f"{base}/link/alice", timeout=5).read())
        checked = urllib.request.urlopen(f"{base}/check?token={token}", timeout=5).read()
    finally:
        run.close()
    assert json.loads(checked) == "alice"
    warnings = [line for line in run.output().splitlines() if "SECRET_KEY is empty" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], run.output()[-3000:]


def test_secret_key_has_no_default_and_is_masked(tmp_path: Path) -> None:
    """SECRET_KEY defaults to empty in prod and dev, and `opa config` never prints its value."""
    for env in ("prod", "dev"):
        app = build_app(env=env)
        assert app.state.opa.settings.get("SECRET_KEY") == ""
    secret = unique("key-")
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump({"default": {"SECRET_KEY": secret}}))
    env = {"OPA_SETTINGS_DIR": str(tmp_path), "OPA_ENV": "prod", "ENV": None}
    for args in (["config"], ["config", "--json"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert secret not in result.output
        assert "SECRET_KEY" in result.output and "***" in result.output


def test_an_app_that_signs_nothing_starts_in_prod_with_an_empty_key() -> None:
    """The refusal is where signing is used: without it an empty key stops nothing."""
    app: FastAPI = build_app({"SECRET_KEY": ""}, env="prod")
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
