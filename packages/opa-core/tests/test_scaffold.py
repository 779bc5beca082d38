"""``opa new-driver``: names are checked, folders are kept, and the package it makes works."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from opa._cli import cli
from opa._scaffold import ScaffoldError, create_driver_package
from opa.testing import skip_or_fail

CORE = Path(__file__).resolve().parents[1]
"""This repository's opa-core folder, installed into the fresh environment."""

INSTALL_TIMEOUT = 600
RUN_TIMEOUT = 300


def clean_env() -> dict[str, str]:
    """This process's environment without what would leak into a fresh venv or opa's settings."""
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "ENV")
    return {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.upper().startswith(("OPA_", "DYNACONF_"))
    }


def run(
    args: list[str], cwd: Path, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run *args* in *cwd* with a clean environment, failing the test if it times out."""
    try:
        return subprocess.run(
            args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)} did not finish within {timeout}s", pytrace=False)


def report(result: subprocess.CompletedProcess[str]) -> str:
    """A failed command's output, for an assertion message."""
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.mark.parametrize(
    "name", ["", "Redis", "1db", "-db", "db-", "my--db", "my_db", "my db", "db.x", "dbé"]
)
def test_invalid_names_are_refused(tmp_path: Path, name: str) -> None:
    """An invalid name is refused with an error quoting it, and nothing is written."""
    with pytest.raises(ScaffoldError) as caught:
        create_driver_package(name, tmp_path)
    assert repr(name) in str(caught.value)
    assert "lowercase letters, digits" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_the_command_reports_an_invalid_name_in_one_line(tmp_path: Path) -> None:
    """opa new-driver with a bad name exits 1 with one error line naming the value."""
    result = CliRunner().invoke(cli, ["new-driver", "My_Db", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: invalid driver name 'My_Db':"), result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_not_overwritten(tmp_path: Path) -> None:
    """A folder already named opa-driver-NAME is refused and left as it was."""
    existing = tmp_path / "opa-driver-mine"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(ScaffoldError, match="already exists"):
        create_driver_package("mine", tmp_path)
    result = CliRunner().invoke(cli, ["new-driver", "mine", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert (existing / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_the_layout_names_everything_after_the_driver(tmp_path: Path, is_async: bool) -> None:
    """The package has the src layout, py.typed and an entry point named after the driver."""
    flag = "--async" if is_async else "--sync"
    result = CliRunner().invoke(cli, ["new-driver", "cold-store2", "--dir", str(tmp_path), flag])
    assert result.exit_code == 0, result.output
    package = tmp_path / "opa-driver-cold-store2"
    files = sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    assert files == [
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "src/opa_driver_cold_store2/__init__.py",
        "src/opa_driver_cold_store2/driver.py",
        "src/opa_driver_cold_store2/options.py",
        "src/opa_driver_cold_store2/py.typed",
        "tests/conftest.py",
        "tests/test_compliance.py",
        "tests/test_driver.py",
    ]
    pyproject = (package / "pyproject.toml").read_text()
    assert 'name = "opa-driver-cold-store2"' in pyproject
    assert 'cold-store2 = "opa_driver_cold_store2.driver:ColdStore2Driver"' in pyproject
    assert '"opa-core>=0.1,<0.2"' in pyproject
    source = (package / "src/opa_driver_cold_store2/driver.py").read_text()
    assert f"is_async = {is_async}" in source
    assert "OPA_TEST_COLD_STORE2_URL" in (package / "tests/conftest.py").read_text()
    assert "def live_options" in (package / "tests/test_compliance.py").read_text()
    leftovers = [p for p in package.rglob("*") if p.is_file() and "{{" in p.read_text()]
    assert leftovers == []


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_the_generated_code_is_lint_and_strict_type_clean(tmp_path: Path, is_async: bool) -> None:
    """ruff and mypy --strict, with the package's own settings, find nothing to report."""
    for tool in ("ruff", "mypy"):
        if importlib.util.find_spec(tool) is None:
            skip_or_fail(f"{tool} is not installed in this environment")
    package = create_driver_package("lint-me", tmp_path, is_async=is_async)
    for args in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        result = run([sys.executable, "-m", *args], package)
        assert result.returncode == 0, report(result)
    cache = str(tmp_path / "mypy-cache")
    result = run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", cache, "src", "tests"], package
    )
    assert result.returncode == 0, report(result)


def test_a_generated_driver_installs_registers_and_passes_its_suite(tmp_path: Path) -> None:
    """In a fresh venv with opa-core from this repo, the driver loads, is listed and passes."""
    uv = shutil.which("uv")
    if uv is None:
        skip_or_fail("uv is not on PATH; it creates the fresh environment")
    package = create_driver_package("echo-kit", tmp_path)
    venv = tmp_path / "venv"
    created = run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], tmp_path)
    assert created.returncode == 0, report(created)
    python = venv / "bin" / "python"
    install = [
        uv,
        "pip",
        "install",
        "--quiet",
        "--python",
        str(python),
        str(CORE),
        f"{package}[test]",
    ]
    installed = run(install, tmp_path, timeout=INSTALL_TIMEOUT)
    assert installed.returncode == 0, report(installed)

    probe = (
        "from importlib.metadata import entry_points\n"
        "(ep,) = entry_points(group='opa.drivers', name='echo-kit')\n"
        "cls = ep.load()\n"
        "print(ep.dist.name, cls.__module__, cls.__name__, cls.name)\n"
    )
    loaded = run([str(python), "-c", probe], tmp_path)
    assert loaded.returncode == 0, report(loaded)
    assert loaded.stdout.split() == [
        "opa-driver-echo-kit",
        "opa_driver_echo_kit.driver",
        "EchoKitDriver",
        "echo-kit",
    ]

    listed = run([str(venv / "bin" / "opa"), "drivers"], tmp_path)
    assert listed.returncode == 0, report(listed)
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert ["echo-kit", "opa-driver-echo-kit", "0.1.0", "sync"] in rows, listed.stdout

    tested = run([str(python), "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider"], package)
    assert tested.returncode == 0, report(tested)
    summary = tested.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary), summary
    assert not re.search(r"failed|error|xfail|xpass", summary), summary
    # Skipped: only the cases the stand-in opts out of, each with its reason in the report.
    assert re.search(r"\b2 skipped\b", summary), summary
    for case in ("refused-login", "client-import"):
        assert f"opts out of '{case}': the stand-in" in tested.stdout, tested.stdout


DOCS = CORE.parents[1] / "docs"
TEMPLATES = CORE / "src" / "opa" / "templates" / "driver"
FROM_TESTING = re.compile(r"^from opa\.testing import (?:\(([^)]*)\)|([^(\n]+)$)", re.MULTILINE)
CORE_PIN = re.compile(r'"opa-core(?:\[\w+\])?(>=[^"]+)"')


def test_what_the_docs_and_the_template_import_from_the_test_kit_is_public() -> None:
    """Every name the driver guide and the generated package import from opa.testing is in
    its __all__: an author copies them."""
    import opa.testing

    sources = [DOCS / "writing-a-driver.md", *TEMPLATES.rglob("*.tmpl")]
    imported = {
        name.strip()
        for source in sources
        for found in FROM_TESTING.findall(source.read_text(encoding="utf-8"))
        for name in "".join(found).replace("\n", ",").split(",")
        if name.strip()
    }
    assert {"DriverComplianceSuite", "closed_port"} <= imported, imported
    assert imported <= set(opa.testing.__all__), imported - set(opa.testing.__all__)


def test_the_docs_pin_opa_core_as_the_template_does() -> None:
    """The driver guide's pyproject example pins opa-core to the range the template uses."""
    template = (TEMPLATES / "pyproject.toml.tmpl").read_text(encoding="utf-8")
    guide = (DOCS / "writing-a-driver.md").read_text(encoding="utf-8")
    pins = set(CORE_PIN.findall(template))
    assert len(pins) == 1, pins
    assert set(CORE_PIN.findall(guide)) == pins, CORE_PIN.findall(guide)
