"""While an app serves, what its start-up built is frozen out of the garbage collector."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from support import make_app


def test_startup_objects_are_frozen_while_serving_and_released_after() -> None:
    app = make_app()
    assert gc.get_freeze_count() == 0
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        frozen = gc.get_freeze_count()
        # Every module, setting and plugin object: far more than a few stray ones.
        assert frozen > 10_000
        manager = app.state.opa
        assert not any(tracked is manager for tracked in gc.get_objects())
    assert gc.get_freeze_count() == 0
    assert any(tracked is manager for tracked in gc.get_objects())
