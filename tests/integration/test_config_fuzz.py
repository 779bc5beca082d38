"""Item 5 of issue 7 and item 3 of issue 13: fuzzing the configuration loader.

Hypothesis generates ``OPTIONAL_COMPONENTS`` of two kinds, about half each:

- valid ones, which must start: every driver's options within their bounds, keys in any
  case, YAML booleans for ``LOAD``; components under ``LOAD: auto`` on closed local ports
  (skipped), under ``LOAD: no``, or connected to the session's Redis on database 14 (the
  drivers only PING it) or to Celery's in-memory broker;
- hostile ones: wrong types, unknown keys, odd URLs, unicode, huge values, nan/inf.

Then every top-level setting (issue 13): wrong types, out-of-range numbers, NaN, infinities,
negatives, huge strings, unicode, lists where scalars go and environment-variable style
strings, given as settings and as real ``OPA_`` variables.

Each is started the way an app starts (``build_app`` then the lifespan, under a
``TestClient``). The outcome must be a working app or an :class:`opa._errors.OpaError`,
never another exception type from inside a library, and never a hang: each example runs in
a thread with a hard bound. Hostile hosts are closed ports on 127.0.0.1 or ``.invalid``
names, and every timeout the strategies pick is at most 2 s.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import traceback
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from opa._app import create_app
from opa._errors import OpaError
from opa._masking import is_secret_key
from opa._settings_model import Settings
from opa.testing import NO_SETTINGS_DIR, build_app, free_port

# Nothing listens here: chosen once, so the examples (and derandomized CI runs) agree.
CLOSED = free_port()
MAX_TIMEOUT = 2.0
# Generous: a LOAD: yes component may spend its pre-check and its TIMEOUT, then disconnect.
EXAMPLE_BOUND = 20.0
HUGE = 100_000

DRIVERS = ["redis-walrus", "redis-aioredis", "mongodb-async-motor", "celery"]
MONGODB_DRIVERS = ["mongodb-async-motor", "mongodb-async-pymongo"]
REDIS_DRIVERS = ["redis-walrus", "redis-aioredis"]
FUZZ_REDIS_DB = 14  # the Redis database of this test; the drivers only PING it
VALID_EXAMPLES = 150
HOSTILE_EXAMPLES = 250
UNKNOWN_DRIVERS = ["no-such-driver", "REDIS-WALRUS", " celery ", "rédis", "redis_walrus", ""]

HOSTS = [
    f"127.0.0.1:{CLOSED}",
    "127.0.0.1:1",
    "host.invalid",
    f"host.invalid:{CLOSED}",
    "ünïcødé.invalid",
    "xn--nxa.invalid:6379",
    f"[::1]:{CLOSED}",
    "127.0.0.1:99999",
    "127.0.0.1:-1",
    "127.0.0.1:port",
    f"user:p%40ss:w@127.0.0.1:{CLOSED}",
    ":only-password@host.invalid",
    "[::1",
    "",
]
SCHEMES = ["redis", "rediss", "unix", "mongodb", "mongodb+srv", "amqp", "http", "", "ftp", "rëdis"]
PATHS = ["", "/", "/0", "/15", "/99", "/-1", "/abc", "/db?ssl=maybe", "//", "/ü?x=\x00", "#frag"]


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """*good* four times in five, else *bad*: most examples get past the first check."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda n: bad if n == 0 else good)


