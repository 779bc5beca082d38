"""opa-stack's worker command, run as its users ran it, against opa."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opa.testing import clean_environ


def test_celery_on_opa_main_ends_with_one_line_naming_opa_worker(tmp_path: Path) -> None:
    """`celery -A opa.main worker` stops at once, status 1, with one line naming opa worker."""
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "opa.main", "worker"],
        env=clean_environ(tmp_path),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: celery -A opa.main is opa-stack's worker command, and opa.main is the API app; "
        "run the worker with: opa worker (or celery -A opa.worker worker) "
        "(see 'Migrating from opa-stack' (docs/migrating.md))"
    ]
