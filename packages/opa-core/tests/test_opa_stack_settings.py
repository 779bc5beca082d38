"""opa-stack's settings and environment variables: each honoured, or named with its
replacement and the migration page, never ignored in silence."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from opa._cli import cli
from opa._config import load_settings, old_name_warnings, typed
from opa._errors import ConfigError, OpaError
from opa._log import setup_logging
from opa._old_settings import refuse_celery_on_the_api, refuse_worker_mode, uvicorn_log_level
from opa.testing import clean_environ
from support import make_app

MIGRATION = "(see 'Migrating from opa-stack' (docs/migrating.md))"
OLD_VARIABLES = (
    "MODE",
    "CELERY_PARAMS",
    "CELERY_COMMAND",
    "PTVSD",
    "BETTER_EXCEPTIONS",
    "BETTER_EXCEPTIONS_MAX_LENGTH",
    "SOURCE_COMMIT",
    "DOCKER_TAG",
)


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No old name, and no OPA_ variable, from the machine running the tests."""
    for name in [*OLD_VARIABLES, "ENV"]:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("OPA_"):
            monkeypatch.delenv(name)
    yield
    setup_logging("INFO")


def loaded(tmp_path: Path) -> Any:
    """The settings of an empty settings folder and this test's environment."""
    return load_settings(settings_dir=tmp_path)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ALLOW_ORIGINS", "CORS_ORIGINS"),
        ("ALLOW_CREDENTIALS", "CORS_ALLOW_CREDENTIALS"),
        ("ALLOW_METHODS", "CORS_METHODS"),
        ("ALLOW_HEADERS", "CORS_HEADERS"),
    ],
)
def test_opa_stacks_cors_keys_are_refused_naming_the_new_ones(
    old: str, new: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_ALLOW_* stops start-up with one line naming OPA_CORS_*: a CORS policy must not
    silently not apply."""
    monkeypatch.setenv(f"OPA_{old}", '["GET"]')
    with pytest.raises(ConfigError) as caught:
        loaded(tmp_path)
    assert str(caught.value) == (
        f"setting {old} (OPA_{old}) is opa-stack's and not read by opa; "
        f"use {new} (OPA_{new}) {MIGRATION}"
    )


def test_opa_loglevel_sets_the_level_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_LOGLEVEL=debug is honoured as LOG_LEVEL and named as deprecated."""
    monkeypatch.setenv("OPA_LOGLEVEL", "debug")
    settings = loaded(tmp_path)
    assert typed(settings).LOG_LEVEL == "DEBUG"
    assert old_name_warnings(settings) == [
        f"OPA_LOGLEVEL is deprecated; it set LOG_LEVEL=debug: use OPA_LOG_LEVEL {MIGRATION}"
    ]


def test_a_bad_opa_loglevel_is_named_by_its_own_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A level no one knows, set as OPA_LOGLEVEL, is refused naming OPA_LOGLEVEL."""
    monkeypatch.setenv("OPA_LOGLEVEL", "chatty")
    with pytest.raises(ConfigError) as caught:
        loaded(tmp_path)
    assert str(caught.value) == (
        "setting LOGLEVEL (OPA_LOGLEVEL, opa-stack's name of OPA_LOG_LEVEL): expected one of "
        "TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL; found str 'chatty'"
    )


def test_opa_log_level_wins_over_opa_loglevel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With both set, OPA_LOG_LEVEL decides and OPA_LOGLEVEL is named as ignored."""
    monkeypatch.setenv("OPA_LOGLEVEL", "debug")
    monkeypatch.setenv("OPA_LOG_LEVEL", "ERROR")
    settings = loaded(tmp_path)
    assert typed(settings).LOG_LEVEL == "ERROR"
    assert old_name_warnings(settings) == [
        "OPA_LOGLEVEL=debug is ignored: OPA_LOG_LEVEL (or the command's --log-level) sets "
        f"the level; drop OPA_LOGLEVEL {MIGRATION}"
    ]


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["/venv/bin/uvicorn", "opa.main:app", "--log-level", "debug"], "DEBUG"),
        (["/venv/bin/uvicorn", "opa.main:app", "--log-level=warning"], "WARNING"),
        (["/usr/lib/python3/uvicorn/__main__.py", "opa.main:app", "--log-level", "trace"], "TRACE"),
        (["/venv/bin/uvicorn", "opa.main:app"], None),
        (["/venv/bin/opa", "run", "--log-level", "debug"], None),
    ],
)
def test_uvicorns_log_level_is_read_only_from_uvicorns_command(
    argv: list[str], level: str | None
) -> None:
    """`uvicorn ... --log-level X` is found in uvicorn's arguments, and only there."""
    assert uvicorn_log_level(argv) == level


