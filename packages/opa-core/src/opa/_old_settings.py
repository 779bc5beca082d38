"""opa-stack's settings and environment variables: honoured, warned about, or refused.

None is ignored in silence. Each message names what opa reads instead and the migration
page, where the same name has its row:

- CORS's ``ALLOW_*`` keys are refused: a CORS policy that silently did not apply would
  show only as browsers failing;
- ``OPA_LOGLEVEL`` sets ``LOG_LEVEL``, with a warning, unless ``OPA_LOG_LEVEL`` is set too;
- ``MODE=worker`` (or ``flower``) refuses to serve the API, naming the command to run
  instead, and so does ``celery -A opa.main``, opa-stack's worker command;
- ``uvicorn opa.main:app --log-level`` sets the app's level, as it did;
- the rest (the container's switches, build information) are warned about.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opa._errors import ConfigError, OpaError
from opa._legacy import MIGRATION_PAGE
from opa._setting_errors import found
from opa._settings_model import LOG_LEVELS

REFUSED_KEYS = {
    "ALLOW_ORIGINS": "CORS_ORIGINS",
    "ALLOW_CREDENTIALS": "CORS_ALLOW_CREDENTIALS",
    "ALLOW_METHODS": "CORS_METHODS",
    "ALLOW_HEADERS": "CORS_HEADERS",
}
"""opa-stack's CORS keys -> the keys opa reads."""

OLD_LOG_LEVEL = "LOGLEVEL"
"""The key ``OPA_LOGLEVEL`` sets; opa-stack's container passed it to uvicorn."""

IGNORED = {
    "PTVSD": (
        "opa starts no remote debugger; run opa under debugpy instead "
        "(python -m debugpy --listen 0.0.0.0:5678 -m opa run)"
    ),
    "BETTER_EXCEPTIONS": (
        "opa installs no better_exceptions; with DEBUG (OPA_DEBUG) a 500 answer carries the "
        "traceback, masked, and the log always has it"
    ),
    "BETTER_EXCEPTIONS_MAX_LENGTH": "opa installs no better_exceptions, so nothing reads it",
    "CELERY_PARAMS": "give the worker's arguments to the command itself: opa worker -Q q1 -c 2",
    "CELERY_COMMAND": (
        "run the command itself: opa worker ..., or celery -A opa.worker <command> "
        "(flower, inspect, ...)"
    ),
}
"""Settings keys and environment variables opa-stack read that opa does not -> what to do."""

OLD_MODES = ("api", "worker", "flower", "manual")
"""The values of opa-stack's ``MODE``; another value is someone else's variable."""

BUILD_INFO = ("SOURCE_COMMIT", "DOCKER_TAG")
"""Build variables opa-stack's image saved into its settings; opa reads them as ``OPA_<NAME>``."""


def refused_problems(values: Mapping[str, Any]) -> list[str]:
    """One problem line for each of opa-stack's CORS keys the settings carry."""
    return [
        f"setting {old} (OPA_{old}) is opa-stack's and not read by opa; "
        f"use {new} (OPA_{new}) (see {MIGRATION_PAGE})"
        for old, new in REFUSED_KEYS.items()
        if old in values
    ]


def old_log_level(
    values: Mapping[str, Any], environ: Mapping[str, str], overridden: bool
) -> tuple[Any, str]:
    """(the ``LOG_LEVEL`` that ``OPA_LOGLEVEL`` sets, or None; the warning to log, or "").

    ``OPA_LOG_LEVEL`` (what ``--log-level`` sets) or a ``LOG_LEVEL`` override wins over it.
    """
    if OLD_LOG_LEVEL not in values:
        return None, ""
    old = values[OLD_LOG_LEVEL]
    if overridden or "OPA_LOG_LEVEL" in environ:
        return None, (
            f"OPA_LOGLEVEL={old} is ignored: OPA_LOG_LEVEL (or the command's --log-level) "
            f"sets the level; drop OPA_LOGLEVEL (see {MIGRATION_PAGE})"
        )
    if str(old).strip().upper() not in LOG_LEVELS:
        raise ConfigError(
            f"setting LOGLEVEL (OPA_LOGLEVEL, opa-stack's name of OPA_LOG_LEVEL): expected "
            f"one of {', '.join(LOG_LEVELS)}; found {found([OLD_LOG_LEVEL], old)}"
        )
    return old, (
        f"OPA_LOGLEVEL is deprecated; it set LOG_LEVEL={old}: "
        f"use OPA_LOG_LEVEL (see {MIGRATION_PAGE})"
    )