text = st.text(max_size=40)
long_text = st.one_of(
    st.text(max_size=200),
    st.integers(min_value=1_000, max_value=HUGE).map(lambda n: "x" * n),
    st.integers(min_value=1_000, max_value=HUGE // 4).map(lambda n: "é😀\x00\u202e" * n),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
    st.binary(max_size=20),
)
# Nested values of any shape, nesting kept shallow.
nested = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def urls(draw: st.DrawFn) -> Any:
    """A URL-ish string pointing nowhere reachable, or not a string at all."""
    kind = draw(st.integers(min_value=0, max_value=12))
    if kind == 0:
        return draw(nested)
    if kind == 1:
        host = draw(st.sampled_from(HOSTS))
        return f"redis://{host}/" + draw(long_text)
    if kind == 2:
        return draw(long_text)
    scheme = draw(st.sampled_from(SCHEMES))
    host = draw(st.sampled_from(HOSTS))
    path = draw(st.sampled_from(PATHS))
    prefix = f"{scheme}://" if scheme else ""
    return f"{prefix}{host}{path}"


def opts_for(driver: str) -> st.SearchStrategy[Any]:
    """OPTS as that driver reads them, with wrong types and unknown keys mixed in."""
    url_keys = {"celery": ["BROKER_URL", "BACKEND_URL"]}.get(driver, ["URL"])
    known: dict[str, st.SearchStrategy[Any]] = {key: urls() for key in url_keys}
    if driver == "celery":
        known["APP_NAME"] = st.one_of(text, long_text, nested)
        known["SETTINGS"] = st.one_of(
            st.dictionaries(
                st.sampled_from(
                    [
                        "task_serializer",
                        "accept_content",
                        "broker_url",
                        "result_backend",
                        "task_default_queue",
                        "worker_concurrency",
                        "BROKER_TRANSPORT_OPTIONS",
                        "no_such_setting",
                    ]
                )
                | text,
                nested,
                max_size=4,
            ),
            nested,
        )
    else:
        known["OPTIONS"] = nested
        known["DATABASE"] = nested
    extra = {key: value for key, value in known.items() if key not in url_keys}
    well_shaped = st.fixed_dictionaries({key: urls() for key in url_keys}, optional=extra)
    return mostly(
        well_shaped,
        st.dictionaries(st.sampled_from(sorted(known)) | text, nested, max_size=4) | nested,
    )


loads = mostly(
    st.sampled_from(["auto", "yes", "no", "YES", " Auto ", True, False, None]),
    st.sampled_from(["maybe", "", "ü", 1, 0, [], {}]) | scalars,
)
timeouts = mostly(
    st.floats(min_value=0.01, max_value=MAX_TIMEOUT) | st.integers(1, int(MAX_TIMEOUT)),
    st.sampled_from(["1.5", "0.5", "abc", "", "1e9", "nan", "inf", "-1", 0, -1, 3601, 1e300])
    | st.sampled_from([math.nan, math.inf, -math.inf, True, False, [], {}, None]),
)


@st.composite
def component(draw: st.DrawFn) -> Any:
    """One entry of OPTIONAL_COMPONENTS: mostly well-shaped, sometimes anything at all."""
    if draw(st.integers(min_value=0, max_value=14)) == 0:
        return draw(nested)
    driver = draw(
        mostly(st.sampled_from(DRIVERS), st.sampled_from(UNKNOWN_DRIVERS) | st.just(None) | nested)
    )
    optional: dict[str, st.SearchStrategy[Any]] = {
        "LOAD": loads,
        "TIMEOUT": timeouts,
        "OPTS": opts_for(driver if isinstance(driver, str) else "redis-walrus"),
    }
    entry: dict[Any, Any] = draw(st.fixed_dictionaries({}, optional=optional))
    if driver is not None or draw(st.booleans()):
        entry["DRIVER"] = driver
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        entry[draw(st.sampled_from(["URL", "opts ", "Timeout", "DYNACONF_MERGE"]) | text)] = draw(
            nested
        )
    # Keys in any case: opa reads them case-insensitively.
    if draw(st.booleans()):
        entry = {(k.lower() if isinstance(k, str) else k): v for k, v in entry.items()}
    return entry


names = st.sampled_from(["redis", "walrus", "celery", "MONGO", "ünï", "a b", "", "x" * 300]) | text
optional_components = mostly(st.dictionaries(names, component(), min_size=1, max_size=2), nested)


# --- valid configurations, which must start --------------------------------------------


def case_variants(entry: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """*entry* with its keys as written, lower-cased or capitalised: opa ignores their case."""
    return st.sampled_from([str.upper, str.lower, str.capitalize]).map(
        lambda change: {change(key): value for key, value in entry.items()}
    )


valid_timeouts = st.floats(min_value=0.05, max_value=MAX_TIMEOUT) | st.integers(1, 2)
# A component that must connect gets room for a busy shared Redis.
roomy_timeouts = st.floats(min_value=1.0, max_value=MAX_TIMEOUT) | st.just(2)
valid_loads_off = st.sampled_from(["no", "NO", " No ", False])
client_names = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)


def redis_options(url: str) -> st.SearchStrategy[dict[str, Any]]:
    """Every RedisOptions key within its bounds, huge pools and unicode-free names included."""
    return st.fixed_dictionaries(
        {"URL": st.just(url)},
        optional={
            # Up to the option's bound: a larger pool is refused (redis-py's sync pool
            # reserves one slot per connection up front, so 10**9 took minutes).
            "MAX_CONNECTIONS": st.integers(1, 10_000),
            "CONNECT_TIMEOUT": roomy_timeouts,
            "SOCKET_TIMEOUT": roomy_timeouts,
            # 0 or at least 1: shorter intervals are refused (below ~1 ms redis-py ran the
            # check inside its handshake and failed against Redis < 7.2).
            "HEALTH_CHECK_INTERVAL": st.just(0) | st.floats(1, 1e6),
            "RETRIES": st.integers(0, 3),
            "DECODE_RESPONSES": st.booleans(),
            "CLIENT_NAME": client_names | st.none(),
        },
    ).map(lambda opts: {**opts, "RETRY_BACKOFF_BASE": 0.01, "RETRY_BACKOFF_CAP": 0.5})


def celery_options(broker: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"BROKER_URL": st.just(broker)},
        optional={
            "APP_NAME": st.text(min_size=1, max_size=60).filter(str.strip),
            "SETTINGS": st.fixed_dictionaries(
                {},
                optional={
                    "task_default_queue": st.text(min_size=1, max_size=40),
                    "worker_concurrency": st.integers(1, 64),
                    "broker_connection_timeout": st.floats(0.1, 1.0),
                    "task_serializer": st.just("json"),
                },
            ),
        },
    )


