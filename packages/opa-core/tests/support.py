"""Helpers shared by opa-core's tests: plugin folders, ports and isolated apps."""

from __future__ import annotations

import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

import opa._driver_registry
from opa.testing import build_app, free_port

__all__ = [
    "cpu_seconds",
    "free_port",
    "listening_port",
    "make_app",
    "without_installed_driver",
    "write_plugin",
]


def write_plugin(folder: Path, name: str, source: str, package: bool = False) -> Path:
    """Write a plugin module (or package) into *folder* and return its file."""
    folder.mkdir(parents=True, exist_ok=True)
    if package:
        target = folder / name / "__init__.py"
        target.parent.mkdir(parents=True, exist_ok=True)
    else:
        target = folder / f"{name}.py"
    target.write_text(textwrap.dedent(source), encoding="utf-8")
    return target


@contextmanager
def listening_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections while the block runs."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


def make_app(**settings: Any) -> FastAPI:
    """An app isolated from the machine's settings and installed plugins (keyword form)."""
    return build_app(settings)


def cpu_seconds(function: Callable[[], object]) -> float:
    """The least CPU time of three calls: the least is the one other load disturbed least."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        function()
        best = min(best, time.process_time() - start)
    return best


def without_installed_driver(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Hide the installed drivers *names*, as on a machine without their distributions: the
    core's tests also run with every package of the monorepo installed (`pytest
    packages/*/tests`)."""
    real = opa._driver_registry.entry_points

    def entry_points(**selection: Any) -> list[EntryPoint]:
        return [found for found in real(**selection) if found.name not in names]

    monkeypatch.setattr(opa._driver_registry, "entry_points", entry_points)
