"""Writes the throwaway apps the benchmarks measure: plugin folders, settings, bare modules."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent
from typing import Any

HOOK_NAME = "bench_echo"
COMPONENT = "bench"
DRIVER = "bench-driver"
BACKENDS = (
    "redis",
    "walrus",
    "motor",
    "pymongo",
    "celery",
    "kombu",
    "aioredis",
    "bson",
    "sqlalchemy",
)

HELLO_ROUTE = """
@router.get("/hello")
async def hello() -> str:
    return "hello, world"
"""

HELLO_PLUGIN = "from opa import get_router\n\nrouter = get_router()\n" + HELLO_ROUTE

BARE_APP = (
    "from fastapi import APIRouter, FastAPI\n\nrouter = APIRouter()\n"
    + HELLO_ROUTE
    + "\napp = FastAPI()\napp.include_router(router)\n"
)

HOOK_PLUGIN = f'''
from typing import Any

from opa import Hook, HookDefinition


class BenchEcho(HookDefinition):
    name = "{HOOK_NAME}"


class BenchEchoHook(Hook):
    name = "{HOOK_NAME}"

    def run(self, value: Any) -> Any:
        return value
'''

DRIVER_PLUGIN = f'''
from opa import Driver


class BenchDriver(Driver):
    name = "{DRIVER}"

    def connect(self) -> None:
        self.instance = object()
'''

ROUTER_PLUGIN = """
from fastapi import APIRouter

router = APIRouter(prefix="/{name}", tags=["{name}"])


@router.get("/info")
async def info() -> dict[str, str]:
    return {{"plugin": "{name}"}}


@router.get("/items/{{item}}")
async def item(item: int, limit: int = 10) -> dict[str, int]:
    return {{"item": item, "limit": limit}}
"""


def write_settings(
    root: Path, plugin_paths: list[Path], components: dict[str, Any] | None = None
) -> Path:
    """A settings folder with one yaml: these plugin paths and components, quiet logs."""
    folder = root / "settings"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "default:",
        f"  PLUGIN_PATHS: {json.dumps([str(p) for p in plugin_paths])}",
        f"  OPTIONAL_COMPONENTS: {json.dumps(components or {})}",
        "  LOG_LEVEL: WARNING",
    ]
    (folder / "settings.yaml").write_text("\n".join(lines) + "\n")
    return folder


def write_plugin_app(root: Path, sources: dict[str, str], **settings: Any) -> Path:
    """An opa project in *root*: plugin modules under plugins/, returns its settings folder."""
    plugins = root / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        (plugins / f"{name}.py").write_text(dedent(source).lstrip())
    return write_settings(root, [plugins], **settings)


def hello_apps(root: Path) -> tuple[Path, Path]:
    """The served pair: (opa settings folder, folder holding bare_hello.py)."""
    settings = write_plugin_app(root / "opa", {"bench_hello": HELLO_PLUGIN})
    bare = root / "bare"
    bare.mkdir(parents=True, exist_ok=True)
    (bare / "bare_hello.py").write_text(BARE_APP)
    return settings, bare


def hook_app(root: Path) -> Path:
    return write_plugin_app(root, {"bench_hook": HOOK_PLUGIN})


def driver_app(root: Path) -> Path:
    component = {COMPONENT.upper(): {"LOAD": True, "DRIVER": DRIVER}}
    return write_plugin_app(root, {"bench_driver": DRIVER_PLUGIN}, components=component)


def many_plugins(root: Path, count: int) -> tuple[Path, Path]:
    """*count* router modules in root/plugins: (the opa settings folder, the plugin folder)."""
    sources = {
        f"bench_plugin_{i:03d}": ROUTER_PLUGIN.format(name=f"p{i:03d}") for i in range(count)
    }
    settings = write_plugin_app(root, sources)
    return settings, root / "plugins"