def valid_component(redis_url: str, closed_url: str) -> st.SearchStrategy[dict[str, Any]]:
    """One component that must not stop start-up: connected, skipped or off."""
    connected = st.one_of(
        st.sampled_from(REDIS_DRIVERS).flatmap(
            lambda driver: st.fixed_dictionaries(
                {
                    "DRIVER": st.just(driver),
                    "LOAD": st.sampled_from(["yes", "auto", True, " AUTO "]),
                    "OPTS": redis_options(redis_url),
                },
                optional={"TIMEOUT": roomy_timeouts},
            )
        ),
        st.fixed_dictionaries(
            {
                "DRIVER": st.just("celery"),
                "LOAD": st.sampled_from(["yes", "auto"]),
                "OPTS": st.sampled_from(["memory://", redis_url]).flatmap(celery_options),
            }
        ),
    )
    skipped = st.fixed_dictionaries(
        {
            "DRIVER": st.sampled_from([*REDIS_DRIVERS, *MONGODB_DRIVERS, "celery"]),
            "LOAD": st.sampled_from(["auto", None]),
        },
        optional={"TIMEOUT": valid_timeouts},
    ).map(lambda entry: {**entry, "OPTS": closed_opts(entry["DRIVER"], closed_url)})
    off = st.fixed_dictionaries(
        {"LOAD": valid_loads_off},
        optional={
            "DRIVER": st.sampled_from([*DRIVERS, "no-such-driver"]),
            "OPTS": st.dictionaries(text, nested, max_size=3),
        },
    )
    return st.one_of(connected, skipped, off).flatmap(case_variants)


