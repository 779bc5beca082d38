"""``celery -A opa.worker``: a bad setting ends the worker in one line, not a traceback.

Celery runs as a real subprocess, with the settings given by ``OPA_`` variables only (no
settings folder), and must exit 1 with one ``error: ...`` line naming the setting.
(``uvicorn opa.main:app`` has the same test in opa-core's test_cli.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CELERY = [sys.executable, "-m", "celery", "-A", "opa.worker"]

BAD_SETTINGS = [
    (
        {"OPA_HEALTH_TIMEOUT": "[1,2]"},
        "error: setting HEALTH_TIMEOUT (OPA_HEALTH_TIMEOUT): expected a number of seconds "
        "above 0 and at most 3600; found list",
    ),
    (
        {"OPA_PORT": "99999"},
        "error: setting PORT (OPA_PORT): expected a whole number from 1 to 65535; found int 99999",
    ),
    (
        {
            "OPA_OPTIONAL_COMPONENTS__CELERY__DRIVER": "celery",
            "OPA_OPTIONAL_COMPONENTS__CELERY__TIMEOUT": "nan",
        },
        "error: setting OPTIONAL_COMPONENTS.CELERY.TIMEOUT "
        "(OPA_OPTIONAL_COMPONENTS__CELERY__TIMEOUT): "
        "expected a number of seconds above 0 and at most 3600; found float nan",
    ),
]


def environment(variables: dict[str, str]) -> dict[str, str]:
    """This process's environment without opa's own variables, plus *variables*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPA_") and k != "ENV"}
    return {**env, "OPA_SETTINGS_DIR": "/nonexistent", **variables}


def run(
    command: list[str], variables: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """*command* in *cwd* with *variables* as the only OPA_ variables."""
    return subprocess.run(
        command, env=environment(variables), cwd=cwd, capture_output=True, text=True, timeout=90
    )


@pytest.mark.parametrize(("variables", "line"), BAD_SETTINGS)
def test_celery_a_opa_worker_ends_a_bad_setting_with_one_line(
    tmp_path: Path, variables: dict[str, str], line: str
) -> None:
    """`celery -A opa.worker worker` with a bad setting prints one error line and exits 1."""
    done = run([*CELERY, "worker"], variables, tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [line]
