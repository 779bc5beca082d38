"""`opa run --workers N` with METRICS: a scrape adds up every worker, a worker that dies
keeps its counts but loses its live gauges, and METRICS_PORT is served once, by the
supervisor. Real processes, as in test_workers.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from opa.testing import wait_for
from opa.testing._ports import listening_ports
from support import free_port
from test_workers import START, project, start

FOLDER = "PROMETHEUS_MULTIPROC_DIR"
WHOAMI = {"route": "/whoami", "status": "200"}
RECORDER_OK = {"component": "recorder", "state": "ok"}


def app_port(server: subprocess.Popen[str], metrics_port: int | None = None) -> int:
    """The port `opa run --port 0` bound for the app (not the metrics port, if any)."""

    def bound() -> int | None:
        if server.poll() is not None:
            raise AssertionError(f"opa run exited early:\n{server.communicate()[0]}")
        ports = (listening_ports(server.pid) or set()) - {metrics_port}
        return min(ports) if ports else None

    return wait_for(bound, START, "opa run binding its port")


def samples(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The samples of *name* on a scraped page whose labels include *labels*."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def total(text: str, name: str, **labels: str) -> float:
    return sum(value for _, value in samples(text, name, **labels))


def state_pids(text: str) -> set[int]:
    """The processes whose recorder component is ok, by the pid label of their series."""
    return {
        int(labels["pid"])
        for labels, value in samples(text, "opa_component_state", **RECORDER_OK)
        if value == 1
    }


def scrape(url: str) -> str:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


class Requests:
    """/whoami on fresh connections, counting the answers and who gave them."""

    def __init__(self, port: int, server: subprocess.Popen[str]) -> None:
        self.url = f"http://127.0.0.1:{port}/whoami"
        self.server = server
        self.sent = 0

    def until(self, done: Callable[[set[int]], object], what: str) -> set[int]:
        """Ask until *done(pids answered so far)* holds; the pids that answered."""
        seen: set[int] = set()
        deadline = time.monotonic() + START
        while not done(seen):
            assert time.monotonic() < deadline, f"{what} within {START}s; answered: {seen}"
            assert self.server.poll() is None, self.server.communicate()[0]
            try:
                response = httpx.get(self.url, timeout=5)  # a new connection each time
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            assert response.status_code == 200
            self.sent += 1
            seen.add(response.json()["pid"])
        return seen


def stop(server: subprocess.Popen[str]) -> str:
    server.send_signal(signal.SIGTERM)
    output, _ = server.communicate(timeout=START)
    return output


def test_two_workers_add_up_in_one_scrape_and_a_killed_one_leaves_its_counts(
    tmp_path: Path,
) -> None:
    """--workers 2 with METRICS: /metrics from either worker counts every request sent; a
    worker killed and replaced keeps its requests counted while its component state goes;
    the private metrics folder exists while serving and is removed at exit."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    server = start(project(tmp_path, METRICS=True), "--workers", "2", environ={"TMPDIR": str(temp)})
    try:
        port = app_port(server)
        metrics = f"http://127.0.0.1:{port}/metrics"
        requests = Requests(port, server)
        workers = requests.until(lambda seen: len(seen) == 2, "two workers answering")
        folders = list(temp.glob("opa-metrics-*"))
        assert len(folders) == 1 and list(folders[0].glob("*.db")), folders
        wait_for(
            lambda: total(scrape(metrics), "opa_http_requests_total", **WHOAMI) == requests.sent,
            START,
            f"a scrape counting all {requests.sent} requests",
        )
        assert state_pids(scrape(metrics)) == workers
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = requests.until(lambda seen: seen - workers, "a worker replacing the killed one")
        live = (workers - {victim}) | replaced
        wait_for(
            lambda: state_pids(scrape(metrics)) == live,
            START,
            f"the component states of {live} alone (killed: {victim})",
        )
        page = scrape(metrics)
    finally:
        output = stop(server)
    assert server.returncode == 0, output
    assert total(page, "opa_http_requests_total", **WHOAMI) == requests.sent
    assert list(temp.glob("opa-metrics-*")) == []


def test_metrics_port_is_served_once_by_the_supervisor_from_the_users_folder(
    tmp_path: Path,
) -> None:
    """--workers 2 with METRICS_PORT: the supervisor itself serves the port, adding up both
    workers from the PROMETHEUS_MULTIPROC_DIR given; the app has no /metrics; the folder is
    kept at exit, with no live gauge of a worker left in it."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    metrics_port = free_port()
    settings = project(tmp_path, METRICS=True, METRICS_PORT=metrics_port)
    server = start(settings, "--workers", "2", environ={FOLDER: str(folder)})
    try:
        port = app_port(server, metrics_port)
        assert metrics_port in (listening_ports(server.pid) or set())
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        requests = Requests(port, server)
        workers = requests.until(lambda seen: len(seen) == 2, "two workers answering")
        wait_for(
            lambda: total(scrape(metrics), "opa_http_requests_total", **WHOAMI) == requests.sent,
            START,
            f"the metrics port counting all {requests.sent} requests",
        )
        page = scrape(metrics)
        on_the_app = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        output = stop(server)
    assert server.returncode == 0, output
    assert state_pids(page) == workers
    assert on_the_app.status_code == 404
    assert list(folder.glob("counter_*.db"))
    assert list(folder.glob("gauge_live*.db")) == []


def test_a_bad_multiprocess_folder_stops_opa_run_before_any_worker_starts(
    tmp_path: Path,
) -> None:
    """--workers 2 with PROMETHEUS_MULTIPROC_DIR naming no folder: one line, status 1."""
    missing = str(tmp_path / "missing")
    server = start(project(tmp_path, METRICS=True), "--workers", "2", environ={FOLDER: missing})
    output, _ = server.communicate(timeout=START)
    assert server.returncode == 1, output
    assert output.strip().splitlines()[-1] == (
        f"error: environment variable PROMETHEUS_MULTIPROC_DIR names {missing!r}, which does "
        "not exist; with METRICS on it must name an existing folder opa can write to (each "
        "process writes its metrics there), or be unset"
    )
    assert "Started parent process" not in output