def closed_opts(driver: str, closed_url: str) -> dict[str, Any]:
    """Options of *driver* aimed at a port where nothing listens."""
    host = urlsplit(closed_url).netloc
    if driver == "celery":
        return {"BROKER_URL": f"redis://{host}/0", "BACKEND_URL": f"redis://{host}/1"}
    if driver in MONGODB_DRIVERS:
        return {"URL": f"mongodb://{host}/fuzz", "SERVER_SELECTION_TIMEOUT": 1}
    return {"URL": closed_url}


VALID_NAMES = ["cache", "Queue", "ünïcødé", "store_2", "Ωmega", "tasks", "x" * 200]


def valid_components(redis_url: str) -> st.SearchStrategy[dict[str, Any]]:
    """OPTIONAL_COMPONENTS that must start; names unique whatever their case."""
    closed = f"redis://127.0.0.1:{CLOSED}/0"
    entry = valid_component(redis_url, closed)
    return st.dictionaries(st.sampled_from(VALID_NAMES), entry, min_size=0, max_size=3)


def fuzz_redis_url(redis_url: str) -> str:
    """The session's Redis server, on this test's own database."""
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{FUZZ_REDIS_DB}", "", ""))


# --- running one ------------------------------------------------------------------------


Outcome = tuple[str, BaseException | None, list[str]]


def start(settings_value: dict[str, Any]) -> Outcome:
    """Build the app and run its lifespan (with one /health request); never raises.

    Returns the outcome, the error, and the status of each component while it ran.
    """
    try:
        app = build_app(settings_value)
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/health")
            assert response.status_code in (200, 503), response.text
            statuses = [str(component.status) for component in app.state.opa.components]
        return "started", None, statuses
    except BaseException as exc:  # judged by the caller
        return "failed", exc, []


def start_bounded(settings_value: dict[str, Any]) -> Outcome:
    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(start(settings_value)), daemon=True)
    thread.start()
    thread.join(EXAMPLE_BOUND)
    if thread.is_alive():
        raise AssertionError(f"start-up did not finish within {EXAMPLE_BOUND:g}s (a hang)")
    return outcome[0]


def fuzz(kind: str, strategy: st.SearchStrategy[Any], examples: int, tally: Counter[str]) -> None:
    """Start *examples* configurations drawn from *strategy*, counting outcomes in *tally*.

    Every one must give a working app or an OpaError; a valid one must start.
    """

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,  # each example is bounded by start_bounded instead
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    @given(strategy)
    def check(components: Any) -> None:
        outcome, error, statuses = start_bounded(
            {
                "OPTIONAL_COMPONENTS": components,
                "COMPONENT_TIMEOUT": MAX_TIMEOUT,
                "COMPONENT_CHECK_TIMEOUT": 1,
                "SHUTDOWN_TIMEOUT": MAX_TIMEOUT,
                "LOG_LEVEL": "CRITICAL",
            }
        )
        label = outcome if error is None else type(error).__name__
        event(f"{kind}: {label}")
        tally[f"{kind} {label}"] += 1
        tally.update(f"component {status}" for status in statuses)
        if error is not None:
            shown = "".join(traceback.format_exception(error))
            assert kind == "hostile", f"a valid configuration did not start:\n{shown}"
            assert isinstance(error, OpaError), shown
            assert str(error).strip(), f"{type(error).__name__} with an empty message"
        else:
            assert outcome == "started"

    check()


def test_start_up_gives_a_working_app_or_an_opa_error(redis_url: str) -> None:
    """Any OPTIONAL_COMPONENTS: a working app, or an OpaError; no library exception, no hang.

    Valid configurations must start, and at least a third of all examples do.
    """
    tally: Counter[str] = Counter()
    began = time.monotonic()
    fuzz("valid", valid_components(fuzz_redis_url(redis_url)), VALID_EXAMPLES, tally)
    fuzz("hostile", optional_components, HOSTILE_EXAMPLES, tally)
    outcomes = {key: n for key, n in tally.items() if not key.startswith("component ")}
    total = sum(outcomes.values())
    started = sum(n for key, n in outcomes.items() if key.endswith(" started"))
    print(
        f"\nconfiguration fuzzing: {total} examples in {time.monotonic() - began:.0f} s, "
        f"{started} started, {total - started} refused; {dict(sorted(tally.items()))}"
    )
    assert started * 3 >= total, f"only {started} of {total} examples started"


