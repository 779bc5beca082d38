"""What `opa config`, `opa check` and `opa shell` print matches what the docs say of it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from opa._cli import cli
from opa._log import setup_logging
from support import without_installed_driver

DOCS = Path(__file__).resolve().parents[3] / "docs"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # Commands point the log sink at the runner's stream; put it back on a live one.
    yield
    setup_logging("WARNING")


def invoke(tmp_path: Path, default: dict[str, Any], *args: str, input: str | None = None) -> Result:
    """Run ``opa ARGS`` on a settings folder holding *default* and nothing from the caller."""
    folder = tmp_path / "settings"
    folder.mkdir(exist_ok=True)
    (folder / "settings.yaml").write_text(yaml.safe_dump({"default": default}))
    env = {"OPA_SETTINGS_DIR": None, "OPA_ENV": None, "OPA_LOG_LEVEL": None, "ENV": None}
    return CliRunner().invoke(cli, ["--settings-dir", str(folder), *args], env=env, input=input)


def test_config_prints_only_settings_the_reference_names(tmp_path: Path) -> None:
    """Each top-level key `opa config` prints is in docs/configuration.md, as itself or as
    its OPA_ variable (SETTINGS_DIR); dynaconf's LOAD_DOTENV, no opa setting, is not printed."""
    result = invoke(tmp_path, {}, "config")
    assert result.exit_code == 0, result.output
    keys = yaml.safe_load(result.stdout)
    assert "LOAD_DOTENV" not in keys
    reference = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(
        key for key in keys if f"`{key}`" not in reference and f"`OPA_{key}`" not in reference
    )
    assert not missing, f"`opa config` prints keys configuration.md does not name: {missing}"


def test_check_shows_the_configured_urls_of_a_component_whose_driver_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opa check` shows a missing driver's *URL options, masked, or "-", never "no URL"."""
    without_installed_driver(monkeypatch, "celery")
    components = {
        "CELERY": {"DRIVER": "celery", "OPTS": {"BROKER_URL": "amqp://u:s3cret@mq:5672//"}},
        "OTHER": {"DRIVER": "no-such-driver"},
    }
    result = invoke(tmp_path, {"OPTIONAL_COMPONENTS": components}, "check")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["celery"][4] == "amqp://u:***@mq:5672//"
    assert rows["other"][4] == "-"
    assert "no URL" not in result.stdout
    assert "s3cret" not in result.output


def test_shell_log_lines_name_the_console(tmp_path: Path) -> None:
    """`log.info` typed in `opa shell` reports its place as __console__:1, not None:1."""
    if importlib.util.find_spec("IPython") is not None:
        pytest.skip("IPython is installed; this test drives the plain console")
    result = invoke(tmp_path, {"LOG_LEVEL": "INFO"}, "shell", input="log.info('from the prompt')\n")
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if "from the prompt" in line]
    assert "__console__:1 - from the prompt" in line
    assert "None:" not in line
