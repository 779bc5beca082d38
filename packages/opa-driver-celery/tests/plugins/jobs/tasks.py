"""The test plugin's tasks: ``get_instance`` at import time, and again while they run."""

# get_instance() returns Any, so @celery.task is an untyped decorator to mypy.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import os
import time
from typing import Any

from celery.utils.log import get_task_logger

from opa import get_component, get_instance

celery = get_instance("celery")
logger = get_task_logger(__name__)


@celery.task
def add(a: int, b: int) -> int:
    return a + b


@celery.task
def noop() -> None:
    """Nothing: the benchmark measures the round trip around it."""


@celery.task
def where() -> dict[str, Any]:
    """The process that ran the task and the one that connected the store it used."""
    get_instance("store").ping()
    return {"pid": os.getpid(), "store_connected_in": get_component("store").connected_in}


@celery.task
def record(key: str, index: int, pause: float) -> int:
    """Count a run of *index* in the hash *key*, then take *pause* seconds.

    The count comes first, so a task interrupted during its pause and delivered again is
    counted twice: the tests use it to see redeliveries.
    """
    get_instance("store").hincrby(key, str(index), 1)
    time.sleep(pause)
    return index


@celery.task
def announce(url: str) -> None:
    """Log *url* through Celery's task logger: the worker's output must mask its password."""
    logger.warning("connecting to %s", url)


@celery.task
def fail() -> None:
    """Always fails: the metrics count it as failed."""
    raise ValueError("this task always fails")


@celery.task(bind=True, max_retries=1)
def flaky(self: Any) -> str:
    """Fails its first run and asks to be retried at once; the retry succeeds."""
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return "second try"
