"""opa._signing: signed, expiring tokens per purpose, and the SECRET_KEY they need."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import opa._signing
from opa import (
    BadSignature,
    ConfigError,
    OpaError,
    PluginError,
    SignatureExpired,
    Signer,
    log,
    signer,
)
from opa._runtime import activate
from opa.testing import build_app
from support import write_plugin

KEY = "k3y-0f-the-test-" + "s" * 24  # 40 characters
SHORT_KEY = "short-but-secret-k3y"  # 20 characters


@pytest.fixture
def prod_app() -> Iterator[None]:
    """A prod app with a good SECRET_KEY is the running one; none runs afterwards."""
    build_app({"SECRET_KEY": KEY}, env="prod")
    yield
    activate(None)


@pytest.fixture
def captured_log() -> Iterator[list[str]]:
    """Every log line at debug level and above from now on."""
    lines: list[str] = []
    sink = log.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    log.remove(sink)


# --- signing and checking ---------------------------------------------------------------


@pytest.mark.usefixtures("prod_app")
@pytest.mark.parametrize("value", ["alice", "", "a.b.c", "ünïcødé 😀", "x" * 4096])
def test_a_signed_value_comes_back(value: str) -> None:
    """unsign returns exactly the value sign was given, dots and unicode included."""
    links = signer("links")
    token = links.sign(value)
    assert token.isascii() and " " not in token
    assert links.unsign(token) == value
    assert links.unsign(token, max_age=60) == value


@pytest.mark.usefixtures("prod_app")
def test_a_token_for_one_purpose_is_refused_by_another() -> None:
    """Keys are derived per purpose: a reset token is no unsubscribe token."""
    token = signer("password-reset").sign("alice")
    with pytest.raises(BadSignature, match="'unsubscribe': the signature does not match"):
        signer("unsubscribe").unsign(token)


def test_a_token_made_with_another_key_is_refused() -> None:
    """Changing SECRET_KEY invalidates every token made with the old one."""
    build_app({"SECRET_KEY": KEY})
    token = signer("links").sign("alice")
    build_app({"SECRET_KEY": KEY[::-1]})
    try:
        with pytest.raises(BadSignature, match="another SECRET_KEY"):
            signer("links").unsign(token)
    finally:
        activate(None)


def tampered(token: str) -> list[str]:
    value, stamp, mac = token.split(".")
    flipped = "A" if mac[0] != "A" else "B"
    return [
        f"{value}x.{stamp}.{mac}",
        f"{value}.{int(stamp) + 1}.{mac}",
        f"{value}.{stamp}.{flipped}{mac[1:]}",
        f"{value}.{stamp}.{mac[:-1]}",
        f"{value}.{stamp}",
        f"{value}.{stamp}.",
        token + ".",
        token.replace(".", ""),
        "",
        ".",
        "..",
        f"{value}.{stamp}.{mac}é",
        "x" * 10_000,
    ]


@pytest.mark.usefixtures("prod_app")
@pytest.mark.parametrize("case", range(13))
def test_an_altered_token_is_refused(case: int) -> None:
    """Any change to the value, time or signature, or a non-token, is a BadSignature."""
    links = signer("links")
    bad = tampered(links.sign("alice"))[case]
    with pytest.raises(BadSignature, match="signer 'links'"):
        links.unsign(bad)


@pytest.mark.usefixtures("prod_app")
@pytest.mark.parametrize("token", [None, 42, b"bytes"])
def test_a_token_of_the_wrong_type_is_refused(token: Any) -> None:
    """unsign given something other than a str says it is not a token."""
    with pytest.raises(BadSignature, match="not a token"):
        signer("links").unsign(token)


@pytest.mark.usefixtures("prod_app")
def test_an_old_token_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past max_age the token is SignatureExpired (a BadSignature); without max_age it holds."""
    links = signer("links")
    monkeypatch.setattr(opa._signing, "_now", lambda: 1_000_000.0)
    token = links.sign("alice")
    monkeypatch.setattr(opa._signing, "_now", lambda: 1_000_000.0 + 3600)
    assert links.unsign(token, max_age=3600) == "alice"
    assert links.unsign(token) == "alice"
    with pytest.raises(SignatureExpired, match=r"3600 s old; at most 3599 s") as error:
        links.unsign(token, max_age=3599)
    assert isinstance(error.value, BadSignature) and isinstance(error.value, OpaError)


