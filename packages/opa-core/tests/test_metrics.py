"""Prometheus metrics (METRICS): off by default, readable from allowed networks only, and
counting requests by route template and components by their lifecycle events."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from opa._errors import ConfigError
from opa._metrics import MetricsMiddleware
from support import make_app, write_plugin
from tcp_driver import EchoServer
from test_breaker import PLUGIN, app_with, component, wait_for

LOCAL = ("127.0.0.1", 50000)
ROUTES = """
from opa import get_router

router = get_router()


@router.get("/items/{item_id}")
def item(item_id: int):
    return {"item": item_id}
"""


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape, keyed by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def items(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    write_plugin(folder, f"metrics_items_{tmp_path.name[-12:].replace('-', '_')}", ROUTES)
    return folder


def test_metrics_are_off_by_default_with_no_route_and_no_middleware() -> None:
    """Without the setting there is no /metrics route and no metrics middleware at all."""
    app = make_app()
    with TestClient(app, client=LOCAL) as client:
        assert client.get("/metrics").status_code == 404
    assert not any(middleware.cls is MetricsMiddleware for middleware in app.user_middleware)


def test_requests_are_counted_by_route_template_and_unmatched_paths_share_one_label(
    items: Path,
) -> None:
    """Two item ids count under one route template; unknown paths count under <unmatched>."""
    app = make_app(PLUGIN_PATHS=[str(items)], METRICS=True)
    with TestClient(app, client=LOCAL) as client:
        before = samples(client)
        assert client.get("/items/1").status_code == 200
        assert client.get("/items/2").status_code == 200
        assert client.get("/items/x").status_code == 422
        assert client.get("/no/such/path/7").status_code == 404
        assert client.get("/no/such/path/8").status_code == 404
        after = samples(client)
    name = "opa_http_requests_total"
    route = {"method": "GET", "route": "/items/{item_id}"}
    assert (
        value(after, name, **route, status="200") - value(before, name, **route, status="200") == 2
    )
    assert (
        value(after, name, **route, status="422") - value(before, name, **route, status="422") == 1
    )
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert value(after, name, **unmatched) - value(before, name, **unmatched) == 2
    assert not any("/no/such" in str(labels) or "/items/1" in str(labels) for _, labels in after)
    count = "opa_http_request_duration_seconds_count"
    assert value(after, count, **route) - value(before, count, **route) == 3
    # The scrape itself is in flight while it is written.
    assert value(after, "opa_http_requests_in_flight", method="GET") == 1
    assert value(after, "opa_plugins_loaded") >= 1
    assert value(after, "opa_startup_duration_seconds") > 0


def test_starlette_routes_and_mounts_are_counted_by_their_template() -> None:
    """The metrics route itself and the self-hosted docs' asset mount count under their own
    template, not as unmatched."""
    asset = "/_opa/static/api-docs"
    with TestClient(make_app(METRICS=True), client=LOCAL) as client:
        before = samples(client)
        assert client.get(f"{asset}/no-such-asset.js").status_code == 404
        after = samples(client)
    name = "opa_http_requests_total"
    scrape = {"method": "GET", "route": "/metrics", "status": "200"}
    assert value(after, name, **scrape) - value(before, name, **scrape) == 1
    mount = {"method": "GET", "route": asset, "status": "404"}
    assert value(after, name, **mount) - value(before, name, **mount) == 1


def test_an_odd_method_is_counted_as_other() -> None:
    """A made-up method name adds no series of its own: it counts as OTHER."""
    with TestClient(make_app(METRICS=True), client=LOCAL) as client:
        client.request("BREW", "/health")
        after = samples(client)
    assert (
        value(after, "opa_http_requests_total", method="OTHER", route="/health", status="405") >= 1
    )
    assert not any(("method", "BREW") in labels for _, labels in after)


@pytest.mark.parametrize(
    ("client_address", "allow", "status"),
    [
        (("127.0.0.1", 1), None, 200),
        (("::1", 1), None, 200),
        (("10.1.2.3", 1), None, 403),
        (("10.1.2.3", 1), ["10.0.0.0/8"], 200),
        (("127.0.0.1", 1), ["10.0.0.0/8"], 403),
        (("testclient", 1), None, 403),
    ],
)
def test_only_clients_in_metrics_allow_read_metrics(
    client_address: tuple[str, int], allow: list[str] | None, status: int
) -> None:
    """By default only loopback reads /metrics; METRICS_ALLOW lists the networks that may."""
    settings = {"METRICS": True} if allow is None else {"METRICS": True, "METRICS_ALLOW": allow}
    with TestClient(make_app(**settings), client=client_address) as client:
        response = client.get("/metrics")
    assert response.status_code == status
    if status == 403:
        assert "opa_" not in response.text


def test_metrics_path_moves_the_route() -> None:
    """METRICS_PATH serves the metrics elsewhere, and /metrics is then no route."""
    with TestClient(make_app(METRICS=True, METRICS_PATH="/internal/prom"), client=LOCAL) as client:
        assert client.get("/metrics").status_code == 404
        assert "opa_http_requests_total" in client.get("/internal/prom").text


@pytest.fixture
def no_client_library(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """prometheus-client as if not installed, and opa._metrics imported afresh."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "opa._metrics", raising=False)
    yield
    sys.modules.pop("opa._metrics", None)


