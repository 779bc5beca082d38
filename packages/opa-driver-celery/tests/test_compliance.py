"""The driver compliance suite of opa-core, run against a live RabbitMQ broker."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from opa import Component
from opa.testing import DriverComplianceSuite, closed_port


class TestCeleryCompliance(DriverComplianceSuite):
    """The celery driver, with RabbitMQ as broker and no result backend."""

    driver_name = "celery"
    distribution = "opa-driver-celery"
    required_option = "BROKER_URL"
    client_libraries = ("celery", "kombu", "amqp")
    # kombu's connect timeout also bounds the AMQP handshake; a publish retries within
    # Celery's default publish policy (3 retries, 0.2 s apart at most).
    timeout_options: ClassVar[dict[str, Any]] = {"SETTINGS": {"broker_connection_timeout": 1}}
    blocking_timeout = 2.0

    @pytest.fixture
    def live_options(self, rabbitmq_url: str) -> dict[str, Any]:
        return {"BROKER_URL": rabbitmq_url}

    def unreachable_options(self) -> dict[str, Any]:
        return {"BROKER_URL": f"amqp://guest:guest@127.0.0.1:{closed_port()}//"}

    def credential_options(self, password: str) -> dict[str, Any]:
        return {
            "BROKER_URL": f"amqp://opa:{password}@127.0.0.1:{closed_port()}//",
            "BACKEND_URL": f"redis://:{password}@127.0.0.1:{closed_port()}/12",
        }

    def refused_options(self, live_options: dict[str, Any], password: str) -> dict[str, Any]:
        """A login the broker refuses: a user it does not know."""
        url = live_options["BROKER_URL"]
        scheme, _, rest = url.partition("://")
        location = rest.rpartition("@")[2]
        return {**live_options, "BROKER_URL": f"{scheme}://opa-nobody:{password}@{location}"}

    def round_trip(self, component: Component, token: str) -> Any:
        """Publish a task message as a plugin would, to a queue nobody declared (the broker
        drops it, so the shared broker keeps nothing); the result's id is *token*."""
        from kombu import Queue

        nowhere = Queue(f"opa-compliance-{token}")
        return component.instance.send_task(
            "opa.compliance.round_trip", task_id=token, queue=nowhere, declare=[]
        )

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        broker = "amqp://127.0.0.1//"
        return [
            ({"BROKER_URL": broker, "EXCHANGE": "x"}, "EXCHANGE"),
            ({"BROKER_URL": broker, "SETTINGS": {"accept_content": ["pickle"]}}, "SETTINGS"),
            ({"BROKER_URL": broker, "SETTINGS": "task_acks_late"}, "SETTINGS"),
            ({"BROKER_URL": broker, "APP_NAME": ""}, "APP_NAME"),
        ]
