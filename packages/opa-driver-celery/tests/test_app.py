"""The celery component inside an opa app: tasks, the setup hook, and outages (in process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from celery_support import PLUGINS, Run, celery_component
from opa import ComponentError, HookError, PluginError, get_component, get_instance
from opa.testing import TestServices, build_app, closed_port
from opa_driver_celery import UnknownTaskError

OFF: dict[str, Any] = {"LOAD": "no"}


def write_plugin(folder: Path, name: str, source: str, tasks: str | None = None) -> None:
    """A plugin module, or a package when it has *tasks* (its tasks.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    if tasks is None:
        (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
    (folder / name / "tasks.py").write_text(textwrap.dedent(tasks), encoding="utf-8")


def make_app(celery: dict[str, Any], *paths: Path, **settings: Any) -> FastAPI:
    """An isolated app with the test plugins, the celery component and opa's own plugins."""
    values: dict[str, Any] = {
        "PLUGIN_PATHS": [str(PLUGINS), *(str(p) for p in paths)],
        "PLUGIN_ENTRY_POINTS": True,
        "OPTIONAL_COMPONENTS": {"celery": celery, "store": OFF},
    }
    values.update(settings)
    return build_app(values)


@pytest.fixture
def client(rabbitmq_url: str, backend_url: str, run: Run) -> Iterator[TestClient]:
    """An app on RabbitMQ with the test plugins, started."""
    with TestClient(make_app(celery_component(rabbitmq_url, backend_url, run))) as started:
        yield started


def test_plugin_tasks_are_registered_at_start_up(client: TestClient) -> None:
    """The tasks.py of a plugin package, calling get_instance at import, registers its tasks."""
    tasks = get_instance("celery").tasks
    assert {"jobs.tasks.add", "jobs.tasks.record", "jobs.tasks.where"} <= set(tasks)


def test_tasks_of_installed_plugin_distributions_are_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rabbitmq_url: str, run: Run
) -> None:
    """A package installed through the opa.plugins entry points contributes its tasks.py."""
    site = tmp_path / "site"
    write_plugin(
        site,
        "installed_jobs",
        "",
        tasks="""
        from opa import get_instance

        @get_instance("celery").task
        def double(x):
            return 2 * x
    """,
    )
    info = site / "installed_jobs-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: installed-jobs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[opa.plugins]\njobs = installed_jobs\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "installed_jobs", raising=False)
    with TestClient(make_app(celery_component(rabbitmq_url, None, run))):
        assert "installed_jobs.tasks.double" in get_instance("celery").tasks


def test_the_setup_hook_configures_the_app(tmp_path: Path, rabbitmq_url: str, run: Run) -> None:
    """A plugin's driver.celery.setup hook outranks the default and its settings stick."""
    write_plugin(
        tmp_path,
        "routing_hook",
        """
        from opa import Hook

        class Routing(Hook):
            name = "driver.celery.setup"

            def run(self, app):
                app.conf.task_routes = {"jobs.tasks.add": {"queue": "adding"}}
                return app
    """,
    )
    with TestClient(make_app(celery_component(rabbitmq_url, None, run), tmp_path)):
        app = get_instance("celery")
        assert app.conf.task_routes == {"jobs.tasks.add": {"queue": "adding"}}
        assert app.amqp.router.route({}, "jobs.tasks.add")["queue"].name == "adding"


def test_without_a_plugin_hook_the_app_is_unchanged(rabbitmq_url: str, run: Run) -> None:
    """The default implementation returns the app as OPTS built it."""
    with TestClient(make_app(celery_component(rabbitmq_url, None, run))):
        assert get_instance("celery").conf.task_default_queue == run.queue
        assert get_instance("celery").conf.task_routes is None


def test_a_hook_must_return_the_app(tmp_path: Path, rabbitmq_url: str, run: Run) -> None:
    """A setup hook that returns something else stops start-up, naming the hook's class."""
    write_plugin(
        tmp_path,
        "forgetful_hook",
        """
        from opa import Hook

        class Forgetful(Hook):
            name = "driver.celery.setup"

            def run(self, app):
                app.conf.task_routes = {}
    """,
    )
    app = make_app(celery_component(rabbitmq_url, None, run), tmp_path)
    # Run by the driver's Setup at start-up, so the error names that Setup, then the hook.
    with pytest.raises(PluginError, match=r"forgetful_hook\.Forgetful.*returned NoneType"):
        TestClient(app).__enter__()


def test_a_hook_cannot_enable_pickle(tmp_path: Path, rabbitmq_url: str, run: Run) -> None:
    """A setup hook that lets pickle in stops start-up, as the same SETTINGS would."""
    write_plugin(
        tmp_path,
        "pickle_hook",
        """
        from opa import Hook

        class Pickle(Hook):
            name = "driver.celery.setup"

            def run(self, app):
                app.conf.accept_content = ["json", "pickle"]
                return app
    """,
    )
    app = make_app(celery_component(rabbitmq_url, None, run), tmp_path)
    with pytest.raises(PluginError, match="accept_content to accept pickle"):
        TestClient(app).__enter__()


def test_a_broken_tasks_module_stops_start_up(tmp_path: Path, rabbitmq_url: str, run: Run) -> None:
    """A tasks.py that fails to import is a start-up error naming the plugin package."""
    write_plugin(tmp_path, "broken_jobs", "", tasks="import no_such_module_anywhere\n")
    app = make_app(celery_component(rabbitmq_url, None, run), tmp_path)
    with pytest.raises(PluginError, match=r"'broken_jobs'.*no_such_module_anywhere"):
        TestClient(app).__enter__()


def test_without_opa_plugins_tasks_load_on_first_send(
    tmp_path: Path, rabbitmq_url: str, run: Run
) -> None:
    """With entry-point plugins off the app connects, and send_task imports the tasks itself."""
    write_plugin(
        tmp_path,
        "lazy_jobs",
        "",
        tasks="""
        from opa import get_instance

        @get_instance("celery").task
        def ping():
            return "pong"
    """,
    )
    celery = celery_component(rabbitmq_url, None, run)
    with TestClient(make_app(celery, tmp_path, PLUGIN_ENTRY_POINTS=False)):
        assert "lazy_jobs.tasks" not in sys.modules
        get_component("celery").send_task("lazy_jobs.tasks.ping")
        assert "lazy_jobs.tasks.ping" in get_instance("celery").tasks


def test_a_plugin_hook_needs_the_drivers_plugin(tmp_path: Path, rabbitmq_url: str) -> None:
    """Implementing the hook with the driver's plugin filtered out is a clear load error."""
    write_plugin(
        tmp_path,
        "orphan_hook",
        """
        from opa import Hook

        class Orphan(Hook):
            name = "driver.celery.setup"

            def run(self, app):
                return app
    """,
    )
    with pytest.raises(HookError, match=r"driver\.celery\.setup"):
        make_app(celery_component(rabbitmq_url, None, Run()), tmp_path, PLUGIN_ENTRY_POINTS=False)


def test_an_unknown_task_name_is_a_clear_error(client: TestClient) -> None:
    """Sending an unregistered name fails before it reaches the broker, listing known tasks."""
    with pytest.raises(
        UnknownTaskError, match=r"no task named 'jobs\.tasks\.nope'.*jobs\.tasks\.add"
    ):
        get_component("celery").send_task("jobs.tasks.nope")
    response = client.post("/enqueue/jobs.tasks.nope", json=[])
    assert response.status_code == 404
    assert "no task named 'jobs.tasks.nope'" in response.json()["detail"]


def test_an_unreachable_broker_under_auto_answers_503(tmp_path: Path, run: Run) -> None:
    """LOAD auto skips a dead broker; enqueueing then answers 503 saying the component is down."""
    write_plugin(
        tmp_path,
        "skipped_jobs",
        """
        from opa import get_router

        router = get_router()

        @router.post("/double")
        def enqueue_double(x: int):
            from skipped_jobs.tasks import double  # the original's pattern, imported on use

            return {"id": double.delay(x).id}
    """,
        tasks="""
        from opa import get_instance

        @get_instance("celery").task
        def double(x):
            return 2 * x
    """,
    )
    broker = f"amqp://guest:guest@127.0.0.1:{closed_port()}//"
    app = make_app(celery_component(broker, None, run, load="auto"), tmp_path)
    with TestClient(app) as client:
        assert get_component("celery").status.value == "skipped"
        for response in (client.post("/double?x=1"), client.post("/enqueue/jobs.tasks.add")):
            assert response.status_code == 503
            assert "component 'celery' is skipped: unreachable" in response.json()["detail"]


def test_an_unreachable_broker_under_yes_fails_start_up_in_time(run: Run) -> None:
    """LOAD yes on a dead broker stops start-up within the check bound, with the URL masked."""
    password = f"pw-{run.id}"
    port = closed_port()
    app = make_app(celery_component(f"amqp://opa:{password}@127.0.0.1:{port}//", None, run))
    began = time.monotonic()
    with pytest.raises(ComponentError) as caught:
        TestClient(app).__enter__()
    assert time.monotonic() - began < 5
    message = str(caught.value)
    assert f"amqp://opa:***@127.0.0.1:{port}//" in message and "pre-check failed" in message
    assert password not in message


def test_a_broker_lost_after_start_up_answers_503(
    test_services: TestServices, backend_url: str, run: Run
) -> None:
    """Enqueueing while the broker is down answers 503 naming the component, then recovers."""
    server = test_services.start_redis()
    retry_once = {"max_retries": 1}
    celery = celery_component(server.url, backend_url, run, broker_transport_options=retry_once)
    with TestClient(make_app(celery)) as client:
        assert client.post("/add?a=1&b=2").status_code == 200
        server.stop()
        response = client.post("/add?a=1&b=2")
        assert response.status_code == 503
        assert response.json() == {"detail": "backend unavailable for component 'celery'"}
        server.start()
        assert client.post("/add?a=1&b=2").status_code == 200


def test_a_redis_backend_lost_after_start_up_answers_503(
    test_services: TestServices, rabbitmq_url: str, run: Run
) -> None:
    """Reading a result while the Redis backend is down answers 503 naming the component."""
    server = test_services.start_redis()
    with TestClient(make_app(celery_component(rabbitmq_url, server.url, run))) as client:
        assert client.get("/results/no-such-task").json()["state"] == "PENDING"
        server.stop()
        response = client.get("/results/no-such-task")
        assert response.status_code == 503
        assert response.json() == {"detail": "backend unavailable for component 'celery'"}


RACE = """
from fastapi.testclient import TestClient
from opa.testing import build_app

component = {"LOAD": "yes", "DRIVER": "celery", "OPTS": {"BROKER_URL": "memory://"}}
app = build_app({"OPTIONAL_COMPONENTS": {f"C{i}": component for i in range(6)}})
with TestClient(app) as client:
    assert client.get("/health").status_code == 200
"""


def test_several_components_connect_at_once_in_a_fresh_process() -> None:
    """Six Celery components connecting together, celery not yet imported: all connect."""
    result = subprocess.run(
        [sys.executable, "-c", RACE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
