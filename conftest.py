"""pytest set-up for the whole monorepo: `pytest packages/*/tests` from the root works.

Tests are imported with ``--import-mode=importlib`` (pyproject.toml), so two packages may
each have a ``test_options.py``. That mode puts no test folder on ``sys.path``; the test
folders' own helper modules (``support``, ``celery_support``, ``faults``, ...) are found
because this file puts those folders there. Their names must therefore differ across
packages.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TEST_FOLDERS = [*sorted(ROOT.glob("packages/*/tests")), ROOT / "tests" / "integration"]

for folder in TEST_FOLDERS:
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