@pytest.mark.usefixtures("prod_app")
def test_sign_refuses_values_it_cannot_carry() -> None:
    """A non-str or a value over 4096 bytes is refused, naming the signer."""
    links = signer("links")
    with pytest.raises(TypeError, match="signer 'links': sign\\(\\) takes a str, not bytes"):
        links.sign(b"alice")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'links': the value is 4097 bytes; at most 4096"):
        links.sign("x" * 4097)


@pytest.mark.usefixtures("prod_app")
@pytest.mark.parametrize("purpose", ["", "   ", None, 3])
def test_a_purpose_is_required(purpose: Any) -> None:
    """signer() without a purpose string names the argument."""
    with pytest.raises(ValueError, match="purpose must be a non-empty string"):
        signer(purpose)


def test_before_an_app_runs_the_environments_settings_are_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a running app (the CLI imports plugins first), OPA_* variables give the key."""
    import opa._runtime

    activate(None)
    monkeypatch.setattr(opa._runtime._ConfigProxy, "_fallback", None)
    monkeypatch.setenv("OPA_SETTINGS_DIR", "/nonexistent")
    monkeypatch.setenv("OPA_ENV", "prod")
    monkeypatch.setenv("OPA_SECRET_KEY", "")
    with pytest.raises(ConfigError, match="SECRET_KEY is empty in the 'prod' environment"):
        signer("links")
    monkeypatch.setattr(opa._runtime._ConfigProxy, "_fallback", None)
    monkeypatch.setenv("OPA_SECRET_KEY", KEY)
    token = signer("links").sign("alice")
    build_app({"SECRET_KEY": KEY}, env="prod")
    try:
        assert signer("links").unsign(token) == "alice"
    finally:
        activate(None)
    monkeypatch.setattr(opa._runtime._ConfigProxy, "_fallback", None)


@pytest.mark.usefixtures("prod_app")
def test_the_key_never_shows(captured_log: list[str]) -> None:
    """Neither the signer's repr nor any error nor the log holds the key."""
    links = signer("links")
    texts = [repr(links), str(vars(Signer)), *captured_log]
    for bad in tampered(links.sign("alice")):
        try:
            links.unsign(bad, max_age=1)
        except BadSignature as exc:
            texts.append(str(exc))
    assert repr(links) == "Signer(purpose='links')"
    assert not [text for text in texts if KEY in text or KEY.encode().hex() in text]


# --- SECRET_KEY outside dev -------------------------------------------------------------


@pytest.mark.parametrize("env", ["prod", "staging", "Production"])
@pytest.mark.parametrize("key", ["", None, SHORT_KEY, "x" * 31])
def test_outside_dev_an_empty_or_short_key_is_refused(env: str, key: Any) -> None:
    """signer() raises a ConfigError naming SECRET_KEY and OPA_SECRET_KEY, without the key."""
    build_app({"SECRET_KEY": key}, env=env)
    try:
        with pytest.raises(ConfigError, match=r"SECRET_KEY is (empty|shorter than 32)") as error:
            signer("links")
    finally:
        activate(None)
    message = str(error.value)
    assert "OPA_SECRET_KEY" in message and f"{env.lower()!r} environment" in message
    if key:
        assert key not in message


@pytest.mark.parametrize("key", [12345678901234567890123456789012345, 1.5, True, ["a"]])
def test_a_key_that_is_not_a_string_is_refused(key: Any) -> None:
    """A key TOML or YAML read as a number, boolean or list is refused with the settings."""
    with pytest.raises(
        ConfigError, match=r"^setting SECRET_KEY \(OPA_SECRET_KEY\): .*@str"
    ) as error:
        build_app({"SECRET_KEY": key}, env="prod")
    assert str(key) not in str(error.value)


