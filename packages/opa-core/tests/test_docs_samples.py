"""The documentation's code samples run, so they cannot rot.

A ```python block of docs/*.md is sorted by its first line, written as a comment for
readers (GitHub shows the raw file, so nothing of the harness may show):

- ``# plugins/NAME.py``: written into a plugin folder with the page's other plugin blocks
  and served with ``opa.testing.build_app``; its ``# METHOD /path answers STATUS [JSON]``
  lines are requests the app must answer so, and an optional ``# with the settings {JSON}``
  line adds settings for the page's app;
- ``# needs ...``: needs something beyond opa-core (a driver, a backend) and is not run;
- any other block is executed as it is.

A yaml block offered as a settings file to copy (migrating.md's opa-stack components) is
loaded as one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from opa._config import DEFAULTS_FILE as DEFAULTS
from opa._config import load_settings, typed
from opa.testing import build_app, clean_environ, skip_or_fail

DOCS = Path(__file__).resolve().parents[3] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
PLUGIN = "# plugins/"
SETTINGS = "# with the settings "
NEEDS = "# needs "
EXPECT = re.compile(
    r"^# (?P<method>[A-Z]+) (?P<path>/\S*) answers (?P<status>\d{3})(?P<body> .+)?$"
)
# The harness's marks before they read as comments; no page may show them any more.
OLD_MARKS = re.compile(r"^# (plugin|expect|settings|needs): |^# run$", re.MULTILINE)


@dataclass
class Page:
    """The python blocks of one documentation page, sorted by their mark."""

    name: str
    plugins: dict[str, str] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    expectations: list[tuple[str, str, int, Any]] = field(default_factory=list)


def read_page(path: Path) -> Page:
    page = Page(path.name)
    for block in BLOCK.findall(path.read_text(encoding="utf-8")):
        first = block.splitlines()[0] if block.strip() else ""
        if first.startswith(PLUGIN):
            page.plugins[first.removeprefix(PLUGIN).strip()] = block
            for line in block.splitlines():
                if line.startswith(SETTINGS):
                    page.settings.update(json.loads(line.removeprefix(SETTINGS)))
                if match := EXPECT.match(line):
                    body = json.loads(match["body"]) if match["body"] else None
                    page.expectations.append(
                        (match["method"], match["path"], int(match["status"]), body)
                    )
        elif not first.startswith(NEEDS):
            page.runs.append(block)
    return page


PAGES = [read_page(path) for path in sorted(DOCS.glob("*.md"))]


def test_docs_are_found() -> None:
    """The docs folder is where the test expects it and holds runnable samples."""
    assert (DOCS / "index.md").is_file()
    assert sum(len(p.plugins) + len(p.runs) for p in PAGES) >= 5


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_samples_show_readers_no_harness_mark(path: Path) -> None:
    """No python block carries a mark written for the harness rather than for readers."""
    blocks = BLOCK.findall(path.read_text(encoding="utf-8"))
    marks = [m.group(0) for block in blocks for m in OLD_MARKS.finditer(block)]
    assert not marks, f"{path.name}: write {marks} as comments for readers (this file's docstring)"


PLUGIN_PAGES = [p for p in PAGES if p.plugins]


@pytest.mark.parametrize("page", PLUGIN_PAGES, ids=[p.name for p in PLUGIN_PAGES])
def test_plugin_samples_serve_their_routes(page: Page, tmp_path: Path) -> None:
    """A page's plugin blocks, served together, answer every request they expect."""
    assert page.expectations, f"{page.name}: plugin blocks state no '# METHOD /path answers STATUS' request"
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name, source in page.plugins.items():
        (folder / name).write_text(source, encoding="utf-8")
    app = build_app({**page.settings, "PLUGIN_PATHS": [str(folder)]})
    with TestClient(app) as client:
        for method, path, status, body in page.expectations:
            response = client.request(method, path)
            assert response.status_code == status, f"{page.name}: {method} {path}"
            if body is not None:
                assert response.json() == body, f"{page.name}: {method} {path}"


RUNS = [(p.name, i, source) for p in PAGES for i, source in enumerate(p.runs)]


@pytest.mark.parametrize("source", [r[2] for r in RUNS], ids=[f"{r[0]}-{r[1]}" for r in RUNS])
def test_run_samples_execute(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block that is neither a plugin nor needs more executes, from an empty working folder."""
    monkeypatch.chdir(tmp_path)
    exec(compile(source, "<docs sample>", "exec"), {"__name__": "__docs__"})


CORE = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 600
SAMPLE_TIMEOUT = 120


def test_run_samples_execute_with_only_opa_core_testing_installed(tmp_path: Path) -> None:
    """In a fresh venv holding only opa-core[testing] (what the docs tell a user to install
    for tests), every sample run as it is executes: fastapi.testclient finds its HTTP client."""
    uv = shutil.which("uv", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if uv is None:
        skip_or_fail("uv is not on PATH; it creates the fresh environment")
    venv = tmp_path / "venv"
    env = clean_environ()
    created = subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert created.returncode == 0, created.stderr
    python = str(venv / "bin" / "python")
    install = [uv, "pip", "install", "--quiet", "--python", python, f"{CORE}[testing]"]
    installed = subprocess.run(
        install, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
    )
    assert installed.returncode == 0, installed.stderr
    assert {"index.md", "writing-a-plugin.md"} <= {page for page, _, _ in RUNS}
    for page, index, source in RUNS:
        sample = tmp_path / f"{page.removesuffix('.md')}-{index}.py"
        sample.write_text(source, encoding="utf-8")
        ran = subprocess.run(
            [python, str(sample)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=SAMPLE_TIMEOUT,
        )
        assert ran.returncode == 0, f"{page} sample {index}:\n{ran.stderr}"


def test_configuration_reference_names_every_default_key() -> None:
    """Each key of opa's default settings appears in the configuration reference."""
    defaults = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))
    keys = set(defaults["default"]) | set(defaults.get("dev", {}))
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(key for key in keys if f"`{key}`" not in text)
    assert not missing, f"configuration.md does not name {missing}"


# opa-stack's default components, as opa-core's defaults had them before it dropped them.
OPA_STACK_FILE = "opa-stack-components.yaml"
OPA_STACK_COMPONENTS = {
    "mongodb": ("auto", "mongodb-async-motor", {"URL": "mongodb://127.0.0.1:27017/opa"}),
    "walrus": ("auto", "redis-walrus", {"URL": "redis://127.0.0.1:6379/0"}),
    "aioredis": ("auto", "redis-aioredis", {"URL": "redis://127.0.0.1:6379/0"}),
    "celery": (
        "auto",
        "celery",
        {"BROKER_URL": "redis://127.0.0.1:6379/1", "BACKEND_URL": "redis://127.0.0.1:6379/2"},
    ),
}


def test_migrating_gives_opa_stacks_default_components_as_a_settings_file(
    tmp_path: Path,
) -> None:
    """The settings file migrating.md offers loads as opa-stack's four components, LOAD auto."""
    text = (DOCS / "migrating.md").read_text(encoding="utf-8")
    [block] = [
        b for b in YAML_BLOCK.findall(text) if b.startswith(f"# settings/{OPA_STACK_FILE}\n")
    ]
    folder = tmp_path / "settings"
    folder.mkdir()
    (folder / OPA_STACK_FILE).write_text(block, encoding="utf-8")
    specs = typed(load_settings(folder)).OPTIONAL_COMPONENTS
    assert {s.name: (s.load, s.driver, s.opts) for s in specs} == OPA_STACK_COMPONENTS
