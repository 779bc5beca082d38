"""No output opa produces shows a credential, however hostile the password (issue 7, issue 13).

A private Redis requires PASSWORD for its default user and has one ACL user per hostile
password, so the components that connect really use each password, percent-encoded in
their URLs as redis-py reads them. The same passwords appear raw in URLs that cannot
connect (LOAD: auto on a closed port, a multi-host MongoDB URL), as values of secret-named
settings, and in free text (a plugin's log lines, exception messages, a backend error).
Each output is produced once with every password in it, and searched for each password
and each 4-character piece of it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient
from faults import OpaRun
from faults import write_settings as write_run_settings

from opa._cli import cli
from opa._log import MAX_LOGGED_URL, setup_logging
from opa.testing import (
    LOCALHOST,
    RedisServer,
    ServiceUnavailable,
    build_app,
    free_port,
    skip_or_fail,
)

# Unique to the run, so a hit can only come from this test's configuration; names of
# files and apps take another, so no output holds a piece of a password by right.
RUN = uuid.uuid4().hex[:8]
PASSWORD = f"pw{RUN}"
NAME = uuid.uuid4().hex[:8]


def hostile(text: str) -> str:
    """*text* with a character ordinary output never holds after every second one.

    Every 4-character piece of the result then holds one, so a piece found in an output can
    only be a leaked fragment, never a word the output has anyway.
    """
    return "".join(f"{char}ø" if i % 2 else char for i, char in enumerate(text))


LONG = hostile("".join(f"{chr(0x61 + i % 26)}{'@:/%#? '[i % 7]}" for i in range(400)))[:1000]
HOSTILE = {
    "specials": hostile(f"p@ss:w/rd#?%{RUN}"),
    "spaces": hostile(f"with spaces {RUN}"),
    "quotes": hostile(f"q'uo\"te{RUN}"),
    "unicode": hostile(f"пароль密码{RUN}"),
    "percent": hostile(f"%40%3A%2F{RUN}"),
    "url inside": hostile(f"a@b://c:d@{RUN}"),
    "long": LONG,
}
assert len(LONG) == 1000
NAMES = list(HOSTILE)

BOOM_PLUGIN = '''"""Routes failing as drivers and plugins fail, with credentials in the text."""

import logging

from redis.exceptions import ConnectionError as RedisConnectionError

from opa import config, get_instance, get_router, log

router = get_router()


@router.get("/boom")
def boom() -> None:
    """Log the free text at DEBUG, then fail with it, logging the traceback like uvicorn."""
    for line in config.FREE_TEXT:
        log.debug(line)
    try:
        raise RuntimeError("cannot reach " + " ".join(config.FREE_TEXT))
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        raise


@router.get("/outage")
def outage() -> None:
    """A backend error whose message names the URLs: answered 503, logged at WARNING."""
    raise RedisConnectionError("Error connecting to " + " ".join(config.FREE_TEXT))


@router.get("/skipped")
def skipped() -> None:
    """A component skipped under LOAD: auto: answered 503 with its reason."""
    get_instance("raw_spaces")
'''


def leaks(secret: str, output: str) -> list[str]:
    """The secret or a 4-character piece of it in *output*: raw, JSON-escaped or %-encoded."""
    pieces = {secret} | {secret[i : i + 4] for i in range(len(secret) - 3)}
    forms = {form for piece in pieces for form in (piece, json.dumps(piece)[1:-1], quote(piece))}
    return sorted(form for form in forms if form in output)


def assert_no_leaks(outputs: dict[str, str]) -> None:
    """No output holds PASSWORD, a hostile password or a piece of one.

    PASSWORD is only looked for whole: its hex pieces could be in any output by chance.
    """
    found = [f"PASSWORD in {where}" for where, text in outputs.items() if PASSWORD in text]
    found += [
        f"{name!r} in {where}: {leaks(secret, text)[:3]}"
        for where, text in outputs.items()
        for name, secret in HOSTILE.items()
        if leaks(secret, text)
    ]
    assert not found, "\n".join(found)


@pytest.fixture(scope="module")
def redis_with_password() -> Iterator[int]:
    """A private Redis: PASSWORD for the default user, user `u_<name>` per hostile password."""
    import redis

    server = RedisServer(args=["--requirepass", PASSWORD])
    try:
        try:
            server.start()
        except ServiceUnavailable as error:
            skip_or_fail(str(error))
        client = redis.Redis(host=LOCALHOST, port=server.port, password=PASSWORD)
        for name, secret in HOSTILE.items():
            client.acl_setuser(user_name(name), enabled=True, passwords=[f"+{secret}"])
            client.execute_command("ACL", "SETUSER", user_name(name), "~*", "&*", "+@all")
        client.close()
        yield server.port
    finally:
        server.close()


def user_name(name: str) -> str:
    return "u_" + name.replace(" ", "_")


def free_text() -> list[str]:
    """Each hostile password as plugins and libraries write secrets into text."""
    lines = []
    for secret in HOSTILE.values():
        lines += [
            f"redis://:{secret}@{LOCALHOST}:6379/0",
            f"amqp://guest:{quote(secret, safe='')}@broker:5672//",
            f"connecting with password={secret!r}",
            json.dumps({"user": "app", "password": secret}),
            f"Authorization: Bearer {secret}",
            # Two credentials in one multi-host URL (PyMongo refuses it; it is still masked).
            f"mongodb://u:{quote(secret, safe='')}@h1:27017,u2:{secret}@h2:27017/db",
        ]
    return lines


def components(auth_port: int, closed_port: int) -> dict[str, Any]:
    """Every component, each with a password in its URL; the app starts with all of them."""
    with_auth = f"redis://:{PASSWORD}@{LOCALHOST}:{auth_port}"
    mongodb = f"mongodb://opa:{PASSWORD}@{LOCALHOST}:{closed_port}/secrets"
    found: dict[str, Any] = {
        "AIOREDIS": {
            "LOAD": "yes",
            "DRIVER": "redis-aioredis",
            "OPTS": {"URL": f"redis://default:{PASSWORD}@{LOCALHOST}:{auth_port}/0"},
        },
        "CELERY": {
            "LOAD": "yes",
            "DRIVER": "celery",
            "OPTS": {
                "BROKER_URL": f"{with_auth}/1",
                "BACKEND_URL": f"{with_auth}/2",
                "APP_NAME": f"secrets-{NAME}",
            },
        },
        "MONGODB": {"LOAD": "auto", "DRIVER": "mongodb-async-motor", "OPTS": {"URL": mongodb}},
        "MONGODB_PYMONGO": {
            "LOAD": "auto",
            "DRIVER": "mongodb-async-pymongo",
            "OPTS": {
                "URL": f"mongodb://opa:{quote(HOSTILE['specials'], safe='')}@{LOCALHOST}:"
                f"{closed_port}/secrets"
            },
        },
    }
    for name, secret in HOSTILE.items():
        key = name.upper().replace(" ", "_")
        # Connects with the password percent-encoded, as redis-py reads it.
        url = f"redis://{user_name(name)}:{quote(secret, safe='')}@{LOCALHOST}:{auth_port}/0"
        found[f"WALRUS_{key}"] = {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {"URL": url}}
        if splittable(secret):
            # Raw in the URL, unreachable under auto: skipped, the skip logged with its target.
            raw = f"redis://{user_name(name)}:{secret}@{LOCALHOST}:{closed_port}/0"
            found[f"RAW_{key}"] = {"LOAD": "auto", "DRIVER": "redis-walrus", "OPTS": {"URL": raw}}
    return found


def splittable(secret: str) -> bool:
    """Whether a URL holding *secret* raw can be split (a raw / ? # ends the host part)."""
    return not set("/?#") & set(secret)


def unsplittable_components(closed_port: int) -> dict[str, Any]:
    """Components with a raw password URL parsers cannot split: refused as invalid options."""
    return {
        f"RAW_{name.upper().replace(' ', '_')}": {
            "LOAD": "auto",
            "DRIVER": "redis-walrus",
            "OPTS": {"URL": f"redis://:{secret}@{LOCALHOST}:{closed_port}/0"},
        }
        for name, secret in HOSTILE.items()
        if not splittable(secret)
    }


def failing_component(port: int) -> dict[str, Any]:
    """A LOAD: yes component whose password the private Redis refuses.

    Not the shared Redis: it has no password, and a server without one accepts any password
    for its default user over RESP3's HELLO, which redis-py 8 speaks by default.
    """
    secret = quote(HOSTILE["specials"], safe="")
    url = f"redis://:{secret}@{LOCALHOST}:{port}/0"
    return {"WALRUS_REFUSED": {"LOAD": "yes", "DRIVER": "redis-walrus", "OPTS": {"URL": url}}}


def settings(plugin_dir: Path, optional_components: dict[str, Any], debug: bool) -> dict[str, Any]:
    return {
        "DEBUG": debug,
        "LOG_LEVEL": "DEBUG",
        "PLUGIN_PATHS": [str(plugin_dir)],
        "PLUGIN_ENTRY_POINTS": True,
        "SECRET_KEY": HOSTILE["long"],
        # Secret-named settings of a plugin, nested and in a list.
        "APP": {
            "DB_PASSWORD": HOSTILE["quotes"],
            "API_TOKENS": [HOSTILE["unicode"], HOSTILE["percent"]],
            "CREDENTIALS": {"user": "app", "pass": HOSTILE["url inside"]},
        },
        "FREE_TEXT": free_text(),
        "OPTIONAL_COMPONENTS": optional_components,
    }


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"boom_{NAME}.py").write_text(BOOM_PLUGIN)
    return folder


