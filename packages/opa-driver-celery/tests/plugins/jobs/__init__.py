"""Test plugin: a sync ``test-store`` driver (a Redis client) that remembers its process.

Its tasks live in ``tasks.py``, written the way opa-stack's plugins wrote them.
"""

from __future__ import annotations

import os
from typing import Any

import redis

from opa import Driver


class StoreDriver(Driver):
    """A Redis client; ``connected_in`` tells which process connected it."""

    name = "test-store"
    is_async = False

    def connect(self) -> None:
        self.connected_in = os.getpid()
        self.instance = redis.Redis.from_url(self.opts.URL, socket_connect_timeout=2)

    def validate(self) -> Any:
        return self.instance.ping()

    def disconnect(self) -> None:
        self.instance.close()
