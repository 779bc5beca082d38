"""Masking: every credential masked whole, in time linear in the text, whatever the text."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

import pytest

from opa._masking import MASK, is_secret_key, mask_secrets, mask_value
from support import cpu_seconds

# Passwords a user may really have, each hostile to some parser. Every 4-character window
# of each holds a character ordinary output does not, so a window found in an output can
# only be a leaked fragment.
LONG = "".join(f"ø{chr(0x41 + i % 26)}{'@:/%#? '[i % 7]}" for i in range(334))[:1000]
PASSWORDS = {
    "url specials": "p@ß:w/ø#?%4ø@",
    "spaces": "wø ¶ sp€ces ø",
    "quotes": "ø'q\"uø'te\"ø",
    "unicode": "пароль-密码-ø",
    "percent": "%40ø%3A%2Fø",
    "url inside": "ø@ß://ø:ß@ø",
    "pairs inside": "ø=1&tøken=ø",
    "long": LONG,
}
assert len(LONG) == 1000


def leaks(secret: str, output: str, surrounding: str = "") -> list[str]:
    """The secret, or any 4-character piece of it not in *surrounding*, found in *output*."""
    pieces = {secret} | {secret[i : i + 4] for i in range(len(secret) - 3)}
    return sorted(piece for piece in pieces if piece in output and piece not in surrounding)


def url_forms(password: str) -> list[str]:
    """The password in URLs as users write them: raw, percent-encoded, second of two hosts."""
    encoded = quote(password, safe="")
    return [
        f"redis://:{password}@cache.internal:6379/0",
        f"redis://default:{password}@cache.internal:6379/0",
        f"amqp://guest:{encoded}@broker.internal:5672//",
        f"mongodb://u:{encoded}@h1:27017,u2:{password}@h2:27017/db?replicaSet=rs",
        f"postgresql://app@db.internal/app?password={encoded}&sslmode=require",
    ]


def free_text_forms(password: str) -> list[str]:
    """The password as key/value text: Python reprs, JSON, headers, and plain NAME=value."""
    escaped = json.dumps(password)
    forms = [
        f"connecting with password={password!r} to the cache",
        f"settings {{'SECRET_KEY': {password!r}, 'DEBUG': True}}",
        json.dumps({"user": "app", "password": password, "port": 5432}),
        json.dumps({"api_key": password}, ensure_ascii=False),
        f"password: {escaped}",
        f'db_password = "{password}"',
        f"Authorization: Bearer {password}",
        f"Authorization: Basic {password}",
        f"headers {{'authorization': {('Bearer ' + password)!r}}}",
        f"Cookie: theme=dark; sid={password}; lang=en",
        f"Set-Cookie: theme=dark; Path=/\nSet-Cookie: sid={password}; Path=/; HttpOnly",
        f"connecting with user='app' pass={password!r}",
        f"{{'DB_PASS': {password!r}}}",
    ]
    if not any(char.isspace() or char in "'\"&" for char in password):
        # Unquoted, a value ends at a blank, a quote or "&" (docs/configuration.md).
        forms += [f"SECRET_KEY={password} next", f"token={password}&page=2"]
        forms += [f"pass={password} next", f'"GET /maps?key={password}&zoom=3 HTTP/1.1" 200']
    return forms


@pytest.mark.parametrize("name", PASSWORDS)
def test_hostile_passwords_are_masked_whole_in_urls(name: str) -> None:
    """Each hostile password, raw or percent-encoded, leaves no piece of itself in a URL."""
    password = PASSWORDS[name]
    for url in url_forms(password):
        masked = mask_secrets(f"failed to reach {url}: connection refused")
        assert not leaks(password, masked), masked
        assert not leaks(quote(password, safe=""), masked), masked
        assert "://" in masked and "connection refused" in masked


@pytest.mark.parametrize("name", PASSWORDS)
def test_hostile_passwords_are_masked_whole_in_free_text(name: str) -> None:
    """Each hostile password as a secret-named value (repr, JSON, header) is masked whole."""
    password = PASSWORDS[name]
    for text in free_text_forms(password):
        masked = mask_secrets(f"line one\n{text}\nline three")
        assert not leaks(password, masked), (text, masked)
        assert not leaks(json.dumps(password)[1:-1], masked), (text, masked)
        assert masked.startswith("line one\n") and masked.endswith("\nline three")


def test_every_form_of_every_password_on_one_line_is_masked() -> None:
    """URLs and key/values side by side on one line: a user-info that runs into the next
    value (the last "@" of the line is in it) still leaves that value masked.
    """
    forms = [form for p in PASSWORDS.values() for form in url_forms(p) + free_text_forms(p)]
    masked = mask_secrets("cannot reach " + " ".join(forms))
    for password in PASSWORDS.values():
        assert not leaks(password, masked), masked


@pytest.mark.parametrize("name", PASSWORDS)
def test_hostile_passwords_are_masked_in_settings(name: str) -> None:
    """Secret-named settings are masked whole; URL and free-text settings lose the password."""
    password = PASSWORDS[name]
    settings = {
        "SECRET_KEY": password,
        "DB_PASSWORD": password,
        "API_TOKENS": [password, password],
        "OPTIONAL_COMPONENTS": {"CACHE": {"OPTS": {"URL": url_forms(password)[0]}}},
        "NOTE": free_text_forms(password)[0],
    }
    masked = mask_value("ROOT", settings)
    assert masked["SECRET_KEY"] == masked["DB_PASSWORD"] == MASK
    assert masked["API_TOKENS"] == [MASK, MASK]
    assert not leaks(password, json.dumps(masked, ensure_ascii=False))
    assert masked["OPTIONAL_COMPONENTS"]["CACHE"]["OPTS"]["URL"].endswith("cache.internal:6379/0")


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("redis://user:pw@host", "redis://user:***@host"),
        ("redis://:pw@host:1/0", "redis://:***@host:1/0"),
        ("redis://:pre@LEAKED@host:6379", "redis://:***@host:6379"),
        ("mongodb://u:pw@h1,u2:pw2@h2/db", "mongodb://u:***@h2/db"),
        ("mongodb://u:p%40ss@a:1,b:2/db?authSource=x", "mongodb://u:***@a:1,b:2/db?authSource=x"),
        ("postgresql://h/db?password=pw&x=1", "postgresql://h/db?password=***&x=1"),
        ("https://ghp_TOKEN@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("a redis://:p1@h1 and amqp://u:p2@h2 b", "a redis://:***@h1 and amqp://u:***@h2 b"),
        ("SECRET_KEY=abc next", "SECRET_KEY=*** next"),
        ("{'password': 'x y'}", "{'password': '***'}"),
        ('{"api_key": "k\\"ey", "n": 1}', '{"api_key": "***", "n": 1}'),
        ("X-Api-Key: abc", "X-Api-Key: ***"),
        ("Authorization: Bearer a.b.c", "Authorization: Bearer ***"),
        ("Cookie: theme=dark; sid=S3CRET; x=1", "Cookie: ***"),
        (
            "[(b'cookie', b'sid=S3CRET'), (b'authorization', b'Basic dXM='), (b'host', b'h')]",
            "[(b'cookie', b'***'), (b'authorization', b'***'), (b'host', b'h')]",
        ),
        ("[('password', 'hunter2'), ('user', 'bob')]", "[('password', '***'), ('user', 'bob')]"),
        ("Set-Cookie: sid=S3CRET; Path=/; HttpOnly\nnext", "Set-Cookie: ***\nnext"),
        ('{"cookie": "sid=S3CRET; x=1", "n": 1}', '{"cookie": "***", "n": 1}'),
        ("pass=hunter2 next", "pass=*** next"),
        ("DBPASS: hunter2", "DBPASS: ***"),
        ("/maps?key=AIza5ecret&zoom=3", "/maps?key=***&zoom=3"),
        ("sent Bearer a.b.c upstream", "sent Bearer *** upstream"),
        ("password='unterminated\nnext", "password='***\nnext"),
        ("İstanbul PASSWORD=x İ token=y", "İstanbul PASSWORD=*** İ token=***"),
        ("tokens=['a', 'b'] next", "tokens=[***] next"),
        ('  "API_TOKENS": [\n    "***"\n  ],', '  "API_TOKENS": [\n    "***"\n  ],'),
    ],
)
def test_masked_forms_keep_scheme_host_and_structure(raw: str, masked: str) -> None:
    """The masked form still names scheme, user and host, and keeps quotes and separators."""
    assert mask_secrets(raw) == masked


@pytest.mark.parametrize(
    "text",
    [
        "redis://host:6379/0",
        "see https://api.example.com/users/bob@example.com for details",
        '127.0.0.1:5000 - "GET /items?page=2&size=50 HTTP/1.1" 200',
        "the password was rejected",
        "tokens are counted per minute",
        "CORS_ALLOW_CREDENTIALS: false",
        "cache key=user:42 missed; routing key: tasks.add",
        "42 passed: 3 skipped, passive=1",
        '  "COOKIE_SECURE": true,',
        "SESSION_ID=null",
        "2026-11-30 14:27:49.123 | INFO     | opa.components:96 - component 'cache' connected",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    """Lines with no credential, an "@" in a URL's path included, pass through as they are."""
    assert mask_secrets(text) == text