def test_uvicorns_log_level_sets_the_apps_level(tmp_path: Path) -> None:
    """opa.main imported as `uvicorn opa.main:app --log-level debug` runs at DEBUG."""
    program = (
        "import sys; sys.argv = ['uvicorn', 'opa.main:app', '--log-level', 'debug'];"
        "import opa.main; from opa._config import typed;"
        "print(typed(opa.main.app.state.opa.settings).LOG_LEVEL)"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=clean_environ(tmp_path),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert done.stdout.strip() == "DEBUG"


def test_mode_worker_refuses_to_serve_the_api_and_gives_the_worker_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MODE=worker with CELERY_PARAMS: the app is refused, naming the opa worker command."""
    monkeypatch.setenv("MODE", "worker")
    monkeypatch.setenv("CELERY_PARAMS", "-Q counter,math -c 2")
    with pytest.raises(ConfigError) as caught:
        make_app()
    assert str(caught.value) == (
        "MODE=worker is opa-stack's switch to Celery, and this command serves the API; "
        f"run it as its own command: opa worker -Q counter,math -c 2 {MIGRATION}"
    )


@pytest.mark.parametrize(
    ("environ", "command"),
    [
        (
            {"MODE": "worker", "CELERY_PARAMS": "-E -Q math -n math"},
            "opa worker -E -Q math -n math",
        ),
        ({"MODE": "worker", "CELERY_COMMAND": "beat"}, "celery -A opa.worker beat"),
        ({"MODE": "worker", "CELERY_COMMAND": "worker"}, "opa worker"),
        ({"MODE": "flower"}, "celery -A opa.worker flower"),
    ],
)
def test_the_refusal_translates_opa_stacks_celery_variables(
    environ: dict[str, str], command: str
) -> None:
    """MODE, CELERY_PARAMS and CELERY_COMMAND become the one command opa runs instead."""
    with pytest.raises(ConfigError, match=f"run it as its own command: {re.escape(command)} "):
        refuse_worker_mode(environ)


def test_opa_run_under_mode_worker_ends_with_one_line(tmp_path: Path) -> None:
    """`opa run` with MODE=worker ends with status 1 and the one line naming opa worker."""
    result = CliRunner().invoke(
        cli,
        ["--settings-dir", str(tmp_path), "run"],
        env={"MODE": "worker", "CELERY_PARAMS": "-Q q1"},
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: MODE=worker is opa-stack's switch to Celery, and this command serves the API; "
        f"run it as its own command: opa worker -Q q1 {MIGRATION}"
    ]


@pytest.mark.parametrize(
    ("variable", "value", "instead"),
    [
        ("MODE", "api", "opa runs the command it is given, opa run for the API"),
        ("CELERY_PARAMS", "-Q q1", "give the worker's arguments to the command itself"),
        ("CELERY_COMMAND", "flower", "run the command itself: opa worker ..., or celery -A"),
        ("PTVSD", "1", "opa starts no remote debugger; run opa under debugpy"),
        ("BETTER_EXCEPTIONS", "1", "opa installs no better_exceptions; with DEBUG"),
        ("BETTER_EXCEPTIONS_MAX_LENGTH", "200", "opa installs no better_exceptions"),
        ("SOURCE_COMMIT", "abc123", "set OPA_SOURCE_COMMIT for opa.config.SOURCE_COMMIT"),
        ("DOCKER_TAG", "v1", "set OPA_DOCKER_TAG for opa.config.DOCKER_TAG"),
    ],
)
def test_old_environment_variables_are_warned_about_naming_the_replacement(
    variable: str, value: str, instead: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of opa-stack's container variables gives one warning naming what to do instead."""
    monkeypatch.setenv(variable, value)
    (warning,) = old_name_warnings(loaded(tmp_path))
    assert variable in warning
    assert instead in warning
    assert warning.endswith(MIGRATION)


@pytest.mark.parametrize("variable", ["PTVSD", "BETTER_EXCEPTIONS"])
def test_old_keys_in_a_settings_file_are_warned_about_too(variable: str, tmp_path: Path) -> None:
    """opa-stack's dev switches written in a settings file are named as well."""
    (tmp_path / "old.yaml").write_text(f"dev:\n  {variable}: true\n")
    settings = load_settings(settings_dir=tmp_path, env="dev")
    (warning,) = old_name_warnings(settings)
    assert warning.startswith(f"{variable} is opa-stack's and not read by opa: ")


def test_build_information_as_an_opa_setting_is_read_without_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPA_SOURCE_COMMIT gives opa.config.SOURCE_COMMIT, as opa-stack's build file did."""
    monkeypatch.setenv("OPA_SOURCE_COMMIT", "abc123")
    monkeypatch.setenv("SOURCE_COMMIT", "abc123")
    settings = loaded(tmp_path)
    assert settings.SOURCE_COMMIT == "abc123"
    assert old_name_warnings(settings) == []


def test_the_warnings_reach_the_log_of_every_command(tmp_path: Path) -> None:
    """`opa config` with PTVSD set logs the warning on stderr and still prints the settings."""
    result = CliRunner().invoke(
        cli, ["--settings-dir", str(tmp_path), "config"], env={"PTVSD": "1"}
    )
    assert result.exit_code == 0, result.output
    assert "WARNING  | " in result.stderr
    assert "PTVSD is opa-stack's and not read by opa: opa starts no remote debugger" in (
        result.stderr
    )


def test_celery_on_opa_main_is_refused_naming_opa_worker() -> None:
    """`celery -A opa.main worker`, opa-stack's worker command, gets one line naming opa worker."""
    with pytest.raises(OpaError) as caught:
        refuse_celery_on_the_api(["/venv/bin/celery", "-A", "opa.main", "worker"])
    assert str(caught.value) == (
        "celery -A opa.main is opa-stack's worker command, and opa.main is the API app; run "
        f"the worker with: opa worker (or celery -A opa.worker worker) {MIGRATION}"
    )
    refuse_celery_on_the_api(["/venv/bin/uvicorn", "opa.main:app"])  # the API's own command
