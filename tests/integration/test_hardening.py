"""Item 4 of issue 7: CORS, serializers, plugin sources, request bodies and SECRET_KEY."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient

import opa
from opa.cli import cli
from opa.errors import ComponentError, ConfigError, OptionsError
from opa.plugin_manager import PLUGIN_ENTRY_POINT_GROUP
from opa.testing import build_app

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
    with pytest.raises(ComponentError, match="accept_content to accept pickle"), TestClient(app):
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
            for key in walrus.scan_iter(match=f"{prefix}*"):
                walrus.delete(key)


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


# --- SECRET_KEY -------------------------------------------------------------------------


def installed_sources() -> Iterator[Path]:
    """The Python files of opa-core and of every installed opa driver distribution."""
    roots = [Path(opa.__file__).parent]
    for entry_point in entry_points(group="opa.drivers"):
        module = __import__(entry_point.module.partition(".")[0])
        roots.append(Path(module.__file__).parent)
    for root in dict.fromkeys(roots):
        yield from root.rglob("*.py")


def test_no_feature_reads_secret_key() -> None:
    """No installed opa code reads SECRET_KEY, so no feature can need it yet (only masking)."""
    readers = sorted(
        str(path)
        for path in installed_sources()
        if "SECRET_KEY" in path.read_text(encoding="utf-8") and path.name != "masking.py"
    )
    assert readers == [], "SECRET_KEY is read here: an empty one must now be refused outside dev"


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


def test_empty_secret_key_outside_dev_is_not_refused_yet() -> None:
    """Documents the gap: prod starts with an empty SECRET_KEY, as no feature uses it to refuse."""
    app: FastAPI = build_app({"SECRET_KEY": ""}, env="prod")
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