def test_a_prod_app_without_signing_runs_with_an_empty_key() -> None:
    """The refusal is where the feature is used: an app that signs nothing still starts."""
    with TestClient(build_app({"SECRET_KEY": ""}, env="prod")) as client:
        assert client.get("/health").status_code == 200


SIGNS_AT_IMPORT = """
from opa import get_router, signer

router = get_router()
links = signer("links")


@router.get("/link/{name}")
def link(name: str) -> str:
    return links.sign(name)
"""

SIGNS_IN_SETUP = """
from opa import Setup, signer


class NeedsSigning(Setup):
    def __init__(self, app) -> None:
        super().__init__(app)
        signer("links")
"""


def test_a_plugin_asking_at_import_stops_a_prod_app_from_building(tmp_path: Path) -> None:
    """A plugin that builds its signer at import makes create_app fail, naming both."""
    write_plugin(tmp_path, "signs_at_import", SIGNS_AT_IMPORT)
    expected = r"signs_at_import .* ConfigError: SECRET_KEY is empty in the 'prod' environment"
    with pytest.raises(PluginError, match=expected):
        build_app({"PLUGIN_PATHS": [str(tmp_path)], "SECRET_KEY": ""}, env="prod")
    activate(None)


def test_a_plugin_asking_in_setup_stops_a_prod_app_from_starting(tmp_path: Path) -> None:
    """A Setup that asks for a signer makes start-up fail, naming the plugin and SECRET_KEY."""
    write_plugin(tmp_path, "signs_in_setup", SIGNS_IN_SETUP)
    app = build_app({"PLUGIN_PATHS": [str(tmp_path)], "SECRET_KEY": ""}, env="prod")
    with pytest.raises(PluginError, match=r"signs_in_setup.*SECRET_KEY is empty"), TestClient(app):
        pass
    activate(None)


def test_a_plugin_signs_with_a_good_key(tmp_path: Path) -> None:
    """With a 32+ character key in prod the same plugin serves tokens that check out."""
    write_plugin(tmp_path, "signs_at_import", SIGNS_AT_IMPORT)
    app = build_app({"PLUGIN_PATHS": [str(tmp_path)], "SECRET_KEY": KEY}, env="prod")
    with TestClient(app) as client:
        token = client.get("/link/alice").json()
        assert signer("links").unsign(token) == "alice"
    activate(None)


# --- SECRET_KEY in dev ------------------------------------------------------------------


def test_in_dev_an_empty_key_is_a_random_one_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dev: signing works with a per-process random key, and one warning says so."""
    monkeypatch.setattr(opa._signing, "_warned", False)  # as in a fresh process
    build_app({"SECRET_KEY": ""}, env="dev")
    lines: list[str] = []
    sink = log.add(lambda message: lines.append(str(message)), level="DEBUG")
    try:
        token = signer("links").sign("alice")
        assert signer("links").unsign(token) == "alice"
        assert signer("other").sign("alice") != token
    finally:
        log.remove(sink)
        activate(None)
    warnings = [line for line in lines if "SECRET_KEY is empty" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
    assert opa._signing._dev_key.hex() not in "".join(lines)


def test_in_dev_the_random_key_lasts_for_the_process() -> None:
    """Two dev apps in one process accept each other's tokens (the key is per process)."""
    build_app({"SECRET_KEY": ""}, env="dev")
    token = signer("links").sign("alice")
    build_app({"SECRET_KEY": None}, env="dev")
    try:
        assert signer("links").unsign(token) == "alice"
    finally:
        activate(None)


def test_in_dev_a_set_key_is_used() -> None:
    """dev with a key of its own signs with that key, not the random one."""
    build_app({"SECRET_KEY": SHORT_KEY}, env="dev")
    token = signer("links").sign("alice")
    build_app({"SECRET_KEY": SHORT_KEY}, env="staging")
    try:
        with pytest.raises(ConfigError, match="shorter than 32"):
            signer("links")
    finally:
        activate(None)
    build_app({"SECRET_KEY": ""}, env="dev")
    try:
        with pytest.raises(BadSignature):
            signer("links").unsign(token)
    finally:
        activate(None)
