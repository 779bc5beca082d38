"""The embedded set-up (SQLite as broker and backend) with two workers: what the README
says holds. Each task's run is counted in Redis, the tests' own witness, not the set-up's."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from celery_support import (
    STORE_DB,
    Run,
    celery_component,
    client_app,
    opa_worker_command,
    redis_db,
    run_counts,
    started,
    store_component,
    worker_args,
    write_settings,
)
from opa.testing import clean_environ

TASKS = 200
RESULT_TIMEOUT = 120.0


def test_two_workers_on_one_sqlite_broker_run_each_task_exactly_once(
    tmp_path: Path, redis_url: str, run: Run
) -> None:
    """200 tasks sent to a SQLite broker that two `opa worker` processes consume all
    finish, and each ran once: no task lost, none delivered to both workers."""
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    backend = f"db+sqlite:///{tmp_path / 'results.sqlite'}"
    celery = celery_component(broker, backend, run)
    components = {"celery": celery, "store": store_component(redis_url)}
    env = clean_environ(write_settings(tmp_path / "settings", components))
    runs_key = f"{run.prefix}runs"
    with client_app(celery) as app, ExitStack() as workers:
        for role in ("first", "second"):
            command = opa_worker_command(*worker_args(run, role=role, concurrency=2))
            workers.enter_context(started(command, env, tmp_path, tmp_path / f"{role}.log"))
        results = [app.send_task("jobs.tasks.record", (runs_key, i, 0)) for i in range(TASKS)]
        finished = sorted(result.get(timeout=RESULT_TIMEOUT) for result in results)
    assert finished == list(range(TASKS))
    counts = run_counts(redis_db(redis_url, STORE_DB), runs_key)
    assert counts == dict.fromkeys(range(TASKS), 1), {i: n for i, n in counts.items() if n != 1}
