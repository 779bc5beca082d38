"""Issue 18 item 4: a real Prometheus scrapes `opa run` serving examples/redis through a
Redis outage, and its HTTP API has the requests by route, the components going down and up,
and the breaker's trips: from one process at /metrics, and from two workers through the
supervisor's METRICS_PORT.

Prometheus and Redis are the test's own: a prometheus on a port the kernel picks, with its
own config and storage folder, and a private redis-server it stops and starts again (never
the shared one). Debian's `prometheus` package provides the server (`.ci/run` installs it).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from faults import REDIS_EXAMPLE, OpaRun, serve_redis_example, write_settings

from opa.testing import (
    LOCALHOST,
    LoggedProcess,
    RedisServer,
    ServiceUnavailable,
    bound_port,
    free_port,
    skip_or_fail,
)

COMPONENTS = ("walrus", "aioredis")
ROUTES = ("/counter-sync", "/counter-async")
REQUESTS = 5
# Waits for what Prometheus sees: a scrape a second, on a shared and loaded machine.
BOUND = 60.0


class Prometheus:
    """A prometheus server of the test's own, scraping *target* every second."""

    def __init__(self, folder: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            skip_or_fail("no prometheus server; install it with: apt-get install -y prometheus")
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "opa", "static_configs": [{"targets": [target]}]}],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        command = [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={LOCALHOST}:0",
        ]
        self.process = LoggedProcess(command, folder / "prometheus.log")
        try:
            port = bound_port(self.process.popen, "prometheus")
        except ServiceUnavailable as error:
            self.process.close()
            raise AssertionError(f"{error}:\n{self.process.tail()}") from None
        self.api = f"http://{LOCALHOST}:{port}/api/v1"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector *promql* evaluates to now."""
        response = httpx.get(f"{self.api}/query", params={"query": promql}, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The single value of *promql*, or None while it has no sample."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, what: str) -> None:
        """Until *promql* (a comparison) has a sample: Prometheus has scraped what it asks."""
        deadline = time.monotonic() + BOUND
        while self.value(promql) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Prometheus did not see {what} within {BOUND:g}s ({promql}):\n"
                    f"{self.process.tail()}"
                )
            time.sleep(0.2)

    def close(self) -> None:
        self.process.close()


def serve(redis_url: str, tmp_path: Path) -> OpaRun:
    return serve_redis_example(redis_url, tmp_path, 2.0, 1.0, METRICS=True)


def state(component: str, value: str) -> str:
    return f'opa_component_state{{component="{component}",state="{value}"}} == 1'


@pytest.mark.timeout(300)
def test_prometheus_scrapes_requests_by_route_and_a_redis_outage(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    """Requests by route template, both components down then up again, and their breaker
    trips, outage errors and recoveries are in Prometheus after a real scrape."""
    run = serve(private_redis.url, tmp_path)
    prometheus = Prometheus(tmp_path / "prometheus", f"{LOCALHOST}:{run.port}")
    try:
        base = f"http://{LOCALHOST}:{run.port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            for route in ROUTES:
                for _ in range(REQUESTS):
                    assert client.get(route, params={"key": "k"}).status_code == 200
            assert client.get("/no/such/page").status_code == 404
            for component in COMPONENTS:
                prometheus.wait_for(state(component, "ok"), f"{component} up")
            private_redis.stop()
            for route in ROUTES:
                assert client.get(route, params={"key": "k"}).status_code == 503
            for component in COMPONENTS:
                prometheus.wait_for(state(component, "down"), f"{component} down")
            private_redis.start()  # on the same port, as a real outage ends
            for component in COMPONENTS:
                prometheus.wait_for(
                    f'opa_component_breaker_recoveries_total{{component="{component}"}} >= 1',
                    f"{component} recovered",
                )
                prometheus.wait_for(state(component, "ok"), f"{component} up again")
            for route in ROUTES:
                assert client.get(route, params={"key": "k"}).status_code == 200
            prometheus.wait_for(
                'sum(opa_http_requests_total{route="/counter-async",status="200"}) '
                f">= {REQUESTS + 1}",
                "the last request",
            )
        ok = {
            route: prometheus.value(f'sum(opa_http_requests_total{{route="{route}",status="200"}})')
            for route in ROUTES
        }
        unavailable = {
            route: prometheus.value(f'sum(opa_http_requests_total{{route="{route}",status="503"}})')
            for route in ROUTES
        }
        unmatched = prometheus.query('opa_http_requests_total{route="<unmatched>"}')
        raw_paths = prometheus.query('opa_http_requests_total{route=~"/no/.*"}')
        trips = {
            c: prometheus.value(f'opa_component_breaker_trips_total{{component="{c}"}}')
            for c in COMPONENTS
        }
        outages = {
            c: prometheus.value(f'opa_component_outage_errors_total{{component="{c}"}}')
            for c in COMPONENTS
        }
        latency = prometheus.value(
            'sum(opa_http_request_duration_seconds_count{route="/counter-sync"})'
        )
    finally:
        prometheus.close()
        run.close()
    assert ok == {route: REQUESTS + 1 for route in ROUTES}
    assert unavailable == {route: 1 for route in ROUTES}
    assert [(u["metric"]["status"], u["value"][1]) for u in unmatched] == [("404", "1")]
    assert raw_paths == []
    assert all(trips[c] is not None and trips[c] >= 1 for c in COMPONENTS), trips
    assert all(outages[c] is not None and outages[c] >= 1 for c in COMPONENTS), outages
    assert latency == REQUESTS + 2


def both_workers(component: str, value: str) -> str:
    """True once both workers' series (a pid label each) say *component* is in *value*."""
    return f"count({state(component, value)}) == 2"