def test_metrics_on_without_the_client_library_is_one_line_naming_the_extra(
    no_client_library: None,
) -> None:
    """METRICS on without prometheus-client stops start-up with the extra to install."""
    with pytest.raises(ConfigError) as error:
        make_app(METRICS=True)
    assert str(error.value) == (
        "setting METRICS is on but prometheus-client is not installed; "
        "install it with: pip install 'opa-core[metrics]'"
    )


@pytest.fixture
def echo_plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    write_plugin(folder, f"echo_metrics_{tmp_path.name[-12:].replace('-', '_')}", PLUGIN)
    return folder


def test_component_state_outage_errors_trips_and_recoveries_come_from_lifecycle_events(
    echo_plugins: Path,
) -> None:
    """A stalled backend: its outage error, its breaker trip, its state down, then its
    recovery and state ok are all in /metrics, with no code in the driver."""
    with EchoServer() as server:
        app = app_with(echo_plugins, {"STORE": component("echo", server)}, METRICS=True)
        with TestClient(app, client=LOCAL) as client:
            before = samples(client)
            labels = {"component": "store", "driver": "echo"}
            assert value(before, "opa_component_state", **labels, state="ok") == 1
            assert value(before, "opa_component_state", **labels, state="down") == 0
            assert value(before, "opa_component_connect_duration_seconds_count", **labels) >= 1
            assert client.get("/health").status_code == 200
            server.stall()
            assert client.get("/echo/store").status_code == 503
            wait_for(
                lambda: value(samples(client), "opa_component_state", **labels, state="down") == 1,
                "the state gauge saying down",
            )
            server.resume()
            wait_for(
                lambda: value(samples(client), "opa_component_state", **labels, state="ok") == 1,
                "the state gauge saying ok again",
            )
            after = samples(client)
    for name in (
        "opa_component_outage_errors_total",
        "opa_component_breaker_trips_total",
        "opa_component_breaker_recoveries_total",
        "opa_component_down_duration_seconds_count",
    ):
        assert value(after, name, **labels) - value(before, name, **labels) == 1, name
    pings = "opa_component_ping_duration_seconds_count"
    # /health's ping, and the breaker's ping that found the backend back.
    assert (
        value(after, pings, **labels, outcome="ok") - value(before, pings, **labels, outcome="ok")
        >= 2
    )


ROOT = Path(__file__).resolve().parents[3]
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported() -> dict[str, set[str]]:
    """Each opa metric family and the series names it can have, from the registry."""
    make_app(METRICS=True)  # creates the metrics once per process
    from prometheus_client import REGISTRY

    return {
        family.name: {family.name + suffix for suffix in _SUFFIXES[family.type]}
        for family in REGISTRY.collect()
        if family.name.startswith("opa_")
    }


def test_every_grafana_query_names_a_metric_opa_exports() -> None:
    """Each query of examples/observing/grafana-dashboard.json names only opa metrics that
    exist, and every opa metric is on the dashboard. (The Celery worker's opa_celery_*
    metrics come from opa-driver-celery, whose tests check them the same way.)"""
    dashboard = json.loads((ROOT / "examples/observing/grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {
        name
        for query in queries
        for name in re.findall(r"\bopa_[a-z_]+", query)
        if not name.startswith("opa_celery_")
    }
    families = exported()
    assert named - set().union(*families.values()) == set()
    assert {family for family, names in families.items() if not names & named} == set()


def test_every_metric_is_documented() -> None:
    """docs/observing.md names every metric opa exports, as Prometheus shows it."""
    page = (ROOT / "docs" / "observing.md").read_text(encoding="utf-8")
    for family, names in exported().items():
        shown = family + "_total" if family + "_total" in names else family
        assert f"`{shown}`" in page, f"docs/observing.md does not name {shown}"


def test_the_settings_sample_of_the_observing_page_loads_and_serves_metrics() -> None:
    """The settings file docs/observing.md offers is valid and turns metrics on for its
    networks only."""
    page = (ROOT / "docs" / "observing.md").read_text(encoding="utf-8")
    sample = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", page, re.DOTALL)[0])["default"]
    with TestClient(make_app(**sample), client=("10.20.1.2", 1)) as client:
        assert client.get("/metrics").status_code == 200
    with TestClient(make_app(**sample), client=("10.21.1.2", 1)) as client:
        assert client.get("/metrics").status_code == 403