def ignored_warnings(values: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """A warning for each name opa-stack read and opa does not, found as a setting
    (a settings file or ``OPA_<NAME>``) or as a bare environment variable."""
    found: list[str] = []
    for name, instead in IGNORED.items():
        if name in values or name in environ:
            found.append(
                f"{name} is opa-stack's and not read by opa: {instead} (see {MIGRATION_PAGE})"
            )
    mode = environ.get("MODE", "").strip().lower()
    if mode in OLD_MODES:
        found.append(
            f"MODE={mode} is opa-stack's and not read by opa: opa runs the command it is "
            f"given, opa run for the API, opa worker for a worker (see {MIGRATION_PAGE})"
        )
    for name in BUILD_INFO:
        if name in environ and name not in values:
            found.append(
                f"{name} is not read by opa: opa-stack saved it into its settings at build "
                f"time; set OPA_{name} for opa.config.{name}, or PROJECT_VERSION "
                f"(OPA_PROJECT_VERSION) to show a build in the API schema (see {MIGRATION_PAGE})"
            )
    return found


def celery_command(environ: Mapping[str, str]) -> str:
    """The command opa runs where opa-stack's container ran Celery (``MODE=worker`` with
    ``CELERY_PARAMS`` and ``CELERY_COMMAND``, or ``MODE=flower``)."""
    arguments = shlex.split(environ.get("CELERY_PARAMS", ""))
    if environ.get("MODE", "").strip().lower() == "flower":
        return shlex.join(["celery", "-A", "opa.worker", "flower", *arguments])
    command = environ.get("CELERY_COMMAND", "").strip()
    if command and command != "worker":
        return shlex.join(["celery", "-A", "opa.worker", *shlex.split(command), *arguments])
    return shlex.join(["opa", "worker", *arguments])


def refuse_worker_mode(environ: Mapping[str, str]) -> None:
    """Refuse to serve the API where opa-stack's container would have run Celery instead."""
    mode = environ.get("MODE", "").strip().lower()
    if mode not in ("worker", "flower"):
        return
    raise ConfigError(
        f"MODE={mode} is opa-stack's switch to Celery, and this command serves the API; "
        f"run it as its own command: {celery_command(environ)} (see {MIGRATION_PAGE})"
    )


def _run_by(program: str, argv: Sequence[str]) -> bool:
    """Whether *argv* is that of *program*'s command (its script, or ``python -m program``)."""
    if not argv:
        return False
    started = Path(argv[0])
    return started.name == program or (
        started.name == "__main__.py" and started.parent.name == program
    )


def uvicorn_log_level(argv: Sequence[str]) -> str | None:
    """The level of ``uvicorn opa.main:app --log-level LEVEL``, which opa-stack's app took as
    its own; None when uvicorn was not started with one."""
    if not _run_by("uvicorn", argv):
        return None
    for index, argument in enumerate(argv):
        if argument.startswith("--log-level="):
            return argument.partition("=")[2].upper()
        if argument == "--log-level" and index + 1 < len(argv):
            return argv[index + 1].upper()
    return None


def refuse_celery_on_the_api(argv: Sequence[str]) -> None:
    """Refuse ``celery -A opa.main``, opa-stack's worker command, in one line: ``opa.main``
    is the API app, which Celery cannot run."""
    if _run_by("celery", argv):
        raise OpaError(
            "celery -A opa.main is opa-stack's worker command, and opa.main is the API app; "
            "run the worker with: opa worker (or celery -A opa.worker worker) "
            f"(see {MIGRATION_PAGE})"
        )