@pytest.mark.timeout(300)
def test_prometheus_scrapes_two_workers_through_the_metrics_port(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    """With `opa run --workers 2` and METRICS_PORT, Prometheus scrapes the supervisor's port:
    the requests by route add up to what both workers answered, each worker's components go
    down and up, and each worker's breaker trips and recovery are counted once."""
    metrics_port = free_port()
    run = serve_redis_example(
        private_redis.url,
        tmp_path,
        2.0,
        1.0,
        args=("--workers", "2"),
        METRICS=True,
        METRICS_PORT=metrics_port,
    )
    prometheus = Prometheus(tmp_path / "prometheus", f"{LOCALHOST}:{metrics_port}")
    sent: Counter[tuple[str, int]] = Counter()
    # No keep-alive: each request is a new connection, which either worker may accept.
    limits = httpx.Limits(max_keepalive_connections=0)
    base = f"http://{LOCALHOST}:{run.port}"
    try:
        with httpx.Client(base_url=base, timeout=30, limits=limits) as client:

            def get(path: str, status: int, route: str | None = None) -> None:
                assert client.get(path, params={"key": "k"}).status_code == status
                sent[(route or path, status)] += 1

            for route in ROUTES:
                for _ in range(REQUESTS):
                    get(route, 200)
            get("/no/such/page", 404, route="<unmatched>")
            for component in COMPONENTS:
                prometheus.wait_for(both_workers(component, "ok"), f"{component} up in both")
            private_redis.stop()
            deadline = time.monotonic() + BOUND
            # Until each worker has had a request fail and its breaker mark both down.
            while not all(
                prometheus.value(both_workers(component, "down")) for component in COMPONENTS
            ):
                assert time.monotonic() < deadline, f"not down in both workers: {sent}"
                for route in ROUTES:
                    get(route, 503)
                time.sleep(0.2)
            private_redis.start()
            for component in COMPONENTS:
                prometheus.wait_for(both_workers(component, "ok"), f"{component} up again")
            for route in ROUTES:
                for _ in range(REQUESTS):
                    get(route, 200)
        last = sent[(ROUTES[-1], 200)]
        prometheus.wait_for(
            f'sum(opa_http_requests_total{{route="{ROUTES[-1]}",status="200"}}) >= {last}',
            "the last request",
        )
        counted = {
            (route, status): prometheus.value(
                f'sum(opa_http_requests_total{{route="{route}",status="{status}"}})'
            )
            for route, status in sent
        }
        events = {
            (name, c): prometheus.value(
                f'sum(opa_component_breaker_{name}_total{{component="{c}"}})'
            )
            for name in ("trips", "recoveries")
            for c in COMPONENTS
        }
        latency = prometheus.value(
            'sum(opa_http_request_duration_seconds_count{route="/counter-sync"})'
        )
    finally:
        prometheus.close()
        run.close()
    assert counted == {key: float(count) for key, count in sent.items()}
    assert events == {key: 2.0 for key in events}, events
    assert latency == sent[("/counter-sync", 200)] + sent[("/counter-sync", 503)]


def test_with_prometheus_multiprocess_folder_set_a_scrape_reads_the_folder(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set before `opa run` starts, each metric is written to
    that folder and /metrics adds up what the folder holds (the switch for several workers)."""
    folder = tmp_path / "prometheus-multiproc"
    folder.mkdir()
    settings = {"PLUGIN_PATHS": [str(REDIS_EXAMPLE.parent / "observing")], "METRICS": True}
    run = OpaRun(
        write_settings(tmp_path / "settings", settings),
        tmp_path / "opa.log",
        environ={"PROMETHEUS_MULTIPROC_DIR": str(folder)},
    )
    try:
        run.wait_serving()
        base = f"http://{LOCALHOST}:{run.port}"
        for item in (1, 2, 3):
            assert httpx.get(f"{base}/items/{item}", timeout=30).status_code == 200
        text = httpx.get(f"{base}/metrics", timeout=30).text
    finally:
        run.close()
    assert list(folder.glob("*.db")), "no metrics file in the multiprocess folder"
    line = 'opa_http_requests_total{method="GET",route="/items/{item_id}",status="200"} 3.0'
    assert line in text.splitlines()
    # The multiprocess collector's page: no process_* metrics of one process.
    assert "process_cpu_seconds_total" not in text
