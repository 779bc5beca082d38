"""Cross-package tests: every package of the monorepo installed together (`nox -s integration`)."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import MARKER_PLUGIN, OpaRun

from opa.testing import RedisServer, ServiceUnavailable, TestServices, skip_or_fail

pytest_plugins = ["opa.testing.fixtures"]


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    """A plugin folder holding the marker driver and the one-second /slow route."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"fault_marker_{uuid.uuid4().hex[:10]}.py").write_text(MARKER_PLUGIN)
    return folder


@pytest.fixture
def opa_runs() -> Iterator[list[OpaRun]]:
    """`opa run` processes a test started; each is killed, with its group, at the end."""
    runs: list[OpaRun] = []
    yield runs
    for run in runs:
        run.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A private Redis a test may stop, pause and start; never the shared one."""
    with TestServices() as services:
        try:
            yield services.start_redis()
        except ServiceUnavailable as error:
            skip_or_fail(str(error))