def test_masking_twice_changes_nothing_more() -> None:
    """Masked text masked again is the same: the CLI masks values, then whole outputs."""
    text = "\n".join(url_forms("p@ss") + free_text_forms("p@ss") + ["redis://password:x@h/0"])
    once = mask_secrets(text)
    assert mask_secrets(once) == once


def test_everything_under_a_secret_named_key_is_masked() -> None:
    """A mapping under a secret-looking name is masked leaf by leaf; booleans stay."""
    value = {"CREDENTIALS": {"user": "bob", "pass": "x y", "ports": [1, 2], "on": True}}
    masked = mask_value("ROOT", value)
    assert masked == {
        "CREDENTIALS": {"user": MASK, "pass": MASK, "ports": [MASK, MASK], "on": True}
    }


def test_secret_looking_names() -> None:
    """Setting names that say they hold a secret are recognised, others are not."""
    secret = ["SECRET_KEY", "DB_PASSWORD", "passwd", "MYSQL_PWD", "API_KEY", "x-api-key", "TOKEN"]
    secret += ["AWS_SECRET_ACCESS_KEY", "PRIVATE_KEY", "SESSION_ID", "AUTHORIZATION", "COOKIE"]
    secret += ["PASS", "SMTP_PASS", "DBPASS"]
    plain = ["URL", "HOST", "PORT", "LOG_LEVEL", "PLUGIN_PATHS", "MAX_REQUEST_BODY", "DEBUG"]
    plain += ["KEY_PREFIX", "CACHE_KEY", "PASSIVE_MODE"]
    assert all(is_secret_key(name) for name in secret)
    assert not any(is_secret_key(name) for name in plain)


