"""With every driver installed, an app whose settings name no component connects nothing.

opa-core configures no component of its own: installing a driver never makes an app dial
localhost, warn about a component nobody asked for, or report itself degraded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from faults import OpaRun

from opa.testing import LOCALHOST

ROOT = Path(__file__).resolve().parents[2]
HELLO_WORLD = ROOT / "examples" / "hello-world"
FIRST_PARTY_DRIVERS = [
    "celery",
    "mongodb-async-motor",
    "mongodb-async-pymongo",
    "redis-aioredis",
    "redis-walrus",
    "sqlalchemy",
    "sqlalchemy-async",
]


def opa(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`opa ARGS` in *cwd*, with none of this machine's OPA_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPA_") and k != "ENV"}
    return subprocess.run(
        [sys.executable, "-m", "opa", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_check_from_an_empty_folder_connects_nothing(tmp_path: Path) -> None:
    """`opa check` from an empty folder names no component, though every driver is installed."""
    done = opa("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no components configured\n"
    assert "WARNING" not in done.stderr


def test_drivers_lists_the_installed_drivers_and_nothing_missing(tmp_path: Path) -> None:
    """`opa drivers` from an empty folder lists every installed driver and no missing one."""
    done = opa("drivers", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines()[1:]}
    assert set(FIRST_PARTY_DRIVERS) <= listed
    assert "not installed" not in done.stdout


def test_the_quick_start_answers_ok_with_every_driver_installed(
    tmp_path: Path, opa_runs: list[OpaRun]
) -> None:
    """The README's hello-world run starts without a warning and /health answers ok, empty."""
    settings = tmp_path / "settings"
    settings.mkdir()
    run = OpaRun(settings, tmp_path / "opa.log", {"OPA_PLUGIN_PATHS": str(HELLO_WORLD)})
    opa_runs.append(run)
    run.wait_serving()
    with urllib.request.urlopen(f"http://{LOCALHOST}:{run.port}/health", timeout=5) as response:
        assert response.status == 200
        assert json.load(response) == {"status": "ok", "components": {}}
    assert "WARNING" not in run.output(), run.output()