def run_cli(settings_dir: Path, *args: str) -> str:
    """One `opa` command in-process; its stdout, stderr and exit status as one text."""
    env = {"OPA_SETTINGS_DIR": str(settings_dir), "OPA_ENV": None, "ENV": None}
    env["OPA_LOG_LEVEL"] = "DEBUG"
    result = CliRunner().invoke(cli, list(args), env=env)
    text = f"$ opa {' '.join(args)} -> {result.exit_code}\n{result.output}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += f"\n{type(result.exception).__name__}: {result.exception}"
    return text


def write_settings(folder: Path, values: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "settings.yaml").write_text(yaml.safe_dump({"default": values}))
    return folder


def served_outputs(app: Any, outputs: dict[str, str], label: str) -> dict[str, Any]:
    """Every HTTP output of *app* into *outputs*; the /health body as JSON."""
    with TestClient(app, raise_server_exceptions=False) as client:
        health = client.get("/health")
        outputs[f"/health {label}"] = health.text
        outputs[f"/openapi.json {label}"] = client.get("/openapi.json").text
        for accept in ("application/json", "text/html", "text/plain"):
            error = client.get("/boom", headers={"accept": accept})
            assert error.status_code == 500
            outputs[f"500 {accept} {label}"] = error.text
        for path in ("/outage", "/skipped"):
            unavailable = client.get(path)
            assert unavailable.status_code == 503, (path, unavailable.text)
            outputs[f"503 {path} {label}"] = unavailable.text
    result: dict[str, Any] = health.json()
    return result