# One name for each of the pattern's names: each holds a marker of the fast path, or a line
# holding only it would pass unmasked.
EVERY_SECRET_NAME = [
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "pass",
    "secret",
    "token",
    "credential",
    "bearer",
    "authorization",
    "cookie",
    "api-key",
    "private_key",
    "accesskey",
    "?key",
    "session_id",
]


@pytest.mark.parametrize("name", EVERY_SECRET_NAME)
def test_every_secret_name_is_masked_past_the_fast_path(name: str) -> None:
    """Each name the pattern knows, alone on its line, gets its value masked."""
    assert mask_secrets(f"{name}=s3cr3t") == f"{name}={MASK}"
    assert mask_secrets(f"{name.upper()}: s3cr3t") == f"{name.upper()}: {MASK}"


MB = 1_000_000
# Each repeats a short piece to 1 MB: long runs, and many of every marker masking anchors on.
HOSTILE_TEXTS: dict[str, Callable[[int], str]] = {
    "letters": lambda n: "a" * n,
    "digits": lambda n: "7" * n,
    "x= and letters": lambda n: "x=" + "a" * (n - 2),
    "at signs": lambda n: "@" * n,
    "equals": lambda n: "=" * n,
    "colons": lambda n: ":" * n,
    "schemes": lambda n: "a://" * (n // 4),
    "scheme then at signs": lambda n: "redis://:" + "@" * (n - 9),
    "scheme then colons": lambda n: "redis://" + ":" * (n - 8),
    "names": lambda n: "password" * (n // 8),
    "names and equals": lambda n: "token=" * (n // 6),
    "open quote": lambda n: "password='" + "a" * (n - 10),
    "escapes": lambda n: 'password="' + "\\" * (n - 10),
    "quoted values": lambda n: 'password="a" ' * (n // 13),
    "unclosed quotes": lambda n: "password='a\n" * (n // 12),
    "escaped quotes": lambda n: 'token=\\"a\\" ' * (n // 12),
    "bearer": lambda n: "Bearer " * (n // 7),
    "cookie headers": lambda n: "Cookie: " * (n // 8),
    "cookie lines": lambda n: "Cookie: a=b\n" * (n // 12),
    "pass names": lambda n: "pass=" * (n // 5),
    "key parameters": lambda n: "?key=" * (n // 5),
    "mixed": lambda n: ("a://b:c@d=password=e @" * (n // 22 + 1))[:n],
}


@pytest.mark.parametrize("name", HOSTILE_TEXTS)
def test_hostile_text_of_1_mb_is_masked_correctly(name: str) -> None:
    """1 MB of each hostile pattern, with a URL and a key/value after it, is masked right."""
    body = HOSTILE_TEXTS[name](MB)
    masked = mask_secrets(f"{body}\nredis://:s3cr3t@cache:6379/0 SECRET_KEY=k3y")
    assert masked.endswith("\nredis://:***@cache:6379/0 SECRET_KEY=***")
    assert "s3cr3t" not in masked and "k3y" not in masked


def test_hostile_runs_are_masked_as_expected() -> None:
    """Runs that look like credentials are masked to what a client would take as one."""
    assert mask_secrets("x=" + "a" * 60_000) == "x=" + "a" * 60_000
    assert mask_secrets("redis://:" + "@" * 1000 + "h") == "redis://:***@h"
    assert mask_secrets("password=" + "a" * 1000 + " end") == "password=*** end"
    assert mask_secrets("a://" * 1000) == "a://" * 1000


@pytest.mark.parametrize("name", HOSTILE_TEXTS)
def test_masking_cost_grows_linearly(name: str) -> None:
    """Ten times the text costs about ten times as much, never a hundred (quadratic)."""
    small, large = HOSTILE_TEXTS[name](MB // 10), HOSTILE_TEXTS[name](MB)
    small_cost = max(cpu_seconds(lambda: mask_secrets(small)), 1e-4)
    large_cost = cpu_seconds(lambda: mask_secrets(large))
    assert large_cost < 35 * small_cost, f"{small_cost:.4f} s -> {large_cost:.4f} s"
