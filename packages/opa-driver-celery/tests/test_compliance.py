"""The driver compliance suite of opa-core, run against a live RabbitMQ broker."""

from __future__ import annotations

from typing import Any

import pytest

from opa.testing import DriverComplianceSuite, closed_port


class TestCeleryCompliance(DriverComplianceSuite):
    """The celery driver, with RabbitMQ as broker and no result backend."""

    driver_name = "celery"
    distribution = "opa-driver-celery"
    required_option = "BROKER_URL"

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

    def invalid_options(self) -> list[tuple[dict[str, Any], str]]:
        broker = "amqp://127.0.0.1//"
        return [
            ({"BROKER_URL": broker, "EXCHANGE": "x"}, "EXCHANGE"),
            ({"BROKER_URL": broker, "SETTINGS": {"accept_content": ["pickle"]}}, "SETTINGS"),
            ({"BROKER_URL": broker, "SETTINGS": "task_acks_late"}, "SETTINGS"),
            ({"BROKER_URL": broker, "APP_NAME": ""}, "APP_NAME"),
        ]