def test_passwords_appear_in_no_output(
    redis_with_password: int,
    plugin_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No log line, CLI output, HTTP answer or start-up error shows a password or a piece."""
    closed = free_port()
    good = components(redis_with_password, closed)
    outputs: dict[str, str] = {}
    logs = io.StringIO()

    # The app with every component, DEBUG off then on: the passwords are really used.
    for debug in (False, True):
        app = build_app(settings(plugin_dir, good, debug))
        setup_logging("DEBUG", stream=logs)
        health = served_outputs(app, outputs, f"(DEBUG {debug})")
        statuses = {name: entry["status"] for name, entry in health["components"].items()}
        connected = ["aioredis", "celery"] + [f"walrus_{n.replace(' ', '_')}" for n in NAMES]
        assert all(statuses[name] == "ok" for name in connected), statuses
        assert statuses["mongodb"] == statuses["mongodb_pymongo"] == "skipped", statuses
        assert statuses["raw_spaces"] == statuses["raw_unicode"] == "skipped", statuses
    assert "Internal Server Error" in outputs["500 text/plain (DEBUG False)"]
    assert "cannot reach" in outputs["500 text/plain (DEBUG True)"]  # the traceback page

    # A LOAD: yes component that fails with a password in its URL stops start-up.
    failing = {**good, **failing_component(redis_with_password)}
    broken = build_app(settings(plugin_dir, failing, True))
    setup_logging("DEBUG", stream=logs)
    # Whatever the lifespan raises: its message is what is checked.
    with pytest.raises(Exception) as startup, TestClient(broken):
        pass
    outputs["start-up error"] = f"{type(startup.value).__name__}: {startup.value}"
    assert "walrus_refused" in outputs["start-up error"]

    # Components whose raw password leaves a URL no parser can split: each is refused.
    refused = {**good, **unsplittable_components(closed)}
    for name, component in unsplittable_components(closed).items():
        with pytest.raises(Exception) as invalid:
            build_app(settings(plugin_dir, {**good, name: component}, True))
        outputs[f"invalid options {name}"] = f"{type(invalid.value).__name__}: {invalid.value}"
        assert f"OPTIONAL_COMPONENTS.{name.lower()}.OPTS.URL" in outputs[f"invalid options {name}"]

    # The CLI on the same configuration, read from a settings folder.
    folder = write_settings(tmp_path / "settings", settings(plugin_dir, failing, True))
    for args in (["config"], ["config", "--json"], ["check"], ["drivers"]):
        outputs[f"opa {' '.join(args)}"] = run_cli(folder, *args)
    invalid_folder = write_settings(tmp_path / "refused", settings(plugin_dir, refused, True))
    for args in (["config"], ["check"]):
        outputs[f"opa {' '.join(args)} (invalid options)"] = run_cli(invalid_folder, *args)
    assert ".OPTS.URL (OPA_OPTIONAL_COMPONENTS__" in outputs["opa check (invalid options)"]
    assert "-> 1" in outputs["opa check"] and "walrus_refused" in outputs["opa check"]
    assert "-> 0" in outputs["opa config"] and "-> 0" in outputs["opa config --json"]
    printed = json.loads(outputs["opa config --json"].split("\n", 1)[1])
    assert printed["SECRET_KEY"] == printed["APP"]["DB_PASSWORD"] == "***"
    assert yaml.safe_load(outputs["opa config"].split("\n", 1)[1])["APP"]["CREDENTIALS"]

    # `opa run` in its own process: it must exit non-zero, naming the component.
    env = {**os.environ, "OPA_SETTINGS_DIR": str(folder), "OPA_LOG_LEVEL": "DEBUG"}
    env.pop("OPA_ENV", None)
    run = subprocess.run(
        [sys.executable, "-m", "opa", "run", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs["opa run"] = run.stdout + run.stderr
    assert run.returncode != 0 and "walrus_refused" in outputs["opa run"], outputs["opa run"]

    captured = capsys.readouterr()
    outputs["logs"] = logs.getvalue() + captured.out + captured.err
    assert "component 'walrus_long' connected" in outputs["logs"]
    assert "skipping component 'raw_spaces'" in outputs["logs"]
    assert "Exception in ASGI application" in outputs["logs"]  # the traceback was logged
    assert "backend unavailable" in outputs["logs"]
    assert_no_leaks(outputs)
    size = sum(len(text) for text in outputs.values())
    print(f"\nFIGURE secrets: {len(outputs)} outputs, {size:,} characters, 0 leaks")


def test_a_long_url_with_a_credential_is_cut_and_masked_in_the_access_line(
    tmp_path: Path,
) -> None:
    """A served request with a 6 KB URL logs one access line, cut and masked, saying so."""
    secret = HOSTILE["spaces"]
    path = f"/missing?next=redis://:{quote(secret, safe='')}@cache:6379/0&pad=" + "x" * 6000
    folder = write_run_settings(tmp_path / "settings", {"LOG_LEVEL": "INFO"})
    server = OpaRun(folder, tmp_path / "opa.log")
    try:
        server.wait_serving()
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://{LOCALHOST}:{server.port}{path}", timeout=10)
        assert answer.value.code == 404
        for _ in range(100):  # the line is written after the answer: wait for it, bounded
            lines = [line for line in server.output().splitlines() if "GET /missing" in line]
            if lines:
                break
            time.sleep(0.05)
    finally:
        server.close()
    assert len(lines) == 1, server.output()[-3000:]
    cut = len(path) - MAX_LOGGED_URL - len(quote(secret, safe="")) + len("***")
    assert "/missing?next=redis://:***@cache:6379/0&pad=xxx" in lines[0]
    assert f' ... [cut: {cut:,} more characters] HTTP/1.1" 404' in lines[0]
    assert len(lines[0]) < MAX_LOGGED_URL + 300
    assert_no_leaks({"access line": lines[0]})
    print(f"\nFIGURE long-url: URL {len(path):,} characters, access line {len(lines[0]):,}")
