"""Item 5 of issue 7: fuzzing the configuration loader.

Hypothesis generates ``OPTIONAL_COMPONENTS`` with wrong types, unknown keys, odd URLs,
unicode and huge values, for every installed driver and for unknown ones. Each is started
the way an app starts (``build_app`` then the lifespan, under a ``TestClient``). The outcome
must be a working app or an :class:`opa.errors.OpaError`, never another exception type from
inside a library, and never a hang: each example runs in a thread with a hard bound.

Nothing connects anywhere: every host is a closed port on 127.0.0.1 or a ``.invalid`` name,
and every timeout the strategy picks is at most 2 s.
"""

from __future__ import annotations

import math
import threading
import traceback
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from opa.errors import OpaError
from opa.testing import build_app
from opa.testing.services import free_port

# Nothing listens here: chosen once, so the examples (and derandomized CI runs) agree.
CLOSED = free_port()
MAX_TIMEOUT = 2.0
# Generous: a LOAD: yes component may spend its pre-check and its TIMEOUT, then disconnect.
EXAMPLE_BOUND = 20.0
HUGE = 100_000

DRIVERS = ["redis-walrus", "redis-aioredis", "mongodb-async-motor", "celery"]
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


def start(settings_value: dict[str, Any]) -> tuple[str, BaseException | None]:
    """Build the app and run its lifespan (with one /health request); never raises."""
    try:
        app = build_app(settings_value)
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/health")
            assert response.status_code in (200, 503), response.text
        return "started", None
    except BaseException as exc:  # judged by the caller
        return "failed", exc


def start_bounded(settings_value: dict[str, Any]) -> tuple[str, BaseException | None]:
    outcome: list[tuple[str, BaseException | None]] = []
    thread = threading.Thread(target=lambda: outcome.append(start(settings_value)), daemon=True)
    thread.start()
    thread.join(EXAMPLE_BOUND)
    if thread.is_alive():
        raise AssertionError(f"start-up did not finish within {EXAMPLE_BOUND:g}s (a hang)")
    return outcome[0]


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,  # each example is bounded by start_bounded instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
@given(optional_components)
def test_start_up_gives_a_working_app_or_an_opa_error(components: Any) -> None:
    """Any OPTIONAL_COMPONENTS: a working app, or an OpaError; no library exception, no hang."""
    outcome, error = start_bounded(
        {
            "OPTIONAL_COMPONENTS": components,
            "COMPONENT_TIMEOUT": MAX_TIMEOUT,
            "COMPONENT_CHECK_TIMEOUT": 1,
            "SHUTDOWN_TIMEOUT": MAX_TIMEOUT,
            "LOG_LEVEL": "CRITICAL",
        }
    )
    event(outcome if error is None else f"{outcome}: {type(error).__name__}")
    if error is not None:
        assert isinstance(error, OpaError), "".join(traceback.format_exception(error))
        assert str(error).strip(), f"{type(error).__name__} with an empty message"
    else:
        assert outcome == "started"