# --- top-level settings (issue 13) -----------------------------------------------------

TOP_LEVEL_EXAMPLES = 250
VARIABLE_EXAMPLES = 150
# LOG_LEVEL is drawn apart: a valid TRACE would flood the test's output.
TOP_LEVEL_KEYS = sorted(set(Settings.model_fields) - {"OPTIONAL_COMPONENTS", "LOG_LEVEL"})
PLAUSIBLE: dict[str, list[Any]] = {
    "seconds": [0.05, 1, 2, "1.5", 3600, 0, -1, 3601, math.nan, math.inf, -math.inf, "nan"],
    "count": [1, 256, 1024, 8000, 65535, 65536, 2**31, 2**64, 0, -1, 1_048_576, 1_048_577],
    "switch": [True, False, "yes", "off", "true", 1, 0, 2, "maybe", None],
    "path": ["/docs", "/", "", None, "docs", "/a b", "/{x}", "/{x:bogus}", "/é/ü", "/?q", "//"],
    "text": ["opa", "", "ü" * 50, "x" * 10_000, 1, 1.5, None],
    "list": [[], ["GET"], "GET", ["*"], ["https://a.example"], "", None, ["a", 1], [[1]]],
}


def key_kind(key: str) -> str:
    """Which plausible values fit *key*, read from the model's annotation and name."""
    annotation = str(Settings.model_fields[key].annotation)
    if "float" in annotation:
        return "seconds"
    if "int" in annotation:
        return "count"
    if "bool" in annotation:
        return "switch"
    if "list" in annotation:
        return "list"
    if key.endswith(("_URL", "_PREFIX")):
        return "path"
    return "text"


ENV_STYLE = ["8000", "true", "[1,2]", "nan", "-inf", "1e9", "1e400", "0x10", "{a=1}", "'x'"]
DYNACONF_TOKENS = ["@int 7", "@int abc", "@json [1", "@format {this.PORT}", "@del", "@none"]
env_style = st.sampled_from([*ENV_STYLE, *DYNACONF_TOKENS, " ", "\t", "[]", "{}"])
hostile_scalars = st.one_of(
    scalars,
    long_text,
    env_style,
    st.floats(min_value=-1e308, max_value=1e308) | st.integers(-(2**200), 2**200),
    st.lists(scalars, max_size=3),
    st.dictionaries(text, scalars, max_size=2),
)


@st.composite
def top_level_settings(draw: st.DrawFn) -> dict[str, Any]:
    """One to four top-level settings, each plausible for its key or hostile."""
    keys = draw(st.lists(st.sampled_from(TOP_LEVEL_KEYS), min_size=1, max_size=4, unique=True))
    chosen: dict[str, Any] = {}
    for key in keys:
        plausible = st.sampled_from(PLAUSIBLE[key_kind(key)])
        chosen[key] = draw(mostly(plausible, hostile_scalars))
    if draw(st.integers(0, 9)) == 0:
        chosen["LOG_LEVEL"] = draw(st.sampled_from(["critical", "LOUD", "", 5, None, ["ERROR"]]))
    return chosen


# What an OPA_ variable can hold: no NUL, no lone surrogate.
variable_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60
)


@st.composite
def top_level_variables(draw: st.DrawFn) -> dict[str, str]:
    """One to three OPA_ variables as a shell would set them."""
    keys = draw(st.lists(st.sampled_from(TOP_LEVEL_KEYS), min_size=1, max_size=3, unique=True))
    values = st.one_of(env_style, variable_text, st.sampled_from(["1", "0", "-1", "3601"]))
    return {f"OPA_{key}": draw(values) for key in keys}


