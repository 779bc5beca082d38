"""Flower on the worker app, set up as the README says: its HTTP API needs authentication.

Flower 2 answers 401 on /api/* unless an authentication option is set; the README gives
basic auth through FLOWER_BASIC_AUTH first, and FLOWER_UNAUTHENTICATED_API for a machine
nobody else reaches. These tests run `celery -A opa.worker flower` for real on RabbitMQ.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from celery_support import Run, celery_component, started, write_settings
from opa.testing import bound_port, clean_environ, wait_for

USER, PASSWORD = "admin", "flower-test-password"


@contextmanager
def flower(tmp_path: Path, rabbitmq_url: str, run: Run, **env: str) -> Iterator[str]:
    """`celery -A opa.worker flower` on this run's settings and *env*; yields its base URL."""
    celery = celery_component(rabbitmq_url, None, run)
    settings = write_settings(tmp_path / "settings", {"celery": celery})
    command = [sys.executable, "-m", "celery", "-A", "opa.worker", "flower"]
    command += ["--port=0", "--address=127.0.0.1"]
    environ = {**clean_environ(settings), **env}
    with started(command, environ, tmp_path, tmp_path / "flower.log", ready=False) as process:
        url = f"http://127.0.0.1:{bound_port(process.popen, 'flower', 40)}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthcheck", timeout=1).text == "OK"
            except httpx.HTTPError:
                return False

        wait_for(healthy, 40, "flower answering /healthcheck", every=0.5)
        yield url


def test_the_api_answers_401_without_an_authentication_option(
    tmp_path: Path, rabbitmq_url: str, run: Run
) -> None:
    """Flower started bare refuses /api/tasks, as the README warns."""
    with flower(tmp_path, rabbitmq_url, run) as url:
        response = httpx.get(f"{url}/api/tasks", timeout=10)
    assert response.status_code == 401
    assert "FLOWER_UNAUTHENTICATED_API" in response.text


def test_basic_auth_from_the_environment_opens_the_api_to_its_user(
    tmp_path: Path, rabbitmq_url: str, run: Run
) -> None:
    """With FLOWER_BASIC_AUTH=user:password, /api/tasks and /api/workers answer that user
    (curl -u) and refuse anyone else."""
    with flower(tmp_path, rabbitmq_url, run, FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}") as url:
        anonymous = httpx.get(f"{url}/api/tasks", timeout=10)
        wrong = httpx.get(f"{url}/api/tasks", auth=(USER, "wrong"), timeout=10)
        tasks = httpx.get(f"{url}/api/tasks", auth=(USER, PASSWORD), timeout=10)
        workers = httpx.get(f"{url}/api/workers", auth=(USER, PASSWORD), timeout=30)
    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert tasks.status_code == 200 and tasks.json() == {}
    assert workers.status_code == 200 and isinstance(workers.json(), dict)


def test_the_unauthenticated_api_flag_opens_the_api_to_everyone(
    tmp_path: Path, rabbitmq_url: str, run: Run
) -> None:
    """FLOWER_UNAUTHENTICATED_API=true serves /api/tasks with no credentials."""
    with flower(tmp_path, rabbitmq_url, run, FLOWER_UNAUTHENTICATED_API="true") as url:
        response = httpx.get(f"{url}/api/tasks", timeout=10)
    assert response.status_code == 200
    assert response.json() == {}
