"""Options, defaults and declarations of the celery driver; no server is needed here."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

import pytest
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from opa import OptionsError
from opa.testing import make_driver
from opa_driver_celery import SAFE_DEFAULTS, CeleryDriver, CeleryOptions
from opa_driver_celery.options import REDIS_EXTRA

BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def driver(**opts: Any) -> CeleryDriver:
    """A celery driver whose OPTS went through opa's own validation, as configuration's do."""
    return make_driver(CeleryDriver, {"BROKER_URL": BROKER, **opts}, "celery")


def refused(**opts: Any) -> str:
    """The message of the OptionsError that *opts* cause."""
    with pytest.raises(OptionsError) as caught:
        driver(**opts)
    return str(caught.value)


def test_app_defaults_are_json_only_with_late_acks() -> None:
    """A new app serialises JSON only, acknowledges late and hands back tasks of lost workers."""
    celery = driver()
    celery.connect()
    try:
        conf = celery.instance.conf
        assert conf.task_serializer == conf.result_serializer == "json"
        assert list(conf.accept_content) == ["json"]
        assert list(conf.result_accept_content) == ["json"]
        assert conf.task_acks_late is True
        assert conf.task_reject_on_worker_lost is True
        assert celery.instance.main == "tasks"
    finally:
        celery.disconnect()


def test_settings_pass_through_in_any_case() -> None:
    """SETTINGS reach app.conf under Celery's lower-case names, after the defaults."""
    celery = driver(
        APP_NAME="billing",
        SETTINGS={"TASK_DEFAULT_QUEUE": "billing", "worker_prefetch_multiplier": 1},
    )
    celery.connect()
    try:
        assert celery.instance.main == "billing"
        assert celery.instance.conf.task_default_queue == "billing"
        assert celery.instance.conf.worker_prefetch_multiplier == 1
    finally:
        celery.disconnect()


@pytest.mark.parametrize(
    ("settings", "culprit"),
    [
        ({"accept_content": ["json", "pickle"]}, "accept_content"),
        ({"task_serializer": "pickle"}, "task_serializer"),
        ({"result_accept_content": "application/x-python-serialize"}, "result_accept_content"),
    ],
)
def test_settings_that_enable_pickle_are_refused(settings: dict[str, Any], culprit: str) -> None:
    """A SETTINGS override that lets pickle in is an options error naming the setting."""
    message = refused(SETTINGS=settings)
    assert "'celery'" in message and "SETTINGS" in message and culprit in message
    assert "pickle" in message


def test_unknown_celery_settings_are_refused() -> None:
    """A misspelt Celery setting is named in the error instead of being ignored."""
    message = refused(SETTINGS={"task_serialiser": "json"})
    assert "task_serialiser" in message


def test_settings_must_be_a_mapping_with_string_keys() -> None:
    """SETTINGS that are not a mapping of names are refused."""
    assert "mapping" in refused(SETTINGS=["task_acks_late"])
    assert "mapping" in refused(SETTINGS={1: "x"})


def test_urls_in_settings_are_refused() -> None:
    """The broker and backend URLs come from their own options, never from SETTINGS."""
    message = refused(SETTINGS={"broker_url": "redis://elsewhere"})
    assert "broker_url" in message and "BROKER_URL" in message


def test_unknown_options_and_a_missing_broker_are_refused() -> None:
    """OPTS outside the model, or without BROKER_URL, are options errors naming the option."""
    assert "RESULT_URL" in refused(RESULT_URL="redis://x")
    with pytest.raises(OptionsError, match="BROKER_URL"):
        make_driver(CeleryDriver, {}, "celery")


def test_urls_list_every_broker_and_the_backend() -> None:
    """urls() splits kombu's fail-over list and adds the backend, so every host is checked."""
    celery = driver(
        BROKER_URL="amqp://u:p@rabbit-1:5672//;amqp://u:p@rabbit-2//",
        BACKEND_URL="redis://cache:6380/2",
    )
    assert celery.urls() == [
        "amqp://u:p@rabbit-1:5672//",
        "amqp://u:p@rabbit-2//",
        "redis://cache:6380/2",
    ]
    targets = [("rabbit-1", 5672), ("rabbit-2", 5672), ("cache", 6380)]
    assert celery.reachability_targets() == targets


def test_embedded_sqlite_urls_need_no_reachability_check() -> None:
    """A SQLite broker and backend name no host, so LOAD auto has nothing to probe."""
    celery = driver(BROKER_URL="sqla+sqlite:///broker.db", BACKEND_URL="db+sqlite:///results.db")
    assert celery.reachability_targets() == []


def test_outage_errors_cover_the_broker_and_a_redis_backend() -> None:
    """Publishing to a lost broker, or reading a lost Redis backend, maps to 503."""
    assert driver().unavailable_errors() == (OperationalError,)
    with_redis = driver(BACKEND_URL="redis://127.0.0.1:6379/12").unavailable_errors()
    assert OperationalError in with_redis and RedisConnectionError in with_redis


def test_safe_defaults_do_not_allow_pickle() -> None:
    """The defaults themselves pass the pickle check they enforce."""
    assert CeleryOptions.model_validate({"BROKER_URL": BROKER, "SETTINGS": SAFE_DEFAULTS})


def test_importing_the_entry_point_does_not_import_celery() -> None:
    """Resolving the opa.drivers and opa.plugins entry points leaves Celery unimported."""
    script = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "for group in ('opa.drivers', 'opa.plugins'):\n"
        "    [ep.load() for ep in entry_points(group=group) if ep.name == 'celery']\n"
        "print(sorted(m for m in ('celery', 'kombu', 'redis') if m in sys.modules))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert output.stdout.strip() == "[]"


class _NoRedisPy:
    """A meta-path finder that makes redis-py look uninstalled, as in the base install."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "redis" or name.startswith("redis."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.fixture
def without_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py cannot be imported for the test's duration; its loaded modules come back after."""
    for name in [name for name in sys.modules if name == "redis" or name.startswith("redis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoRedisPy(), *sys.meta_path])


@pytest.mark.parametrize(
    "opts",
    [
        {"BROKER_URL": "redis://:s3cret@cache:6379/1"},
        {"BROKER_URL": f"{BROKER};rediss://:s3cret@cache:6379/1"},
        {"BACKEND_URL": "redis://:s3cret@cache:6379/2"},
        {"BACKEND_URL": "sentinel://:s3cret@cache:26379/2"},
        {"BACKEND_URL": "redis+socket:///run/redis.sock"},
    ],
)
@pytest.mark.usefixtures("without_redis_py")
def test_a_redis_url_without_redis_py_names_the_extra(opts: dict[str, str]) -> None:
    """A Redis broker or backend with no redis-py is a start-up error giving the install line."""
    message = refused(**opts)
    assert REDIS_EXTRA in message
    assert "component 'celery'" in message
    assert next(iter(opts)) in message
    assert "s3cret" not in message


@pytest.mark.usefixtures("without_redis_py")
def test_rabbitmq_works_without_redis_py(rabbitmq_url: str) -> None:
    """The base install (no redis-py) connects to RabbitMQ and maps its outages, Redis unused."""
    celery = driver(BROKER_URL=rabbitmq_url, BACKEND_URL="rpc://")
    celery.connect()
    try:
        celery.validate()
        assert celery.unavailable_errors() == (OperationalError,)
    finally:
        celery.disconnect()
    assert "redis" not in sys.modules
