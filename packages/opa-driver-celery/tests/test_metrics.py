"""Task metrics of a worker (opa's setting METRICS): tasks by name and state, and their run
times, served by a real worker on METRICS_WORKER_PORT and adding up its pool processes."""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from celery_support import (
    Run,
    celery_component,
    celery_worker_command,
    client_app,
    opa_worker_command,
    started,
    worker_args,
    write_settings,
)
from opa.testing import build_app, clean_environ, free_port, wait_for
from opa_driver_celery.metrics import STATES, TaskMetrics, start_task_metrics

ROOT = Path(__file__).resolve().parents[3]
RESULT_TIMEOUT = 30.0
ADDS = 3


def counts(page: str) -> dict[tuple[str, str, str], float]:
    """(series name, task, state) -> value, for the task metrics on a scraped page."""
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name in ("opa_celery_tasks_total", "opa_celery_task_duration_seconds_count"):
                key = (sample.name, sample.labels["task"], sample.labels.get("state", ""))
                found[key] = sample.value
    return found


@pytest.mark.parametrize("launcher", ["opa", "celery"])
def test_a_worker_serves_task_counts_and_run_times_of_its_pool(
    tmp_path: Path, rabbitmq_url: str, backend_url: str, run: Run, launcher: str
) -> None:
    """Tasks that succeed, fail and retry, run by two pool processes, are counted by name and
    state on the worker's own port, with one run time for each run, under `opa worker` and
    `celery -A opa.worker worker` alike; the worker's private metrics folder is there while
    it runs and gone once SIGTERM stopped it."""
    celery = celery_component(rabbitmq_url, backend_url, run)
    port = free_port()
    settings = write_settings(
        tmp_path / "settings",
        {"celery": celery, "store": {"LOAD": "no"}},
        METRICS=True,
        METRICS_WORKER_PORT=port,
    )
    args = worker_args(run, concurrency=2)
    if launcher == "opa":
        command = opa_worker_command(*args)
    else:
        command = celery_worker_command(*args, app="opa.worker")
    expected = {
        ("opa_celery_tasks_total", "jobs.tasks.add", "succeeded"): ADDS,
        ("opa_celery_task_duration_seconds_count", "jobs.tasks.add", ""): ADDS,
        ("opa_celery_tasks_total", "jobs.tasks.fail", "failed"): 1,
        ("opa_celery_task_duration_seconds_count", "jobs.tasks.fail", ""): 1,
        ("opa_celery_tasks_total", "jobs.tasks.flaky", "retried"): 1,
        ("opa_celery_tasks_total", "jobs.tasks.flaky", "succeeded"): 1,
        ("opa_celery_task_duration_seconds_count", "jobs.tasks.flaky", ""): 2,
    }
    url = f"http://127.0.0.1:{port}/metrics"
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = clean_environ(settings, TMPDIR=str(temp))
    with (
        client_app(celery) as app,
        started(command, env, tmp_path, tmp_path / "worker.log") as worker,
    ):
        sums = [app.send_task("jobs.tasks.add", (i, i)) for i in range(ADDS)]
        assert [result.get(timeout=RESULT_TIMEOUT) for result in sums] == [0, 2, 4]
        failed = app.send_task("jobs.tasks.fail")
        failed.get(timeout=RESULT_TIMEOUT, propagate=False)
        assert failed.state == "FAILURE"
        assert app.send_task("jobs.tasks.flaky").get(timeout=RESULT_TIMEOUT) == "second try"
        # A task's result is stored before its task_postrun signal: wait for the last counts.
        wait_for(
            lambda: counts(httpx.get(url, timeout=10).text) == expected,
            RESULT_TIMEOUT,
            f"the task counts {expected}",
        )
        page = httpx.get(url, timeout=10).text
        on_another_path = httpx.get(f"http://127.0.0.1:{port}/other", timeout=10)
        folders = list(temp.glob("opa-metrics-*"))
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    assert len(folders) == 1, folders
    assert list(temp.glob("opa-metrics-*")) == []
    assert "opa_celery_task_duration_seconds_bucket" in page
    assert "process_cpu_seconds_total" not in page  # the pool's folder, not one process
    assert on_another_path.status_code == 404


def test_a_worker_whose_metrics_port_is_taken_exits_with_one_line(
    tmp_path: Path, rabbitmq_url: str, run: Run
) -> None:
    """METRICS_WORKER_PORT held by another socket ends the worker at once, naming it."""
    celery = celery_component(rabbitmq_url, None, run)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        settings = write_settings(
            tmp_path / "settings", {"celery": celery}, METRICS=True, METRICS_WORKER_PORT=port
        )
        command = opa_worker_command(*worker_args(run))
        with started(
            command, clean_environ(settings), tmp_path, tmp_path / "w.log", ready=False
        ) as worker:
            assert worker.wait(timeout=60) == 1
    output = worker.output()
    assert (
        f"error: setting METRICS_WORKER_PORT ({port}) cannot be bound on METRICS_HOST "
        "127.0.0.1: Address already in use; pick a free port (OPA_METRICS_WORKER_PORT)"
    ) in output
    assert "Traceback" not in output


def test_task_metrics_are_off_without_the_setting() -> None:
    """With METRICS off the worker serves nothing and counts nothing."""
    assert start_task_metrics(build_app().state.opa) is None


def test_each_outcome_is_counted_under_its_state_and_timed() -> None:
    """Every state Celery ends a run with has its label; a revoked task counts too, untimed."""
    registry = CollectorRegistry()
    metrics = TaskMetrics(registry)
    task = SimpleNamespace(name="jobs.tasks.add")
    for number, state in enumerate(STATES):
        metrics.started(f"id-{number}")
        metrics.finished(f"id-{number}", task, state)
    metrics.revoked(sender=task)
    for label in [*STATES.values(), "revoked"]:
        value = registry.get_sample_value(
            "opa_celery_tasks_total", {"task": "jobs.tasks.add", "state": label}
        )
        assert value == 1, label
    runs = registry.get_sample_value(
        "opa_celery_task_duration_seconds_count", {"task": "jobs.tasks.add"}
    )
    assert runs == len(STATES)


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def exported() -> dict[str, set[str]]:
    """Each task metric family and the series names it can have."""
    registry = CollectorRegistry()
    TaskMetrics(registry)
    return {
        family.name: {family.name + suffix for suffix in _SUFFIXES[family.type]}
        for family in registry.collect()
    }


def test_the_dashboards_task_queries_name_task_metrics_and_show_them_all() -> None:
    """Each opa_celery_ query of examples/observing/grafana-dashboard.json names a metric the
    worker exports, and every one of them is on the dashboard."""
    dashboard = json.loads((ROOT / "examples/observing/grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for query in queries for name in re.findall(r"\bopa_celery_[a-z_]+", query)}
    families = exported()
    assert named
    assert named - set().union(*families.values()) == set()
    assert {family for family, names in families.items() if not names & named} == set()


def test_the_observing_page_names_every_task_metric() -> None:
    """docs/observing.md names each task metric as Prometheus shows it."""
    page = (ROOT / "docs" / "observing.md").read_text(encoding="utf-8")
    for family, names in exported().items():
        shown = family + "_total" if family + "_total" in names else family
        assert f"`{shown}`" in page, f"docs/observing.md does not name {shown}"