def started_and_served(app: Any) -> None:
    """Run the lifespan; /health and the schema answer without a server error."""
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/health").status_code in (200, 503)
        if app.openapi_url:
            assert client.get(app.openapi_url).status_code < 500
        if app.docs_url:
            assert client.get(app.docs_url).status_code < 500


def outcome_of(build: Any) -> Outcome:
    """Build and serve an app with *build*; never raises. Bounded like the component fuzz."""

    def attempt() -> Outcome:
        try:
            started_and_served(build())
            return "started", None, []
        except BaseException as exc:  # judged by the caller
            return "failed", exc, []

    outcome: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcome.append(attempt()), daemon=True)
    thread.start()
    thread.join(EXAMPLE_BOUND)
    if thread.is_alive():
        raise AssertionError(f"start-up did not finish within {EXAMPLE_BOUND:g}s (a hang)")
    return outcome[0]


def judge(kind: str, chosen: dict[str, Any], outcome: Outcome, tally: Counter[str]) -> None:
    """A working app, or an OpaError whose message is one line and names a setting it got;
    a secret-named setting's value never appears in it."""
    result, error, _ = outcome
    label = result if error is None else type(error).__name__
    event(f"{kind}: {label}")
    tally[f"{kind} {label}"] += 1
    if error is None:
        return
    shown = "".join(traceback.format_exception(error))
    assert isinstance(error, OpaError), shown
    message = str(error)
    assert message.strip() and "\n" not in message, shown
    named = [key for key in chosen if key.removeprefix("OPA_") in message]
    assert named or message.startswith("cannot read the settings"), shown
    shown_elsewhere = " ".join(str(v) for k, v in chosen.items() if not is_secret_key(k))
    for key, value in chosen.items():
        # Another setting of the example may hold the same text, and show it.
        secret = is_secret_key(key) and isinstance(value, str) and len(value) > 3
        if secret and value not in shown_elsewhere:
            # What a setting expects is opa's wording ("expected true or false"), not a value.
            found = re.sub(r"expected [^;]*; found", "found", message)
            assert value not in found, f"the value of {key} was shown: {message}"


def fuzz_top_level(
    kind: str, strategy: st.SearchStrategy[Any], examples: int, tally: Counter[str], build: Any
) -> None:
    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    @given(strategy)
    def check(chosen: dict[str, Any]) -> None:
        judge(kind, chosen, outcome_of(lambda: build(chosen)), tally)

    check()


def build_with_settings(chosen: dict[str, Any]) -> Any:
    return build_app({"LOG_LEVEL": "CRITICAL", **chosen})


def build_with_variables(chosen: dict[str, str]) -> Any:
    """create_app with *chosen* as real OPA_ variables (and no settings folder)."""
    saved = {name: os.environ.get(name) for name in chosen}
    os.environ.update(chosen)
    try:
        quiet = {"OPTIONAL_COMPONENTS": {}, "PLUGIN_ENTRY_POINTS": False, "LOG_LEVEL": "CRITICAL"}
        return create_app(quiet, settings_dir=NO_SETTINGS_DIR)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_top_level_settings_give_a_working_app_or_one_line() -> None:
    """Any top-level settings, as settings or OPA_ variables: a working app or one OpaError
    line naming the setting; never a traceback from a library, never a hang."""
    tally: Counter[str] = Counter()
    began = time.monotonic()
    fuzz_top_level("settings", top_level_settings(), TOP_LEVEL_EXAMPLES, tally, build_with_settings)
    fuzz_top_level(
        "variables", top_level_variables(), VARIABLE_EXAMPLES, tally, build_with_variables
    )
    total = sum(tally.values())
    started = sum(n for key, n in tally.items() if key.endswith(" started"))
    print(
        f"\ntop-level settings fuzzing: {total} examples in {time.monotonic() - began:.0f} s, "
        f"{started} started, {total - started} refused; {dict(sorted(tally.items()))}"
    )
    assert started and total - started, "both outcomes must occur, else the strategies are off"
